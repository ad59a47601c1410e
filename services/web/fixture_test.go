package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sitewatch/sitewatch/migrations"
	"github.com/sitewatch/sitewatch/services/testing/stackdb"
	"github.com/sitewatch/sitewatch/services/web/internal/query"
)

// migrated returns the URL of a new database on the stack's PostgreSQL
// with every migration applied.
func migrated(t testing.TB) string {
	t.Helper()
	url := stackdb.Database(t)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return url
}

// exec runs SQL statements on url.
func exec(t testing.TB, url string, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%v\n%s", err, s)
		}
	}
}

// hostileID is a target ID that tries to inject markup.
const hostileID = `x<script>alert(1)</script>`

// fixture fills a migrated database with five targets, written as the
// recorder and the alerter write them (targets, target_regions,
// target_config, check_results_hourly, check_results, incidents):
//
//   - alpha: up in eu and us, label team=web; 720 hours of 60 checks at
//     100 ms each, 6 of them failed (connect) in the hour before the current
//     one: uptime 24h 1434/1440 = 99.583 %, 7d 10074/10080 = 99.940 %, 30d
//     43194/43200 = 99.986 %; p95 100 ms; raw rows of the last hour: 2 failed
//     checks ("connection refused") and 1 up check with phases 5/10/20/30 ms
//     and a certificate expiring in 40 days; a resolved incident.
//   - bravo: down (http_status 503) in eu, team=api, 24 hours of 60 checks
//     all down; an open incident.
//   - charlie: up overall but down in us: degraded.
//   - delta: configured a minute ago with a 1-hour interval, never
//     checked: pending (stale only 3 intervals after configured_at,
//     migration 00012).
//   - hostileID: up, team=<b>ops</b>.
func fixture(t testing.TB, url string) {
	t.Helper()
	// The rows are hours back from the database's hour and the pages count
	// from theirs: a page served in the next hour would see one hour fewer.
	clearOfHour(t, url, time.Minute)
	day := func(offset int) string {
		d := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, offset)
		return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS check_results_p%s PARTITION OF check_results
			FOR VALUES FROM ('%s') TO ('%s')`, d.Format("20060102"), d.Format(time.RFC3339), d.AddDate(0, 0, 1).Format(time.RFC3339))
	}
	exec(t, url, day(-2), day(-1), day(0), day(1),
		`INSERT INTO target_config (target_id, url, method, interval_us, timeout_us, header_names, has_body, expect_status,
		     follow_redirects, tls_skip_verify, max_body_bytes, regions, labels, configured_at, updated_at)
		 SELECT id, u, 'GET', 30000000, 10000000, '{}', false, '{200-399}', true, false, 1048576, '{}', l::jsonb,
		        now() - interval '40 days', now() - interval '40 days'
		 FROM (VALUES ('alpha', 'https://alpha.example/', '{"team":"web"}'),
		              ('bravo', 'https://bravo.example/secret-path', '{"team":"api"}'),
		              ('charlie', 'https://charlie.example/', '{"team":"web"}'),
		              ('delta', 'https://delta.example/', '{"team":"api"}'),
		              ('`+hostileID+`', 'https://hostile.example/', '{"team":"<b>ops</b>"}')) AS v(id, u, l)`,
		`UPDATE target_config SET interval_us = 3600000000, configured_at = now() - interval '1 minute',
		     updated_at = now() - interval '1 minute' WHERE target_id = 'delta'`,
		`INSERT INTO targets (target_id, url, method, first_seen, last_seen, last_event_id, last_outcome, last_failure_kind,
		     last_status_code, last_response_time_us, last_error, last_up_at, last_down_at, check_interval_us)
		 VALUES ('alpha', 'https://alpha.example/', 'GET', now() - interval '30 days', now() - interval '10 seconds',
		         gen_random_uuid(), 'up', NULL, 200, 100000, NULL, now() - interval '10 seconds', NULL, 30000000),
		        ('bravo', 'https://bravo.example/secret-path', 'GET', now() - interval '1 day', now() - interval '10 seconds',
		         gen_random_uuid(), 'down', 'http_status', 503, 250000, 'unexpected status 503', NULL, now() - interval '10 seconds', 30000000),
		        ('charlie', 'https://charlie.example/', 'GET', now() - interval '2 days', now() - interval '10 seconds',
		         gen_random_uuid(), 'up', NULL, 200, 80000, NULL, now() - interval '10 seconds', NULL, 30000000),
		        ('`+hostileID+`', 'https://hostile.example/', 'GET', now() - interval '3 days', now() - interval '10 seconds',
		         gen_random_uuid(), 'up', NULL, 200, 90000, NULL, now() - interval '10 seconds', NULL, 30000000)`,
		`INSERT INTO target_regions (target_id, region, first_seen, last_seen, last_event_id, last_outcome, last_failure_kind,
		     last_status_code, last_response_time_us, last_error, last_up_at, last_down_at, check_interval_us)
		 SELECT id, r, now() - interval '3 days', now() - interval '10 seconds', gen_random_uuid(), o,
		        CASE o WHEN 'down' THEN 'connect' END, 200, 100000, CASE o WHEN 'down' THEN 'connection refused' END,
		        CASE o WHEN 'up' THEN now() END, CASE o WHEN 'down' THEN now() END, 30000000
		 FROM (VALUES ('alpha', 'eu', 'up'), ('alpha', 'us', 'up'), ('bravo', 'eu', 'down'),
		              ('charlie', 'eu', 'up'), ('charlie', 'us', 'down'), ('`+hostileID+`', 'eu', 'up')) AS v(id, r, o)`,
		// 100 ms is bucket 13 of latency_bounds_us() (100000 <= x < 150000).
		`INSERT INTO check_results_hourly
		 SELECT 'alpha', date_trunc('hour', now(), 'UTC') - make_interval(hours => k), 60,
		        60 - CASE k WHEN 1 THEN 6 ELSE 0 END, CASE k WHEN 1 THEN 6 ELSE 0 END,
		        0, CASE k WHEN 1 THEN 6 ELSE 0 END, 0, 0, 0, 0, 0,
		        100000, 100000, 60 * 100000, array_fill(0, ARRAY[12]) || 60 || array_fill(0, ARRAY[16])
		 FROM generate_series(0, 719) AS k`,
		`INSERT INTO check_results_hourly
		 SELECT 'bravo', date_trunc('hour', now(), 'UTC') - make_interval(hours => k), 60, 0, 60,
		        0, 0, 0, 0, 60, 0, 0, 250000, 250000, 60 * 250000, array_fill(0, ARRAY[15]) || 60 || array_fill(0, ARRAY[13])
		 FROM generate_series(0, 23) AS k`,
		`INSERT INTO check_results (event_id, target_id, checked_at, outcome, failure_kind, response_time_us, dns_us, connect_us,
		     tls_handshake_us, ttfb_us, status_code, bytes_read, body_truncated, tls_cert_expires_at, redirects, error, prober_region)
		 VALUES (gen_random_uuid(), 'alpha', now() - interval '50 minutes', 'down', 'connect', 3000, 1000, NULL, NULL, NULL, NULL, 0, false, NULL, 0, 'dial tcp 127.0.0.1:1: connection refused', 'eu'),
		        (gen_random_uuid(), 'alpha', now() - interval '40 minutes', 'down', 'connect', 3000, 1000, NULL, NULL, NULL, NULL, 0, false, NULL, 0, 'connection refused <again>', 'us'),
		        (gen_random_uuid(), 'alpha', now() - interval '30 minutes', 'up', NULL, 100000, 5000, 10000, 20000, 30000, 200, 1256, false, now() + interval '40 days 1 hour', 0, NULL, 'eu')`,
		`INSERT INTO incidents (incident_id, target_id, kind, started_at, first_event_id, confirmed_at, resolved_at, regions,
		     first_failure_kind, first_error, last_failure_kind, last_error, last_failure_at)
		 VALUES ('inc-alpha-1', 'alpha', 'down', now() - interval '50 minutes', 'e1', now() - interval '45 minutes', now() - interval '30 minutes',
		         '{eu,us}', 'connect', 'connection refused', 'connect', 'connection refused', now() - interval '40 minutes'),
		        ('inc-bravo-1', 'bravo', 'down', now() - interval '20 hours', 'e2', now() - interval '19 hours', NULL,
		         '{eu}', 'http_status', 'unexpected status 503', 'http_status', 'unexpected status 503', now())`,
		`INSERT INTO incident_transitions (incident_id, seq, transition, at, event_id, regions, suppressed)
		 VALUES ('inc-alpha-1', 0, 'opened', now() - interval '45 minutes', 'e1', '{eu,us}', NULL),
		        ('inc-alpha-1', 1, 'resolved', now() - interval '30 minutes', 'e3', '{eu,us}', NULL),
		        ('inc-bravo-1', 0, 'opened', now() - interval '19 hours', 'e2', '{eu}', 'no channels')`,
	)
}

// serve starts the web handler on url with the given flags and
// environment and returns its base URL.
func serve(t testing.TB, url string, args []string, env map[string]string) string {
	t.Helper()
	getenv := func(k string) string {
		if k == "DATABASE_URL" {
			return url
		}
		return env[k]
	}
	cfg, err := parseConfig(args, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	db, err := query.Open(context.Background(), url, cfg.uptimeCache)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := newHandler(db, cfg, prometheus.NewRegistry(), logger)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
