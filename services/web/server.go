package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sitewatch/sitewatch/services/web/internal/api"
	"github.com/sitewatch/sitewatch/services/web/internal/badge"
	"github.com/sitewatch/sitewatch/services/web/internal/pages"
	"github.com/sitewatch/sitewatch/services/web/internal/query"
)

// openAPI describes the routes under /api/v1 (a test holds the two equal).
//
//go:embed openapi.json
var openAPI []byte

// contentSecurityPolicy allows nothing from another origin, no inline
// script or style (the charts' data travel as JSON in a non-script element
// type, read by /static/charts.js), and no framing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// route is one pattern of the mux and whether it is public (outside the
// basic auth).
type route struct {
	pattern string
	public  bool
	handler http.HandlerFunc
}

// server holds the routes; tests read them (every /api/v1 route is in
// openapi.json).
type server struct {
	routes []route
	mux    *http.ServeMux
}

func newHandler(db *query.DB, cfg config, reg *prometheus.Registry, logger *slog.Logger) (*server, error) {
	pg, err := pages.New(db, cfg.status, logger)
	if err != nil {
		return nil, err
	}
	s := &server{mux: http.NewServeMux()}
	static := pages.Static()
	s.routes = []route{
		{"GET /", false, pg.Overview},
		{"GET /targets/{id}", false, pg.Target},
		{"GET /status", true, pg.Status},
		{"GET /static/", true, static.ServeHTTP},
		{"GET /badges/{id}/status.svg", true, badgeHandler(db, logger, statusBadge)},
		{"GET /badges/{id}/uptime.svg", true, badgeHandler(db, logger, uptimeBadge)},
		{"GET /badges/{id}/response.svg", true, badgeHandler(db, logger, responseBadge)},
		{"GET /metrics", true, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}).ServeHTTP},
		{"GET /healthz", true, func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }},
		{"GET /readyz", true, func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := db.Ping(ctx); err != nil {
				logger.Warn("not ready", "err", err)
				http.Error(w, "not ready: database unreachable", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ready")
		}},
	}
	for _, r := range api.New(db, cfg.perPage, openAPI, logger).Routes() {
		s.routes = append(s.routes, route{r.Pattern, false, r.Handler})
	}
	durations := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sitewatch_web_request_duration_seconds",
		Help:    "Time to answer a request, by route (the mux pattern) and status code.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "code"})
	reg.MustRegister(durations)
	for _, r := range s.routes {
		var h http.Handler = r.handler
		if !r.public && cfg.auth.on() {
			h = cfg.auth.wrap(h)
		}
		s.mux.Handle(r.pattern, measure(durations, r.pattern, h))
	}
	return s, nil
}

// ServeHTTP sets the security headers of every answer.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	// Private data stays out of shared caches; the public status page,
	// the badges and the static files set their own.
	h.Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

// statusRecorder keeps the status code for the metrics.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func measure(h *prometheus.HistogramVec, pattern string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		h.WithLabelValues(pattern, strconv.Itoa(rec.code)).Observe(time.Since(start).Seconds())
	})
}

// basicAuth guards the private pages when WEB_BASIC_AUTH_USER and
// WEB_BASIC_AUTH_PASSWORD are set. Only SHA-256 digests are kept, and
// compared in constant time, so neither a name's nor a password's length
// or prefix shows in the answer's timing.
type basicAuth struct {
	user, password [sha256.Size]byte
	set            bool
}

func authFromEnv(getenv func(string) string) (basicAuth, error) {
	u, p := getenv("WEB_BASIC_AUTH_USER"), getenv("WEB_BASIC_AUTH_PASSWORD")
	switch {
	case u == "" && p == "":
		return basicAuth{}, nil
	case u == "" || p == "":
		return basicAuth{}, errors.New("WEB_BASIC_AUTH_USER and WEB_BASIC_AUTH_PASSWORD: set both or neither")
	case len(p) < 12:
		return basicAuth{}, errors.New("WEB_BASIC_AUTH_PASSWORD: shorter than 12 characters")
	}
	return basicAuth{user: sha256.Sum256([]byte(u)), password: sha256.Sum256([]byte(p)), set: true}, nil
}

func (a basicAuth) on() bool { return a.set }

func (a basicAuth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		uh, ph := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
		// Both compared always: & rather than &&.
		if !ok || subtle.ConstantTimeCompare(uh[:], a.user[:])&subtle.ConstantTimeCompare(ph[:], a.password[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="sitewatch", charset="UTF-8"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// badgeFunc computes a badge for a known target.
type badgeFunc func(ctx context.Context, db *query.DB, id string, r *http.Request) (badge.Badge, int, error)

func statusBadge(ctx context.Context, db *query.DB, id string, _ *http.Request) (badge.Badge, int, error) {
	t, err := db.Target(ctx, id)
	if errors.Is(err, query.ErrNotFound) {
		return badge.ForState(""), http.StatusNotFound, nil
	}
	return badge.ForState(t.State), http.StatusOK, err
}

func periodBadge(make func(string, query.Summary) badge.Badge) badgeFunc {
	return func(ctx context.Context, db *query.DB, id string, r *http.Request) (badge.Badge, int, error) {
		p := r.URL.Query().Get("period")
		if p == "" {
			p = "24h"
		}
		rg, ok := query.ParseRange(p)
		if !ok {
			return badge.Badge{Label: "period", Message: "use 24h, 7d, 30d or 90d", Color: badge.LightGrey}, http.StatusBadRequest, nil
		}
		known, err := db.Exists(ctx, id)
		if err != nil || !known {
			return make(rg.Name, query.Summary{}), http.StatusNotFound, err
		}
		s, err := db.Summarize(ctx, id, rg)
		return make(rg.Name, s), http.StatusOK, err
	}
}

var (
	uptimeBadge   = periodBadge(func(p string, s query.Summary) badge.Badge { return badge.ForUptime(p, s.UptimePct) })
	responseBadge = periodBadge(func(p string, s query.Summary) badge.Badge { return badge.ForResponse(p, s.AvgMS) })
)

// badgeHandler answers an SVG whatever happens, so that an <img> always
// shows something: 404 with "unknown" for an ID no target has.
func badgeHandler(db *query.DB, logger *slog.Logger, f badgeFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		b, code := badge.ForState(""), http.StatusNotFound
		if query.ValidID(id) {
			var err error
			b, code, err = f(r.Context(), db, id, r)
			if err != nil {
				logger.Error("badge failed", "path", r.URL.Path, "err", err)
				b, code = badge.Badge{Label: "status", Message: "error", Color: badge.LightGrey}, http.StatusInternalServerError
			}
		}
		w.Header().Set("Content-Type", "image/svg+xml; charset=utf-8")
		// Short: shields' own default is a few minutes; README images are
		// proxied by GitHub's camo, which honours it.
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.WriteHeader(code)
		_, _ = w.Write(b.SVG())
	}
}
