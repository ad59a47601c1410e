package nodata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sitewatch/sitewatch/services/alerter/internal/notify"
	"github.com/sitewatch/sitewatch/services/alerter/internal/outbox"
)

// DefaultInterval is the time between two passes.
const DefaultInterval = 15 * time.Second

// LockKey is the key of the transaction-level advisory lock a pass holds:
// the first 8 bytes of SHA-256("sitewatch-alerter-nodata"), as a bigint.
const LockKey int64 = -6793007728960161286

// Options tune an Evaluator; the zero value of each field takes its
// default.
type Options struct {
	// Interval between passes (DefaultInterval).
	Interval time.Duration
	// Now is the pass's clock (time.Now): staleness is decided against
	// it, not the database's now(), so tests can place a pass in time.
	Now    func() time.Time
	Logger *slog.Logger
	// Registerer gets the metrics; nil: none are registered.
	Registerer prometheus.Registerer
}

// Evaluator runs the passes.
type Evaluator struct {
	pool     *pgxpool.Pool
	policies func() Policies
	o        Options
	m        *metrics
}

// New returns an evaluator over pool's database (the recorder's views and
// the alerter's tables) under the current policies.
func New(pool *pgxpool.Pool, policies func() Policies, o Options) *Evaluator {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Evaluator{pool: pool, policies: policies, o: o, m: newMetrics(o.Registerer)}
}

// Run makes a pass every Interval until ctx ends, and returns nil then. A
// failed pass is logged and counted; the next one tries again.
func (e *Evaluator) Run(ctx context.Context) error {
	t := time.NewTicker(e.o.Interval)
	defer t.Stop()
	for {
		if _, err := e.Pass(ctx); err != nil && ctx.Err() == nil {
			e.o.Logger.Error("no-data pass failed; trying again at the next", "err", err, "every", e.o.Interval.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Result is what a pass did.
type Result struct {
	// Skipped: another alerter held the lock, this pass did nothing.
	Skipped bool
	// Transitions stored, by transition (opened, reminder, resolved).
	Transitions map[string]int
	Outbox      int
}

// Pass evaluates once at Options.Now, in one transaction under the
// advisory lock; when another alerter holds it, it returns at once with
// Skipped.
func (e *Evaluator) Pass(ctx context.Context) (Result, error) {
	res := Result{Transitions: map[string]int{}}
	now := e.o.Now()
	start := time.Now()
	err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, LockKey).Scan(&locked); err != nil {
			return fmt.Errorf("take the no-data lock: %w", err)
		}
		if !locked {
			res.Skipped = true
			return nil
		}
		snap, err := read(ctx, tx, now)
		if err != nil {
			return err
		}
		steps, unknown := plan(now, snap, e.policies())
		for _, u := range unknown {
			e.m.unknownChannel.Inc()
			e.o.Logger.Warn("the policy names a channel the configuration does not have; not notified", "channel", u.Channel, "incident", u.IncidentID)
		}
		if res.Outbox, err = write(ctx, tx, steps); err != nil {
			return err
		}
		for _, s := range steps {
			res.Transitions[s.Transition]++
		}
		if res.Outbox > 0 {
			// The senders claim the rows as the transaction commits.
			if err := outbox.Wake(ctx, tx); err != nil {
				return fmt.Errorf("wake the outbox senders: %w", err)
			}
		}
		return nil
	})
	switch {
	case err != nil:
		e.m.passes.WithLabelValues("failed").Inc()
		return Result{}, err
	case res.Skipped:
		e.m.passes.WithLabelValues("skipped").Inc()
		return res, nil
	}
	e.m.passes.WithLabelValues("evaluated").Inc()
	e.m.duration.Observe(time.Since(start).Seconds())
	for tr, n := range res.Transitions {
		e.m.transitions.WithLabelValues(tr).Add(float64(n))
	}
	e.m.outbox.Add(float64(res.Outbox))
	return res, nil
}

// read takes the snapshot. Staleness is the view's stale_since against
// now, not its stale column (the database's now()).
func read(ctx context.Context, tx pgx.Tx, now time.Time) (snapshot, error) {
	snap := snapshot{Probers: map[string]time.Time{}}
	if err := tx.QueryRow(ctx, `SELECT stale_after_intervals()`).Scan(&snap.StaleAfter); err != nil {
		return snap, fmt.Errorf("read stale_after_intervals(): %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT f.target_id, f.region, coalesce(c.url, t.url, ''), f.last_checked_at,
			(extract(epoch FROM f.check_interval) * 1e6)::bigint, f.stale_since
		FROM target_region_freshness f
		LEFT JOIN target_config c ON c.target_id = f.target_id
		LEFT JOIN targets t ON t.target_id = f.target_id
		ORDER BY f.region, f.target_id`)
	if err != nil {
		return snap, fmt.Errorf("read target_region_freshness: %w", err)
	}
	var f freshness
	var us int64
	_, err = pgx.ForEachRow(rows, []any{&f.TargetID, &f.Region, &f.URL, &f.LastChecked, &us, &f.StaleSince}, func() error {
		f.Interval = time.Duration(us) * time.Microsecond
		snap.Rows = append(snap.Rows, f)
		f.LastChecked = nil
		return nil
	})
	if err != nil {
		return snap, fmt.Errorf("read target_region_freshness: %w", err)
	}
	rows, err = tx.Query(ctx, `SELECT region, max(last_seen) FROM probers GROUP BY region`)
	if err != nil {
		return snap, fmt.Errorf("read probers: %w", err)
	}
	var region string
	var last time.Time
	if _, err := pgx.ForEachRow(rows, []any{&region, &last}, func() error { snap.Probers[region] = last; return nil }); err != nil {
		return snap, fmt.Errorf("read probers: %w", err)
	}
	rows, err = tx.Query(ctx, `SELECT i.incident_id, coalesce(i.target_id, ''), i.region, i.started_at, i.confirmed_at,
			i.resolved_at, coalesce(i.maintenance, ''), i.first_error, tr.seq, tr.at, coalesce(c.url, t.url, '')
		FROM incidents i
		LEFT JOIN target_config c ON c.target_id = i.target_id
		LEFT JOIN targets t ON t.target_id = i.target_id
		CROSS JOIN LATERAL (SELECT seq, at FROM incident_transitions x WHERE x.incident_id = i.incident_id
		                    ORDER BY seq DESC LIMIT 1) tr
		WHERE i.kind = $1 AND i.region IS NOT NULL
		  AND (i.resolved_at IS NULL OR (i.target_id IS NULL AND i.resolved_at > $2))`, Kind, now.Add(-RegionLookback))
	if err != nil {
		return snap, fmt.Errorf("read the no-data incidents: %w", err)
	}
	var inc incident
	byID := map[string]*incident{}
	_, err = pgx.ForEachRow(rows, []any{&inc.ID, &inc.TargetID, &inc.Region, &inc.StartedAt, &inc.ConfirmedAt, &inc.ResolvedAt,
		&inc.Maintenance, &inc.Error, &inc.LastSeq, &inc.LastAt, &inc.URL}, func() error {
		inc.Notified = map[string]string{}
		snap.Incidents = append(snap.Incidents, inc)
		inc.ResolvedAt = nil
		return nil
	})
	if err != nil {
		return snap, fmt.Errorf("read the no-data incidents: %w", err)
	}
	var open []string
	for i := range snap.Incidents {
		if inc := &snap.Incidents[i]; inc.ResolvedAt == nil {
			byID[inc.ID] = inc
			open = append(open, inc.ID)
		}
	}
	if len(open) == 0 {
		return snap, nil
	}
	// One query for all (index notification_outbox_incident, migration 00017).
	rows, err = tx.Query(ctx, `SELECT DISTINCT incident_id, channel, channel_type FROM notification_outbox WHERE incident_id = ANY($1)`, open)
	if err != nil {
		return snap, fmt.Errorf("read the channels notified of the no-data incidents: %w", err)
	}
	var id, name, typ string
	_, err = pgx.ForEachRow(rows, []any{&id, &name, &typ}, func() error { byID[id].Notified[name] = typ; return nil })
	if err != nil {
		return snap, fmt.Errorf("read the channels notified of the no-data incidents: %w", err)
	}
	return snap, nil
}

// write stores the steps and returns the number of outbox rows inserted.
// A new incident whose ID is taken (an earlier spell of the same target
// and region that stopped at the same time: its region was dropped from
// the configuration and added again) takes the ID with "|2", "|3", ...
// appended before hashing, the first that is free.
func write(ctx context.Context, tx pgx.Tx, steps []step) (int, error) {
	ids := map[string]string{}
	n := 0
	for _, s := range steps {
		if s.Open != nil {
			id, err := insertIncident(ctx, tx, s.Open)
			if err != nil {
				return 0, err
			}
			ids[s.IncidentID] = id
		}
		if id, ok := ids[s.IncidentID]; ok {
			s.IncidentID, s.Notification.IncidentID = id, id
		}
		if s.Transition == notify.Resolved {
			if _, err := tx.Exec(ctx, `UPDATE incidents SET resolved_at = $2 WHERE incident_id = $1 AND resolved_at IS NULL`,
				s.IncidentID, s.At); err != nil {
				return 0, fmt.Errorf("resolve incident %s: %w", s.IncidentID, err)
			}
		}
		var suppressed any
		if s.Suppressed != "" {
			suppressed = s.Suppressed
		}
		if _, err := tx.Exec(ctx, `INSERT INTO incident_transitions (incident_id, seq, transition, at, event_id, regions, suppressed)
			VALUES ($1, $2, $3, $4, NULL, $5, $6)`, s.IncidentID, s.Seq, s.Transition, s.At, []string{s.Region}, suppressed); err != nil {
			return 0, fmt.Errorf("incident %s: transition %d: %w", s.IncidentID, s.Seq, err)
		}
		payload, err := json.Marshal(s.Notification)
		if err != nil {
			return 0, fmt.Errorf("notification of incident %s: %w", s.IncidentID, err)
		}
		for _, c := range s.Channels {
			if _, err := tx.Exec(ctx, `INSERT INTO notification_outbox (idempotency_key, incident_id, seq, channel, channel_type, payload)
				VALUES ($1, $2, $3, $4, $5, $6)`, s.Notification.IdempotencyKey(c.Name), s.IncidentID, s.Seq, c.Name, c.Type, payload); err != nil {
				return 0, fmt.Errorf("incident %s: outbox row for channel %s: %w", s.IncidentID, c.Name, err)
			}
			n++
		}
	}
	return n, nil
}

func insertIncident(ctx context.Context, tx pgx.Tx, inc *incident) (string, error) {
	var target, maint any
	if inc.TargetID != "" {
		target = inc.TargetID
	}
	if inc.Maintenance != "" {
		maint = inc.Maintenance
	}
	id := inc.ID
	for k := 2; ; k++ {
		var got string
		err := tx.QueryRow(ctx, `INSERT INTO incidents (incident_id, target_id, kind, region, started_at, first_event_id,
				confirmed_at, regions, first_failure_kind, first_error, last_failure_kind, last_error, last_failure_at, maintenance)
			VALUES ($1, $2, $3, $4, $5, '', $6, $7, $3, $8, $3, $8, $6, $9)
			ON CONFLICT (incident_id) DO NOTHING RETURNING incident_id`,
			id, target, Kind, inc.Region, inc.StartedAt, inc.ConfirmedAt, []string{inc.Region}, inc.Error, maint).Scan(&got)
		if err == nil {
			return got, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) || k > 100 {
			return "", fmt.Errorf("open incident %s (target %q, region %q): %w", id, inc.TargetID, inc.Region, err)
		}
		id = incidentID(inc.TargetID, inc.Region, inc.StartedAt, fmt.Sprint(k))
	}
}
