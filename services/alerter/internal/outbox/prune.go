package outbox

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of PruneOptions (DefaultRetention is the alerter's -outbox-retention).
const (
	DefaultRetention  = 30 * 24 * time.Hour
	DefaultPruneEvery = time.Hour
	DefaultPruneBatch = 10000
)

// PruneOptions tune a Pruner; the zero value of each field takes its default.
type PruneOptions struct {
	// Retention: rows delivered or given up longer ago than this are
	// deleted. 0 (or less) keeps them for good: the pruner deletes nothing.
	Retention time.Duration
	// Every is the wait between two passes; Batch the most rows one DELETE
	// takes, so that no statement holds its locks for long.
	Every  time.Duration
	Batch  int
	Logger *slog.Logger
	// Registerer gets the pruner's metric; nil: none is registered.
	Registerer prometheus.Registerer
}

// Pruner deletes the outbox rows that are done with: delivered or given
// up longer ago than the retention. Pending rows are never touched, nor
// the rows of an incident still open: the no-data pass reads from them
// which channels to tell of its resolution (nodata.go). Incidents and
// incident_transitions stay: they are the history. Several
// pruners side by side are harmless: SKIP LOCKED lets each take rows the
// others do not hold.
type Pruner struct {
	pool   *pgxpool.Pool
	o      PruneOptions
	pruned prometheus.Counter
}

// NewPruner returns a pruner of the outbox of pool's database.
func NewPruner(pool *pgxpool.Pool, o PruneOptions) *Pruner {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o.Every = cmp(o.Every, DefaultPruneEvery)
	o.Batch = cmp(o.Batch, DefaultPruneBatch)
	p := &Pruner{pool: pool, o: o, pruned: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sitewatch_alerter_outbox_pruned_total",
		Help: "Rows of notification_outbox deleted for being delivered or given up longer ago than -outbox-retention.",
	})}
	if o.Registerer != nil {
		o.Registerer.MustRegister(p.pruned)
	}
	return p
}

// Run prunes at start and then every o.Every until ctx ends, and returns
// nil. A failed pass is logged and tried again at the next.
func (p *Pruner) Run(ctx context.Context) error {
	for {
		n, err := p.Prune(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			p.o.Logger.Warn("outbox: prune failed; trying again later", "error", err, "pruned", n, "wait", p.o.Every)
		case n > 0:
			p.o.Logger.Info("outbox: pruned", "rows", n, "retention", p.o.Retention)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(p.o.Every):
		}
	}
}

// Prune deletes the rows delivered or given up before now - Retention, in
// batches of o.Batch rows, and returns how many it deleted.
func (p *Pruner) Prune(ctx context.Context) (int64, error) {
	var total int64
	if p.o.Retention <= 0 {
		return 0, nil
	}
	for {
		tag, err := p.pool.Exec(ctx, `
DELETE FROM notification_outbox WHERE id IN (
	SELECT id FROM notification_outbox o
	WHERE coalesce(delivered_at, failed_at) < now() - $1::interval
	  AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.incident_id = o.incident_id AND i.resolved_at IS NULL)
	LIMIT $2
	FOR UPDATE SKIP LOCKED)`, p.o.Retention, p.o.Batch)
		if err != nil {
			return total, fmt.Errorf("prune notification_outbox: %w", err)
		}
		n := tag.RowsAffected()
		total += n
		p.pruned.Add(float64(n))
		if n < int64(p.o.Batch) {
			return total, nil
		}
	}
}
