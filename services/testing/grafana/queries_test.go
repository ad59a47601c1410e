package grafana

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/services/testing/stackdb"
)

// want is what one query returns on the rows of seed: its columns, its
// number of rows, and the first column's values in order or every row
// exactly (columns joined by " | ", NULL for NULL), where given.
type want struct {
	cols  []string
	rows  int
	first []string
	exact []string
}

// expected holds every query of the dashboards: a query added without an
// entry here fails the test.
var expected = map[string]want{
	"sitewatch-overview / Targets by status / A":   {cols: []string{"up", "down", "stale", "pending"}, exact: []string{"1 | 1 | 0 | 0"}},
	"sitewatch-overview / Open incidents / A":      {cols: []string{"open_incidents"}, exact: []string{"1"}},
	"sitewatch-overview / Checks and failures / A": {cols: []string{"time", "checks", "failures"}, rows: 168},
	"sitewatch-overview / State per target / A": {cols: []string{"target_id", "status", "since", "last_checked_at", "last_status_code",
		"last_response_time_ms", "last_failure_kind", "regions", "regions_down", "down_regions"}, first: []string{"beta", "alpha"}},
	"sitewatch-overview / Uptime 24 h, 7 d, 30 d / A": {cols: []string{"target_id", "uptime_24h_pct", "uptime_7d_pct", "uptime_30d_pct", "checks_30d"},
		exact: []string{"beta | 90.000 | 98.571 | 99.667 | 43200", "alpha | 100.000 | 100.000 | 100.000 | 43200"}},
	"sitewatch-overview / Availability per region / A": {cols: []string{"time", "metric", "availability_pct"}, rows: 2 * 168},
	"sitewatch-overview / Slowest targets (7 d, by p95) / A": {cols: []string{"target_id", "p95_ms", "p99_ms", "p50_ms", "avg_ms", "checks", "availability_pct"},
		rows: 2},
	"sitewatch-overview / Availability per target and region / A": {cols: []string{"target_id", "region", "checks", "failures", "availability_pct"},
		exact: []string{"beta | eu | 5040 | 144 | 97.143", "alpha | eu | 5040 | 0 | 100.000", "alpha | us | 5040 | 0 | 100.000", "beta | us | 5040 | 0 | 100.000"}},

	"sitewatch-target / State / A": {cols: []string{"target_id", "url", "status", "since", "last_checked_at", "last_status_code",
		"last_response_time_ms", "last_failure_kind", "last_error", "check_interval"}, first: []string{"beta"}},
	"sitewatch-target / Response time p50, p95, p99 per hour / A":      {cols: []string{"time", "p50_ms", "p95_ms", "p99_ms"}, rows: 168},
	"sitewatch-target / Phase breakdown (DNS, connect, TLS, TTFB) / A": {cols: []string{"time", "dns_ms", "connect_ms", "tls_ms", "ttfb_ms"}, rows: 11},
	"sitewatch-target / Checks and failures by kind per hour / A": {cols: []string{"time", "up", "dns", "connect", "tls", "timeout", "http_status",
		"content_mismatch", "other"}, rows: 168},
	"sitewatch-target / Uptime per day / A": {cols: []string{"time", "uptime_pct"}, rows: 8},
	"sitewatch-target / Per region / A": {cols: []string{"region", "state", "since", "last_checked_at", "last_status_code", "last_response_time_ms",
		"last_failure_kind"}, first: []string{"eu", "us"}},
	"sitewatch-target / Open incidents / A": {cols: []string{"incident_id", "kind", "region", "started_at", "confirmed_at", "regions",
		"last_failure_kind", "last_error", "open_for"}, first: []string{"inc-beta-1"}},
	"sitewatch-target / Incidents in the range / A": {cols: []string{"incident_id", "kind", "started_at", "confirmed_at", "resolved_at",
		"time_to_detect", "time_to_resolve", "first_failure_kind", "first_error"}, first: []string{"inc-beta-1"}},
	"sitewatch-target / Recent failures / A": {cols: []string{"checked_at", "region", "failure_kind", "status_code", "error"}, rows: 11},
	"sitewatch-target / $target":             {cols: []string{"target_id"}, exact: []string{"alpha", "beta"}},
}

// seed writes two targets checked every minute from two regions for 30
// days: alpha always up; beta up but for 6 of 60 checks an hour in the
// last 24 hours (http_status, region eu), down now since its raw rows of
// the last two hours, with one open incident.
const seed = `
CREATE TABLE check_results_default PARTITION OF check_results DEFAULT;

INSERT INTO targets (target_id, url, method, first_seen, last_seen, last_event_id, last_outcome,
    last_failure_kind, last_status_code, last_response_time_us, last_error, last_up_at, last_down_at, check_interval_us)
VALUES ('alpha', 'http://127.0.0.1:1/', 'GET', @now - interval '30 days', @now - interval '10 seconds',
        gen_random_uuid(), 'up', NULL, 200, 52000, NULL, @now - interval '10 seconds', NULL, 60000000),
       ('beta', 'http://127.0.0.1:2/', 'GET', @now - interval '30 days', @now - interval '10 seconds',
        gen_random_uuid(), 'down', 'http_status', 503, 61000, 'status 503', @now - interval '2 hours',
        @now - interval '10 seconds', 60000000);

INSERT INTO target_regions (target_id, region, first_seen, last_seen, last_event_id, last_outcome, last_failure_kind,
    last_status_code, last_response_time_us, last_error, last_up_at, last_down_at, check_interval_us)
SELECT t, r, @now - interval '30 days', @now - interval '10 seconds', gen_random_uuid(),
       CASE WHEN t = 'beta' AND r = 'eu' THEN 'down' ELSE 'up' END,
       CASE WHEN t = 'beta' AND r = 'eu' THEN 'http_status' END, 200, 52000, NULL,
       @now - interval '2 hours', NULL, 60000000
FROM unnest(ARRAY['alpha', 'beta']) AS t, unnest(ARRAY['eu', 'us']) AS r;

-- 720 hours up to the current one; every check in the bucket [50, 70) ms.
INSERT INTO check_results_hourly
SELECT t, h, 60, 60 - d, d, 0, 0, 0, 0, d, 0, 0, 50000, 69000, 60 * 60000,
       array_fill(0, ARRAY[11]) || ARRAY[60] || array_fill(0, ARRAY[17])
FROM unnest(ARRAY['alpha', 'beta']) AS t,
     generate_series(date_trunc('hour', @now::timestamptz, 'UTC') - interval '719 hours',
                     date_trunc('hour', @now::timestamptz, 'UTC'), interval '1 hour') AS h,
     LATERAL (SELECT CASE WHEN t = 'beta' AND h > date_trunc('hour', @now::timestamptz, 'UTC') - interval '24 hours'
                          THEN 6 ELSE 0 END AS d) AS x;

INSERT INTO check_results_region_hourly
SELECT t, r, h, 30, 30 - d, d, 30 * 60000
FROM unnest(ARRAY['alpha', 'beta']) AS t, unnest(ARRAY['eu', 'us']) AS r,
     generate_series(date_trunc('hour', @now::timestamptz, 'UTC') - interval '719 hours',
                     date_trunc('hour', @now::timestamptz, 'UTC'), interval '1 hour') AS h,
     LATERAL (SELECT CASE WHEN t = 'beta' AND r = 'eu' AND h > date_trunc('hour', @now::timestamptz, 'UTC') - interval '24 hours'
                          THEN 6 ELSE 0 END AS d) AS x;

-- beta's failed checks of the last two hours, every 10 minutes.
INSERT INTO check_results (event_id, target_id, checked_at, outcome, failure_kind, response_time_us, dns_us, connect_us,
    tls_handshake_us, ttfb_us, status_code, bytes_read, body_truncated, redirects, error, prober_instance, prober_region)
SELECT gen_random_uuid(), 'beta', @now - interval '2 hours' + i * interval '10 minutes', 'down', 'http_status', 61000,
       1000, 2000, 3000, 55000, 503, 12, false, 0, 'status 503', 'p1', 'eu'
FROM generate_series(1, 11) AS i;

INSERT INTO incidents (incident_id, target_id, kind, region, started_at, first_event_id, confirmed_at, resolved_at, regions,
    first_failure_kind, first_error, last_failure_kind, last_error, last_failure_at, maintenance)
VALUES ('inc-beta-1', 'beta', 'down', NULL, @now - interval '110 minutes', 'e1', @now - interval '100 minutes', NULL, '{eu}',
        'http_status', 'status 503', 'http_status', 'status 503', @now - interval '10 minutes', NULL),
       ('inc-alpha-1', 'alpha', 'down', NULL, @now - interval '20 days', 'e2', @now - interval '20 days', @now - interval '19 days',
        '{eu}', 'timeout', 'timeout', 'timeout', 'timeout', @now - interval '19 days', NULL);
`

// Every query of every dashboard, expanded as Grafana expands it for the
// last 7 days and the target beta, runs on the stack's PostgreSQL with the
// migrations applied and returns the expected columns and rows; as the
// read-only role sitewatch_web where the migrations grant it.
func TestQueriesOnPostgres(t *testing.T) {
	url := stackdb.Migrated(t)
	ctx := context.Background()

	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["TimeZone"] = "UTC"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	now := time.Now().UTC()
	lit := "'" + now.Format(time.RFC3339Nano) + "'::timestamptz"
	if _, err := conn.Exec(ctx, strings.ReplaceAll(seed, "@now", lit)); err != nil {
		t.Fatalf("seed: %v", err)
	}
	readOnly(t, ctx, conn)

	_, _, dsMin := datasource(t)
	ds, err := Load(filepath.Join(deployDir, "dashboards"))
	if err != nil {
		t.Fatal(err)
	}
	r := Range{From: now.Add(-7 * 24 * time.Hour), To: now}
	seen := map[string]bool{}
	for _, d := range ds {
		qs, err := d.Queries()
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			seen[q.Name] = true
			w, ok := expected[q.Name]
			if !ok {
				t.Errorf("%s: not in expected: add its columns and rows", q.Name)
				continue
			}
			r.Interval, err = IntervalFor(q, r.From, r.To, dsMin)
			if err != nil {
				t.Fatal(err)
			}
			sql, err := Expand(q.SQL, r, d.Vars(map[string][]string{"target": {"beta"}}))
			if err != nil {
				t.Errorf("%s: %v", q.Name, err)
				continue
			}
			cols, rows, err := run(ctx, conn, sql)
			if err != nil {
				t.Errorf("%s: %v\n%s", q.Name, err, sql)
				continue
			}
			check(t, q.Name, w, cols, rows)
		}
	}
	for name := range expected {
		if !seen[name] {
			t.Errorf("expected %q: no such query in the dashboards", name)
		}
	}
}

func check(t *testing.T, name string, w want, cols []string, rows [][]string) {
	t.Helper()
	if !slices.Equal(cols, w.cols) {
		t.Errorf("%s: columns %q, want %q", name, cols, w.cols)
	}
	var lines, first []string
	for _, r := range rows {
		lines = append(lines, strings.Join(r, " | "))
		first = append(first, r[0])
	}
	switch {
	case w.exact != nil:
		if !slices.Equal(lines, w.exact) {
			t.Errorf("%s: rows\n%s\nwant\n%s", name, strings.Join(lines, "\n"), strings.Join(w.exact, "\n"))
		}
	case w.first != nil:
		if !slices.Equal(first, w.first) {
			t.Errorf("%s: first column %q, want %q", name, first, w.first)
		}
	default:
		if len(rows) != w.rows {
			t.Errorf("%s: %d rows, want %d", name, len(rows), w.rows)
		}
	}
}

// run sends sql as Grafana's data source does, in the simple protocol (no
// parameters, several statements allowed), and returns its last result as
// text.
func run(ctx context.Context, conn *pgx.Conn, sql string) ([]string, [][]string, error) {
	results, err := conn.PgConn().Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, nil, err
	}
	if len(results) == 0 {
		return nil, nil, errors.New("no result")
	}
	res := results[len(results)-1]
	var cols []string
	for _, f := range res.FieldDescriptions {
		cols = append(cols, f.Name)
	}
	var rows [][]string
	for _, r := range res.Rows {
		var row []string
		for _, v := range r {
			if v == nil {
				row = append(row, "NULL")
			} else {
				row = append(row, string(v))
			}
		}
		rows = append(rows, row)
	}
	return cols, rows, nil
}

// readOnly switches the session to sitewatch_web when the migrations gave
// it SELECT here (migration 00013), so the dashboards are proven to need
// nothing more than the role the README tells Grafana to use.
func readOnly(t *testing.T, ctx context.Context, conn *pgx.Conn) {
	t.Helper()
	var granted bool
	err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sitewatch_web')
		AND has_table_privilege('sitewatch_web', 'check_results_hourly', 'SELECT')`).Scan(&granted)
	if err != nil {
		t.Fatal(err)
	}
	if !granted {
		t.Log("no role sitewatch_web with SELECT in this schema: the queries run as the stack's user")
		return
	}
	if _, err := conn.Exec(ctx, "SET ROLE sitewatch_web"); err != nil {
		t.Fatal(err)
	}
	t.Log("the queries run as sitewatch_web")
}
