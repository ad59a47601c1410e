package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/services/internal/cmdline"
	"github.com/sitewatch/sitewatch/services/testing/benchhost"
)

func main() { cmdline.Main("webbench", run) }

type page struct {
	Name  string  `json:"name"`
	Path  string  `json:"path"`
	First float64 `json:"first_ms"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	Max   float64 `json:"max_ms"`
	Bytes int     `json:"bytes"`
}

type result struct {
	Targets      int     `json:"targets"`
	Days         int     `json:"days"`
	HourlyRows   int64   `json:"hourly_rows"`
	LoadS        float64 `json:"load_s"`
	Requests     int     `json:"requests"`
	Pages        []page  `json:"pages"`
	OverviewP50  float64 `json:"overview_p50_ms"`
	OverviewP95  float64 `json:"overview_p95_ms"`
	OverviewCold float64 `json:"overview_first_ms"`
	WebRSSMiB    float64 `json:"web_rss_mib"`
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("webbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	web := fs.String("web", "", "the web binary")
	recorder := fs.String("recorder", "", "the recorder binary (migrates the database)")
	targets := fs.Int("targets", 1000, "number of targets")
	days := fs.Int("days", 30, "days of hourly rollups per target")
	requests := fs.Int("requests", 100, "requests per page, after 5 of warm-up")
	logPath := fs.String("log", os.DevNull, "file for the web process's log")
	keep := fs.Bool("keep", false, "keep the database (its name goes to stderr) to look at its queries")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *web == "" || *recorder == "" {
		return errors.New("-web and -recorder are required")
	}
	if *targets < 1 || *days < 1 || *requests < 1 {
		return errors.New("-targets, -days and -requests must be positive")
	}
	adminURL := getenv("DATABASE_URL")
	if adminURL == "" {
		return errors.New("DATABASE_URL: not set (start the stack: go tool task stack:up)")
	}
	name := "bench_web_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	dbURL, err := createDatabase(ctx, adminURL, name)
	if err != nil {
		return err
	}
	if *keep {
		defer fmt.Fprintf(stderr, "webbench: kept database %s\n", name)
	} else {
		defer dropDatabase(adminURL, name, stderr)
	}
	migrate := exec.CommandContext(ctx, *recorder, "migrate")
	migrate.Env = append(os.Environ(), "DATABASE_URL="+dbURL)
	if out, err := migrate.CombinedOutput(); err != nil {
		return fmt.Errorf("recorder migrate: %w\n%s", err, out)
	}
	res := result{Targets: *targets, Days: *days, Requests: *requests}
	start := time.Now()
	if res.HourlyRows, err = load(ctx, dbURL, *targets, *days); err != nil {
		return err
	}
	res.LoadS = math.Round(time.Since(start).Seconds()*10) / 10
	fmt.Fprintf(stderr, "webbench: %d targets, %d hourly rows loaded in %.1fs into %s\n", *targets, res.HourlyRows, res.LoadS, name)

	addr, err := benchhost.FreeAddr()
	if err != nil {
		return err
	}
	logf, err := os.Create(*logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(*web, "-listen", addr, "-log-level", "warn", "-status-group-label", "team")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", *web, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	base := "http://" + addr
	if err := benchhost.WaitListening(ctx, addr, 30*time.Second); err != nil {
		return fmt.Errorf("web: %w", err)
	}
	mid := fmt.Sprintf("target-%04d", *targets/2)
	for _, p := range []page{
		{Name: "overview", Path: "/"},
		{Name: "overview, state up, page 5", Path: "/?state=up&page=5"},
		{Name: "overview, search", Path: "/?q=team-3"},
		{Name: "target 24h", Path: "/targets/" + mid + "?range=24h"},
		{Name: "target 90d", Path: "/targets/" + mid + "?range=90d"},
		{Name: "status (cached 30s)", Path: "/status"},
		{Name: "api targets", Path: "/api/v1/targets"},
		{Name: "badge uptime 30d", Path: "/badges/" + mid + "/uptime.svg?period=30d"},
	} {
		times := make([]float64, 0, *requests)
		for i := -5; i < *requests; i++ {
			t0 := time.Now()
			n, err := fetch(ctx, base+p.Path)
			if err != nil {
				return fmt.Errorf("%s: %w", p.Path, err)
			}
			ms := float64(time.Since(t0).Microseconds()) / 1000
			if i == -5 {
				p.First = ms
			}
			if i >= 0 {
				times = append(times, ms)
			}
			p.Bytes = n
		}
		slices.Sort(times)
		p.P50, p.P95, p.Max = quantile(times, 0.5), quantile(times, 0.95), times[len(times)-1]
		res.Pages = append(res.Pages, p)
		fmt.Fprintf(stderr, "webbench: %-28s first %7.1f ms  p50 %7.1f ms  p95 %7.1f ms  (%d bytes)\n", p.Name, p.First, p.P50, p.P95, p.Bytes)
	}
	res.OverviewP50, res.OverviewP95, res.OverviewCold = res.Pages[0].P50, res.Pages[0].P95, res.Pages[0].First
	if _, peak, err := benchhost.Memory(cmd.Process.Pid); err == nil {
		res.WebRSSMiB = math.Round(float64(peak)/(1<<20)*10) / 10
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

func fetch(ctx context.Context, u string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("answered %s", resp.Status)
	}
	return len(b), nil
}

// quantile of sorted values, by the nearest rank.
func quantile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, i)]
}

// load writes what the recorder and the alerter would have: every 33rd
// target down, every 50th (from 7) down in region us only, 120 checks an
// hour with a few failures, open incidents for the down ones, and 20 raw
// rows a target in the last hour (certificate expiry, phases). The
// configured interval is an hour, so that no target turns stale while the
// pages are measured.
func load(ctx context.Context, dbURL string, targets, days int) (int64, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	var stmts []string
	for _, d := range []time.Time{today.AddDate(0, 0, -1), today, today.AddDate(0, 0, 1)} {
		stmts = append(stmts, fmt.Sprintf(`CREATE TABLE check_results_p%s PARTITION OF check_results FOR VALUES FROM ('%s') TO ('%s')`,
			d.Format("20060102"), d.Format(time.RFC3339), d.AddDate(0, 0, 1).Format(time.RFC3339)))
	}
	stmts = append(stmts,
		`CREATE TEMP TABLE ids AS SELECT i, format('target-%s', lpad(i::text, 4, '0')) AS id FROM generate_series(0, $1::int - 1) AS i`,
		`INSERT INTO target_config (target_id, url, method, interval_us, timeout_us, header_names, has_body, expect_status,
		     follow_redirects, tls_skip_verify, max_body_bytes, regions, labels, configured_at, updated_at)
		 SELECT id, 'https://' || id || '.example/', 'GET', 3600000000, 10000000, '{}', false, '{200-399}', true, false, 1048576,
		        '{}', jsonb_build_object('team', 'team-' || i % 10), now() - make_interval(days => $1::int + 1), now() - make_interval(days => $1::int + 1)
		 FROM ids`,
		`INSERT INTO targets (target_id, url, method, first_seen, last_seen, last_event_id, last_outcome, last_failure_kind,
		     last_status_code, last_response_time_us, last_error, last_up_at, last_down_at, check_interval_us)
		 SELECT id, 'https://' || id || '.example/', 'GET', now() - make_interval(days => $1::int), now() - interval '5 seconds', gen_random_uuid(),
		        CASE WHEN i % 33 = 0 THEN 'down' ELSE 'up' END, CASE WHEN i % 33 = 0 THEN 'timeout' END,
		        CASE WHEN i % 33 = 0 THEN NULL ELSE 200 END, 50000 + i * 10, CASE WHEN i % 33 = 0 THEN 'context deadline exceeded' END,
		        CASE WHEN i % 33 = 0 THEN now() - interval '2 hours' ELSE now() - interval '5 seconds' END,
		        CASE WHEN i % 33 = 0 THEN now() - interval '5 seconds' ELSE now() - interval '3 days' END, 30000000
		 FROM ids`,
		`INSERT INTO target_regions (target_id, region, first_seen, last_seen, last_event_id, last_outcome, last_failure_kind,
		     last_status_code, last_response_time_us, last_error, last_up_at, last_down_at, check_interval_us)
		 SELECT id, r, now() - make_interval(days => $1::int), now() - interval '5 seconds', gen_random_uuid(), o,
		        CASE o WHEN 'down' THEN 'timeout' END, 200, 50000, NULL,
		        now() - interval '5 seconds', now() - interval '3 days', 30000000
		 FROM ids, LATERAL (VALUES ('eu', CASE WHEN i % 33 = 0 THEN 'down' ELSE 'up' END),
		                           ('us', CASE WHEN i % 33 = 0 OR i % 50 = 7 THEN 'down' ELSE 'up' END)) AS v(r, o)`,
		`INSERT INTO check_results_hourly
		 SELECT id, h, 120, 120 - f, f, 0, 0, 0, f, 0, 0, 0, 20000, 400000, 120 * 60000,
		        array_fill(0, ARRAY[10]) || ARRAY[30, 50, 30, 8, 2] || array_fill(0, ARRAY[14])
		 FROM ids,
		      generate_series(date_trunc('hour', now(), 'UTC') - make_interval(hours => $1::int * 24 - 1), date_trunc('hour', now(), 'UTC'), interval '1 hour') AS h,
		      LATERAL (SELECT CASE WHEN (i + extract(epoch FROM h)::bigint / 3600) % 97 = 0 THEN 3 ELSE 0 END AS f) x`,
		`INSERT INTO check_results (event_id, target_id, checked_at, outcome, failure_kind, response_time_us, dns_us, connect_us,
		     tls_handshake_us, ttfb_us, status_code, bytes_read, body_truncated, tls_cert_expires_at, redirects, error, prober_region)
		 SELECT gen_random_uuid(), id, now() - make_interval(secs => k * 30), 'up', NULL, 60000, 2000, 5000, 15000, 40000, 200, 2048, false,
		        now() + make_interval(days => 10 + i % 80), 0, NULL, 'eu'
		 FROM ids, generate_series(1, 20) AS k`,
		`INSERT INTO incidents (incident_id, target_id, kind, started_at, first_event_id, confirmed_at, resolved_at, regions,
		     first_failure_kind, first_error, last_failure_kind, last_error, last_failure_at)
		 SELECT 'inc-' || id, id, 'down', now() - interval '2 hours', 'e', now() - interval '110 minutes', NULL, '{eu,us}',
		        'timeout', 'context deadline exceeded', 'timeout', 'context deadline exceeded', now()
		 FROM ids WHERE i % 33 = 0`,
		`INSERT INTO incident_transitions (incident_id, seq, transition, at, event_id, regions)
		 SELECT incident_id, 0, 'opened', confirmed_at, 'e', regions FROM incidents`,
		// Set hint bits and the visibility map now, as autovacuum has done
		// on a database that has been in use: else the first pages read
		// write every block of the fresh rows.
		`VACUUM (ANALYZE)`,
	)
	for _, s := range stmts {
		var args []any
		switch {
		case strings.Contains(s, "generate_series(0, $1"):
			args = []any{targets}
		case strings.Contains(s, "$1"):
			args = []any{days}
		}
		if _, err := conn.Exec(ctx, s, args...); err != nil {
			return 0, fmt.Errorf("load: %w\n%s", err, s)
		}
	}
	var n int64
	err = conn.QueryRow(ctx, "SELECT count(*) FROM check_results_hourly").Scan(&n)
	return n, err
}

func createDatabase(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", errors.New("DATABASE_URL: not a URL")
	}
	u.Path = "/" + name
	return u.String(), nil
}

func dropDatabase(adminURL, name string, stderr io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err == nil {
		_, err = conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		conn.Close(ctx)
	}
	if err != nil {
		fmt.Fprintf(stderr, "webbench: drop database %s: %v\n", name, err)
	}
}
