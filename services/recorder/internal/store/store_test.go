package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
	"github.com/sitewatch/sitewatch/services/testing/stackdb"
)

// openStore migrates a fresh database and opens a Store on it.
func openStore(t testing.TB, cfg store.Config) (*store.Store, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	url := stackdb.Database(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := store.Migrate(ctx, url, logger); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, url, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return s, conn
}

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

// ev builds an event; kind "" is up.
func ev(target string, at time.Time, kind string, rt time.Duration) store.Event {
	e := store.Event{
		EventID:      uuid.Must(uuid.NewV7()),
		TargetID:     target,
		URL:          "http://" + target + ".test/",
		Method:       "GET",
		CheckedAt:    at,
		Up:           kind == "",
		FailureKind:  kind,
		ResponseTime: rt,
		StatusCode:   200,
		BytesRead:    512,
	}
	if kind == "connect" || kind == "dns" || kind == "timeout" {
		e.StatusCode = 0
	}
	return e
}

// query returns the rows of sql as text, one line per row, columns joined
// by " | " (NULL shown as NULL), for exact comparison.
func query(t testing.TB, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		cells := make([]string, len(vals))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
				cells[i] = "NULL"
			case pgtype.Numeric:
				text, err := v.Value()
				if err != nil {
					t.Fatal(err)
				}
				cells[i] = fmt.Sprint(text)
			case time.Time:
				cells[i] = v.UTC().Format("2006-01-02T15:04:05Z")
			default:
				cells[i] = fmt.Sprint(v)
			}
		}
		out = append(out, strings.Join(cells, " | "))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return strings.Join(out, "\n")
}

func expect(t testing.TB, what, got, want string) {
	t.Helper()
	want = strings.TrimSpace(strings.ReplaceAll(want, "\t", ""))
	if got != want {
		t.Errorf("%s:\ngot:\n%s\nwant:\n%s", what, got, want)
	}
}

// Known events in two batches, the second late (older events) and with
// redelivered ones; then everything once more. Raw rows, rollups with their
// percentiles, targets and the views hold exact values throughout.
func TestWriteExactRollups(t *testing.T) {
	ctx := context.Background()
	s, conn := openStore(t, store.Config{})
	// Yesterday, UTC, so that the last-7-days views include every event.
	base := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	h := func(hour, minute int) time.Time {
		return base.Add(time.Duration(hour)*time.Hour + time.Duration(minute)*time.Minute)
	}
	a1 := ev("alpha", h(10, 0), "", ms(10))
	a2 := ev("alpha", h(10, 1), "", ms(20))
	a3 := ev("alpha", h(10, 2), "", ms(30))
	a4 := ev("alpha", h(10, 3), "timeout", ms(400))
	a5 := ev("alpha", h(11, 0), "connect", ms(5))
	a6 := ev("alpha", h(11, 1), "", ms(15))
	b1 := ev("beta", h(10, 30), "http_status", ms(120))
	b1.StatusCode = 503
	b2 := ev("beta", h(10, 31), "content_mismatch", ms(80))
	b2.HasContentCheck, b2.ContentPattern, b2.ContentMatched = true, "Welcome", false
	b2.Error = "body does not match \"Welcome\""
	dns, conn2, tlsd, ttfb := ms(1.5), ms(2.25), ms(10), ms(60)
	b2.DNS, b2.Connect, b2.TLSHandshake, b2.TimeToFirstByte = &dns, &conn2, &tlsd, &ttfb
	b2.TLSCertExpiresAt = time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	b2.Redirects, b2.BodyTruncated, b2.BytesRead = 1, true, 65536
	b2.ProberInstance, b2.ProberRegion = "prober-1", "eu-west-1"
	decoded := int64(262144)
	b2.Protocol, b2.DecodedBytes = "HTTP/2.0", &decoded
	b3 := ev("beta", h(-24+5, 0), "", ms(1000))
	g1 := ev("gamma", h(12, 0), "dns", ms(2))
	g1.Error = "lookup gamma.test: no such \x00host"

	batches := []struct {
		events       []store.Event
		wantInserted int
	}{
		{[]store.Event{a4, a5, a6, b1, b2, g1}, 6},
		{[]store.Event{a1, a2, a3, b3, a5, b1}, 4}, // late events plus two redelivered
		{[]store.Event{a1, a2, a3, a4, a5, a6, b1, b2, b3, g1}, 0},
	}
	for i, b := range batches {
		res, err := s.Write(ctx, b.events)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if res.Inserted != b.wantInserted || len(res.InsertedCheckedAt) != b.wantInserted {
			t.Fatalf("batch %d: inserted %d, want %d", i, res.Inserted, b.wantInserted)
		}
	}

	day := base.Format("2006-01-02")
	prev := base.Add(-24 * time.Hour).Format("2006-01-02")
	expect(t, "raw rows", query(t, conn, `SELECT target_id, checked_at, outcome, failure_kind, response_time_us, status_code
		FROM check_results ORDER BY target_id, checked_at`), fmt.Sprintf(`
		alpha | %[1]sT10:00:00Z | up | NULL | 10000 | 200
		alpha | %[1]sT10:01:00Z | up | NULL | 20000 | 200
		alpha | %[1]sT10:02:00Z | up | NULL | 30000 | 200
		alpha | %[1]sT10:03:00Z | down | timeout | 400000 | NULL
		alpha | %[1]sT11:00:00Z | down | connect | 5000 | NULL
		alpha | %[1]sT11:01:00Z | up | NULL | 15000 | 200
		beta | %[2]sT05:00:00Z | up | NULL | 1000000 | 200
		beta | %[1]sT10:30:00Z | down | http_status | 120000 | 503
		beta | %[1]sT10:31:00Z | down | content_mismatch | 80000 | 200
		gamma | %[1]sT12:00:00Z | down | dns | 2000 | NULL`, day, prev))
	expect(t, "full raw row", query(t, conn, `SELECT event_id::text = $1, dns_us, connect_us, tls_handshake_us, ttfb_us,
		bytes_read, body_truncated, content_pattern, content_matched, tls_cert_expires_at, redirects, error,
		prober_instance, prober_region, protocol, decoded_bytes FROM check_results WHERE target_id = 'beta' AND outcome = 'down' AND status_code = 200`,
		uuid.UUID(b2.EventID).String()),
		`true | 1500 | 2250 | 10000 | 60000 | 65536 | true | Welcome | false | 2027-03-01T12:00:00Z | 1 | body does not match "Welcome" | prober-1 | eu-west-1 | HTTP/2.0 | 262144`)
	expect(t, "NUL replaced", query(t, conn, `SELECT error, dns_us, prober_instance, protocol, decoded_bytes FROM check_results WHERE target_id = 'gamma'`),
		"lookup gamma.test: no such \uFFFDhost | NULL | NULL | NULL | NULL")
	expect(t, "partitions", query(t, conn, `SELECT c.relname, count(r.*) FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		LEFT JOIN check_results r ON r.tableoid = c.oid
		WHERE i.inhparent = 'check_results'::regclass GROUP BY 1 ORDER BY 1`), fmt.Sprintf(`
		check_results_p%s | 1
		check_results_p%s | 9`, strings.ReplaceAll(prev, "-", ""), strings.ReplaceAll(day, "-", "")))

	expect(t, "hourly", query(t, conn, `SELECT target_id, hour, checks, up, down, failures_dns, failures_connect,
		failures_tls, failures_timeout, failures_http_status, failures_content_mismatch, failures_other,
		response_time_min_us, response_time_max_us, response_time_sum_us, latency_histogram::text
		FROM check_results_hourly ORDER BY target_id, hour`), fmt.Sprintf(`
		alpha | %[1]sT10:00:00Z | 4 | 3 | 1 | 0 | 0 | 0 | 1 | 0 | 0 | 0 | 10000 | 400000 | 460000 | {0,0,0,0,0,0,1,0,1,1,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0}
		alpha | %[1]sT11:00:00Z | 2 | 1 | 1 | 0 | 1 | 0 | 0 | 0 | 0 | 0 | 5000 | 15000 | 20000 | {0,0,0,0,1,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0}
		beta | %[2]sT05:00:00Z | 1 | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 1000000 | 1000000 | 1000000 | {0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0}
		beta | %[1]sT10:00:00Z | 2 | 0 | 2 | 0 | 0 | 0 | 0 | 1 | 1 | 0 | 80000 | 120000 | 200000 | {0,0,0,0,0,0,0,0,0,0,0,1,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0}
		gamma | %[1]sT12:00:00Z | 1 | 0 | 1 | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 2000 | 2000 | 2000 | {0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0}`, day, prev))

	// Percentiles worked by hand from the histogram above: alpha 10:00 has
	// 10, 20, 30 and 400 ms; p50's rank 2 is the end of bucket [20, 30) ms
	// = 30 ms; p95's rank 3.8 falls 0.8 into [300, 500) ms narrowed to the
	// max 400 ms = 380 ms.
	expect(t, "availability_hourly", query(t, conn, `SELECT target_id, hour, availability_pct, avg_ms, min_ms, max_ms,
		p50_ms, p95_ms, p99_ms FROM availability_hourly ORDER BY target_id, hour`), fmt.Sprintf(`
		alpha | %[1]sT10:00:00Z | 75.000 | 115.000 | 10.000 | 400.000 | 30.000 | 380.000 | 396.000
		alpha | %[1]sT11:00:00Z | 50.000 | 10.000 | 5.000 | 15.000 | 7.000 | 15.000 | 15.000
		beta | %[2]sT05:00:00Z | 100.000 | 1000.000 | 1000.000 | 1000.000 | 1000.000 | 1000.000 | 1000.000
		beta | %[1]sT10:00:00Z | 0 | 100.000 | 80.000 | 120.000 | 100.000 | 118.000 | 119.600
		gamma | %[1]sT12:00:00Z | 0 | 2.000 | 2.000 | 2.000 | 2.000 | 2.000 | 2.000`, day, prev))
	expect(t, "availability_daily", query(t, conn, `SELECT target_id, day::text, checks, up, down, availability_pct, avg_ms,
		min_ms, max_ms, p50_ms, p95_ms, p99_ms, failures_dns, failures_connect, failures_timeout,
		failures_http_status, failures_content_mismatch FROM availability_daily ORDER BY target_id, day`), fmt.Sprintf(`
		alpha | %[1]s | 6 | 4 | 2 | 66.667 | 80.000 | 5.000 | 400.000 | 20.000 | 370.000 | 394.000 | 0 | 1 | 1 | 0 | 0
		beta | %[2]s | 1 | 1 | 0 | 100.000 | 1000.000 | 1000.000 | 1000.000 | 1000.000 | 1000.000 | 1000.000 | 0 | 0 | 0 | 0 | 0
		beta | %[1]s | 2 | 0 | 2 | 0 | 100.000 | 80.000 | 120.000 | 100.000 | 118.000 | 119.600 | 0 | 0 | 0 | 1 | 1
		gamma | %[1]s | 1 | 0 | 1 | 0 | 2.000 | 2.000 | 2.000 | 2.000 | 2.000 | 2.000 | 1 | 0 | 0 | 0 | 0`, day, prev))
	expect(t, "slowest_targets", query(t, conn, `SELECT target_id, p95_ms, p99_ms, p50_ms, checks, availability_pct
		FROM slowest_targets`), `
		beta | 1000.000 | 1000.000 | 125.000 | 3 | 33.333
		alpha | 370.000 | 394.000 | 20.000 | 6 | 66.667
		gamma | 2.000 | 2.000 | 2.000 | 1 | 0`)

	expect(t, "targets", query(t, conn, `SELECT target_id, url, method, first_seen, last_seen, last_event_id::text = ANY($1),
		last_outcome, last_failure_kind, last_status_code, last_response_time_us, last_up_at, last_down_at
		FROM targets ORDER BY 1`, []string{uuid.UUID(a6.EventID).String(), uuid.UUID(b2.EventID).String(), uuid.UUID(g1.EventID).String()}),
		fmt.Sprintf(`
		alpha | http://alpha.test/ | GET | %[1]sT10:00:00Z | %[1]sT11:01:00Z | true | up | NULL | 200 | 15000 | %[1]sT11:01:00Z | %[1]sT11:00:00Z
		beta | http://beta.test/ | GET | %[2]sT05:00:00Z | %[1]sT10:31:00Z | true | down | content_mismatch | 200 | 80000 | %[2]sT05:00:00Z | %[1]sT10:31:00Z
		gamma | http://gamma.test/ | GET | %[1]sT12:00:00Z | %[1]sT12:00:00Z | true | down | dns | NULL | 2000 | NULL | %[1]sT12:00:00Z`, day, prev))
	expect(t, "target_status", query(t, conn, `SELECT target_id, state, since, last_checked_at, last_status_code,
		last_response_time_ms, last_failure_kind FROM target_status ORDER BY 1`), fmt.Sprintf(`
		alpha | up | %[1]sT11:01:00Z | %[1]sT11:01:00Z | 200 | 15.000 | NULL
		beta | down | %[1]sT10:30:00Z | %[1]sT10:31:00Z | 200 | 80.000 | content_mismatch
		gamma | down | %[1]sT12:00:00Z | %[1]sT12:00:00Z | NULL | 2.000 | dns`, day))
	expect(t, "current_outages", query(t, conn, `SELECT target_id, down_since, duration > interval '0', last_failure_kind
		FROM current_outages ORDER BY 1`), fmt.Sprintf(`
		beta | %[1]sT10:30:00Z | true | content_mismatch
		gamma | %[1]sT12:00:00Z | true | dns`, day))
}

// Partitions are created ahead and on demand, and a retention pass drops
// exactly the partitions that end before now minus the retention.
func TestPartitionsAndRetention(t *testing.T) {
	ctx := context.Background()
	// A store without retention writes old events; one with a retention of
	// ten days maintains the partitions.
	all, conn := openStore(t, store.Config{})
	s := reopen(t, conn, store.Config{Retention: 10 * 24 * time.Hour})
	now := time.Now().UTC()
	today := now.Truncate(24 * time.Hour)
	d := func(n int) time.Time { return today.Add(time.Duration(n) * 24 * time.Hour) }

	if _, err := s.Maintain(ctx, now, 2, 3); err != nil {
		t.Fatal(err)
	}
	var events []store.Event
	for _, n := range []int{-30, -12, -11, -10, -9, -1, 0, 3} {
		events = append(events, ev("alpha", d(n).Add(time.Hour), "", ms(10)))
	}
	if _, err := all.Write(ctx, events); err != nil {
		t.Fatal(err)
	}
	names := func() string {
		days, err := s.Partitions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, day := range days {
			out = append(out, fmt.Sprint(int(day.Sub(today).Hours()/24)))
		}
		return strings.Join(out, " ")
	}
	expect(t, "partitions before retention (days from today)", names(), "-30 -12 -11 -10 -9 -2 -1 0 1 2 3")

	dropped, err := s.Maintain(ctx, now, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != 3 {
		t.Errorf("dropped %v, want the partitions of days -30, -12 and -11", dropped)
	}
	expect(t, "partitions after retention", names(), "-10 -9 -2 -1 0 1 2 3")
	expect(t, "raw rows kept", query(t, conn, `SELECT (extract(epoch FROM checked_at - $1::timestamptz) / 86400)::int FROM check_results ORDER BY 1`, today.Add(time.Hour)),
		"-10\n-9\n-1\n0\n3")
	// The rollup keeps the hours of dropped partitions: retention applies to
	// raw rows only.
	expect(t, "rollup kept", query(t, conn, `SELECT count(*), sum(checks) FROM check_results_hourly`), "8 | 8")

	// A late event for the day just dropped: the store with the retention
	// does not create the partition again, the event is expired (the
	// consumer dead-letters it); one for a day kept gets its partition.
	res, err := s.Write(ctx, []store.Event{ev("alpha", d(-11).Add(2*time.Hour), "", ms(10)), ev("alpha", d(-8).Add(time.Hour), "", ms(10))})
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 1 || !slices.Equal(res.Expired, []int{0}) {
		t.Errorf("late events: inserted %d, expired %v; want 1 inserted, event 0 expired", res.Inserted, res.Expired)
	}
	expect(t, "partitions after late events", names(), "-10 -9 -8 -2 -1 0 1 2 3")
}

// reopen opens another Store on conn's database.
func reopen(t testing.TB, conn *pgx.Conn, cfg store.Config) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), conn.Config().ConnString(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// The recorder buckets response times in Go with the bounds it reads from
// latency_bounds_us(); they land where width_bucket puts them in SQL, at and
// around every bound.
func TestHistogramMatchesSQL(t *testing.T) {
	ctx := context.Background()
	s, conn := openStore(t, store.Config{})
	var bounds []int64
	if err := conn.QueryRow(ctx, `SELECT latency_bounds_us()`).Scan(&bounds); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	var events []store.Event
	for _, b := range bounds {
		for _, us := range []int64{b - 1, b, b + 1} {
			if us >= 0 {
				events = append(events, ev("alpha", at, "", time.Duration(us)*time.Microsecond))
			}
		}
	}
	if _, err := s.Write(ctx, events); err != nil {
		t.Fatal(err)
	}
	got := query(t, conn, `SELECT latency_histogram::text FROM check_results_hourly`)
	want := query(t, conn, `SELECT array_agg(coalesce(n, 0) ORDER BY i)::text
		FROM generate_series(1, array_length(latency_bounds_us(), 1)) AS i
		LEFT JOIN (SELECT width_bucket(response_time_us, latency_bounds_us()) AS b, count(*)::int AS n
		           FROM check_results GROUP BY 1) AS c ON c.b = i`)
	expect(t, "histogram", got, want)
}

// Two recorders writing overlapping batches at once (two owners of a
// partition during a rebalance) store and count each event once: a batch
// that collides on the unique key fails whole and its retry skips what the
// other stored.
func TestConcurrentOverlappingWriters(t *testing.T) {
	ctx := context.Background()
	s1, conn := openStore(t, store.Config{})
	url := conn.Config().ConnString()
	s2, err := store.Open(ctx, url, store.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	base := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	const n = 3000
	var collisions atomic.Int64
	events := make([]store.Event, n)
	for i := range events {
		events[i] = ev(fmt.Sprintf("t%02d", i%17), base.Add(time.Duration(i)*time.Second), "", ms(float64(i%500)))
	}
	write := func(s *store.Store, batches [][]store.Event, errs chan<- error) {
		for _, b := range batches {
			for attempt := 0; ; attempt++ {
				_, err := s.Write(ctx, b)
				if err == nil {
					break
				}
				collisions.Add(1)
				if attempt == 20 {
					errs <- err
					return
				}
			}
		}
		errs <- nil
	}
	// Writer 1 takes batches of 100 in order, writer 2 batches of 150 in
	// reverse order: every event is written by both.
	var b1, b2 [][]store.Event
	for i := 0; i < n; i += 100 {
		b1 = append(b1, events[i:i+100])
	}
	for i := n; i > 0; i -= 150 {
		b2 = append(b2, events[i-150:i])
	}
	errs := make(chan error, 2)
	defer func() { t.Logf("%d batches collided and were retried", collisions.Load()) }()
	go write(s1, b1, errs)
	go write(s2, b2, errs)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	expect(t, "totals", query(t, conn, `SELECT (SELECT count(*) FROM check_results), sum(checks), sum(response_time_sum_us),
		(SELECT sum(response_time_us) FROM check_results) FROM check_results_hourly`), fmt.Sprintf("%d | %d | %d | %d", n, n, sumUS(events), sumUS(events)))
}

func sumUS(events []store.Event) int64 {
	var s int64
	for _, e := range events {
		s += e.ResponseTime.Microseconds()
	}
	return s
}

// incompressible returns n bytes PostgreSQL cannot compress below n/2: an
// index entry of it keeps its size.
func incompressible(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[rand.IntN(62)]
	}
	return string(b)
}

// An event PostgreSQL refuses for good fails its batch with an error Refused
// recognises, and nothing of the batch is stored; transient errors, the
// unique key and a missing partition are not refusals.
func TestRefused(t *testing.T) {
	s, conn := openStore(t, store.Config{})
	at := time.Now().UTC().Truncate(time.Hour)
	big := ev(incompressible(6000), at, "", ms(5)) // over btree's 2704-byte entry limit
	_, err := s.Write(context.Background(), []store.Event{ev("alpha", at, "", ms(1)), big})
	detail, ok := store.Refused(err)
	if !ok || !strings.HasPrefix(detail, "SQLSTATE 54000: index row size ") {
		t.Fatalf("a 6 KB target id: Refused(%v) = %q, %v; want SQLSTATE 54000", err, detail, ok)
	}
	expect(t, "rows after the refused batch", query(t, conn, `SELECT count(*) FROM check_results`), "0")

	// What the server says of a row without a partition (1999 has none) is
	// no refusal: Write creates the partition and retries.
	_, err = conn.Exec(context.Background(), `INSERT INTO check_results (event_id, target_id, checked_at, outcome,
		response_time_us, bytes_read, body_truncated, redirects) VALUES ($1, 'alpha', '1999-01-01Z', 'up', 1, 0, false, 0)`, uuid.New())
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23514" || pgErr.Routine != "ExecFindPartition" {
		t.Fatalf("insert without a partition: %v, want SQLSTATE 23514 from ExecFindPartition", err)
	}
	if detail, ok := store.Refused(err); ok {
		t.Errorf("a row without a partition: Refused = %q, true; want false", detail)
	}

	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "22003", Message: "bigint out of range"}, true},
		{fmt.Errorf("copy: %w", &pgconn.PgError{Code: "22021", Message: "invalid byte sequence"}), true},
		{&pgconn.PgError{Code: "54000", Message: "index row size 6016 exceeds"}, true},
		{&pgconn.PgError{Code: "23502", Message: "null value violates not-null constraint"}, true},
		{&pgconn.PgError{Code: "23514", Message: `new row violates check constraint "x"`}, true},
		{&pgconn.PgError{Code: "23514", Message: `no partition of relation "check_results" found for row`, Routine: "ExecFindPartition"}, false},
		// The message is translated; the routine is not.
		{&pgconn.PgError{Code: "23514", Message: `keine Partition von Relation »check_results« für Zeile gefunden`, Routine: "ExecFindPartition"}, false},
		{&pgconn.PgError{Code: "23505", Message: "duplicate key value"}, false},
		{&pgconn.PgError{Code: "40001", Message: "could not serialize access"}, false},
		{&pgconn.PgError{Code: "40P01", Message: "deadlock detected"}, false},
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, false},
		{&pgconn.PgError{Code: "08006", Message: "connection failure"}, false},
		{&pgconn.PgError{Code: "53300", Message: "too many connections"}, false},
		{errors.New("dial tcp: connection refused"), false},
		{context.DeadlineExceeded, false},
		{nil, false},
	} {
		if _, got := store.Refused(tc.err); got != tc.want {
			t.Errorf("Refused(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// A batch written after the retention has passed one of its days (another
// recorder's Maintain dropped that day's partition meanwhile) does not
// create the partition again: the day's events come back as expired and
// reach neither the raw table nor the rollup, where a redelivered event
// whose raw row was dropped would otherwise be counted a second time.
func TestWriteSkipsExpiredDays(t *testing.T) {
	ctx := context.Background()
	s, conn := openStore(t, store.Config{Retention: 48 * time.Hour})
	now := time.Now().UTC()
	today := now.Truncate(24 * time.Hour)
	gone := today.Add(-4 * 24 * time.Hour)
	// The day's partition, from when the retention still kept it.
	if _, err := conn.Exec(ctx, `CREATE TABLE check_results_p`+gone.Format("20060102")+` PARTITION OF check_results
		FOR VALUES FROM ('`+gone.Format(time.RFC3339)+`') TO ('`+gone.Add(24*time.Hour).Format(time.RFC3339)+`')`); err != nil {
		t.Fatal(err)
	}
	dropped, err := s.Maintain(ctx, now, 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(dropped, "check_results_p"+gone.Format("20060102")) {
		t.Fatalf("Maintain dropped %v, want the partition of %s among them", dropped, gone.Format(time.DateOnly))
	}
	events := []store.Event{
		ev("alpha", gone.Add(time.Hour), "", ms(7)),
		ev("alpha", today.Add(-24*time.Hour+time.Hour), "", ms(3)),
		ev("beta", gone.Add(2*time.Hour), "timeout", ms(9)),
	}
	res, err := s.Write(ctx, events)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 1 || !slices.Equal(res.Expired, []int{0, 2}) {
		t.Errorf("Write: inserted %d, expired %v; want 1 inserted, events 0 and 2 expired", res.Inserted, res.Expired)
	}
	days, err := s.Partitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(days, func(d time.Time) bool { return d.Equal(gone) }) {
		t.Errorf("the expired day %s has a partition again", gone.Format(time.DateOnly))
	}
	expect(t, "raw rows and rollup", query(t, conn, `SELECT (SELECT count(*) FROM check_results), sum(checks),
		sum(response_time_sum_us) FROM check_results_hourly`), "1 | 1 | 3000")

	// Only expired events: nothing to write, nothing created.
	res, err = s.Write(ctx, events[2:])
	if err != nil || res.Inserted != 0 || !slices.Equal(res.Expired, []int{0}) {
		t.Errorf("Write of an expired event: %+v, %v; want it expired", res, err)
	}
}
