package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Event is one check result as the recorder stores it. Durations are whole
// microseconds in the database; a nil phase did not happen.
type Event struct {
	EventID   [16]byte
	TargetID  string
	URL       string
	Method    string
	CheckedAt time.Time
	Up        bool
	// FailureKind is one of dns, connect, tls, timeout, http_status,
	// content_mismatch, other; empty when up.
	FailureKind  string
	ResponseTime time.Duration

	DNS, Connect, TLSHandshake, TimeToFirstByte *time.Duration

	StatusCode    int32 // 0: no response arrived
	BytesRead     int64
	BodyTruncated bool

	HasContentCheck bool
	ContentPattern  string
	ContentMatched  bool

	TLSCertExpiresAt time.Time // zero: not HTTPS
	Redirects        int32
	Error            string

	ProberInstance string
	ProberRegion   string
}

// Result tells what a Write did.
type Result struct {
	// Inserted is the number of new raw rows; the others were known event IDs.
	Inserted int
	// InsertedCheckedAt holds the checked_at of each inserted row (for the
	// end-to-end delay metric).
	InsertedCheckedAt []time.Time
}

// Store writes batches of events into PostgreSQL and keeps the partitions of
// check_results.
type Store struct {
	pool      *pgxpool.Pool
	logger    *slog.Logger
	retention time.Duration

	mu    sync.Mutex
	parts map[time.Time]bool // UTC days whose partition exists
}

// Config of a Store.
type Config struct {
	// Retention drops raw partitions wholly older than now minus Retention;
	// zero keeps everything.
	Retention time.Duration
	// MaxConns bounds the pool (default 4).
	MaxConns int32
}

// stagingDDL creates, on every connection of the pool, the temporary table a
// batch is copied into before the one INSERT ... SELECT. ON COMMIT DELETE ROWS
// empties it at each commit, so a connection keeps reusing one table.
const stagingDDL = `CREATE TEMP TABLE check_results_staging (
	event_id uuid, target_id text, url text, method text, checked_at timestamptz,
	outcome text, failure_kind text, response_time_us bigint,
	dns_us bigint, connect_us bigint, tls_handshake_us bigint, ttfb_us bigint,
	status_code integer, bytes_read bigint, body_truncated boolean,
	content_pattern text, content_matched boolean, tls_cert_expires_at timestamptz,
	redirects integer, error text, prober_instance text, prober_region text
) ON COMMIT DELETE ROWS`

var stagingColumns = []string{
	"event_id", "target_id", "url", "method", "checked_at",
	"outcome", "failure_kind", "response_time_us",
	"dns_us", "connect_us", "tls_handshake_us", "ttfb_us",
	"status_code", "bytes_read", "body_truncated",
	"content_pattern", "content_matched", "tls_cert_expires_at",
	"redirects", "error", "prober_instance", "prober_region",
}

// Open connects to the database at url (which must be migrated) and loads the
// list of existing partitions.
func Open(ctx context.Context, url string, cfg Config, logger *slog.Logger) (*Store, error) {
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors can quote the URL, password included.
		return nil, errors.New("DATABASE_URL: not a valid PostgreSQL connection string")
	}
	pcfg.MaxConns = 4
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = cfg.MaxConns
	}
	pcfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, stagingDDL)
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	s := &Store{pool: pool, logger: logger, retention: cfg.Retention, parts: map[time.Time]bool{}}
	var buckets int
	if err := pool.QueryRow(ctx, `SELECT array_length(latency_bounds_us(), 1)`).Scan(&buckets); err != nil {
		pool.Close()
		return nil, fmt.Errorf("read latency buckets (is the database migrated?): %w", err)
	}
	if buckets != histogramBuckets {
		pool.Close()
		return nil, fmt.Errorf("latency_bounds_us() has %d buckets, this recorder writes %d: run the recorder matching the schema", buckets, histogramBuckets)
	}
	if err := s.loadPartitions(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the connections.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers (readiness).
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Write stores a batch in one transaction: the raw rows whose event IDs are
// new, the hourly rollup incremented by exactly those rows, and the targets.
// A batch written twice, whole or in part, changes nothing the second time.
// Partitions missing for the batch's days are created first.
func (s *Store) Write(ctx context.Context, events []Event) (Result, error) {
	if len(events) == 0 {
		return Result{}, nil
	}
	if err := s.ensurePartitions(ctx, events); err != nil {
		return Result{}, err
	}
	res, err := s.write(ctx, events)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23514" && strings.Contains(pgErr.Message, "no partition") {
		// A partition this store believed in was dropped meanwhile (by
		// another recorder's retention pass): forget what we know and let
		// the retry create it again.
		s.mu.Lock()
		s.parts = map[time.Time]bool{}
		s.mu.Unlock()
		if lerr := s.loadPartitions(ctx); lerr != nil {
			return Result{}, errors.Join(err, lerr)
		}
	}
	return res, err
}

func (s *Store) write(ctx context.Context, events []Event) (Result, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op

	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"check_results_staging"}, stagingColumns, &eventRows{events: events}); err != nil {
		return Result{}, fmt.Errorf("copy into staging: %w", err)
	}
	rows, err := tx.Query(ctx, upsertSQL)
	if err != nil {
		return Result{}, fmt.Errorf("insert batch: %w", err)
	}
	res := Result{InsertedCheckedAt: make([]time.Time, 0, len(events))}
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&at}, func() error {
		res.InsertedCheckedAt = append(res.InsertedCheckedAt, at)
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("insert batch: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Result{}, fmt.Errorf("commit: %w", err)
	}
	res.Inserted = len(res.InsertedCheckedAt)
	return res, nil
}

// eventRows feeds a batch to COPY (binary format) without building the
// whole [][]any first.
type eventRows struct {
	events []Event
	i      int
	row    [22]any
}

func (r *eventRows) Next() bool { r.i++; return r.i <= len(r.events) }
func (r *eventRows) Err() error { return nil }

func (r *eventRows) Values() ([]any, error) {
	e := &r.events[r.i-1]
	outcome, kind := "down", nullString(e.FailureKind)
	if e.Up {
		outcome = "up"
	}
	var status, pattern, matched, certExpiry any
	if e.StatusCode != 0 {
		status = e.StatusCode
	}
	if e.HasContentCheck {
		pattern, matched = clean(e.ContentPattern), e.ContentMatched
	}
	if !e.TLSCertExpiresAt.IsZero() {
		certExpiry = e.TLSCertExpiresAt
	}
	r.row = [22]any{
		e.EventID, clean(e.TargetID), clean(e.URL), clean(e.Method), e.CheckedAt,
		outcome, kind, e.ResponseTime.Microseconds(),
		micros(e.DNS), micros(e.Connect), micros(e.TLSHandshake), micros(e.TimeToFirstByte),
		status, e.BytesRead, e.BodyTruncated,
		pattern, matched, certExpiry,
		e.Redirects, nullString(e.Error), nullString(e.ProberInstance), nullString(e.ProberRegion),
	}
	return r.row[:], nil
}

func micros(d *time.Duration) any {
	if d == nil {
		return nil
	}
	return d.Microseconds()
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return clean(s)
}

// clean replaces NUL characters, which are valid UTF-8 and so valid in a
// Protobuf string but which PostgreSQL text refuses: one such event would
// otherwise fail its batch forever.
func clean(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// upsertSQL moves the staged batch into the tables in one statement.
//
//   - ins inserts the raw rows in event ID order (two recorders inserting
//     overlapping batches during a rebalance then lock in the same order),
//     skipping event IDs already stored, and returns only the rows it added.
//   - the hourly rollup is incremented from ins alone, so a redelivered event
//     counts nothing; its rows are upserted in (target_id, hour) order, again
//     for a deadlock-free lock order.
//   - targets keep the latest event, whichever order events arrive in.
//
// The statement returns the checked_at of each inserted row.
var upsertSQL = `WITH ins AS (
	INSERT INTO check_results (event_id, target_id, checked_at, outcome, failure_kind,
		response_time_us, dns_us, connect_us, tls_handshake_us, ttfb_us, status_code,
		bytes_read, body_truncated, content_pattern, content_matched, tls_cert_expires_at,
		redirects, error, prober_instance, prober_region)
	SELECT event_id, target_id, checked_at, outcome, failure_kind,
		response_time_us, dns_us, connect_us, tls_handshake_us, ttfb_us, status_code,
		bytes_read, body_truncated, content_pattern, content_matched, tls_cert_expires_at,
		redirects, error, prober_instance, prober_region
	FROM check_results_staging
	ORDER BY event_id
	ON CONFLICT DO NOTHING
	RETURNING target_id, checked_at, outcome, failure_kind, response_time_us
), hourly AS (
	INSERT INTO check_results_hourly AS h (target_id, hour, checks, up, down,
		failures_dns, failures_connect, failures_tls, failures_timeout,
		failures_http_status, failures_content_mismatch, failures_other,
		response_time_min_us, response_time_max_us, response_time_sum_us, latency_histogram)
	SELECT target_id, date_trunc('hour', checked_at, 'UTC'), count(*),
		count(*) FILTER (WHERE outcome = 'up'), count(*) FILTER (WHERE outcome = 'down'),
		count(*) FILTER (WHERE failure_kind = 'dns'), count(*) FILTER (WHERE failure_kind = 'connect'),
		count(*) FILTER (WHERE failure_kind = 'tls'), count(*) FILTER (WHERE failure_kind = 'timeout'),
		count(*) FILTER (WHERE failure_kind = 'http_status'),
		count(*) FILTER (WHERE failure_kind = 'content_mismatch'),
		count(*) FILTER (WHERE failure_kind = 'other'),
		min(response_time_us), max(response_time_us), sum(response_time_us),
		` + histogramExpr(histogramBuckets) + `
	FROM (SELECT *, width_bucket(response_time_us, latency_bounds_us()) AS bucket FROM ins) AS i
	GROUP BY 1, 2
	ORDER BY 1, 2
	ON CONFLICT (target_id, hour) DO UPDATE SET
		checks = h.checks + excluded.checks,
		up = h.up + excluded.up,
		down = h.down + excluded.down,
		failures_dns = h.failures_dns + excluded.failures_dns,
		failures_connect = h.failures_connect + excluded.failures_connect,
		failures_tls = h.failures_tls + excluded.failures_tls,
		failures_timeout = h.failures_timeout + excluded.failures_timeout,
		failures_http_status = h.failures_http_status + excluded.failures_http_status,
		failures_content_mismatch = h.failures_content_mismatch + excluded.failures_content_mismatch,
		failures_other = h.failures_other + excluded.failures_other,
		response_time_min_us = least(h.response_time_min_us, excluded.response_time_min_us),
		response_time_max_us = greatest(h.response_time_max_us, excluded.response_time_max_us),
		response_time_sum_us = h.response_time_sum_us + excluded.response_time_sum_us,
		latency_histogram = latency_histogram_add(h.latency_histogram, excluded.latency_histogram)
), span AS (
	SELECT target_id, min(checked_at) AS first_seen, max(checked_at) AS last_seen,
		max(checked_at) FILTER (WHERE outcome = 'up') AS last_up_at,
		max(checked_at) FILTER (WHERE outcome = 'down') AS last_down_at
	FROM check_results_staging
	GROUP BY target_id
), latest AS (
	SELECT DISTINCT ON (target_id) *
	FROM check_results_staging
	ORDER BY target_id, checked_at DESC, event_id DESC
), tgt AS (
	INSERT INTO targets AS t (target_id, url, method, first_seen, last_seen, last_event_id,
		last_outcome, last_failure_kind, last_status_code, last_response_time_us, last_error,
		last_up_at, last_down_at)
	SELECT l.target_id, l.url, l.method, s.first_seen, s.last_seen, l.event_id,
		l.outcome, l.failure_kind, l.status_code, l.response_time_us, l.error,
		s.last_up_at, s.last_down_at
	FROM latest l JOIN span s USING (target_id)
	ORDER BY l.target_id
	ON CONFLICT (target_id) DO UPDATE SET
		first_seen = least(t.first_seen, excluded.first_seen),
		last_up_at = greatest(t.last_up_at, excluded.last_up_at),
		last_down_at = greatest(t.last_down_at, excluded.last_down_at),
		last_seen = greatest(t.last_seen, excluded.last_seen),
		url = CASE WHEN (excluded.last_seen, excluded.last_event_id) >= (t.last_seen, t.last_event_id) THEN excluded.url ELSE t.url END,
		method = CASE WHEN (excluded.last_seen, excluded.last_event_id) >= (t.last_seen, t.last_event_id) THEN excluded.method ELSE t.method END,
		last_event_id = CASE WHEN (excluded.last_seen, excluded.last_event_id) >= (t.last_seen, t.last_event_id) THEN excluded.last_event_id ELSE t.last_event_id END,
		last_outcome = CASE WHEN (excluded.last_seen, excluded.last_event_id) >= (t.last_seen, t.last_event_id) THEN excluded.last_outcome ELSE t.last_outcome END,
		last_failure_kind = CASE WHEN (excluded.last_seen, excluded.last_event_id) >= (t.last_seen, t.last_event_id) THEN excluded.last_failure_kind ELSE t.last_failure_kind END,
		last_status_code = CASE WHEN (excluded.last_seen, excluded.last_event_id) >= (t.last_seen, t.last_event_id) THEN excluded.last_status_code ELSE t.last_status_code END,
		last_response_time_us = CASE WHEN (excluded.last_seen, excluded.last_event_id) >= (t.last_seen, t.last_event_id) THEN excluded.last_response_time_us ELSE t.last_response_time_us END,
		last_error = CASE WHEN (excluded.last_seen, excluded.last_event_id) >= (t.last_seen, t.last_event_id) THEN excluded.last_error ELSE t.last_error END
)
SELECT checked_at FROM ins`

// histogramBuckets is the length of latency_bounds_us() (migration 00003);
// Open checks that the database agrees.
const histogramBuckets = 29

// histogramExpr counts the rows of each latency bucket into an array.
func histogramExpr(buckets int) string {
	var b strings.Builder
	b.WriteString("ARRAY[")
	for i := 1; i <= buckets; i++ {
		if i > 1 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "count(*) FILTER (WHERE bucket = %d)", i)
	}
	b.WriteString("]::integer[]")
	return b.String()
}
