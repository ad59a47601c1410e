package targets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sitewatch/sitewatch/services/internal/backoff"
)

// Config of a Projector.
type Config struct {
	// Topic is the targets topic.
	Topic string
	// Retry is how often a missing topic is looked for again (default 10s):
	// in file mode there is none, and the recorder runs without it.
	Retry time.Duration
}

// Projector keeps target_config up to date with the targets topic.
type Projector struct {
	cfg    Config
	opts   []kgo.Opt
	pool   *pgxpool.Pool
	logger *slog.Logger

	records *prometheus.CounterVec
}

// Results of a record, the label of sitewatch_recorder_targets_records_total.
const (
	resultSet      = "set"
	resultRemoved  = "removed"
	resultRejected = "rejected"
)

// New returns a Projector reading with a client built from opts and
// writing through pool; its metrics are registered with reg.
func New(cfg Config, opts []kgo.Opt, pool *pgxpool.Pool, reg prometheus.Registerer, logger *slog.Logger) (*Projector, error) {
	if cfg.Topic == "" {
		return nil, errors.New("targets projection: no topic")
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 10 * time.Second
	}
	p := &Projector{cfg: cfg, opts: opts, pool: pool, logger: logger.With("topic", cfg.Topic),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sitewatch_recorder_targets_records_total",
			Help: "Records of the targets topic applied to target_config, by result: set, removed (a tombstone), rejected (no valid target; skipped and logged).",
		}, []string{"result"}),
	}
	for _, r := range []string{resultSet, resultRemoved, resultRejected} {
		p.records.WithLabelValues(r) // every series exists from the start
	}
	if err := reg.Register(p.records); err != nil {
		return nil, fmt.Errorf("register targets metrics: %w", err)
	}
	return p, nil
}

// Run projects the topic until ctx ends, and then returns nil. It waits
// quietly for a topic that does not exist, and retries failures of Kafka or
// the database with a backoff, from the offsets last committed.
func (p *Projector) Run(ctx context.Context) error {
	_, err := backoff.Do(ctx, backoff.Exponential(time.Second, time.Minute), p.run,
		func(error) bool { return ctx.Err() == nil }, // stopping is no failure
		func(attempt int, wait time.Duration, err error) {
			p.logger.Warn("targets projection failed; retrying", "attempt", attempt, "wait", wait.String(), "err", err)
		})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// run is one attempt: wait for the topic, read from the stored offsets,
// apply fetch by fetch.
func (p *Projector) run(ctx context.Context) error {
	cl, err := kgo.NewClient(p.opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	partitions, err := p.waitForTopic(ctx, kadm.NewClient(cl))
	if err != nil {
		return err
	}
	next, err := p.offsets(ctx)
	if err != nil {
		return err
	}
	assign := map[int32]kgo.Offset{}
	for _, part := range partitions {
		if o, ok := next[part]; ok {
			assign[part] = kgo.NewOffset().At(o)
		} else {
			assign[part] = kgo.NewOffset().AtStart()
		}
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{p.cfg.Topic: assign})
	p.logger.Info("projecting the targets topic into target_config", "partitions", len(partitions))
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var ferr error
		fs.EachError(func(t string, part int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("read %s partition %d: %w", t, part, err))
		})
		if ferr != nil {
			return ferr
		}
		if recs := fs.Records(); len(recs) > 0 {
			if err := p.Apply(ctx, recs); err != nil {
				return err
			}
		}
	}
}

// waitForTopic returns the topic's partitions once it exists.
func (p *Projector) waitForTopic(ctx context.Context, adm *kadm.Client) ([]int32, error) {
	for said := false; ; said = true {
		ends, err := adm.ListEndOffsets(ctx, p.cfg.Topic)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			var parts []int32
			ends.Each(func(o kadm.ListedOffset) { parts = append(parts, o.Partition) })
			if len(parts) > 0 {
				return parts, nil
			}
			err = kerr.UnknownTopicOrPartition
		}
		if !errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("list the partitions of %s: %w", p.cfg.Topic, err)
		}
		if !said {
			// File mode has no targets topic: say so once, not at every look.
			p.logger.Info("the targets topic does not exist (file mode?); target_config stays empty and staleness uses the events' intervals; looking again periodically",
				"every", p.cfg.Retry.String())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(p.cfg.Retry):
		}
	}
}

func (p *Projector) offsets(ctx context.Context) (map[int32]int64, error) {
	rows, err := p.pool.Query(ctx, `SELECT partition, next_offset FROM target_config_offsets WHERE topic = $1`, p.cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("read target_config_offsets: %w", err)
	}
	next := map[int32]int64{}
	var part int32
	var off int64
	_, err = pgx.ForEachRow(rows, []any{&part, &off}, func() error {
		next[part] = off
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read target_config_offsets: %w", err)
	}
	return next, nil
}

// Apply applies records of the topic, in their order within each
// partition, in one transaction that also stores each partition's next
// offset; records below a partition's stored offset took effect before and
// are skipped.
func (p *Projector) Apply(ctx context.Context, records []*kgo.Record) error {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	// Recorders read the topic side by side: one at a time applies.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('target_config ' || $1, 0))`, p.cfg.Topic); err != nil {
		return fmt.Errorf("lock the targets projection: %w", err)
	}
	stored := map[int32]int64{}
	rows, err := tx.Query(ctx, `SELECT partition, next_offset FROM target_config_offsets WHERE topic = $1`, p.cfg.Topic)
	if err != nil {
		return fmt.Errorf("read target_config_offsets: %w", err)
	}
	var part int32
	var off int64
	if _, err := pgx.ForEachRow(rows, []any{&part, &off}, func() error { stored[part] = off; return nil }); err != nil {
		return fmt.Errorf("read target_config_offsets: %w", err)
	}
	next := map[int32]int64{}
	counts := map[string]float64{}
	for _, r := range records {
		if r.Topic != p.cfg.Topic {
			continue
		}
		if o, ok := stored[r.Partition]; ok && r.Offset < o {
			continue
		}
		if n, ok := next[r.Partition]; ok && r.Offset < n {
			continue
		}
		next[r.Partition] = r.Offset + 1
		c, err := FromRecord(r)
		if err != nil {
			p.logger.Warn("skipped a record of the targets topic that is no valid target", "target", c.TargetID, "err", err)
			counts[resultRejected]++
			continue
		}
		if err := apply(ctx, tx, c); err != nil {
			return fmt.Errorf("apply target %q (%s partition %d offset %d): %w", c.TargetID, r.Topic, r.Partition, r.Offset, err)
		}
		if c.Row == nil {
			counts[resultRemoved]++
		} else {
			counts[resultSet]++
		}
	}
	for part, n := range next {
		if _, err := tx.Exec(ctx, `INSERT INTO target_config_offsets (topic, partition, next_offset) VALUES ($1, $2, $3)
			ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset`, p.cfg.Topic, part, n); err != nil {
			return fmt.Errorf("store the offset of %s partition %d: %w", p.cfg.Topic, part, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	for result, n := range counts {
		p.records.WithLabelValues(result).Add(n)
	}
	return nil
}

// setSQL sets a target's definition. A target set again after its removal
// is configured anew: configured_at is the record's time, removed_at is
// cleared.
const setSQL = `INSERT INTO target_config AS c (target_id, url, method, interval_us, timeout_us, header_names, has_body,
		expect_status, pattern, follow_redirects, tls_skip_verify, max_body_bytes, regions, labels, alert,
		configured_at, updated_at, removed_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $16::jsonb, $15, $15, NULL)
	ON CONFLICT (target_id) DO UPDATE SET
		url = excluded.url, method = excluded.method, interval_us = excluded.interval_us,
		timeout_us = excluded.timeout_us, header_names = excluded.header_names, has_body = excluded.has_body,
		expect_status = excluded.expect_status, pattern = excluded.pattern,
		follow_redirects = excluded.follow_redirects, tls_skip_verify = excluded.tls_skip_verify,
		max_body_bytes = excluded.max_body_bytes, regions = excluded.regions, labels = excluded.labels,
		alert = excluded.alert,
		configured_at = CASE WHEN c.removed_at IS NULL THEN c.configured_at ELSE excluded.configured_at END,
		updated_at = excluded.updated_at,
		removed_at = NULL`

// removeSQL marks a target removed; a tombstone of a target removed already
// (the log cleaner keeps tombstones a while) changes nothing.
const removeSQL = `UPDATE target_config SET removed_at = $2 WHERE target_id = $1 AND removed_at IS NULL`

func apply(ctx context.Context, tx pgx.Tx, c Change) error {
	if c.Row == nil {
		_, err := tx.Exec(ctx, removeSQL, c.TargetID, c.At)
		return err
	}
	r := c.Row
	var pattern any
	if r.Pattern != "" {
		pattern = r.Pattern
	}
	_, err := tx.Exec(ctx, setSQL, r.TargetID, r.URL, r.Method, r.Interval.Microseconds(), r.Timeout.Microseconds(),
		r.HeaderNames, r.HasBody, r.ExpectStatus, pattern, r.FollowRedirects, r.TLSSkipVerify, r.MaxBodyBytes,
		r.Regions, r.labelsJSON(), c.At, r.alertJSON())
	return err
}

// Reset empties the projection of topic (target_config and its offsets) in
// one transaction, so that the next run rebuilds it from the start of the
// topic. Run it while no recorder runs: a running one would go on from
// where it is.
func Reset(ctx context.Context, pool *pgxpool.Pool, topic string) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('target_config ' || $1, 0))`, topic); err != nil {
		return fmt.Errorf("lock the targets projection: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM target_config`); err != nil {
		return fmt.Errorf("empty target_config: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM target_config_offsets WHERE topic = $1`, topic); err != nil {
		return fmt.Errorf("empty target_config_offsets: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
