package query

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitewatch/sitewatch/services/internal/checkevent"
)

// ErrNotFound is returned by Target when no target (not removed) has the ID.
var ErrNotFound = errors.New("no such target")

// States a target can be in, trouble first: the order of the overview.
// "degraded" is a target whose latest check is up but that some region sees
// down now; the others are target_status.status.
var States = []string{"down", "degraded", "stale", "pending", "up"}

// Range is a period the pages and the API offer, by name.
type Range struct {
	Name  string
	Hours int
}

// Ranges are the periods offered, shortest first.
var Ranges = []Range{{"24h", 24}, {"7d", 7 * 24}, {"30d", 30 * 24}, {"90d", 90 * 24}}

// ParseRange returns the range named s ("24h", "7d", "30d", "90d").
func ParseRange(s string) (Range, bool) {
	for _, r := range Ranges {
		if r.Name == s {
			return r, true
		}
	}
	return Range{}, false
}

// DB reads through a pool; Open makes one whose sessions are read-only.
type DB struct {
	pool    *pgxpool.Pool
	uptimes uptimeCache
}

// Open connects to url; the 7- and 30-day uptimes of a target are reused
// for uptimeTTL (0: never). Every session starts with
// default_transaction_read_only on, so even a role allowed to write cannot
// through the web service (the migration's sitewatch_web role is the real
// fence; this is the second).
func Open(ctx context.Context, url string, uptimeTTL time.Duration) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message can quote the URL, password included.
		return nil, errors.New("DATABASE_URL: not a valid PostgreSQL connection string")
	}
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	cfg.ConnConfig.RuntimeParams["application_name"] = "sitewatch-web"
	// A page never waits long for the database: it answers 500 instead.
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = "15000"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return &DB{pool: pool, uptimes: uptimeCache{ttl: uptimeTTL}}, nil
}

// Close closes the pool.
func (db *DB) Close() { db.pool.Close() }

// Ping tells whether the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.pool.Ping(ctx) }

// Region is a target's state as one region sees it.
type Region struct {
	Region string `json:"region"`
	State  string `json:"state"` // up, down or stale
}

// Target is one row of the overview and the head of the detail page.
type Target struct {
	ID              string            `json:"id"`
	URL             string            `json:"url"`
	State           string            `json:"state"`
	Since           *time.Time        `json:"since"`
	LastCheckedAt   *time.Time        `json:"last_checked_at"`
	LastResponseMS  *float64          `json:"last_response_time_ms"`
	LastStatusCode  *int32            `json:"last_status_code"`
	LastFailureKind *string           `json:"last_failure_kind"`
	LastError       *string           `json:"last_error"`
	Labels          map[string]string `json:"labels"`
	Regions         []Region          `json:"regions"`
	// Percent of checks up over the last 24, 168 and 720 hours (the current
	// hour included, as target_summary_7d counts); nil without checks.
	Uptime24h *float64 `json:"uptime_24h"`
	Uptime7d  *float64 `json:"uptime_7d"`
	Uptime30d *float64 `json:"uptime_30d"`
	// Response time percentiles of the last 24 hours, from the rollup's
	// histogram.
	P95MS *float64 `json:"p95_ms_24h"`
	// The certificate's NotAfter seen by the latest checks of the last day.
	CertExpiresAt *time.Time `json:"cert_expires_at"`
	OpenIncidents int        `json:"open_incidents"`
}

// Filter selects and pages the overview. State "" is every state; Search
// matches a substring of the ID, the URL or a label (key=value), ignoring
// case.
type Filter struct {
	State   string
	Search  string
	Page    int // from 1
	PerPage int
}

// Page is one page of the overview.
type Page struct {
	Targets []Target       `json:"targets"`
	Total   int            `json:"total"`  // targets matching the filter
	Counts  map[string]int `json:"counts"` // per state, matching the search
}

// statusSQL is every target not removed with its overall state: the
// current status of target_status, "degraded" where a region sees it down.
const statusSQL = `
SELECT ts.target_id, ts.url,
       CASE WHEN ts.status = 'up' AND coalesce(rd.regions_down, 0) > 0 THEN 'degraded' ELSE ts.status END AS state,
       ts.since, ts.last_checked_at, ts.last_response_time_ms::float8, ts.last_status_code,
       ts.last_failure_kind, ts.last_error, coalesce(c.labels, '{}') AS labels
FROM target_status ts
LEFT JOIN target_regions_down rd ON rd.target_id = ts.target_id
LEFT JOIN target_config c ON c.target_id = ts.target_id`

// searchSQL matches $2 as a substring of the ID, URL or a label key=value.
const searchSQL = `($2 = ''
       OR strpos(lower(target_id), lower($2)) > 0
       OR strpos(lower(url), lower($2)) > 0
       OR EXISTS (SELECT FROM jsonb_each_text(labels) l WHERE strpos(lower(l.key || '=' || l.value), lower($2)) > 0))`

// overviewSQL pages statusSQL, trouble first, counting per state before
// the state filter so that the filter's tabs show their sizes.
const overviewSQL = `
WITH s AS (` + statusSQL + `
), m AS (
    SELECT s.*,
           count(*) FILTER (WHERE state = 'down') OVER () AS n_down,
           count(*) FILTER (WHERE state = 'degraded') OVER () AS n_degraded,
           count(*) FILTER (WHERE state = 'stale') OVER () AS n_stale,
           count(*) FILTER (WHERE state = 'pending') OVER () AS n_pending,
           count(*) FILTER (WHERE state = 'up') OVER () AS n_up
    FROM s
    WHERE ` + searchSQL + `
)
SELECT target_id, url, state, since, last_checked_at, last_response_time_ms, last_status_code,
       last_failure_kind, last_error, labels,
       n_down, n_degraded, n_stale, n_pending, n_up
FROM m
WHERE $1 = '' OR state = $1
ORDER BY CASE state WHEN 'down' THEN 0 WHEN 'degraded' THEN 1 WHEN 'stale' THEN 2 WHEN 'pending' THEN 3 ELSE 4 END,
         target_id
LIMIT $3 OFFSET $4`

// Overview returns one page of targets, trouble first, then by ID, with
// their regions, uptimes, p95, certificate expiry and open incidents.
func (db *DB) Overview(ctx context.Context, f Filter) (Page, error) {
	if f.PerPage < 1 {
		f.PerPage = 100
	}
	if f.Page < 1 {
		f.Page = 1
	}
	rows, err := db.pool.Query(ctx, overviewSQL, f.State, strings.TrimSpace(f.Search), f.PerPage, (f.Page-1)*f.PerPage)
	if err != nil {
		return Page{}, fmt.Errorf("overview: %w", err)
	}
	var p Page
	var counts [5]int
	p.Targets, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Target, error) {
		var t Target
		err := row.Scan(&t.ID, &t.URL, &t.State, &t.Since, &t.LastCheckedAt, &t.LastResponseMS, &t.LastStatusCode,
			&t.LastFailureKind, &t.LastError, &t.Labels,
			&counts[0], &counts[1], &counts[2], &counts[3], &counts[4])
		return t, err
	})
	if err != nil {
		return Page{}, fmt.Errorf("overview: %w", err)
	}
	if len(p.Targets) == 0 && (f.Page > 1 || f.State != "") {
		// A page past the end, or a state with no target, has no row to
		// carry the counts: count without paging.
		if counts, err = db.counts(ctx, f.Search); err != nil {
			return Page{}, err
		}
	}
	p.Counts = make(map[string]int, len(States))
	for i, s := range States {
		p.Counts[s] = counts[i]
		if f.State == "" || f.State == s {
			p.Total += counts[i]
		}
	}
	if err := db.details(ctx, p.Targets); err != nil {
		return Page{}, err
	}
	return p, nil
}

func (db *DB) counts(ctx context.Context, search string) ([5]int, error) {
	var c [5]int
	// searchSQL names the search $2, as in overviewSQL; $1 is a stand-in.
	rows, err := db.pool.Query(ctx, `WITH s AS (`+statusSQL+`)
SELECT state, count(*)::int FROM s WHERE $1::text IS NOT NULL AND `+searchSQL+` GROUP BY state`, "", strings.TrimSpace(search))
	if err != nil {
		return c, fmt.Errorf("overview counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return c, fmt.Errorf("overview counts: %w", err)
		}
		if i := slices.Index(States, state); i >= 0 {
			c[i] = n
		}
	}
	return c, rows.Err()
}

// Target returns one target with its details, or ErrNotFound.
func (db *DB) Target(ctx context.Context, id string) (Target, error) {
	var t Target
	err := db.pool.QueryRow(ctx, `WITH s AS (`+statusSQL+`) SELECT * FROM s WHERE target_id = $1`, id).Scan(
		&t.ID, &t.URL, &t.State, &t.Since, &t.LastCheckedAt, &t.LastResponseMS, &t.LastStatusCode,
		&t.LastFailureKind, &t.LastError, &t.Labels)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, ErrNotFound
	}
	if err != nil {
		return t, fmt.Errorf("target %q: %w", id, err)
	}
	ts := []Target{t}
	if err := db.details(ctx, ts); err != nil {
		return t, err
	}
	return ts[0], nil
}

// detailsSQL are the per-target figures of the overview, for the IDs of
// one page only ($1), so that a page costs the same whatever the number of
// targets.
var detailsSQL = []string{
	// The last 24 hours: uptime and p95, the histograms summed bucket by
	// bucket as plain sums, as availability_daily does (twice as fast as
	// the latency_histogram_sum aggregate, a PL/pgSQL call a row); 29 are
	// the buckets of latency_bounds_us() (migration 00003).
	`SELECT target_id,
	        round(100.0 * sum(up) / nullif(sum(checks), 0), 3)::float8,
	        round((latency_quantile_us(ARRAY[sum(latency_histogram[1]), sum(latency_histogram[2]), sum(latency_histogram[3]), sum(latency_histogram[4]),
	                                    sum(latency_histogram[5]), sum(latency_histogram[6]), sum(latency_histogram[7]), sum(latency_histogram[8]),
	                                    sum(latency_histogram[9]), sum(latency_histogram[10]), sum(latency_histogram[11]), sum(latency_histogram[12]),
	                                    sum(latency_histogram[13]), sum(latency_histogram[14]), sum(latency_histogram[15]), sum(latency_histogram[16]),
	                                    sum(latency_histogram[17]), sum(latency_histogram[18]), sum(latency_histogram[19]), sum(latency_histogram[20]),
	                                    sum(latency_histogram[21]), sum(latency_histogram[22]), sum(latency_histogram[23]), sum(latency_histogram[24]),
	                                    sum(latency_histogram[25]), sum(latency_histogram[26]), sum(latency_histogram[27]), sum(latency_histogram[28]),
	                                    sum(latency_histogram[29])]::integer[],
	            0.95, min(response_time_min_us), max(response_time_max_us)) / 1000)::numeric, 3)::float8
	 FROM check_results_hourly
	 WHERE target_id = ANY($1) AND hour > date_trunc('hour', now(), 'UTC') - interval '24 hours'
	 GROUP BY target_id`,
	`SELECT target_id, region, CASE WHEN stale THEN 'stale' ELSE state END
	 FROM target_region_status WHERE target_id = ANY($1) ORDER BY target_id, region`,
	`SELECT target_id, count(*)::int FROM open_incidents WHERE target_id = ANY($1) GROUP BY target_id`,
	// The newest certificate expiry among a target's latest 20 checks of
	// the last day: an index scan backwards that stops early.
	`SELECT id, c.expires
	 FROM unnest($1::text[]) AS id,
	      LATERAL (SELECT tls_cert_expires_at AS expires
	               FROM (SELECT tls_cert_expires_at, checked_at FROM check_results
	                     WHERE target_id = id AND checked_at > now() - interval '1 day'
	                     ORDER BY checked_at DESC LIMIT 20) r
	               WHERE tls_cert_expires_at IS NOT NULL
	               ORDER BY checked_at DESC LIMIT 1) c`,
}

// longUptimeSQL is the 7- and 30-day uptime of the IDs $1: up to 720 rows
// a target, and as the recorder writes the rollup hour by hour, a target's
// rows lie in as many table blocks (a page of 100 targets spread over the
// table reads some 40,000 blocks). Hence the cache in front of it. The
// window's bounds come from a materialized CTE: written as expressions,
// the planner inlines date_trunc(..., 'UTC') into every FILTER of every
// row, ten times slower.
const longUptimeSQL = `
WITH w AS MATERIALIZED (
    SELECT date_trunc('hour', now(), 'UTC') - interval '7 days' AS h7d,
           date_trunc('hour', now(), 'UTC') - interval '30 days' AS h30d)
SELECT target_id,
       round(100.0 * sum(up) FILTER (WHERE hour > h7d) / nullif(sum(checks) FILTER (WHERE hour > h7d), 0), 3)::float8,
       round(100.0 * sum(up) / nullif(sum(checks), 0), 3)::float8
FROM w JOIN check_results_hourly ON hour > w.h30d
WHERE target_id = ANY($1)
GROUP BY target_id`

// longUptime is a target's 7- and 30-day uptime as computed at a time.
type longUptime struct {
	at      time.Time
	u7, u30 *float64
}

// uptimeCache keeps the 7- and 30-day uptimes for a while: over so many
// hours, a few minutes move them by little, and reading them is the
// overview's largest cost.
type uptimeCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]longUptime
}

// maxCached bounds the cache: past it, the cache starts over (targets
// come and go; their entries should not pile up).
const maxCached = 100_000

func (c *uptimeCache) get(id string, now time.Time) (longUptime, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := c.m[id]
	return u, ok && now.Sub(u.at) < c.ttl
}

func (c *uptimeCache) put(us map[string]longUptime) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m)+len(us) > maxCached {
		c.m = make(map[string]longUptime, len(us))
	}
	for id, u := range us {
		c.m[id] = u
	}
}

// longUptimes fills in the 7- and 30-day uptimes of ts, from the cache
// where it has them.
func (db *DB) longUptimes(ctx context.Context, ts []Target) error {
	now := time.Now()
	var missing []string
	for i := range ts {
		if u, ok := db.uptimes.get(ts[i].ID, now); ok {
			ts[i].Uptime7d, ts[i].Uptime30d = u.u7, u.u30
		} else {
			missing = append(missing, ts[i].ID)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	rows, err := db.pool.Query(ctx, longUptimeSQL, missing)
	if err != nil {
		return fmt.Errorf("uptime: %w", err)
	}
	defer rows.Close()
	// Only targets with checks are cached: one without any costs nothing
	// to ask again, and cached it would show "—" for 7 and 30 days next
	// to the 24 hours of its first checks for the cache's lifetime.
	got := make(map[string]longUptime, len(missing))
	for rows.Next() {
		var id string
		u := longUptime{at: now}
		if err := rows.Scan(&id, &u.u7, &u.u30); err != nil {
			return fmt.Errorf("uptime: %w", err)
		}
		got[id] = u
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("uptime: %w", err)
	}
	db.uptimes.put(got)
	for i := range ts {
		if u, ok := got[ts[i].ID]; ok {
			ts[i].Uptime7d, ts[i].Uptime30d = u.u7, u.u30
		}
	}
	return nil
}

// details fills in the per-target figures of ts in one round trip, and
// the long uptimes in a second where the cache lacks them.
func (db *DB) details(ctx context.Context, ts []Target) error {
	if len(ts) == 0 {
		return nil
	}
	if err := db.longUptimes(ctx, ts); err != nil {
		return err
	}
	ids := make([]string, len(ts))
	byID := make(map[string]*Target, len(ts))
	for i := range ts {
		ids[i] = ts[i].ID
		byID[ts[i].ID] = &ts[i]
		ts[i].Regions = []Region{}
	}
	b := &pgx.Batch{}
	for _, q := range detailsSQL {
		b.Queue(q, ids)
	}
	br := db.pool.SendBatch(ctx, b)
	defer br.Close()
	scan := func(what string, each func(pgx.Rows) error) error {
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := each(rows); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	var id string
	if err := scan("uptime 24h", func(r pgx.Rows) error {
		var u24, p95 *float64
		if err := r.Scan(&id, &u24, &p95); err != nil {
			return err
		}
		byID[id].Uptime24h, byID[id].P95MS = u24, p95
		return nil
	}); err != nil {
		return err
	}
	if err := scan("regions", func(r pgx.Rows) error {
		var reg Region
		if err := r.Scan(&id, &reg.Region, &reg.State); err != nil {
			return err
		}
		byID[id].Regions = append(byID[id].Regions, reg)
		return nil
	}); err != nil {
		return err
	}
	if err := scan("open incidents", func(r pgx.Rows) error {
		var n int
		if err := r.Scan(&id, &n); err != nil {
			return err
		}
		byID[id].OpenIncidents = n
		return nil
	}); err != nil {
		return err
	}
	return scan("certificates", func(r pgx.Rows) error {
		var exp *time.Time
		if err := r.Scan(&id, &exp); err != nil {
			return err
		}
		byID[id].CertExpiresAt = exp
		return nil
	})
}

// ValidID tells whether id can be a target ID: valid UTF-8, no control
// characters, at most checkevent.MaxTargetID bytes (the recorder refuses
// longer ones). A request for anything else is answered without a query.
func ValidID(id string) bool {
	if id == "" || len(id) > checkevent.MaxTargetID || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Exists tells whether a target (not removed) has the ID: checked or
// configured, as target_status lists it, without computing its status.
func (db *DB) Exists(ctx context.Context, id string) (bool, error) {
	var ok bool
	err := db.pool.QueryRow(ctx, `
SELECT EXISTS (SELECT FROM target_config WHERE target_id = $1 AND removed_at IS NULL)
    OR (EXISTS (SELECT FROM targets WHERE target_id = $1)
        AND NOT EXISTS (SELECT FROM target_config WHERE target_id = $1))`, id).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("target %q: %w", id, err)
	}
	return ok, nil
}

// FillDays returns the n UTC days up to now's, oldest first, with the
// figures of days where it has them and zero checks elsewhere.
func FillDays(days []Day, now time.Time, n int) []Day {
	first := now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -(n - 1))
	out := make([]Day, n)
	byDay := make(map[string]Day, len(days))
	for _, d := range days {
		byDay[d.Day] = d
	}
	for i := range out {
		day := first.AddDate(0, 0, i).Format(time.DateOnly)
		out[i] = byDay[day]
		out[i].Day = day
	}
	return out
}
