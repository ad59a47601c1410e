package query

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Hour is one hour of a target's rollup (availability_hourly).
type Hour struct {
	Hour            time.Time `json:"hour"`
	Checks          int64     `json:"checks"`
	Up              int64     `json:"up"`
	Down            int64     `json:"down"`
	AvailabilityPct float64   `json:"availability_pct"`
	AvgMS           float64   `json:"avg_ms"`
	P50MS           *float64  `json:"p50_ms"`
	P95MS           *float64  `json:"p95_ms"`
	P99MS           *float64  `json:"p99_ms"`
	// Failed checks per failure kind.
	Failures map[string]int64 `json:"failures"`
}

// FailureKinds are the rollup's failure columns, in the order of
// check_results_hourly (the proto's FailureKind without "unspecified").
var FailureKinds = []string{"dns", "connect", "tls", "timeout", "http_status", "content_mismatch", "other"}

// Hourly returns the target's hours within r, oldest first.
func (db *DB) Hourly(ctx context.Context, id string, r Range) ([]Hour, error) {
	rows, err := db.pool.Query(ctx, `
SELECT hour, checks, up, down, availability_pct::float8, avg_ms::float8,
       p50_ms::float8, p95_ms::float8, p99_ms::float8,
       failures_dns, failures_connect, failures_tls, failures_timeout,
       failures_http_status, failures_content_mismatch, failures_other
FROM availability_hourly
WHERE target_id = $1 AND hour > date_trunc('hour', now(), 'UTC') - make_interval(hours => $2)
ORDER BY hour`, id, r.Hours)
	if err != nil {
		return nil, fmt.Errorf("hourly %q: %w", id, err)
	}
	hours, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Hour, error) {
		var h Hour
		f := make([]int64, len(FailureKinds))
		err := row.Scan(&h.Hour, &h.Checks, &h.Up, &h.Down, &h.AvailabilityPct, &h.AvgMS, &h.P50MS, &h.P95MS, &h.P99MS,
			&f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6])
		h.Failures = make(map[string]int64, len(f))
		for i, k := range FailureKinds {
			h.Failures[k] = f[i]
		}
		h.Hour = h.Hour.UTC()
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("hourly %q: %w", id, err)
	}
	return hours, nil
}

// Day is one UTC day of a target's availability (availability_daily).
type Day struct {
	Day             string  `json:"day"` // YYYY-MM-DD
	Checks          int64   `json:"checks"`
	Up              int64   `json:"up"`
	AvailabilityPct float64 `json:"availability_pct"`
}

// Daily returns the target's last days UTC days (today included), oldest
// first; days without checks are left out.
func (db *DB) Daily(ctx context.Context, id string, days int) ([]Day, error) {
	rows, err := db.pool.Query(ctx, `
SELECT to_char(day, 'YYYY-MM-DD'), checks::int8, up::int8, availability_pct::float8
FROM availability_daily
WHERE target_id = $1 AND day > (now() AT TIME ZONE 'UTC')::date - $2::int
ORDER BY day`, id, days)
	if err != nil {
		return nil, fmt.Errorf("daily %q: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Day])
	if err != nil {
		return nil, fmt.Errorf("daily %q: %w", id, err)
	}
	return out, nil
}

// Phase is the mean time of each phase of a target's checks in one hour
// of the last day, in milliseconds; nil where no check reached the phase
// (no TLS over plain HTTP, no DNS for an IP address).
type Phase struct {
	Hour      time.Time `json:"hour"`
	Checks    int64     `json:"checks"`
	DNSMS     *float64  `json:"dns_ms"`
	ConnectMS *float64  `json:"connect_ms"`
	TLSMS     *float64  `json:"tls_ms"`
	TTFBMS    *float64  `json:"ttfb_ms"`
}

// Phases returns the phase breakdown per hour of the last 24 hours. The
// rollup keeps no phase timings, so this reads the raw rows: never more
// than a day of them.
func (db *DB) Phases(ctx context.Context, id string) ([]Phase, error) {
	rows, err := db.pool.Query(ctx, `
SELECT date_trunc('hour', checked_at, 'UTC') AS hour, count(*),
       round(avg(dns_us) / 1000.0, 3)::float8, round(avg(connect_us) / 1000.0, 3)::float8,
       round(avg(tls_handshake_us) / 1000.0, 3)::float8, round(avg(ttfb_us) / 1000.0, 3)::float8
FROM check_results
WHERE target_id = $1 AND checked_at > now() - interval '24 hours'
GROUP BY 1 ORDER BY 1`, id)
	if err != nil {
		return nil, fmt.Errorf("phases %q: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Phase])
	if err != nil {
		return nil, fmt.Errorf("phases %q: %w", id, err)
	}
	for i := range out {
		out[i].Hour = out[i].Hour.UTC()
	}
	return out, nil
}

// Failure is one failed check of the last day.
type Failure struct {
	CheckedAt   time.Time `json:"checked_at"`
	Region      *string   `json:"region"`
	FailureKind *string   `json:"failure_kind"`
	StatusCode  *int32    `json:"status_code"`
	Error       *string   `json:"error"`
}

// Failures returns the target's latest failed checks of the last 24 hours,
// newest first, at most limit.
func (db *DB) Failures(ctx context.Context, id string, limit int) ([]Failure, error) {
	rows, err := db.pool.Query(ctx, `
SELECT checked_at, prober_region, failure_kind, status_code, error
FROM check_results
WHERE target_id = $1 AND checked_at > now() - interval '24 hours' AND outcome = 'down'
ORDER BY checked_at DESC LIMIT $2`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("failures %q: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Failure])
	if err != nil {
		return nil, fmt.Errorf("failures %q: %w", id, err)
	}
	for i := range out {
		out[i].CheckedAt = out[i].CheckedAt.UTC()
	}
	return out, nil
}

// Transition is one step of an incident's timeline (incident_transitions).
type Transition struct {
	IncidentID string    `json:"incident_id"`
	Kind       string    `json:"kind"` // down, tls_expiry, no_data
	Seq        int32     `json:"seq"`
	Transition string    `json:"transition"` // opened, reminder, resolved
	At         time.Time `json:"at"`
	Regions    []string  `json:"regions"`
	Suppressed *string   `json:"suppressed"`
	Error      string    `json:"error"` // the incident's first error
}

// Timeline returns the transitions of the target's incidents within r,
// newest first, at most 200.
func (db *DB) Timeline(ctx context.Context, id string, r Range) ([]Transition, error) {
	rows, err := db.pool.Query(ctx, `
SELECT t.incident_id, i.kind, t.seq, t.transition, t.at, t.regions, t.suppressed, i.first_error
FROM incident_transitions t JOIN incidents i ON i.incident_id = t.incident_id
WHERE i.target_id = $1 AND t.at > now() - make_interval(hours => $2)
ORDER BY t.at DESC, t.seq DESC LIMIT 200`, id, r.Hours)
	if err != nil {
		return nil, fmt.Errorf("incident timeline %q: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Transition])
	if err != nil {
		return nil, fmt.Errorf("incident timeline %q: %w", id, err)
	}
	for i := range out {
		out[i].At = out[i].At.UTC()
	}
	return out, nil
}

// Incident is one row of incident_history.
type Incident struct {
	IncidentID       string     `json:"incident_id"`
	TargetID         *string    `json:"target_id"`
	Kind             string     `json:"kind"`
	Region           *string    `json:"region"`
	StartedAt        time.Time  `json:"started_at"`
	ConfirmedAt      time.Time  `json:"confirmed_at"`
	ResolvedAt       *time.Time `json:"resolved_at"`
	Regions          []string   `json:"regions"`
	FirstFailureKind string     `json:"first_failure_kind"`
	FirstError       string     `json:"first_error"`
	Maintenance      *string    `json:"maintenance"`
}

// IncidentFilter selects incidents: only open ones, one target's ("" for
// all), at most Limit, newest first.
type IncidentFilter struct {
	Open   bool
	Target string
	Limit  int
}

// Incidents returns incidents, newest first.
func (db *DB) Incidents(ctx context.Context, f IncidentFilter) ([]Incident, error) {
	rows, err := db.pool.Query(ctx, `
SELECT incident_id, target_id, kind, region, started_at, confirmed_at, resolved_at, regions,
       first_failure_kind, first_error, maintenance
FROM incident_history
WHERE (NOT $1 OR resolved_at IS NULL) AND ($2 = '' OR target_id = $2)
ORDER BY started_at DESC, incident_id LIMIT $3`, f.Open, f.Target, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("incidents: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Incident])
	if err != nil {
		return nil, fmt.Errorf("incidents: %w", err)
	}
	for i := range out {
		out[i].StartedAt, out[i].ConfirmedAt = out[i].StartedAt.UTC(), out[i].ConfirmedAt.UTC()
		if out[i].ResolvedAt != nil {
			t := out[i].ResolvedAt.UTC()
			out[i].ResolvedAt = &t
		}
	}
	return out, nil
}

// Summary is what the uptime and response badges show for a period.
type Summary struct {
	Checks    int64
	UptimePct *float64
	AvgMS     *float64
}

// Summarize returns a target's checks, uptime and mean response time over
// the hours of r, from the rollup.
func (db *DB) Summarize(ctx context.Context, id string, r Range) (Summary, error) {
	var s Summary
	err := db.pool.QueryRow(ctx, `
SELECT coalesce(sum(checks), 0)::int8,
       round(100.0 * sum(up) / nullif(sum(checks), 0), 3)::float8,
       round(sum(response_time_sum_us) / 1000.0 / nullif(sum(checks), 0), 3)::float8
FROM check_results_hourly
WHERE target_id = $1 AND hour > date_trunc('hour', now(), 'UTC') - make_interval(hours => $2)`, id, r.Hours).
		Scan(&s.Checks, &s.UptimePct, &s.AvgMS)
	if err != nil {
		return s, fmt.Errorf("summary %q: %w", id, err)
	}
	return s, nil
}
