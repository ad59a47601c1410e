package main

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

type answer struct {
	code   int
	header http.Header
	body   string
}

func get(t testing.TB, url string, auth ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(auth) == 2 {
		req.SetBasicAuth(auth[0], auth[1])
	}
	// No redirects followed: a cleaned path's 301 is an answer too.
	resp, err := (&http.Transport{}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

var rowRE = regexp.MustCompile(`<tr class="target" data-target-id="([^"]*)" data-state="([^"]*)">`)

// rows returns the overview's rows as "id state", in order.
func rows(body string) []string {
	var out []string
	for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
		out = append(out, html.UnescapeString(m[1])+" "+m[2])
	}
	return out
}

// cell returns the text of the first element with attribute attr="value"
// inside the overview row of id.
func cell(t testing.TB, body, id, attr, value string) string {
	t.Helper()
	start := strings.Index(body, `data-target-id="`+html.EscapeString(id)+`"`)
	if start < 0 {
		t.Fatalf("no row for %s", id)
	}
	row := body[start:]
	row = row[:strings.Index(row, "</tr>")]
	re := regexp.MustCompile(attr + `="` + regexp.QuoteMeta(value) + `"[^>]*>([^<]*)<`)
	m := re.FindStringSubmatch(row)
	if m == nil {
		t.Fatalf("row %s has no %s=%q: %s", id, attr, value, row)
	}
	return m[1]
}

func TestOverview(t *testing.T) {
	url := migrated(t)
	fixture(t, url)
	base := serve(t, url, nil, nil)

	a := get(t, base+"/")
	if a.code != 200 {
		t.Fatalf("/: %d %s", a.code, a.body)
	}
	want := []string{"bravo down", "charlie degraded", "delta pending", "alpha up", hostileID + " up"}
	if got := rows(a.body); !slices.Equal(got, want) {
		t.Fatalf("rows %q, want %q (trouble first, then by ID)", got, want)
	}
	for _, c := range []struct{ attr, value, want string }{
		{"data-uptime", "24h", "99.58%"},
		{"data-uptime", "7d", "99.94%"},
		{"data-uptime", "30d", "99.98%"}, // 99.986 cut, not rounded up
		{"class", "p95", "100 ms"},
		{"class", "last-response", "100 ms"},
		{"data-region", "eu", "eu: up"},
		{"data-region", "us", "us: up"},
		{"data-open-incidents", "0", ""},
	} {
		if got := cell(t, a.body, "alpha", c.attr, c.value); got != c.want {
			t.Errorf("alpha %s=%s: %q, want %q", c.attr, c.value, got, c.want)
		}
	}
	if got := cell(t, a.body, "alpha", "class", "cert"); got != "" {
		t.Errorf("cert cell text before <time>: %q", got)
	}
	if !strings.Contains(a.body, ">in 40 days</time>") {
		t.Errorf("alpha's certificate: no \"in 40 days\"")
	}
	if got := cell(t, a.body, "bravo", "data-uptime", "24h"); got != "0.00%" {
		t.Errorf("bravo 24h: %q", got)
	}
	if got := cell(t, a.body, "bravo", "data-open-incidents", "1"); got != "1" {
		t.Errorf("bravo open incidents: %q", got)
	}
	if got := cell(t, a.body, "charlie", "data-region", "us"); got != "us: down" {
		t.Errorf("charlie us: %q", got)
	}
	if got := cell(t, a.body, "delta", "data-uptime", "24h"); got != "—" {
		t.Errorf("delta, never checked: %q", got)
	}
	// The hostile ID and label are text, never markup.
	if strings.Contains(a.body, "<script>alert(1)") || strings.Contains(a.body, "<b>ops") {
		t.Fatal("hostile ID rendered as markup")
	}
	if !strings.Contains(a.body, `<a href="/targets/x%3Cscript%3Ealert%281%29%3C%2Fscript%3E">x&lt;script&gt;alert(1)&lt;/script&gt;</a>`) {
		t.Errorf("hostile ID's link not escaped as expected")
	}
	if !strings.Contains(a.body, `<span id="page-info">page 1 of 1 · 5 targets</span>`) {
		t.Errorf("page info missing")
	}

	// Filter by state, search by label, page.
	for _, c := range []struct {
		query string
		want  []string
		info  string
	}{
		{"?state=up", []string{"alpha up", hostileID + " up"}, "page 1 of 1 · 2 targets"},
		{"?q=team%3Dweb", []string{"charlie degraded", "alpha up"}, "page 1 of 1 · 2 targets"},
		{"?q=ALPHA.example", []string{"alpha up"}, "page 1 of 1 · 1 targets"},
		{"?state=stale", nil, "page 1 of 1 · 0 targets"},
		{"?page=3", nil, "page 3 of 1 · 5 targets"},
	} {
		a := get(t, base+"/"+c.query)
		if got := rows(a.body); a.code != 200 || !slices.Equal(got, c.want) {
			t.Errorf("%s: %d %q, want %q", c.query, a.code, got, c.want)
		}
		if !strings.Contains(a.body, `<span id="page-info">`+c.info+`</span>`) {
			t.Errorf("%s: no %q", c.query, c.info)
		}
	}
	// A NUL or a byte that is not UTF-8 in the search: PostgreSQL refuses
	// such text, so it is the request that is bad, not the server.
	for _, q := range []string{"?state=sideways", "?page=0", "?page=x", "?q=%00", "?q=a%00b", "?q=%ff", "?q=%c3"} {
		if a := get(t, base+"/"+q); a.code != 400 {
			t.Errorf("%s: %d, want 400", q, a.code)
		}
	}
}

func TestOverviewPages(t *testing.T) {
	url := migrated(t)
	fixture(t, url)
	base := serve(t, url, []string{"-per-page", "2"}, nil)
	var all []string
	for _, p := range []string{"", "?page=2", "?page=3"} {
		a := get(t, base+"/"+p)
		all = append(all, rows(a.body)...)
	}
	want := []string{"bravo down", "charlie degraded", "delta pending", "alpha up", hostileID + " up"}
	if !slices.Equal(all, want) {
		t.Fatalf("pages of 2: %q, want %q", all, want)
	}
	a := get(t, base+"/?page=2")
	if !strings.Contains(a.body, `<a rel="prev" href="/">`) || !strings.Contains(a.body, `<a rel="next" href="/?page=3">`) {
		t.Errorf("page 2 lacks its links")
	}
}

func TestTargetPage(t *testing.T) {
	url := migrated(t)
	fixture(t, url)
	base := serve(t, url, nil, nil)

	a := get(t, base+"/targets/alpha?range=24h")
	if a.code != 200 {
		t.Fatalf("%d %s", a.code, a.body)
	}
	for _, want := range []string{
		`<h1 id="target-id">alpha</h1>`,
		`<dd class="uptime" data-uptime="24h">99.58%</dd>`,
		`<dd class="uptime" data-uptime="7d">99.94%</dd>`,
		`<dd id="p95">100 ms</dd>`,
		`<a class="range" data-range="24h" href="/targets/alpha?range=24h" aria-current="page">24h</a>`,
		`<td class="error">connection refused &lt;again&gt;</td>`,
		`<td class="error">dial tcp 127.0.0.1:1: connection refused</td>`,
		`data-incident-id="inc-alpha-1" data-transition="resolved"`,
		`data-incident-id="inc-alpha-1" data-transition="opened"`,
		`<script src="/static/uplot/uPlot.iife.min.js?v=`,
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("no %s", want)
		}
	}
	if n := strings.Count(a.body, `<span class="day `); n != 90 {
		t.Errorf("uptime bar has %d days, want 90", n)
	}
	// 30 days of rollup: the last 30 days are ok or minor, the others
	// have no checks; yesterday's hour with 6 failures of 1440 is today's
	// or yesterday's day.
	if n := strings.Count(a.body, `<span class="day none"`); n != 60 && n != 59 {
		t.Errorf("%d days without checks, want 60 (59 when 720 hours span 31 UTC days)", n)
	}
	// The charts' data: uPlot columns, 24 hours of p50/p95/p99 = 100 ms,
	// one hour of phases.
	m := regexp.MustCompile(`(?s)<script type="application/json" id="chart-data">(.*?)</script>`).FindStringSubmatch(a.body)
	if m == nil {
		t.Fatal("no chart data")
	}
	var cd struct {
		Latency     [][]*float64 `json:"latency"`
		Phases      [][]*float64 `json:"phases"`
		Checks      [][]*float64 `json:"checks"`
		CheckSeries []string     `json:"check_series"`
	}
	if err := json.Unmarshal([]byte(m[1]), &cd); err != nil {
		t.Fatalf("chart data: %v\n%s", err, m[1])
	}
	if len(cd.Latency) != 4 || len(cd.Latency[0]) != 24 || *cd.Latency[2][0] != 100 || *cd.Latency[3][23] != 100 {
		t.Errorf("latency columns: %d series, %d points", len(cd.Latency), len(cd.Latency[0]))
	}
	if len(cd.Phases[0]) < 1 || len(cd.Phases[0]) > 2 {
		t.Errorf("phase hours: %d, want 1 (2 across an hour boundary)", len(cd.Phases[0]))
	}
	connect := slices.Index(cd.CheckSeries, "connect")
	var failures, checks float64
	for i := range cd.Checks[0] {
		checks += *cd.Checks[1][i]
		failures += *cd.Checks[1+connect][i]
	}
	if checks != 1440 || failures != 6 {
		t.Errorf("checks chart: %v checks, %v connect failures; want 1440, 6", checks, failures)
	}

	for _, c := range []struct {
		path string
		code int
	}{
		{"/targets/nope", 404},
		{"/targets/" + strings.Repeat("a", 5000), 404},
		{"/targets/%ff%fe", 404},
		{"/targets/a%00b", 404},
		{"/targets/..%2f..%2fetc%2fpasswd", 404},
		{"/targets/alpha?range=1y", 400},
		{"/nothing/here", 404},
	} {
		a := get(t, base+c.path)
		if a.code != c.code {
			t.Errorf("%s: %d, want %d", c.path, a.code, c.code)
		}
		if c.code == 404 && !strings.Contains(a.body, `<h1 id="not-found">Not found</h1>`) {
			t.Errorf("%s: not the 404 page: %s", c.path, a.body)
		}
	}
	// The mux cleans dot segments with a redirect, never a file.
	if a := get(t, base+"/targets/../../etc/passwd"); a.code/100 != 3 || a.header.Get("Location") != "/etc/passwd" {
		t.Errorf("dot segments: %d %s", a.code, a.header.Get("Location"))
	}
	a = get(t, base+"/targets/x%3Cscript%3Ealert%281%29%3C%2Fscript%3E")
	if a.code != 200 || strings.Contains(a.body, "<script>alert") || !strings.Contains(a.body, `<h1 id="target-id">x&lt;script&gt;alert(1)&lt;/script&gt;</h1>`) {
		t.Errorf("hostile target page: %d", a.code)
	}
}

func TestStatusPage(t *testing.T) {
	url := migrated(t)
	fixture(t, url)
	base := serve(t, url, []string{"-status-group-label", "team", "-status-title", "Acme status"}, nil)
	a := get(t, base+"/status")
	if a.code != 200 {
		t.Fatalf("%d %s", a.code, a.body)
	}
	groups := regexp.MustCompile(`<section class="group" data-group="([^"]*)">`).FindAllStringSubmatch(a.body, -1)
	var names []string
	for _, g := range groups {
		names = append(names, html.UnescapeString(g[1]))
	}
	if want := []string{"<b>ops</b>", "api", "web"}; !slices.Equal(names, want) {
		t.Errorf("groups %q, want %q", names, want)
	}
	for _, want := range []string{
		`<h1>Acme status</h1>`,
		`<p id="status-summary" class="summary-down" data-state="down">1 of 5 down</p>`,
		`<li class="status-target" data-target-id="alpha" data-state="up">`,
		`<span class="uptime" data-uptime="90d">99.98% uptime (90 days)</span>`,
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("no %s", want)
		}
	}
	// alpha's bar: runs of days as wide as their days, 90 in all: the days
	// before its first rollup, the full days at 100 %, the day with the
	// six failures, and today when it is whole.
	li := a.body[strings.Index(a.body, `data-target-id="alpha"`):]
	li = li[:strings.Index(li, "</li>")]
	widths := regexp.MustCompile(`<span class="day (none|ok|minor) w(\d+)"`).FindAllStringSubmatch(li, -1)
	total := 0
	for _, w := range widths {
		n, _ := strconv.Atoi(w[2])
		total += n
	}
	if total != 90 || len(widths) < 3 || len(widths) > 5 || widths[0][1] != "none" {
		t.Errorf("alpha's bar: %q", widths)
	}
	for _, secret := range []string{"alpha.example", "secret-path", "unexpected status 503", "<script", "/api/", "href=\"/\""} {
		if strings.Contains(a.body, secret) {
			t.Errorf("status page shows %q", secret)
		}
	}
	detailed := serve(t, url, []string{"-status-show-details"}, nil)
	a = get(t, detailed+"/status")
	for _, want := range []string{`<span class="url">https://bravo.example/secret-path</span>`, `<span class="error">unexpected status 503</span>`} {
		if !strings.Contains(a.body, want) {
			t.Errorf("-status-show-details: no %s", want)
		}
	}
}

func TestAPI(t *testing.T) {
	url := migrated(t)
	fixture(t, url)
	base := serve(t, url, nil, nil)

	var page struct {
		Targets []struct {
			ID        string   `json:"id"`
			State     string   `json:"state"`
			Uptime24h *float64 `json:"uptime_24h"`
			Uptime7d  *float64 `json:"uptime_7d"`
			Uptime30d *float64 `json:"uptime_30d"`
			P95       *float64 `json:"p95_ms_24h"`
			Open      int      `json:"open_incidents"`
			Regions   []struct {
				Region, State string
			} `json:"regions"`
		} `json:"targets"`
		Total  int            `json:"total"`
		Counts map[string]int `json:"counts"`
	}
	a := get(t, base+"/api/v1/targets?per_page=2&page=2")
	if a.code != 200 || a.header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s %s", a.code, a.header.Get("Content-Type"), a.body)
	}
	if err := json.Unmarshal([]byte(a.body), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Targets) != 2 || page.Targets[0].ID != "delta" || page.Targets[1].ID != "alpha" || page.Total != 5 {
		t.Fatalf("page 2 of 2: %s", a.body)
	}
	if want := map[string]int{"down": 1, "degraded": 1, "stale": 0, "pending": 1, "up": 2}; !mapsEqual(page.Counts, want) {
		t.Errorf("counts %v, want %v", page.Counts, want)
	}
	al := page.Targets[1]
	if *al.Uptime24h != 99.583 || *al.Uptime7d != 99.94 || *al.Uptime30d != 99.986 || *al.P95 != 100 || len(al.Regions) != 2 {
		t.Errorf("alpha: %s", a.body)
	}
	if page.Targets[0].Uptime24h != nil || page.Targets[0].State != "pending" {
		t.Errorf("delta: %s", a.body)
	}

	var hourly struct {
		Hours []struct {
			Checks, Down int64
			Failures     map[string]int64
			P99          float64 `json:"p99_ms"`
		} `json:"hours"`
	}
	a = get(t, base+"/api/v1/targets/alpha/hourly?range=24h")
	if err := json.Unmarshal([]byte(a.body), &hourly); err != nil || a.code != 200 {
		t.Fatalf("%d %v %s", a.code, err, a.body)
	}
	var down, connect int64
	for _, h := range hourly.Hours {
		down += h.Down
		connect += h.Failures["connect"]
	}
	if len(hourly.Hours) != 24 || down != 6 || connect != 6 || hourly.Hours[0].P99 != 100 {
		t.Errorf("hourly: %d hours, %d down, %d connect", len(hourly.Hours), down, connect)
	}

	var incidents struct {
		Incidents []struct {
			ID       string `json:"incident_id"`
			Target   string `json:"target_id"`
			Resolved *string
		} `json:"incidents"`
	}
	a = get(t, base+"/api/v1/incidents?state=open")
	if err := json.Unmarshal([]byte(a.body), &incidents); err != nil || len(incidents.Incidents) != 1 || incidents.Incidents[0].ID != "inc-bravo-1" {
		t.Errorf("open incidents: %v %s", err, a.body)
	}
	a = get(t, base+"/api/v1/incidents")
	if err := json.Unmarshal([]byte(a.body), &incidents); err != nil || len(incidents.Incidents) != 2 || incidents.Incidents[0].ID != "inc-alpha-1" {
		t.Errorf("all incidents, newest first: %v %s", err, a.body)
	}

	for _, c := range []struct{ path, body string }{
		{"/api/v1/targets/alpha/failures?limit=1", `"error": "connection refused \u003cagain\u003e"`},
		{"/api/v1/targets/alpha/phases", `"tls_ms": 20,`},
		{"/api/v1/targets/alpha/daily", `"target_id": "alpha"`},
		{"/api/v1/targets/alpha/incidents", `"transition": "resolved"`},
		{"/api/v1/targets/alpha", `"cert_expires_at": "`},
		{"/api/v1/openapi.json", `"openapi": "3.0.3"`},
	} {
		a := get(t, base+c.path)
		if a.code != 200 || !strings.Contains(a.body, c.body) {
			t.Errorf("%s: %d, no %s in %s", c.path, a.code, c.body, a.body)
		}
	}
	for _, c := range []struct {
		path string
		code int
		body string
	}{
		{"/api/v1/targets/nope", 404, `{"error":"no such target"}`},
		{"/api/v1/targets/nope/hourly", 404, `{"error":"no such target"}`},
		{"/api/v1/targets/%ff/hourly", 404, `{"error":"no such target"}`},
		{"/api/v1/targets/alpha/hourly?range=2d", 400, `{"error":"range must be one of 24h, 7d, 30d, 90d"}`},
		{"/api/v1/targets?per_page=5000", 400, `{"error":"per_page must be a number from 1 to 1000"}`},
		{"/api/v1/incidents?state=closed", 400, `{"error":"state must be open or all"}`},
		{"/api/v1/targets?q=%00", 400, `{"error":"state must be one of down, degraded, stale, pending, up; page a number from 1; q at most 200 bytes of UTF-8 text without control characters"}`},
		{"/api/v1/targets?q=%ff", 400, `{"error":"state must be one of down, degraded, stale, pending, up; page a number from 1; q at most 200 bytes of UTF-8 text without control characters"}`},
	} {
		a := get(t, base+c.path)
		if compact := strings.Join(strings.Fields(a.body), ""); a.code != c.code || compact != strings.ReplaceAll(c.body, " ", "") {
			t.Errorf("%s: %d %s, want %d %s", c.path, a.code, a.body, c.code, c.body)
		}
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestBadges(t *testing.T) {
	url := migrated(t)
	fixture(t, url)
	base := serve(t, url, nil, nil)
	for _, c := range []struct {
		path  string
		code  int
		label string
		color string
	}{
		{"/badges/alpha/status.svg", 200, "status: up", "#4c1"},
		{"/badges/bravo/status.svg", 200, "status: down", "#e05d44"},
		{"/badges/charlie/status.svg", 200, "status: degraded", "#fe7d37"},
		{"/badges/alpha/uptime.svg?period=7d", 200, "uptime 7d: 99.94%", "#4c1"},
		{"/badges/alpha/uptime.svg", 200, "uptime 24h: 99.58%", "#97ca00"},
		{"/badges/bravo/uptime.svg?period=30d", 200, "uptime 30d: 0.00%", "#e05d44"},
		{"/badges/alpha/response.svg", 200, "response 24h: 100 ms", "#4c1"},
		{"/badges/delta/response.svg", 200, "response 24h: no data", "#9f9f9f"},
		{"/badges/nope/status.svg", 404, "status: unknown", "#9f9f9f"},
		{"/badges/%ff/status.svg", 404, "status: unknown", "#9f9f9f"},
		{"/badges/alpha/uptime.svg?period=1y", 400, "period: use 24h, 7d, 30d or 90d", "#9f9f9f"},
		{"/badges/x%3Cscript%3Ealert%281%29%3C%2Fscript%3E/status.svg", 200, "status: up", "#4c1"},
	} {
		a := get(t, base+c.path)
		if a.code != c.code || a.header.Get("Content-Type") != "image/svg+xml; charset=utf-8" ||
			a.header.Get("Cache-Control") != "public, max-age=60" {
			t.Errorf("%s: %d %v", c.path, a.code, a.header)
		}
		if !strings.Contains(a.body, `aria-label="`+html.EscapeString(c.label)+`"`) || !strings.Contains(a.body, `fill="`+c.color+`"`) {
			t.Errorf("%s: want %q in %s: %s", c.path, c.label, c.color, a.body)
		}
	}
}

// The 7- and 30-day uptimes are reused for -uptime-cache; the 24-hour
// figures are always read afresh.
func TestUptimeCache(t *testing.T) {
	url := migrated(t)
	fixture(t, url)
	cached := serve(t, url, nil, nil)
	fresh := serve(t, url, []string{"-uptime-cache", "0"}, nil)
	uptimes := func(base string) string {
		var tg struct {
			U24 float64 `json:"uptime_24h"`
			U7  float64 `json:"uptime_7d"`
			U30 float64 `json:"uptime_30d"`
		}
		a := get(t, base+"/api/v1/targets/alpha")
		if err := json.Unmarshal([]byte(a.body), &tg); err != nil {
			t.Fatalf("%v: %s", err, a.body)
		}
		return fmt.Sprint(tg.U24, " ", tg.U7, " ", tg.U30)
	}
	if got := uptimes(cached); got != "99.583 99.94 99.986" {
		t.Fatalf("before: %s", got)
	}
	// Two hours ago every check failed.
	exec(t, url, `UPDATE check_results_hourly SET up = 0, down = 60, failures_timeout = 60
		WHERE target_id = 'alpha' AND hour = date_trunc('hour', now(), 'UTC') - interval '2 hours'`)
	if got := uptimes(cached); got != "95.417 99.94 99.986" {
		t.Errorf("cached: %s, want 95.417 99.94 99.986 (the 24 hours afresh, the rest as before)", got)
	}
	if got := uptimes(fresh); got != "95.417 99.345 99.847" {
		t.Errorf("-uptime-cache 0: %s, want 95.417 99.345 99.847", got)
	}

	// A target without checks is not cached as such: once its first hour
	// is recorded, its 7 and 30 days show it at once, as its 24 hours do
	// (not "—" next to a 24-hour figure for the cache's lifetime).
	delta := func() string {
		var tg struct {
			U24 *float64 `json:"uptime_24h"`
			U7  *float64 `json:"uptime_7d"`
			U30 *float64 `json:"uptime_30d"`
		}
		a := get(t, cached+"/api/v1/targets/delta")
		if err := json.Unmarshal([]byte(a.body), &tg); err != nil {
			t.Fatalf("%v: %s", err, a.body)
		}
		f := func(p *float64) string {
			if p == nil {
				return "-"
			}
			return fmt.Sprint(*p)
		}
		return f(tg.U24) + " " + f(tg.U7) + " " + f(tg.U30)
	}
	if got := delta(); got != "- - -" {
		t.Fatalf("delta before its first check: %s", got)
	}
	exec(t, url, `INSERT INTO check_results_hourly
		SELECT 'delta', date_trunc('hour', now(), 'UTC'), 4, 3, 1, 0, 1, 0, 0, 0, 0, 0,
		       100000, 100000, 4 * 100000, array_fill(0, ARRAY[12]) || 4 || array_fill(0, ARRAY[16])`)
	if got := delta(); got != "75 75 75" {
		t.Errorf("delta after its first checks: %s, want 75 75 75", got)
	}
}
