package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

func TestParseConfig(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1:1/db"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	t.Run("defaults", func(t *testing.T) {
		c, err := parseConfig(nil, env(), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.listen != "127.0.0.1:9103" || c.perPage != 100 || c.auth.on() || c.status.StatusShowDetails || c.status.StatusGroupLabel != "" {
			t.Fatalf("%+v", c)
		}
	})
	tests := []struct {
		name string
		args []string
		env  func(string) string
		want string
	}{
		{"no database", nil, func(string) string { return "" }, "DATABASE_URL: not set"},
		{"bad database", nil, env("DATABASE_URL", "postgres://u:secret@host:notaport/db"), "DATABASE_URL: not a valid PostgreSQL connection string"},
		{"listen", []string{"-listen", "9103"}, env(), `-listen: "9103" is not host:port`},
		{"per page", []string{"-per-page", "0"}, env(), "-per-page: 0 is not between 1 and 1000"},
		{"user without password", nil, env("WEB_BASIC_AUTH_USER", "ops"), "WEB_BASIC_AUTH_USER and WEB_BASIC_AUTH_PASSWORD: set both or neither"},
		{"short password", nil, env("WEB_BASIC_AUTH_USER", "ops", "WEB_BASIC_AUTH_PASSWORD", "short"), "WEB_BASIC_AUTH_PASSWORD: shorter than 12 characters"},
		{"arguments", []string{"serve"}, env(), `unexpected arguments ["serve"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, tt.env, io.Discard)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatal("password in the error")
			}
		})
	}
}

// Every /api/v1 route of the mux is a path of openapi.json and every path
// of openapi.json is a route, with the same methods.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	cfg, err := parseConfig(nil, func(k string) string {
		return map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1:1/db"}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newHandler(nil, cfg, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, r := range s.routes {
		method, path, _ := strings.Cut(r.pattern, " ")
		if strings.HasPrefix(path, "/api/") {
			routes = append(routes, method+" "+path)
		}
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(routes)
	slices.Sort(documented)
	if !slices.Equal(routes, documented) {
		t.Fatalf("mux routes:\n%s\nopenapi.json:\n%s", strings.Join(routes, "\n"), strings.Join(documented, "\n"))
	}
	if len(routes) < 9 {
		t.Fatalf("only %d API routes", len(routes))
	}
}

func TestSecurityHeaders(t *testing.T) {
	url := migrated(t)
	fixture(t, url)
	base := serve(t, url, nil, nil)
	for _, path := range []string{"/", "/targets/alpha", "/status", "/badges/alpha/status.svg", "/api/v1/targets", "/nothing", "/static/app.css"} {
		a := get(t, base+path)
		for k, want := range map[string]string{
			"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"X-Frame-Options":         "DENY",
		} {
			if got := a.header.Get(k); got != want {
				t.Errorf("%s: %s %q, want %q", path, k, got, want)
			}
		}
		wantCache := map[string]string{"/status": "public, max-age=30", "/badges/alpha/status.svg": "public, max-age=60",
			"/static/app.css": "public, max-age=3600"}[path]
		if wantCache == "" {
			wantCache = "no-store"
		}
		if got := a.header.Get("Cache-Control"); got != wantCache {
			t.Errorf("%s: Cache-Control %q, want %q", path, got, wantCache)
		}
		// No page carries an inline script or style the CSP would block.
		if strings.Contains(a.body, "<script>") || strings.Contains(a.body, " style=") || strings.Contains(a.body, "<style") {
			t.Errorf("%s: inline script or style", path)
		}
	}
	// The vendored chart library and its licence are served from here.
	for _, path := range []string{"/static/uplot/uPlot.iife.min.js", "/static/uplot/uPlot.min.css", "/static/uplot/LICENSE", "/static/charts.js"} {
		if a := get(t, base+path); a.code != 200 || len(a.body) < 100 {
			t.Errorf("%s: %d, %d bytes", path, a.code, len(a.body))
		}
	}
}

func TestBasicAuth(t *testing.T) {
	url := migrated(t)
	fixture(t, url)
	base := serve(t, url, nil, map[string]string{"WEB_BASIC_AUTH_USER": "ops", "WEB_BASIC_AUTH_PASSWORD": "correct horse battery"})
	for _, c := range []struct {
		path string
		auth []string
		code int
	}{
		{"/", nil, 401},
		{"/targets/alpha", nil, 401},
		{"/api/v1/targets", nil, 401},
		{"/api/v1/openapi.json", nil, 401},
		{"/nothing", nil, 401},
		{"/", []string{"ops", "wrong password!"}, 401},
		{"/", []string{"OPS", "correct horse battery"}, 401},
		{"/", []string{"ops", "correct horse battery"}, 200},
		{"/api/v1/targets", []string{"ops", "correct horse battery"}, 200},
		{"/status", nil, 200},
		{"/badges/alpha/status.svg", nil, 200},
		{"/static/app.css", nil, 200},
		{"/healthz", nil, 200},
		{"/readyz", nil, 200},
		{"/metrics", nil, 200},
	} {
		a := get(t, base+c.path, c.auth...)
		if a.code != c.code {
			t.Errorf("%s %v: %d, want %d", c.path, c.auth, a.code, c.code)
		}
		if c.code == 401 && a.header.Get("WWW-Authenticate") != `Basic realm="sitewatch", charset="UTF-8"` {
			t.Errorf("%s: WWW-Authenticate %q", c.path, a.header.Get("WWW-Authenticate"))
		}
	}
}

// The role of migration 00013 reads everything the service needs and
// writes nothing: a login in that role serves every page, and its INSERT
// is refused with insufficient_privilege.
func TestReadOnlyRole(t *testing.T) {
	dbURL := migrated(t)
	fixture(t, dbURL)
	ctx := context.Background()
	login := stacktest.Name("web_login")
	exec(t, dbURL, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'web-test-password' IN ROLE sitewatch_web`, login))
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		// The test database (and the role's privileges in it) may still
		// exist: drop what the role owns or was granted there first.
		_, _ = conn.Exec(ctx, "DROP OWNED BY "+login)
		if _, err := conn.Exec(ctx, "DROP ROLE "+login); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(login, "web-test-password")
	roleURL := u.String()

	conn, err := pgx.Connect(ctx, roleURL)
	if err != nil {
		t.Fatalf("connect as %s: %v", login, err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM target_status").Scan(&n); err != nil || n != 5 {
		t.Fatalf("SELECT as the web role: %d %v", n, err)
	}
	for _, stmt := range []string{
		`INSERT INTO targets (target_id, url, method, first_seen, last_seen, last_event_id, last_outcome, last_response_time_us)
		 VALUES ('evil', 'http://127.0.0.1/', 'GET', now(), now(), gen_random_uuid(), 'up', 1)`,
		`DELETE FROM check_results_hourly`,
		`UPDATE incidents SET resolved_at = now()`,
		`CREATE TABLE web_was_here (x int)`,
	} {
		_, err := conn.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.InsufficientPrivilege {
			t.Errorf("%s: %v, want SQLSTATE %s", strings.Fields(stmt)[0], err, pgerrcode.InsufficientPrivilege)
		}
	}

	base := serve(t, roleURL, nil, nil)
	for _, path := range []string{"/", "/targets/alpha?range=90d", "/status", "/badges/alpha/uptime.svg?period=30d",
		"/api/v1/targets", "/api/v1/targets/alpha/phases", "/api/v1/targets/alpha/failures", "/api/v1/targets/alpha/incidents",
		"/api/v1/incidents", "/readyz"} {
		if a := get(t, base+path); a.code != 200 {
			t.Errorf("%s as the web role: %d %s", path, a.code, a.body)
		}
	}
}

// run serves until its context ends, then shuts down and returns nil; the
// healthcheck command probes /readyz as the container's healthcheck does.
func TestRunServesAndStops(t *testing.T) {
	dbURL := migrated(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr strings.Builder
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", addr}, func(k string) string {
			return map[string]string{"DATABASE_URL": dbURL}[k]
		}, io.Discard, &stderr)
	}()
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for run(context.Background(), []string{"healthcheck", base + "/readyz"}, nil, io.Discard, io.Discard) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a := get(t, base+"/healthz"); a.code != 200 || a.body != "ok\n" {
		t.Errorf("/healthz: %d %q", a.code, a.body)
	}
	get(t, base+"/status")
	if a := get(t, base+"/metrics"); !strings.Contains(a.body, `sitewatch_web_request_duration_seconds_count{code="200",route="GET /status"} 1`) {
		t.Errorf("/metrics lacks the /status request:\n%s", a.body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop")
	}
	if err := run(context.Background(), []string{"healthcheck", base + "/readyz"}, nil, io.Discard, io.Discard); err == nil {
		t.Error("healthcheck of a stopped server succeeded")
	}
	// Read only now that run has returned: its logger wrote from another
	// goroutine until then.
	for _, want := range []string{`"msg":"listening","url":"http://` + addr + `/"`, `"msg":"stopped"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, stderr.String())
		}
	}
}
