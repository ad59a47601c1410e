package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/services/testing/browser"
)

// The pages in a real browser (Debian's chromium, services/testing/browser)
// on the fixture's five targets: the states the database holds and the
// fixture's uptimes, exactly; no console error; the charts drawn; the
// status page read without JavaScript; a screenshot of each page in
// .stack/screenshots for the README.
func TestBrowser(t *testing.T) {
	url := migrated(t)
	b := browser.Start(t)
	fixture(t, url) // after chromium's start: the fixture waits out an hour's last minute
	base := serve(t, url, nil, nil)
	states := dbStates(t, url)

	t.Run("overview", func(t *testing.T) {
		p := b.Open(t, base+"/")
		p.NoErrors()
		var rows []string
		for _, id := range p.Texts("tr.target td.target-id a") {
			rows = append(rows, id+" "+p.Text(`tr.target[data-target-id="`+cssString(id)+`"] td.target-state`))
		}
		if want := troubleFirst(states); !slices.Equal(rows, want) {
			t.Errorf("rows %q, want %q (the database's states, trouble first)", rows, want)
		}
		for sel, want := range map[string]string{
			`tr[data-target-id="alpha"] td[data-uptime="24h"]`:    "99.58%",
			`tr[data-target-id="alpha"] td[data-uptime="7d"]`:     "99.94%",
			`tr[data-target-id="alpha"] td[data-uptime="30d"]`:    "99.98%",
			`tr[data-target-id="alpha"] td.p95`:                   "100 ms",
			`tr[data-target-id="bravo"] td[data-uptime="24h"]`:    "0.00%",
			`tr[data-target-id="bravo"] td.incidents`:             "1",
			`tr[data-target-id="charlie"] span[data-region="us"]`: "us: down",
			`tr[data-target-id="charlie"] span[data-region="eu"]`: "eu: up",
			`#page-info`: "page 1 of 1 · 5 targets",
		} {
			if got := p.Text(sel); got != want {
				t.Errorf("%s: %q, want %q", sel, got, want)
			}
		}
		// The hostile ID is text, not markup: no script element came of it.
		if n := p.Count("#targets script"); n != 0 {
			t.Errorf("%d script elements in the table", n)
		}
		p.Screenshot("overview")
	})

	t.Run("detail", func(t *testing.T) {
		p := b.Open(t, base+"/targets/alpha?range=7d")
		p.NoErrors()
		for sel, want := range map[string]string{
			"#target-id":            "alpha",
			"#target-head .state":   states["alpha"],
			`dd[data-uptime="24h"]`: "99.58%",
			`dd[data-uptime="7d"]`:  "99.94%",
			`dd[data-uptime="30d"]`: "99.98%",
			"#p95":                  "100 ms",
			"#open-incidents":       "0",
		} {
			if got := p.Text(sel); got != want {
				t.Errorf("%s: %q, want %q", sel, got, want)
			}
		}
		// 168 hours of p50/p95/p99 and of checks, one hour of phases: uPlot
		// drew each canvas.
		for _, id := range []string{"chart-latency", "chart-checks", "chart-phases"} {
			if v, _ := p.Attr("#"+id, "data-rendered"); v != "true" {
				t.Errorf("#%s: data-rendered %q, want true", id, v)
				continue
			}
			if ink := p.Canvas("#" + id + " canvas"); ink.Drawn == 0 {
				t.Errorf("#%s: canvas %dx%d has nothing drawn", id, ink.Width, ink.Height)
			}
		}
		if got, want := p.Texts("#failures td.error"), []string{"connection refused <again>", "dial tcp 127.0.0.1:1: connection refused"}; !slices.Equal(got, want) {
			t.Errorf("recent failures %q, want %q", got, want)
		}
		p.Screenshot("detail")
	})

	t.Run("status without JavaScript", func(t *testing.T) {
		p := b.Open(t, base+"/status", browser.NoJavaScript())
		p.NoErrors()
		if got := p.Text("#status-summary"); got != "1 of 5 down" {
			t.Errorf("summary %q, want 1 of 5 down", got)
		}
		ids := []string{"alpha", "bravo", "charlie", "delta", hostileID}
		if got := p.Texts("li.status-target span.name"); !slices.Equal(got, ids) {
			t.Errorf("targets %q, want %q", got, ids)
		}
		var want []string
		for _, id := range ids {
			want = append(want, states[id])
		}
		if got := p.Texts("li.status-target .status-line .state"); !slices.Equal(got, want) {
			t.Errorf("states %q, want %q", got, want)
		}
		for id, want := range map[string]string{"alpha": "99.98% uptime (90 days)", "bravo": "0.00% uptime (90 days)"} {
			if got := p.Text(`li[data-target-id="` + id + `"] .uptime`); got != want {
				t.Errorf("%s: %q, want %q", id, got, want)
			}
		}
		// No URL of a target on the public page by default.
		if body := p.Text("body"); strings.Contains(body, "https://") {
			t.Errorf("the status page shows a URL: %q", body)
		}
		// The bar's runs of days (class wN: N days) cover 90 days.
		days := browser.Eval[int](p, `Array.from(document.querySelectorAll('li[data-target-id="alpha"] .bar span.day'),
			s => parseInt((s.className.match(/\bw(\d+)\b/) || [0, 0])[1], 10)).reduce((a, b) => a + b, 0)`)
		if days != 90 {
			t.Errorf("alpha's bar covers %d days, want 90", days)
		}
		p.Screenshot("status")
	})
}

// clearOfHour waits for the database's next hour when less than margin is
// left of the current one. The fixture's rollup rows are hours back from
// the database's hour, and the pages count the last 24 hours and 30 days
// from theirs: a page served in the next hour sees one hour fewer (alpha's
// 24 h 99.57%, not 99.58%).
func clearOfHour(t testing.TB, url string, margin time.Duration) {
	t.Helper()
	ctx := context.Background()
	conn := connect(t, url)
	var ms float64
	if err := conn.QueryRow(ctx, `SELECT extract(epoch FROM date_trunc('hour', now(), 'UTC') + interval '1 hour' - now()) * 1000`).Scan(&ms); err != nil {
		t.Fatal(err)
	}
	if left := time.Duration(ms) * time.Millisecond; left < margin {
		t.Logf("%s left of the database's hour: waiting for the next", left)
		time.Sleep(left + time.Second)
	}
}

// connect opens a connection to url, closed when t ends.
func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// dbStates reads each target's state as the database holds it
// (target_status.status), with the page's one addition: a target up
// overall but down in a region is degraded.
func dbStates(t *testing.T, url string) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn := connect(t, url)
	rows, err := conn.Query(ctx, `SELECT s.target_id,
		CASE WHEN s.status = 'up' AND coalesce(d.regions_down, 0) > 0 THEN 'degraded' ELSE s.status END
		FROM target_status s LEFT JOIN target_regions_down d USING (target_id)`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var id, state string
		if err := rows.Scan(&id, &state); err != nil {
			t.Fatal(err)
		}
		out[id] = state
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// troubleFirst lists "id state" in the overview's order: down, degraded,
// stale, pending, up, then by ID.
func troubleFirst(states map[string]string) []string {
	rank := map[string]int{"down": 0, "degraded": 1, "stale": 2, "pending": 3, "up": 4}
	var ids []string
	for id := range states {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		if d := rank[states[a]] - rank[states[b]]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	var out []string
	for _, id := range ids {
		out = append(out, id+" "+states[id])
	}
	return out
}

// cssString escapes s for a CSS attribute selector in double quotes.
func cssString(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}
