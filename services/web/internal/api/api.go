package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/sitewatch/sitewatch/services/web/internal/pages"
	"github.com/sitewatch/sitewatch/services/web/internal/query"
)

// API serves the JSON endpoints.
type API struct {
	db      *query.DB
	perPage int
	doc     []byte
	logger  *slog.Logger
}

// New returns the API over db; perPage is the default page size of
// /api/v1/targets, openAPI the document served at /api/v1/openapi.json.
func New(db *query.DB, perPage int, openAPI []byte, logger *slog.Logger) *API {
	return &API{db: db, perPage: perPage, doc: openAPI, logger: logger}
}

// Route is one endpoint: its ServeMux pattern and handler.
type Route struct {
	Pattern string
	Handler http.HandlerFunc
}

// Routes are the API's endpoints; each pattern's path is a path of
// openapi.json (a test holds them equal).
func (a *API) Routes() []Route {
	return []Route{
		{"GET /api/v1/openapi.json", a.serveOpenAPI},
		{"GET /api/v1/targets", a.targets},
		{"GET /api/v1/targets/{id}", a.target},
		{"GET /api/v1/targets/{id}/hourly", a.hourly},
		{"GET /api/v1/targets/{id}/daily", a.daily},
		{"GET /api/v1/targets/{id}/phases", a.phases},
		{"GET /api/v1/targets/{id}/failures", a.failures},
		{"GET /api/v1/targets/{id}/incidents", a.timeline},
		{"GET /api/v1/incidents", a.incidents},
	}
}

func (a *API) serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(a.doc)
}

// Error is the body of every answer other than 200.
type Error struct {
	Error string `json:"error"`
}

func (a *API) write(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return
		}
		a.logger.Error("api failed", "path", r.URL.Path, "err", err)
		a.writeJSON(w, http.StatusInternalServerError, Error{"internal error"})
		return
	}
	a.writeJSON(w, http.StatusOK, v)
}

func (a *API) writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (a *API) bad(w http.ResponseWriter, msg string) {
	a.writeJSON(w, http.StatusBadRequest, Error{msg})
}

// targetsPage is the answer of /api/v1/targets.
type targetsPage struct {
	Targets []query.Target `json:"targets"`
	Total   int            `json:"total"`
	Counts  map[string]int `json:"counts"`
	Page    int            `json:"page"`
	PerPage int            `json:"per_page"`
}

func (a *API) targets(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	f, ok := pages.ParseFilter(v, a.perPage)
	if !ok {
		a.bad(w, "state must be one of "+strings.Join(query.States, ", ")+"; page a number from 1; q at most 200 bytes of UTF-8 text without control characters")
		return
	}
	if s := v.Get("per_page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			a.bad(w, "per_page must be a number from 1 to 1000")
			return
		}
		f.PerPage = n
	}
	p, err := a.db.Overview(r.Context(), f)
	if p.Targets == nil {
		p.Targets = []query.Target{}
	}
	a.write(w, r, targetsPage{p.Targets, p.Total, p.Counts, f.Page, f.PerPage}, err)
}

// known answers 404 for an ID no target has and returns false.
func (a *API) known(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !query.ValidID(id) {
		a.writeJSON(w, http.StatusNotFound, Error{"no such target"})
		return id, false
	}
	ok, err := a.db.Exists(r.Context(), id)
	if err != nil {
		a.write(w, r, nil, err)
		return id, false
	}
	if !ok {
		a.writeJSON(w, http.StatusNotFound, Error{"no such target"})
	}
	return id, ok
}

// rangeParam reads ?range=, def when absent.
func (a *API) rangeParam(w http.ResponseWriter, r *http.Request, def query.Range) (query.Range, bool) {
	s := r.URL.Query().Get("range")
	if s == "" {
		return def, true
	}
	rg, ok := query.ParseRange(s)
	if !ok {
		a.bad(w, "range must be one of 24h, 7d, 30d, 90d")
	}
	return rg, ok
}

func (a *API) target(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !query.ValidID(id) {
		a.writeJSON(w, http.StatusNotFound, Error{"no such target"})
		return
	}
	t, err := a.db.Target(r.Context(), id)
	if errors.Is(err, query.ErrNotFound) {
		a.writeJSON(w, http.StatusNotFound, Error{"no such target"})
		return
	}
	a.write(w, r, t, err)
}

func (a *API) hourly(w http.ResponseWriter, r *http.Request) {
	rg, ok := a.rangeParam(w, r, query.Ranges[1])
	if !ok {
		return
	}
	id, ok := a.known(w, r)
	if !ok {
		return
	}
	hours, err := a.db.Hourly(r.Context(), id, rg)
	a.write(w, r, map[string]any{"target_id": id, "range": rg.Name, "hours": nonNil(hours)}, err)
}

func (a *API) daily(w http.ResponseWriter, r *http.Request) {
	rg, ok := a.rangeParam(w, r, query.Ranges[3])
	if !ok {
		return
	}
	id, ok := a.known(w, r)
	if !ok {
		return
	}
	days, err := a.db.Daily(r.Context(), id, rg.Hours/24)
	a.write(w, r, map[string]any{"target_id": id, "range": rg.Name, "days": nonNil(days)}, err)
}

func (a *API) phases(w http.ResponseWriter, r *http.Request) {
	id, ok := a.known(w, r)
	if !ok {
		return
	}
	ph, err := a.db.Phases(r.Context(), id)
	a.write(w, r, map[string]any{"target_id": id, "phases": nonNil(ph)}, err)
}

func (a *API) limit(w http.ResponseWriter, r *http.Request, def, most int) (int, bool) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > most {
		a.bad(w, "limit must be a number from 1 to "+strconv.Itoa(most))
		return 0, false
	}
	return n, true
}

func (a *API) failures(w http.ResponseWriter, r *http.Request) {
	n, ok := a.limit(w, r, 50, 1000)
	if !ok {
		return
	}
	id, ok := a.known(w, r)
	if !ok {
		return
	}
	fs, err := a.db.Failures(r.Context(), id, n)
	a.write(w, r, map[string]any{"target_id": id, "failures": nonNil(fs)}, err)
}

func (a *API) timeline(w http.ResponseWriter, r *http.Request) {
	rg, ok := a.rangeParam(w, r, query.Ranges[2])
	if !ok {
		return
	}
	id, ok := a.known(w, r)
	if !ok {
		return
	}
	ts, err := a.db.Timeline(r.Context(), id, rg)
	a.write(w, r, map[string]any{"target_id": id, "range": rg.Name, "transitions": nonNil(ts)}, err)
}

func (a *API) incidents(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	f := query.IncidentFilter{Target: v.Get("target")}
	switch v.Get("state") {
	case "", "all":
	case "open":
		f.Open = true
	default:
		a.bad(w, "state must be open or all")
		return
	}
	if f.Target != "" && !query.ValidID(f.Target) {
		a.bad(w, "target is not a valid target ID")
		return
	}
	var ok bool
	if f.Limit, ok = a.limit(w, r, 100, 1000); !ok {
		return
	}
	is, err := a.db.Incidents(r.Context(), f)
	a.write(w, r, map[string]any{"incidents": nonNil(is)}, err)
}

// nonNil makes an empty list [] in JSON rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
