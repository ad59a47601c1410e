package store

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/checkevent"
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
	// FailureKind is checkevent.KindName of a failure kind; empty when up.
	FailureKind  string
	ResponseTime time.Duration

	DNS, Connect, TLSHandshake, TimeToFirstByte *time.Duration

	StatusCode int32 // 0: no response arrived
	// Protocol is the HTTP version of the response ("HTTP/1.1",
	// "HTTP/2.0"); empty (NULL) when none arrived or the event predates it.
	Protocol string
	// BytesRead is the body on the wire; DecodedBytes after its
	// Content-Encoding was undone, nil (NULL) when the event predates it.
	BytesRead     int64
	DecodedBytes  *int64
	BodyTruncated bool

	HasContentCheck bool
	ContentPattern  string
	ContentMatched  bool

	TLSCertExpiresAt time.Time // zero: not HTTPS
	Redirects        int32
	Error            string

	ProberInstance string
	ProberRegion   string

	// ScheduledAt is the check's slot on the target's fixed grid; zero for
	// events of probers older than the field, which claim no slot.
	ScheduledAt time.Time

	// Interval is the target's interval carried by the event; zero for
	// events of probers older than the field. target_status judges
	// staleness by it when the target has no configuration row.
	Interval time.Duration
}

// Result tells what a Write did.
type Result struct {
	// Inserted is the number of new raw rows; the others were known event
	// IDs or slot duplicates.
	Inserted int
	// DuplicateSlots is the number of events not stored because another
	// event ID holds their slot (target, region, scheduled_at): stored
	// before, or smaller within the batch. Redeliveries are not counted.
	DuplicateSlots int
	// InsertedCheckedAt holds the checked_at of each inserted row (for the
	// end-to-end delay metric).
	InsertedCheckedAt []time.Time
	// Expired holds the indexes, in the batch written, of the events not
	// stored because their day is past the retention: its partition is, or
	// is about to be, dropped, and creating it again would let a redelivered
	// event be counted twice in the rollup.
	Expired []int
}

// Store writes batches of events into PostgreSQL and keeps the partitions of
// check_results.
type Store struct {
	pool      *pgxpool.Pool
	logger    *slog.Logger
	retention time.Duration
	bounds    []int64 // latency_bounds_us()
	// probe: ask which events are stored before copying (see write).
	probe atomic.Bool

	mu    sync.Mutex
	parts map[part]bool // the partitions (table, UTC day) that exist
}

// Config of a Store.
type Config struct {
	// Retention drops raw partitions wholly older than now minus Retention;
	// zero keeps everything.
	Retention time.Duration
	// MaxConns bounds the pool (default 4).
	MaxConns int32
}

// stagingDDL creates, on every connection of the pool, the temporary tables
// a batch's rollup increments and target summaries are copied into before
// one upsert statement. ON COMMIT DELETE ROWS empties them at each commit, so
// a connection keeps reusing them.
var stagingDDL = []string{
	`CREATE TEMP TABLE hourly_staging (
		target_id text, hour timestamptz, checks bigint, up bigint, down bigint,
		` + failureColumnsDDL + `,
		response_time_min_us bigint, response_time_max_us bigint, response_time_sum_us bigint,
		latency_histogram integer[]
	) ON COMMIT DELETE ROWS`,
	`CREATE TEMP TABLE targets_staging (
		target_id text, url text, method text, first_seen timestamptz, last_seen timestamptz,
		last_event_id uuid, last_outcome text, last_failure_kind text, last_status_code integer,
		last_response_time_us bigint, last_error text, last_up_at timestamptz, last_down_at timestamptz,
		check_interval_us bigint
	) ON COMMIT DELETE ROWS`,
	`CREATE TEMP TABLE region_hourly_staging (
		target_id text, region text, hour timestamptz, checks bigint, up bigint, down bigint,
		response_time_sum_us bigint
	) ON COMMIT DELETE ROWS`,
	`CREATE TEMP TABLE target_regions_staging (
		target_id text, region text, first_seen timestamptz, last_seen timestamptz,
		last_event_id uuid, last_outcome text, last_failure_kind text, last_status_code integer,
		last_response_time_us bigint, last_error text, last_up_at timestamptz, last_down_at timestamptz,
		check_interval_us bigint
	) ON COMMIT DELETE ROWS`,
	`CREATE TEMP TABLE probers_staging (
		region text, instance text, first_seen timestamptz, last_seen timestamptz
	) ON COMMIT DELETE ROWS`,
}

var rawColumns = []string{
	"event_id", "target_id", "checked_at",
	"outcome", "failure_kind", "response_time_us",
	"dns_us", "connect_us", "tls_handshake_us", "ttfb_us",
	"status_code", "bytes_read", "body_truncated",
	"content_pattern", "content_matched", "tls_cert_expires_at",
	"redirects", "error", "prober_instance", "prober_region",
	"protocol", "decoded_bytes", "scheduled_at",
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
		for _, ddl := range stagingDDL {
			if _, err := c.Exec(ctx, ddl); err != nil {
				return err
			}
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	s := &Store{pool: pool, logger: logger, retention: cfg.Retention, parts: map[part]bool{}}
	// The histogram's buckets are the database's: one source of truth.
	if err := pool.QueryRow(ctx, `SELECT latency_bounds_us()`).Scan(&s.bounds); err != nil {
		pool.Close()
		return nil, fmt.Errorf("read latency buckets (is the database migrated?): %w", err)
	}
	if len(s.bounds) == 0 || s.bounds[0] != 0 || !slices.IsSorted(s.bounds) {
		pool.Close()
		return nil, fmt.Errorf("latency_bounds_us() = %v: want ascending bounds from 0", s.bounds)
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
// Partitions missing for the batch's days are created first; events of days
// the retention drops (as of now, as Maintain judges) are not stored but
// returned in Result.Expired.
//
// Keeping the hourly rollup in the transaction that writes the raw rows is
// TwiN/gatus's idea; unlike its additive upsert, the increments here come
// only from rows this transaction inserted, so a redelivered event cannot be
// counted twice.
func (s *Store) Write(ctx context.Context, events []Event) (Result, error) {
	events, expired := s.unexpired(events, time.Now())
	if len(events) == 0 {
		return Result{Expired: expired}, nil
	}
	if err := s.ensurePartitions(ctx, events); err != nil {
		return Result{}, err
	}
	probed := s.probe.Load()
	res, err := s.write(ctx, events, probed)
	if !probed && isCode(err, pgerrcode.UniqueViolation) {
		// Some of these events are stored already (a redelivery, a replay, a
		// rebalance): ask first, from now on until a batch has none.
		s.probe.Store(true)
		res, err = s.write(ctx, events, true)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && isNoPartition(pgErr) {
		// A partition this store believed in was dropped meanwhile (by
		// another recorder's retention pass): forget what we know and let
		// the retry create it again, or, when the retention drops its day
		// by then, return its events as expired.
		s.mu.Lock()
		s.parts = map[part]bool{}
		s.mu.Unlock()
		if lerr := s.loadPartitions(ctx); lerr != nil {
			return Result{}, errors.Join(err, lerr)
		}
	}
	if err != nil {
		return Result{}, err
	}
	res.Expired = expired
	return res, nil
}

// write runs one batch's transaction:
//
//  1. with probe, ask which of the batch's (event_id, checked_at) keys are
//     stored already (redeliveries, replays) and keep the others; each key
//     once, in event ID order;
//  2. COPY those rows straight into check_results (COPY's bulk path is much
//     cheaper per row than INSERT ... SELECT ... ON CONFLICT);
//  3. add exactly those rows to the hourly rollup and upsert the targets,
//     from aggregates copied into temporary tables, in one statement.
//
// The unique key is the arbiter, not step 1: when a row in the COPY is
// stored already (no probe, or another recorder committed it in between,
// two owners during a rebalance) the COPY fails on the key, the transaction
// rolls back whole, and Write retries with a probe. So the rollup is
// incremented in the same transaction as, and only by, the rows this
// transaction inserted. Without duplicates, which is the steady state,
// probing costs about 1.3 us an event for nothing, so Write probes only from
// a collision until a batch comes without duplicates. Rows go in event ID
// order and rollup and target rows in key order, so two recorders lock in
// the same order and do not deadlock.
func (s *Store) write(ctx context.Context, events []Event, probe bool) (Result, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op

	fresh, unique, err := s.newEvents(ctx, tx, events, probe)
	if err != nil {
		return Result{}, err
	}
	if probe && len(fresh) == unique {
		s.probe.Store(false) // no duplicates: back to copying straight away
	}
	fresh, dupSlots, err := claimSlots(ctx, tx, fresh)
	if err != nil {
		return Result{}, err
	}
	if len(fresh) > 0 {
		if err := copyRaw(ctx, tx, fresh); err != nil {
			return Result{}, fmt.Errorf("copy into check_results: %w", err)
		}
		hourly := s.rollup(fresh)
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"hourly_staging"}, hourlyColumns, pgx.CopyFromRows(hourly)); err != nil {
			return Result{}, fmt.Errorf("copy rollup increments: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"targets_staging"}, targetColumns, pgx.CopyFromRows(summarize(fresh, false))); err != nil {
			return Result{}, fmt.Errorf("copy target summaries: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"region_hourly_staging"}, regionHourlyColumns, pgx.CopyFromRows(regionRollup(fresh))); err != nil {
			return Result{}, fmt.Errorf("copy region rollup increments: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"target_regions_staging"}, targetRegionColumns, pgx.CopyFromRows(summarize(fresh, true))); err != nil {
			return Result{}, fmt.Errorf("copy target region summaries: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"probers_staging"}, proberColumns, pgx.CopyFromRows(probers(fresh))); err != nil {
			return Result{}, fmt.Errorf("copy prober summaries: %w", err)
		}
		if _, err := tx.Exec(ctx, upsertSQL); err != nil {
			return Result{}, fmt.Errorf("upsert rollup and targets: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return Result{}, fmt.Errorf("commit: %w", err)
	}
	res := Result{Inserted: len(fresh), DuplicateSlots: dupSlots, InsertedCheckedAt: make([]time.Time, len(fresh))}
	for i, e := range fresh {
		res.InsertedCheckedAt[i] = e.CheckedAt
	}
	return res, nil
}

type eventKey struct {
	id [16]byte
	at int64 // microseconds, PostgreSQL's precision
}

func keyOf(e *Event) eventKey { return eventKey{e.EventID, e.CheckedAt.UnixMicro()} }

// newEvents returns the events of the batch, each key once, sorted by event
// ID, and how many there are; with probe, only those whose keys are not
// stored yet.
func (s *Store) newEvents(ctx context.Context, tx pgx.Tx, events []Event, probe bool) ([]*Event, int, error) {
	seen := make(map[eventKey]bool, len(events))
	ids := make([][16]byte, 0, len(events))
	ats := make([]time.Time, 0, len(events))
	batch := make([]*Event, 0, len(events))
	for i := range events {
		e := &events[i]
		k := keyOf(e)
		if seen[k] {
			continue
		}
		seen[k] = true
		batch = append(batch, e)
		ids = append(ids, e.EventID)
		ats = append(ats, e.CheckedAt)
	}
	if !probe {
		sortByID(batch)
		return batch, len(batch), nil
	}
	rows, err := tx.Query(ctx, `SELECT b.event_id, b.checked_at
		FROM unnest($1::uuid[], $2::timestamptz[]) AS b(event_id, checked_at)
		WHERE EXISTS (SELECT FROM check_results c WHERE c.event_id = b.event_id AND c.checked_at = b.checked_at)`, ids, ats)
	if err != nil {
		return nil, 0, fmt.Errorf("look up stored events: %w", err)
	}
	var id [16]byte
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &at}, func() error {
		delete(seen, eventKey{id, at.UnixMicro()})
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("look up stored events: %w", err)
	}
	fresh := batch[:0]
	for _, e := range batch {
		if seen[keyOf(e)] {
			fresh = append(fresh, e)
		}
	}
	sortByID(fresh)
	return fresh, len(batch), nil
}

func sortByID(events []*Event) {
	slices.SortFunc(events, func(a, b *Event) int {
		if c := bytes.Compare(a.EventID[:], b.EventID[:]); c != 0 {
			return c
		}
		return a.CheckedAt.Compare(b.CheckedAt)
	})
}

// Refused tells whether err is PostgreSQL refusing the data itself, so that
// the same events would fail again however often they are retried: a data
// exception (SQLSTATE class 22), a program limit exceeded (class 54, such as
// a btree entry too large), an integrity constraint violated (class 23) other
// than the unique key (a redelivery, which Write handles) and other than a
// row finding no partition (which the retry mends by creating it). It then
// returns "SQLSTATE code: message". Everything else (connections,
// serialization failures, deadlocks, shutdown) is transient.
func Refused(err error) (string, bool) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return "", false
	}
	switch code := pgErr.Code; {
	case pgerrcode.IsDataException(code), pgerrcode.IsProgramLimitExceeded(code):
	case pgerrcode.IsIntegrityConstraintViolation(code) && code != pgerrcode.UniqueViolation && !isNoPartition(pgErr):
	default:
		return "", false
	}
	return "SQLSTATE " + pgErr.Code + ": " + pgErr.Message, true
}

// isNoPartition: a row's partition does not exist. PostgreSQL says so with
// check_violation raised by ExecFindPartition (execPartition.c), for INSERT
// and COPY alike; its message is translated, so it is not looked at.
func isNoPartition(pgErr *pgconn.PgError) bool {
	return pgErr.Code == pgerrcode.CheckViolation && pgErr.Routine == "ExecFindPartition"
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// The outcome column's values, as the enum names them (a test checks the
// column's constraint against the enum).
var (
	outcomeUp   = checkevent.OutcomeName(sitewatchv1.Outcome_OUTCOME_UP)
	outcomeDown = checkevent.OutcomeName(sitewatchv1.Outcome_OUTCOME_DOWN)
)

func outcome(e *Event) string {
	if e.Up {
		return outcomeUp
	}
	return outcomeDown
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

// The rollup has a column failures_<kind> per failure kind, in the order of
// checkevent.Kinds (a test checks the migrated schema against the enum).
var (
	failureColumns = func() []string {
		var cols []string
		for _, k := range checkevent.Kinds() {
			cols = append(cols, "failures_"+checkevent.KindName(k))
		}
		return cols
	}()
	// failureIndex is the index in failureColumns of each kind's name.
	failureIndex = func() map[string]int {
		m := map[string]int{}
		for i, k := range checkevent.Kinds() {
			m[checkevent.KindName(k)] = i
		}
		return m
	}()
	failureColumnsDDL = strings.Join(failureColumns, " bigint, ") + " bigint"

	hourlyColumns = slices.Concat(
		[]string{"target_id", "hour", "checks", "up", "down"},
		failureColumns,
		[]string{"response_time_min_us", "response_time_max_us", "response_time_sum_us", "latency_histogram"})
)

type hourKey struct {
	target string
	hour   int64 // Unix seconds of the UTC hour
}

type hourAgg struct {
	checks, up, down    int64
	failures            []int64 // per failureColumns
	minUS, maxUS, sumUS int64
	histogram           []int32
}

// rollup aggregates new events per target and UTC hour, in key order. The
// histogram bucket of a response time is the last bound at or below it, as
// width_bucket(response_time_us, latency_bounds_us()) would say.
func (s *Store) rollup(events []*Event) [][]any {
	aggs := map[hourKey]*hourAgg{}
	for _, e := range events {
		k := hourKey{clean(e.TargetID), hourOf(e.CheckedAt)}
		a := aggs[k]
		us := e.ResponseTime.Microseconds()
		if a == nil {
			a = &hourAgg{minUS: us, maxUS: us, failures: make([]int64, len(failureColumns)), histogram: make([]int32, len(s.bounds))}
			aggs[k] = a
		}
		a.checks++
		if e.Up {
			a.up++
		} else {
			a.down++
			if i, ok := failureIndex[e.FailureKind]; ok {
				a.failures[i]++
			}
		}
		a.minUS, a.maxUS, a.sumUS = min(a.minUS, us), max(a.maxUS, us), a.sumUS+us
		b, _ := slices.BinarySearch(s.bounds, us+1) // bounds at or below us
		a.histogram[max(b, 1)-1]++
	}
	keys := slices.SortedFunc(maps.Keys(aggs), func(a, b hourKey) int {
		return cmp.Or(strings.Compare(a.target, b.target), cmp.Compare(a.hour, b.hour))
	})
	rows := make([][]any, len(keys))
	for i, k := range keys {
		a := aggs[k]
		row := make([]any, 0, len(hourlyColumns))
		row = append(row, k.target, time.Unix(k.hour, 0).UTC(), a.checks, a.up, a.down)
		for _, n := range a.failures {
			row = append(row, n)
		}
		rows[i] = append(row, a.minUS, a.maxUS, a.sumUS, a.histogram)
	}
	return rows
}

// hourOf is the Unix seconds of t's UTC hour. (Truncate counts from the
// zero time, which starts an hour in UTC as the Unix epoch does.)
func hourOf(t time.Time) int64 { return t.Truncate(time.Hour).Unix() }

var targetColumns = []string{
	"target_id", "url", "method", "first_seen", "last_seen", "last_event_id", "last_outcome",
	"last_failure_kind", "last_status_code", "last_response_time_us", "last_error", "last_up_at", "last_down_at",
	"check_interval_us",
}

var proberColumns = []string{"region", "instance", "first_seen", "last_seen"}

// probers gives per prober region and instance of the batch its first and
// last check, in key order: rows of probers_staging.
func probers(events []*Event) [][]any {
	type key struct{ region, instance string }
	type span struct{ first, last time.Time }
	spans := map[key]*span{}
	for _, e := range events {
		k := key{clean(e.ProberRegion), clean(e.ProberInstance)}
		if s := spans[k]; s == nil {
			spans[k] = &span{e.CheckedAt, e.CheckedAt}
		} else {
			s.first, s.last = minTime(s.first, e.CheckedAt), maxTime(s.last, e.CheckedAt)
		}
	}
	keys := slices.SortedFunc(maps.Keys(spans), func(a, b key) int {
		if c := strings.Compare(a.region, b.region); c != 0 {
			return c
		}
		return strings.Compare(a.instance, b.instance)
	})
	rows := make([][]any, len(keys))
	for i, k := range keys {
		rows[i] = []any{k.region, k.instance, spans[k].first, spans[k].last}
	}
	return rows
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// summarize gives per target (byRegion: per target and region) of the batch
// its first and last check, its latest event (greatest checked_at, then
// event ID) and its latest up and down checks, in key order: rows of
// targets_staging, or with byRegion of target_regions_staging.
func summarize(events []*Event, byRegion bool) [][]any {
	type summary struct {
		first, last, lastUp, lastDown time.Time
		latest                        *Event
	}
	type key struct{ target, region string }
	sums := map[key]*summary{}
	for _, e := range events {
		t := key{target: clean(e.TargetID)}
		if byRegion {
			t.region = clean(e.ProberRegion)
		}
		s := sums[t]
		if s == nil {
			s = &summary{first: e.CheckedAt, last: e.CheckedAt, latest: e}
			sums[t] = s
		}
		if e.CheckedAt.Before(s.first) {
			s.first = e.CheckedAt
		}
		if c := e.CheckedAt.Compare(s.latest.CheckedAt); c > 0 || (c == 0 && bytes.Compare(e.EventID[:], s.latest.EventID[:]) > 0) {
			s.latest, s.last = e, e.CheckedAt
		}
		if e.Up && e.CheckedAt.After(s.lastUp) {
			s.lastUp = e.CheckedAt
		}
		if !e.Up && e.CheckedAt.After(s.lastDown) {
			s.lastDown = e.CheckedAt
		}
	}
	targets := slices.SortedFunc(maps.Keys(sums), func(a, b key) int {
		return cmp.Or(strings.Compare(a.target, b.target), strings.Compare(a.region, b.region))
	})
	rows := make([][]any, len(targets))
	for i, t := range targets {
		s := sums[t]
		l := s.latest
		var status any
		if l.StatusCode != 0 {
			status = l.StatusCode
		}
		row := []any{t.target, clean(l.URL), clean(l.Method)}
		if byRegion {
			row = []any{t.target, t.region}
		}
		rows[i] = append(row, s.first, s.last, l.EventID, outcome(l),
			nullString(l.FailureKind), status, l.ResponseTime.Microseconds(), nullString(l.Error),
			nullTime(s.lastUp), nullTime(s.lastDown), nullInterval(l.Interval))
	}
	return rows
}

func nullInterval(d time.Duration) any {
	if d <= 0 {
		return nil
	}
	return d.Microseconds()
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// upsertSQL adds the staged rollup increments to check_results_hourly and
// folds the staged target summaries into targets (the latest event wins,
// whatever order events arrive in), both in key order.
var upsertSQL = `WITH hourly AS (
	INSERT INTO check_results_hourly AS h (` + strings.Join(hourlyColumns, ", ") + `)
	SELECT ` + strings.Join(hourlyColumns, ", ") + ` FROM hourly_staging ORDER BY target_id, hour
	ON CONFLICT (target_id, hour) DO UPDATE SET
		checks = h.checks + excluded.checks,
		up = h.up + excluded.up,
		down = h.down + excluded.down,
` + failureSums + `		response_time_min_us = least(h.response_time_min_us, excluded.response_time_min_us),
		response_time_max_us = greatest(h.response_time_max_us, excluded.response_time_max_us),
		response_time_sum_us = h.response_time_sum_us + excluded.response_time_sum_us,
		latency_histogram = latency_histogram_add(h.latency_histogram, excluded.latency_histogram)
),
region_hourly AS (
	INSERT INTO check_results_region_hourly AS h
	SELECT * FROM region_hourly_staging ORDER BY target_id, region, hour
	ON CONFLICT (target_id, region, hour) DO UPDATE SET
		checks = h.checks + excluded.checks,
		up = h.up + excluded.up,
		down = h.down + excluded.down,
		response_time_sum_us = h.response_time_sum_us + excluded.response_time_sum_us
),
regions AS (
	INSERT INTO target_regions AS t
	SELECT * FROM target_regions_staging ORDER BY target_id, region
	ON CONFLICT (target_id, region) DO UPDATE SET
	first_seen = least(t.first_seen, excluded.first_seen),
	last_seen = greatest(t.last_seen, excluded.last_seen),
	last_up_at = greatest(t.last_up_at, excluded.last_up_at),
	last_down_at = greatest(t.last_down_at, excluded.last_down_at),
` + latestRegionColumns + `
),
prober_spans AS (
	INSERT INTO probers AS p
	SELECT * FROM probers_staging ORDER BY region, instance
	ON CONFLICT (region, instance) DO UPDATE SET
		first_seen = least(p.first_seen, excluded.first_seen),
		last_seen = greatest(p.last_seen, excluded.last_seen)
)
INSERT INTO targets AS t
SELECT * FROM targets_staging ORDER BY target_id
ON CONFLICT (target_id) DO UPDATE SET
	first_seen = least(t.first_seen, excluded.first_seen),
	last_seen = greatest(t.last_seen, excluded.last_seen),
	last_up_at = greatest(t.last_up_at, excluded.last_up_at),
	last_down_at = greatest(t.last_down_at, excluded.last_down_at),
` + latestColumns

// failureSums adds the staged failures of each kind.
var failureSums = func() string {
	var b strings.Builder
	for _, c := range failureColumns {
		fmt.Fprintf(&b, "\t\t%s = h.%[1]s + excluded.%[1]s,\n", c)
	}
	return b.String()
}()

// latestColumns take the staged values only when the staged event is at
// least as recent as the stored one.
const latestColumns = `	url = CASE WHEN (excluded.last_seen, excluded.last_event_id) >= (t.last_seen, t.last_event_id) THEN excluded.url ELSE t.url END,
	method = CASE WHEN (excluded.last_seen, excluded.last_event_id) >= (t.last_seen, t.last_event_id) THEN excluded.method ELSE t.method END,
` + latestRegionColumns

// latestRegionColumns: latestColumns of target_regions, which has no url
// and method.
const latestRegionColumns = `	last_event_id = CASE WHEN (excluded.last_seen, excluded.last_event_id) >= (t.last_seen, t.last_event_id) THEN excluded.last_event_id ELSE t.last_event_id END,
	last_outcome = CASE WHEN (excluded.last_seen, excluded.last_event_id) >= (t.last_seen, t.last_event_id) THEN excluded.last_outcome ELSE t.last_outcome END,
	last_failure_kind = CASE WHEN (excluded.last_seen, excluded.last_event_id) >= (t.last_seen, t.last_event_id) THEN excluded.last_failure_kind ELSE t.last_failure_kind END,
	last_status_code = CASE WHEN (excluded.last_seen, excluded.last_event_id) >= (t.last_seen, t.last_event_id) THEN excluded.last_status_code ELSE t.last_status_code END,
	last_response_time_us = CASE WHEN (excluded.last_seen, excluded.last_event_id) >= (t.last_seen, t.last_event_id) THEN excluded.last_response_time_us ELSE t.last_response_time_us END,
	last_error = CASE WHEN (excluded.last_seen, excluded.last_event_id) >= (t.last_seen, t.last_event_id) THEN excluded.last_error ELSE t.last_error END,
	check_interval_us = CASE WHEN (excluded.last_seen, excluded.last_event_id) >= (t.last_seen, t.last_event_id)
		THEN coalesce(excluded.check_interval_us, t.check_interval_us) ELSE coalesce(t.check_interval_us, excluded.check_interval_us) END`
