package pages

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sitewatch/sitewatch/services/web/internal/badge"
	"github.com/sitewatch/sitewatch/services/web/internal/query"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is what the pages show and how.
type Config struct {
	// PerPage is the overview's page size.
	PerPage int
	// StatusTitle heads the public status page.
	StatusTitle string
	// StatusGroupLabel groups the status page by the value of this label
	// ("" for one group).
	StatusGroupLabel string
	// StatusShowDetails shows URLs and errors on the status page.
	StatusShowDetails bool
	// StatusCache is how long the status page's figures are reused: the
	// public page must not cost a query per visitor.
	StatusCache time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Pages renders the HTML pages.
type Pages struct {
	db     *query.DB
	cfg    Config
	tmpl   map[string]*template.Template
	logger *slog.Logger

	mu       sync.Mutex
	statusAt time.Time
	status   []byte // the rendered status page
}

// New parses the templates.
func New(db *query.DB, cfg Config, logger *slog.Logger) (*Pages, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PerPage < 1 {
		cfg.PerPage = 100
	}
	p := &Pages{db: db, cfg: cfg, logger: logger, tmpl: map[string]*template.Template{}}
	version, err := staticVersion()
	if err != nil {
		return nil, err
	}
	// Static files are cached for an hour; their URLs carry a digest of
	// them all, so that a new release is fetched at once.
	asset := func(name string) string { return "/static/" + name + "?v=" + version }
	for _, name := range []string{"overview", "target", "status", "notfound"} {
		t, err := template.New(name).Funcs(funcs).Funcs(template.FuncMap{"asset": asset}).ParseFS(templateFS, "templates/base.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		p.tmpl[name] = t
	}
	return p, nil
}

// staticVersion is a short digest of every static file.
func staticVersion() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(staticFS, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("static files: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// Static serves the embedded CSS, JavaScript and the vendored uPlot under
// /static/.
func Static() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embed above guarantees the directory
	}
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

var funcs = template.FuncMap{
	"targetURL": func(id string) template.URL {
		return template.URL("/targets/" + url.PathEscape(id))
	},
	"iso": func(t *time.Time) string { return t.UTC().Format(time.RFC3339) },
	"fmtTime": func(v any) string {
		switch t := v.(type) {
		case time.Time:
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		case *time.Time:
			if t == nil {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		}
		return ""
	},
	"ago":  func(now time.Time, t *time.Time) string { return Duration(now.Sub(*t)) + " ago" },
	"days": Days,
	"pct": func(v any) string {
		switch p := v.(type) {
		case *float64:
			if p == nil {
				return "—"
			}
			return badge.Percent(*p) + "%"
		case float64:
			return badge.Percent(p) + "%"
		}
		return "—"
	},
	"ms": func(v *float64) string {
		if v == nil {
			return "—"
		}
		return strconv.FormatFloat(*v, 'f', -1, 64) + " ms"
	},
	"deref": func(s any) string {
		switch v := s.(type) {
		case *string:
			if v != nil {
				return *v
			}
		case *int32:
			if v != nil {
				return strconv.Itoa(int(*v))
			}
		}
		return ""
	},
	"join":     func(s []string) string { return strings.Join(s, ", ") },
	"dayClass": DayClass,
	"runs":     Runs,
}

// Duration says d in its two largest units: "3d 4h", "5m 2s".
func Duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s >= 86400:
		return fmt.Sprintf("%dd %dh", s/86400, s%86400/3600)
	case s >= 3600:
		return fmt.Sprintf("%dh %dm", s/3600, s%3600/60)
	case s >= 60:
		return fmt.Sprintf("%dm %ds", s/60, s%60)
	}
	return fmt.Sprintf("%ds", s)
}

// Days says how far t is from now in whole days: "in 42 days", "expired 3
// days ago".
func Days(now time.Time, t *time.Time) string {
	d := int(math.Floor(t.Sub(now).Hours() / 24))
	if d < 0 {
		return fmt.Sprintf("expired %d days ago", -d)
	}
	return fmt.Sprintf("in %d days", d)
}

// DayClass colours a day of an uptime bar: none (no checks), ok (99.9% and
// more), minor (99%), partial (95%) or bad.
func DayClass(d query.Day) string {
	switch p := d.AvailabilityPct; {
	case d.Checks == 0:
		return "none"
	case p >= 99.9:
		return "ok"
	case p >= 99:
		return "minor"
	case p >= 95:
		return "partial"
	}
	return "bad"
}

// Run is a stretch of days of an uptime bar that look the same: one
// element of the status page's bar, as wide as its days (class wN), so
// that a page of many targets does not carry 90 elements each.
type Run struct {
	Class    string
	Days     int
	From, To string
	Checks   int64
	Pct      float64
}

// Runs merges consecutive days with the same class and availability (or
// no checks).
func Runs(days []query.Day) []Run {
	var out []Run
	for _, d := range days {
		c := DayClass(d)
		if n := len(out); n > 0 && out[n-1].Class == c && (d.Checks == 0 || out[n-1].Pct == d.AvailabilityPct) {
			out[n-1].Days++
			out[n-1].To = d.Day
			out[n-1].Checks += d.Checks
			continue
		}
		out = append(out, Run{Class: c, Days: 1, From: d.Day, To: d.Day, Checks: d.Checks, Pct: d.AvailabilityPct})
	}
	return out
}

// page is what every template gets besides its own data.
type page struct {
	Title  string
	Now    time.Time
	Public bool
	Charts bool
}

func (p *Pages) render(w http.ResponseWriter, r *http.Request, code int, name string, data any) {
	b, err := p.execute(name, data)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	writeHTML(w, code, b)
}

func (p *Pages) execute(name string, data any) ([]byte, error) {
	var buf bytes.Buffer
	if err := p.tmpl[name].ExecuteTemplate(&buf, name+".html", data); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

func writeHTML(w http.ResponseWriter, code int, b []byte) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// fail answers 500 and logs why; the page says nothing of the cause.
func (p *Pages) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	p.logger.Error("page failed", "path", r.URL.Path, "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

// NotFound is the 404 page; public pages' 404 links back to /status.
func (p *Pages) NotFound(w http.ResponseWriter, r *http.Request, public bool, msg string) {
	p.render(w, r, http.StatusNotFound, "notfound", struct {
		page
		Message string
	}{page{Title: "Not found", Now: p.cfg.Now(), Public: public}, msg})
}

type stateTab struct {
	State    string
	Count    int
	Selected bool
	Href     string
}

// Overview is `/`: every target, trouble first, filtered and paged.
func (p *Pages) Overview(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		p.NotFound(w, r, false, "There is no page at this address.")
		return
	}
	f, ok := ParseFilter(r.URL.Query(), p.cfg.PerPage)
	if !ok {
		http.Error(w, "bad filter: state must be one of "+strings.Join(query.States, ", ")+", page a number from 1, q at most 200 bytes of UTF-8 text without control characters", http.StatusBadRequest)
		return
	}
	pg, err := p.db.Overview(r.Context(), f)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	pages := max(1, (pg.Total+f.PerPage-1)/f.PerPage)
	href := func(state string, page int) string {
		v := url.Values{}
		if state != "" {
			v.Set("state", state)
		}
		if f.Search != "" {
			v.Set("q", f.Search)
		}
		if page > 1 {
			v.Set("page", strconv.Itoa(page))
		}
		if len(v) == 0 {
			return "/"
		}
		return "/?" + v.Encode()
	}
	data := struct {
		page
		Filter             query.Filter
		Page               query.Page
		StateTabs          []stateTab
		AllCount, Pages    int
		PrevHref, NextHref string
	}{page: page{Title: "Targets", Now: p.cfg.Now()}, Filter: f, Page: pg, Pages: pages}
	for _, s := range query.States {
		data.StateTabs = append(data.StateTabs, stateTab{s, pg.Counts[s], s == f.State, href(s, 1)})
		data.AllCount += pg.Counts[s]
	}
	if f.Page > 1 {
		data.PrevHref = href(f.State, f.Page-1)
	}
	if f.Page < pages {
		data.NextHref = href(f.State, f.Page+1)
	}
	p.render(w, r, http.StatusOK, "overview", data)
}

// ParseFilter reads state, q and page; false when one is not valid.
func ParseFilter(v url.Values, perPage int) (query.Filter, bool) {
	f := query.Filter{State: v.Get("state"), Search: v.Get("q"), Page: 1, PerPage: perPage}
	if f.State != "" && !contains(query.States, f.State) {
		return f, false
	}
	// PostgreSQL refuses text with a NUL or bytes that are not UTF-8: such
	// a search is the request's fault (400), not the database's (500).
	if len(f.Search) > 200 || !utf8.ValidString(f.Search) || strings.IndexFunc(f.Search, unicode.IsControl) >= 0 {
		return f, false
	}
	if s := v.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1_000_000 {
			return f, false
		}
		f.Page = n
	}
	return f, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// chartData is the JSON the detail page embeds for charts.js: uPlot's
// column format, the first column times in Unix seconds, a row of nulls
// in the first hour of each gap between hours with data.
type chartData struct {
	// The x axis of the hourly charts spans the whole range, and the
	// phases' the last day, however few hours have data.
	From       int64 `json:"from"`
	To         int64 `json:"to"`
	PhasesFrom int64 `json:"phases_from"`

	Latency     [][]*float64 `json:"latency"`
	Phases      [][]*float64 `json:"phases"`
	Checks      [][]*float64 `json:"checks"`
	CheckSeries []string     `json:"check_series"`
}

func unix(t time.Time) *float64 {
	f := float64(t.Unix())
	return &f
}

func num(n int64) *float64 {
	f := float64(n)
	return &f
}

// Charts builds the columns of the three charts over rg up to now.
func Charts(hours []query.Hour, phases []query.Phase, rg query.Range, now time.Time) chartData {
	to := now.Truncate(time.Hour)
	c := chartData{
		From:        to.Add(-time.Duration(rg.Hours-1) * time.Hour).Unix(),
		To:          to.Unix(),
		PhasesFrom:  to.Add(-23 * time.Hour).Unix(),
		Latency:     make([][]*float64, 4),
		Phases:      make([][]*float64, 5),
		Checks:      make([][]*float64, 2+len(query.FailureKinds)),
		CheckSeries: append([]string{"checks"}, query.FailureKinds...),
	}
	for i := range c.Latency {
		c.Latency[i] = []*float64{}
	}
	for i := range c.Phases {
		c.Phases[i] = []*float64{}
	}
	for i := range c.Checks {
		c.Checks[i] = []*float64{}
	}
	// gap appends a row of nulls at x to each of cols: uPlot draws a line
	// between consecutive points however far apart, and breaks it only at
	// a null (spanGaps off).
	gap := func(cols [][]*float64, x time.Time) {
		cols[0] = append(cols[0], unix(x))
		for i := 1; i < len(cols); i++ {
			cols[i] = append(cols[i], nil)
		}
	}
	for i, h := range hours {
		if i > 0 && h.Hour.Sub(hours[i-1].Hour) > time.Hour {
			gap(c.Latency, hours[i-1].Hour.Add(time.Hour))
			gap(c.Checks, hours[i-1].Hour.Add(time.Hour))
		}
		c.Latency[0] = append(c.Latency[0], unix(h.Hour))
		c.Latency[1] = append(c.Latency[1], h.P50MS)
		c.Latency[2] = append(c.Latency[2], h.P95MS)
		c.Latency[3] = append(c.Latency[3], h.P99MS)
		c.Checks[0] = append(c.Checks[0], unix(h.Hour))
		c.Checks[1] = append(c.Checks[1], num(h.Checks))
		for i, k := range query.FailureKinds {
			c.Checks[2+i] = append(c.Checks[2+i], num(h.Failures[k]))
		}
	}
	for i, ph := range phases {
		if i > 0 && ph.Hour.Sub(phases[i-1].Hour) > time.Hour {
			gap(c.Phases, phases[i-1].Hour.Add(time.Hour))
		}
		c.Phases[0] = append(c.Phases[0], unix(ph.Hour))
		c.Phases[1] = append(c.Phases[1], ph.DNSMS)
		c.Phases[2] = append(c.Phases[2], ph.ConnectMS)
		c.Phases[3] = append(c.Phases[3], ph.TLSMS)
		c.Phases[4] = append(c.Phases[4], ph.TTFBMS)
	}
	return c
}

type rangeLink struct {
	Name    string
	Href    template.URL
	Current bool
}

// Target is `/targets/{id}`.
func (p *Pages) Target(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !query.ValidID(id) {
		p.NotFound(w, r, false, "No target has this ID.")
		return
	}
	rg, ok := query.ParseRange(r.URL.Query().Get("range"))
	if r.URL.Query().Get("range") == "" {
		rg, ok = query.Ranges[1], true
	}
	if !ok {
		http.Error(w, "bad range: use 24h, 7d, 30d or 90d", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	t, err := p.db.Target(ctx, id)
	if errors.Is(err, query.ErrNotFound) {
		p.NotFound(w, r, false, "No target has this ID.")
		return
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	hours, err := p.db.Hourly(ctx, id, rg)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	days, err := p.db.Daily(ctx, id, query.StatusDays)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	phases, err := p.db.Phases(ctx, id)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	failures, err := p.db.Failures(ctx, id, 50)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	timeline, err := p.db.Timeline(ctx, id, rg)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	now := p.cfg.Now()
	data := struct {
		page
		Target    query.Target
		Range     query.Range
		Ranges    []rangeLink
		Hours     []query.Hour
		Phases    []query.Phase
		Days      []query.Day
		Failures  []query.Failure
		Timeline  []query.Transition
		ChartData chartData
	}{
		page:   page{Title: t.ID, Now: now, Charts: true},
		Target: t, Range: rg, Hours: hours, Phases: phases,
		Days:     query.FillDays(days, now, query.StatusDays),
		Failures: failures, Timeline: timeline,
		ChartData: Charts(hours, phases, rg, now),
	}
	for _, x := range query.Ranges {
		data.Ranges = append(data.Ranges, rangeLink{x.Name,
			template.URL("/targets/" + url.PathEscape(id) + "?range=" + x.Name), x == rg})
	}
	p.render(w, r, http.StatusOK, "target", data)
}

type statusGroup struct {
	Name    string
	Targets []query.StatusTarget
}

// Status is the public `/status`: states and 90-day bars, grouped by a
// label; URLs and errors only with StatusShowDetails. It needs no script.
// The page is rendered at most once per StatusCache and the bytes reused:
// the public page must not cost a query per visitor.
func (p *Pages) Status(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.cfg.Now()
	if p.status == nil || now.Sub(p.statusAt) >= p.cfg.StatusCache {
		targets, err := p.db.Status(r.Context(), p.cfg.StatusGroupLabel, now)
		if err != nil {
			p.fail(w, r, err)
			return
		}
		b, err := p.execute("status", p.statusData(targets, now))
		if err != nil {
			p.fail(w, r, err)
			return
		}
		p.status, p.statusAt = b, now
	}
	w.Header().Set("Cache-Control", "public, max-age=30")
	writeHTML(w, http.StatusOK, p.status)
}

type statusPage struct {
	page
	StatusTitle       string
	Overall, Headline string
	Groups            []statusGroup
	ShowDetails       bool
}

func (p *Pages) statusData(targets []query.StatusTarget, now time.Time) statusPage {
	if !p.cfg.StatusShowDetails {
		// Dropped here, not only in the template: what is not in the data
		// cannot leak through a template change.
		for i := range targets {
			targets[i].URL, targets[i].LastError = "", nil
		}
	}
	data := statusPage{page: page{Title: p.cfg.StatusTitle, Now: now, Public: true},
		StatusTitle: p.cfg.StatusTitle, ShowDetails: p.cfg.StatusShowDetails}
	down, degraded, unknown := 0, 0, 0
	for _, t := range targets {
		if n := len(data.Groups); n == 0 || data.Groups[n-1].Name != t.Group {
			data.Groups = append(data.Groups, statusGroup{Name: t.Group})
		}
		g := &data.Groups[len(data.Groups)-1]
		g.Targets = append(g.Targets, t)
		switch t.State {
		case "down":
			down++
		case "degraded":
			degraded++
		case "stale", "pending":
			unknown++
		}
	}
	switch {
	case len(targets) == 0:
		data.Overall, data.Headline = "unknown", "No target is monitored yet."
	case down > 0:
		data.Overall, data.Headline = "down", fmt.Sprintf("%d of %d down", down, len(targets))
	case degraded > 0:
		data.Overall, data.Headline = "degraded", fmt.Sprintf("%d of %d degraded", degraded, len(targets))
	case unknown == len(targets):
		data.Overall, data.Headline = "unknown", "No recent checks"
	default:
		data.Overall, data.Headline = "up", "All systems operational"
	}
	return data
}
