//go:build drill

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Alert drills (issue 11, "Drills"): the real prober, recorder and alerter
// binaries against a local website whose outages follow a schedule, and a
// local webhook receiver that counts what it gets by Idempotency-Key. Each
// ends with the incidents table equal to the schedule (computed from what
// the website served, under the drill's policy) and every transition
// accepted exactly once by the receiver.
//
// Checks run every second and two failures confirm, two successes resolve,
// so an outage of a few seconds is an incident. The alerters run with a
// 10 s outbox lease and retries after 1 s doubling up to 4 s (flags made
// for this; the defaults are 2 min, 5 s and 15 min), so a killed sender's
// rows and a receiver's outage are over in seconds, not minutes.
const (
	alertInterval  = time.Second
	alertFailures  = 2 // consecutive failed checks in a region that confirm it down
	alertSuccesses = 2 // consecutive successes that resolve it
	alertLease     = 10 * time.Second
)

// pattern is a schedule by request number per region: request n (from 1)
// fails when s[n-1] is 'x'; past the end, requests succeed.
func pattern(s string) func(n int) bool {
	return func(n int) bool { return n <= len(s) && s[n-1] == 'x' }
}

// arrival is one request the website answered.
type arrival struct {
	at   time.Time
	fail bool
}

// alertSite is one local website serving every target of a drill in every
// region, at /<target>/<region>: a failure is a 500, a success the
// pattern. decide is asked for each request with its number in its target
// and region, so a schedule can be by count (pattern) or switched at run
// time (failing).
type alertSite struct {
	srv    *httptest.Server
	decide map[string]func(region string, n int) bool

	mu       sync.Mutex
	arrivals map[string]map[string][]arrival // target, region
}

func newAlertSite(t testing.TB, decide map[string]func(region string, n int) bool) *alertSite {
	t.Helper()
	s := &alertSite{decide: decide, arrivals: map[string]map[string][]arrival{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, region, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		d := s.decide[id]
		if d == nil || region == "" {
			http.NotFound(w, r)
			return
		}
		s.mu.Lock()
		if s.arrivals[id] == nil {
			s.arrivals[id] = map[string][]arrival{}
		}
		fail := d(region, len(s.arrivals[id][region])+1)
		s.arrivals[id][region] = append(s.arrivals[id][region], arrival{at: time.Now(), fail: fail})
		s.mu.Unlock()
		if fail {
			http.Error(w, "scheduled outage", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, okPattern)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *alertSite) ids() []string {
	var ids []string
	for id := range s.decide {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (s *alertSite) served() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, byRegion := range s.arrivals {
		for _, a := range byRegion {
			n += len(a)
		}
	}
	return n
}

// waitServed waits until every target was checked at least n times from
// every region: a schedule by count has been served whole.
func (d *alertDrill) waitServed(t testing.TB, n int) {
	t.Helper()
	waitFor(t, time.Duration(n+30)*alertInterval, fmt.Sprintf("%d checks of each target from each region", n), func() (bool, string) {
		d.site.mu.Lock()
		defer d.site.mu.Unlock()
		for _, id := range d.site.ids() {
			for _, region := range d.regions {
				if got := len(d.site.arrivals[id][region]); got < n {
					return false, fmt.Sprintf("%s from %s: %d", id, region, got)
				}
			}
		}
		return true, ""
	})
}

// waitRun waits until the last n checks of target id from each of regions
// all failed (fail) or all succeeded: a schedule switched at run time
// shaped by what the website served, not by how long the test slept, so a
// starved prober still makes the incidents the drill is about.
func (d *alertDrill) waitRun(t testing.TB, id string, regions []string, fail bool, n int) {
	t.Helper()
	waitFor(t, time.Duration(n+30)*alertInterval, fmt.Sprintf("%d checks of %s in a row with failed=%v from %v", n, id, fail, regions), func() (bool, string) {
		d.site.mu.Lock()
		defer d.site.mu.Unlock()
		for _, region := range regions {
			as := d.site.arrivals[id][region]
			if len(as) < n || slices.ContainsFunc(as[len(as)-n:], func(a arrival) bool { return a.fail != fail }) {
				return false, fmt.Sprintf("%s: %d checks", region, len(as))
			}
		}
		return true, ""
	})
}

// failing is a schedule switched at run time: every region of the target
// fails while on is true, except the regions listed in only when it is set.
type failing struct {
	mu   sync.Mutex
	on   bool
	only []string
}

func (f *failing) set(on bool, only ...string) {
	f.mu.Lock()
	f.on, f.only = on, only
	f.mu.Unlock()
}

func (f *failing) decide(region string, _ int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.on && (len(f.only) == 0 || slices.Contains(f.only, region))
}

// wantIncident is an incident the schedule implies, its times those of
// recorded checks. With more than one region the alerter sees the regions'
// checks in the order they reach Kafka, which need not be the order of
// their times: then the incident may be confirmed by the check that made
// any of its regions down (confirms), and resolved by the check that
// recovered any of them (resolves). confirmed and resolved are first there.
type wantIncident struct {
	target                       string
	started, confirmed, resolved time.Time // resolved zero: open
	confirms, resolves           []time.Time
	regions                      []string
}

func (w wantIncident) String() string {
	res := "open"
	if !w.resolved.IsZero() {
		res = w.resolved.Format("15:04:05.000")
	}
	return fmt.Sprintf("%s down %v started %s confirmed %s resolved %s", w.target, w.regions,
		w.started.Format("15:04:05.000"), w.confirmed.Format("15:04:05.000"), res)
}

// expected applies the drill's policy (alertFailures consecutive failures
// confirm a region down, alertSuccesses consecutive successes recover it,
// quorum regions down open an incident) to checks (target, region: in
// order, at their recorded times), in the order of their times: the
// incidents the alerter must have recorded. It is the README's evaluation
// for consecutive failures, written again from the text so that the drill
// does not trust the code it checks.
func expected(quorum int, checks map[string]map[string][]arrival) []wantIncident {
	var ids []string
	for id := range checks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []wantIncident
	for _, id := range ids {
		type ev struct {
			region string
			arrival
		}
		var evs []ev
		for region, as := range checks[id] {
			for _, a := range as {
				evs = append(evs, ev{region, a})
			}
		}
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
		type region struct {
			fails     []time.Time // the current run of failures while up
			successes int
			down      bool
			start     time.Time // the first failure of the run that confirmed it
			downAt    time.Time // the check that confirmed it
			fromNext  bool      // down through the last incident: counts from its next failure
		}
		regions := map[string]*region{}
		var open *wantIncident
		// The region still down when an incident of several resolved: its
		// recovery may resolve it in the alerter's order (out's index).
		recovers := map[string]int{}
		for _, e := range evs {
			r := regions[e.region]
			if r == nil {
				r = &region{}
				regions[e.region] = r
			}
			switch {
			case e.fail && !r.down:
				r.fails = append(r.fails, e.at)
				if len(r.fails) >= alertFailures {
					r.down, r.start, r.downAt, r.successes = true, r.fails[len(r.fails)-alertFailures], e.at, 0
				}
			case e.fail:
				r.successes = 0
				if r.fromNext {
					r.start, r.fromNext = e.at, false
				}
			case r.down:
				r.successes++
				if r.successes >= alertSuccesses {
					r.down, r.fails, r.successes, r.fromNext = false, nil, 0, false
					if i, ok := recovers[e.region]; ok {
						out[i].resolves = append(out[i].resolves, e.at)
						delete(recovers, e.region)
					}
				}
			default:
				r.fails = nil
			}
			var down []string
			var start time.Time
			for name, r := range regions {
				if r.down && !r.fromNext {
					down = append(down, name)
					if start.IsZero() || r.start.Before(start) {
						start = r.start
					}
				}
			}
			sort.Strings(down)
			switch {
			case open == nil && len(down) >= quorum:
				open = &wantIncident{target: id, started: start, confirmed: e.at, confirms: []time.Time{e.at}, regions: down}
				for _, name := range down {
					if at := regions[name].downAt; !slices.ContainsFunc(open.confirms, at.Equal) {
						open.confirms = append(open.confirms, at)
					}
				}
			case open != nil && len(down) < quorum:
				open.resolved, open.resolves = e.at, []time.Time{e.at}
				out = append(out, *open)
				for name, r := range regions {
					if r.down {
						r.fromNext = true
						if slices.Contains(open.regions, name) {
							recovers[name] = len(out) - 1
						}
					}
				}
				open = nil
			case open != nil:
				for _, name := range down {
					if !slices.Contains(open.regions, name) {
						open.regions = append(open.regions, name)
						sort.Strings(open.regions)
					}
				}
			}
		}
		if open != nil {
			out = append(out, *open)
		}
	}
	return out
}

// delivery is what the receiver made of one Idempotency-Key.
type delivery struct {
	wire, accepted int
	incident       string
	transition     string
	target         string
}

// hook is the local webhook receiver. rule decides the status of each
// request from its notification and its attempt number at the receiver
// (from 1); 0 holds the request until release is closed or the sender
// hangs up. down closes the listener (connection refused) until up.
type hook struct {
	addr string

	mu       sync.Mutex
	srv      *http.Server
	rule     func(target, transition string, attempt int) int
	keys     map[string]*delivery
	held     chan string // the key of each request held
	release  chan struct{}
	wireSeen int
}

func newHook(t testing.TB) *hook {
	t.Helper()
	h := &hook{addr: freeAddr(t), keys: map[string]*delivery{}, held: make(chan string, 16), release: make(chan struct{})}
	h.up(t)
	t.Cleanup(func() { h.down() })
	return h
}

func (h *hook) url() string { return "http://" + h.addr + "/hook" }

func (h *hook) up(t testing.TB) {
	t.Helper()
	var ln net.Listener
	var err error
	// The port was ours a moment ago; another process may not take it in
	// between on a loopback address tests pick at random.
	for range 50 {
		if ln, err = net.Listen("tcp", h.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("receiver listen %s: %v", h.addr, err)
	}
	srv := &http.Server{Handler: h}
	h.mu.Lock()
	h.srv = srv
	h.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (h *hook) down() {
	h.mu.Lock()
	srv := h.srv
	h.srv = nil
	h.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func (h *hook) setRule(rule func(target, transition string, attempt int) int) {
	h.mu.Lock()
	h.rule = rule
	h.mu.Unlock()
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var n struct {
		IncidentID string `json:"incident_id"`
		Transition string `json:"transition"`
		TargetID   string `json:"target_id"`
	}
	_ = json.Unmarshal(body, &n)
	key := r.Header.Get("Idempotency-Key")
	h.mu.Lock()
	d := h.keys[key]
	if d == nil {
		d = &delivery{incident: n.IncidentID, transition: n.Transition, target: n.TargetID}
		h.keys[key] = d
	}
	d.wire++
	h.wireSeen++
	attempt, rule := d.wire, h.rule
	h.mu.Unlock()
	status := http.StatusOK
	if rule != nil {
		status = rule(n.TargetID, n.Transition, attempt)
	}
	if status == 0 {
		h.held <- key
		select {
		case <-h.release:
			status = http.StatusOK
		case <-r.Context().Done():
			return // the sender is gone: not accepted
		}
	}
	if status == http.StatusOK {
		h.mu.Lock()
		d.accepted++
		h.mu.Unlock()
	}
	w.WriteHeader(status)
}

func (h *hook) snapshot() map[string]delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]delivery{}
	for k, d := range h.keys {
		out[k] = *d
	}
	return out
}

// alertDrill is a system with an alerter policy on an alertSite: a
// recorder, probers (one per region) and alerters, all real binaries.
type alertDrill struct {
	sys     *system
	site    *alertSite
	hook    *hook
	regions []string
	quorum  int
	// redelivery allows a key to be accepted more than once: where the
	// drill can cut a sender off between the receiver's answer and the
	// mark (PostgreSQL down), at least once means that. Distinct keys
	// stay exact.
	redelivery bool
	config     string // the alerter's targets file
	rec        *proc
	probers    []*proc
	alerters   []*proc
}

func startAlertDrill(t testing.TB, regions []string, quorum int, decide map[string]func(region string, n int) bool) *alertDrill {
	t.Helper()
	d := &alertDrill{sys: newSystem(t), site: newAlertSite(t, decide), hook: newHook(t), regions: regions, quorum: quorum}
	var b strings.Builder
	fmt.Fprintf(&b, `channels:
  - name: hook
    type: webhook
    url: %s
    timeout: 8s
defaults:
  interval: %s
  timeout: 500ms
  pattern: %q
  alert:
    failure_threshold: %d
    failure_window: %d
    success_threshold: %d
    regions: %d
    reminder_interval: 0s
    tls_expiry_days: 0
    no_data: false
    notify: [hook]
targets:
`, d.hook.url(), alertInterval, okPattern, alertFailures, alertFailures, alertSuccesses, quorum)
	for _, id := range d.site.ids() {
		fmt.Fprintf(&b, "  - id: %s\n    url: %s/%s/all\n", id, d.site.srv.URL, id)
	}
	// The webhook's timeout (8s) is under the 10s lease less its tenth, and
	// far over the time the killed-alerter drill takes from the held
	// request to the kill: a sender that gave up on the held request first
	// would send it again itself, before the kill.
	d.config = filepath.Join(t.TempDir(), "alerter.yaml")
	if err := os.WriteFile(d.config, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	d.rec = d.sys.recorder(t) // it applies the migrations the alerter waits for
	for _, region := range regions {
		var pb strings.Builder
		fmt.Fprintf(&pb, "defaults:\n  interval: %s\n  timeout: 500ms\n  pattern: %q\ntargets:\n", alertInterval, okPattern)
		for _, id := range d.site.ids() {
			fmt.Fprintf(&pb, "  - id: %s\n    url: %s/%s/%s\n", id, d.site.srv.URL, id, region)
		}
		file := filepath.Join(t.TempDir(), "targets-"+region+".yaml")
		if err := os.WriteFile(file, []byte(pb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		d.probers = append(d.probers, d.sys.prober(t, file, false, "-region", region, "-instance", "e2e-"+region,
			"-spool-dir", filepath.Join(t.TempDir(), "spool-"+region)))
	}
	d.alerters = append(d.alerters, d.alerter(t))
	for _, p := range d.probers {
		p.waitReady(t, 60*time.Second)
	}
	return d
}

// alerter starts one more alerter of the drill and waits for it to be ready.
func (d *alertDrill) alerter(t testing.TB) *proc {
	t.Helper()
	return start(t, d.sys.env, "alerter", true, "-config", d.config, "-topic", d.sys.topic, "-group", d.sys.group+"-alerter",
		"-session-timeout", "6s", "-outbox-lease", alertLease.String(), "-retry-first", "1s", "-retry-max", "4s")
}

// outboxRow is a row of notification_outbox with its transition.
type outboxRow struct {
	key, incident, transition, target string
	seq, attempts                     int
	delivered                         bool
	claimedBy                         string
}

func (d *alertDrill) outbox(t testing.TB) []outboxRow {
	t.Helper()
	rows, err := d.sys.db.Query(context.Background(), `SELECT o.idempotency_key, o.incident_id, tr.transition, i.target_id,
			o.seq, o.attempts, o.delivered_at IS NOT NULL, coalesce(o.claimed_by, '')
		FROM notification_outbox o
		JOIN incident_transitions tr USING (incident_id, seq)
		JOIN incidents i USING (incident_id)
		ORDER BY o.incident_id, o.seq, o.channel`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		if err := rows.Scan(&r.key, &r.incident, &r.transition, &r.target, &r.seq, &r.attempts, &r.delivered, &r.claimedBy); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// recorded returns the stored checks of each target and region in the
// order of their times, and what differs between them and what the website
// served ("" when nothing): the same outcomes in the same order. The
// schedule is evaluated at the recorded times, the ones the alerter sees:
// the website's clock differs from them by the time the prober took to
// start the check and connect, which a loaded machine stretches at will.
func (d *alertDrill) recorded(t testing.TB) (map[string]map[string][]arrival, string) {
	t.Helper()
	rows, err := d.sys.db.Query(context.Background(), `SELECT target_id, coalesce(prober_region, ''), checked_at, outcome = 'down'
		FROM check_results ORDER BY checked_at, event_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	checks := map[string]map[string][]arrival{}
	for rows.Next() {
		var id, region string
		var a arrival
		if err := rows.Scan(&id, &region, &a.at, &a.fail); err != nil {
			t.Fatal(err)
		}
		if checks[id] == nil {
			checks[id] = map[string][]arrival{}
		}
		checks[id][region] = append(checks[id][region], a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	outcomes := func(as []arrival) string {
		b := make([]byte, len(as))
		for i, a := range as {
			b[i] = '.'
			if a.fail {
				b[i] = 'x'
			}
		}
		return string(b)
	}
	d.site.mu.Lock()
	defer d.site.mu.Unlock()
	var problems []string
	for _, id := range d.site.ids() {
		for _, region := range d.regions {
			if got, want := outcomes(checks[id][region]), outcomes(d.site.arrivals[id][region]); got != want {
				problems = append(problems, fmt.Sprintf("%s from %s: stored %q, the website served %q", id, region, got, want))
			}
		}
	}
	return checks, strings.Join(problems, "\n")
}

// expected is the schedule's incidents at the recorded check times.
func (d *alertDrill) expected(t testing.TB) []wantIncident {
	t.Helper()
	checks, _ := d.recorded(t)
	return expected(d.quorum, checks)
}

// compare returns what differs between the stored checks and what the
// website served, between the incidents table (with its transitions and
// outbox) and the schedule, and between the outbox and what the receiver
// accepted; "" when nothing does.
func (d *alertDrill) compare(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	checks, p := d.recorded(t)
	var problems []string
	if p != "" {
		problems = append(problems, p)
	}
	want := expected(d.quorum, checks)
	rows, err := d.sys.db.Query(ctx, `SELECT incident_id, target_id, kind, started_at, confirmed_at, resolved_at, regions,
			(SELECT count(*) FROM incident_transitions tr WHERE tr.incident_id = i.incident_id),
			(SELECT count(*) FROM incident_transitions tr WHERE tr.incident_id = i.incident_id AND tr.suppressed IS NOT NULL)
		FROM incidents i ORDER BY target_id, started_at`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type got struct {
		id, target, kind        string
		started, confirmed      time.Time
		resolved                *time.Time
		regions                 []string
		transitions, suppressed int
	}
	var gots []got
	for rows.Next() {
		var g got
		if err := rows.Scan(&g.id, &g.target, &g.kind, &g.started, &g.confirmed, &g.resolved, &g.regions, &g.transitions, &g.suppressed); err != nil {
			t.Fatal(err)
		}
		gots = append(gots, g)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// Times are exact: both sides are recorded check times (microseconds).
	in := func(a time.Time, set []time.Time) bool { return slices.ContainsFunc(set, a.Equal) }
	if len(gots) != len(want) {
		problems = append(problems, fmt.Sprintf("%d incidents, the schedule implies %d: %v", len(gots), len(want), want))
	}
	wantTransitions := 0
	for i := range min(len(gots), len(want)) {
		g, w := gots[i], want[i]
		resolvedOK := (g.resolved == nil) == w.resolved.IsZero() && (g.resolved == nil || in(*g.resolved, w.resolves))
		slices.Sort(g.regions)
		if g.target != w.target || g.kind != "down" || !g.started.Equal(w.started) || !in(g.confirmed, w.confirms) ||
			!resolvedOK || !slices.Equal(g.regions, w.regions) {
			res := "open"
			if g.resolved != nil {
				res = g.resolved.Format("15:04:05.000")
			}
			problems = append(problems, fmt.Sprintf("incident %d: %s %s %v started %s confirmed %s resolved %s; want %v", i, g.target, g.kind, g.regions,
				g.started.Format("15:04:05.000"), g.confirmed.Format("15:04:05.000"), res, w))
		}
		n := 1
		if !w.resolved.IsZero() {
			n = 2
		}
		wantTransitions += n
		if g.transitions != n || g.suppressed != 0 {
			problems = append(problems, fmt.Sprintf("incident %s: %d transitions (%d suppressed), want %d notified", g.id, g.transitions, g.suppressed, n))
		}
	}
	out := d.outbox(t)
	if len(out) != wantTransitions {
		problems = append(problems, fmt.Sprintf("%d outbox rows, want one per transition: %d", len(out), wantTransitions))
	}
	recv := d.hook.snapshot()
	accepted := 0
	for _, r := range out {
		got := recv[r.key]
		switch {
		case !r.delivered:
			problems = append(problems, fmt.Sprintf("%s (%s %s): not marked delivered (attempts %d)", r.key, r.target, r.transition, r.attempts))
		case got.accepted < 1 || (got.accepted > 1 && !d.redelivery):
			problems = append(problems, fmt.Sprintf("%s (%s %s): accepted %d times by the receiver, want once", r.key, r.target, r.transition, got.accepted))
		case got.incident != r.incident || got.transition != r.transition || got.target != r.target:
			problems = append(problems, fmt.Sprintf("%s: the receiver got %s %s of %s, the outbox holds %s %s of %s", r.key,
				got.transition, got.incident, got.target, r.transition, r.incident, r.target))
		}
	}
	for key, got := range recv {
		if got.accepted > 0 {
			accepted++
		}
		if !slices.ContainsFunc(out, func(r outboxRow) bool { return r.key == key }) {
			problems = append(problems, fmt.Sprintf("the receiver got key %q, not in the outbox", key))
		}
	}
	if accepted != len(out) {
		problems = append(problems, fmt.Sprintf("%d distinct keys accepted, %d outbox rows", accepted, len(out)))
	}
	return strings.Join(problems, "\n")
}

// finish stops the probers, waits until every check is stored and the
// alerters agree with the schedule and the receiver with the outbox, and
// compares once more after a pause in which nothing may arrive twice.
func (d *alertDrill) finish(t testing.TB, timeout time.Duration) {
	t.Helper()
	for _, p := range d.probers {
		p.stop(t, 30*time.Second)
	}
	for _, p := range append([]*proc{d.rec}, d.alerters...) {
		if !p.running() {
			t.Fatalf("the %s exited during the drill: %v\n%s", p.name, p.err, tail(p.out.String(), 40))
		}
	}
	want := d.site.served()
	waitFor(t, timeout, fmt.Sprintf("%d results stored", want), func() (bool, string) {
		got := d.sys.count(t, "SELECT count(*) FROM check_results")
		return got == want, fmt.Sprintf("%d rows", got)
	})
	waitFor(t, timeout, "incidents, outbox and receiver equal to the schedule", func() (bool, string) {
		p := d.compare(t)
		return p == "", p
	})
	before := d.hook.snapshot()
	time.Sleep(2 * time.Second)
	if p := d.compare(t); p != "" {
		t.Error(p)
	}
	if after := d.hook.snapshot(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the receiver got more after everything was delivered:\nbefore %v\nafter  %v", before, after)
	}
	for _, w := range d.expected(t) {
		t.Logf("incident: %v", w)
	}
	for key, got := range d.hook.snapshot() {
		t.Logf("receiver: %s %s %s: %d on the wire, accepted %d", got.target, got.transition, key, got.wire, got.accepted)
	}
	for _, a := range d.alerters {
		a.stop(t, 30*time.Second)
	}
	d.rec.stop(t, 30*time.Second)
}

// wire returns how many requests of each target's transition reached the
// receiver, as "target transition" → count.
func (d *alertDrill) wire() map[string]int {
	out := map[string]int{}
	for _, got := range d.hook.snapshot() {
		out[got.target+" "+got.transition] += got.wire
	}
	return out
}

// a, b, g. Two alerters share the work from the start. The receiver holds
// the first notification; the alerter whose sender claimed it is killed
// with -9 mid-request and started again, and the row, still leased to the
// dead sender, is sent again when the lease ends: accepted once. Beside it
// a site flaps: single failures never confirm, and once confirmed, single
// successes never resolve; exactly the incidents the thresholds imply.
func TestDrillAlertKilledTwoAlertersFlapping(t *testing.T) {
	// Single failures (no incident), then pairs that confirm with single
	// successes between them (one incident, open through them), two
	// successes (resolved), then single failures again (none).
	const flapping = "..x.x.x.x.x.x.xx.x.x.xx.x...x.x.x"
	d := startAlertDrill(t, []string{"r1"}, 1, map[string]func(string, int) bool{
		"outage":   func(_ string, n int) bool { return pattern("....xxxx")(n) },
		"flapping": func(_ string, n int) bool { return pattern(flapping)(n) },
	})
	d.alerters = append(d.alerters, d.alerter(t))
	var held atomic.Bool
	d.hook.setRule(func(_, _ string, attempt int) int {
		if held.CompareAndSwap(false, true) {
			return 0
		}
		return http.StatusOK
	})
	var key string
	select {
	case key = <-d.hook.held:
	case <-time.After(60 * time.Second):
		t.Fatal("no notification within 60 s")
	}
	var claimedBy string
	var claimedUntil time.Time
	if err := d.sys.db.QueryRow(context.Background(), `SELECT claimed_by, claimed_until FROM notification_outbox WHERE idempotency_key = $1`, key).
		Scan(&claimedBy, &claimedUntil); err != nil {
		t.Fatal(err)
	}
	// claimed_by is host-PID-random (outbox.Options.Instance).
	parts := strings.Split(claimedBy, "-")
	pid, err := strconv.Atoi(parts[len(parts)-2])
	if err != nil || len(parts) < 3 {
		t.Fatalf("claimed_by %q: no PID in it", claimedBy)
	}
	victim := slices.IndexFunc(d.alerters, func(p *proc) bool { return p.cmd.Process.Pid == pid })
	if victim < 0 {
		t.Fatalf("claimed_by %q names no alerter of the drill", claimedBy)
	}
	killedAt := time.Now()
	d.alerters[victim].kill()
	d.alerters[victim] = d.alerter(t)
	close(d.hook.release)
	d.waitServed(t, len(flapping)+alertSuccesses+1)
	d.finish(t, 90*time.Second)

	var attempts int
	var deliveredAt time.Time
	if err := d.sys.db.QueryRow(context.Background(), `SELECT attempts, delivered_at FROM notification_outbox WHERE idempotency_key = $1`, key).
		Scan(&attempts, &deliveredAt); err != nil {
		t.Fatal(err)
	}
	got := d.hook.snapshot()[key]
	t.Logf("held %s: killed at %s, delivered %s later, attempts %d", key, killedAt.Format("15:04:05.000"), deliveredAt.Sub(killedAt).Round(time.Millisecond), attempts)
	if got.wire != 2 || got.accepted != 1 || attempts != 2 {
		t.Errorf("held key %s: %d requests, %d accepted, %d attempts; want 2, 1, 2 (the killed attempt, then the next sender's)", key, got.wire, got.accepted, attempts)
	}
	// Both times are PostgreSQL's clock: the lease the dead sender held.
	if !deliveredAt.After(claimedUntil) {
		t.Errorf("held key delivered at %s, before the dead sender's lease ended at %s", deliveredAt.Format("15:04:05.000"), claimedUntil.Format("15:04:05.000"))
	}
	for k, g := range d.hook.snapshot() {
		if k != key && g.wire != 1 {
			t.Errorf("%s (%s %s): %d requests on the wire; nothing explains more than one", k, g.target, g.transition, g.wire)
		}
	}
}

// c, d. The receiver is down (connection refused) for 30 s, while a site's
// incident opens and resolves: both are delivered after, in order, once.
// Then it answers 500 three times to each notification of another site's
// incident: each is accepted on its 4th attempt.
func TestDrillAlertReceiverDownAnd500s(t *testing.T) {
	later := &failing{}
	d := startAlertDrill(t, []string{"r1"}, 1, map[string]func(string, int) bool{
		"while-down": func(_ string, n int) bool { return pattern("...xxx")(n) },
		"errors-500": later.decide,
	})
	d.hook.down()
	d.hook.setRule(func(target, _ string, attempt int) int {
		if target == "errors-500" && attempt <= 3 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	time.Sleep(30 * time.Second)
	// Down at least until the incident has opened and resolved and its
	// opened notification was refused: a starved prober may take longer
	// than 30 s over the schedule.
	waitFor(t, 60*time.Second, "while-down's opened notification refused and resolved stored", func() (bool, string) {
		var attempts []int
		for _, r := range d.outbox(t) {
			if r.target == "while-down" {
				attempts = append(attempts, r.attempts)
			}
		}
		return len(attempts) == 2 && attempts[0] >= 1, fmt.Sprintf("outbox rows' attempts %v", attempts)
	})
	if n := d.hook.snapshot(); len(n) != 0 {
		t.Fatalf("the receiver was down and got %v", n)
	}
	d.hook.up(t)
	d.waitServed(t, 9)
	later.set(true)
	d.waitRun(t, "errors-500", d.regions, true, alertFailures+1)
	later.set(false)
	d.waitRun(t, "errors-500", d.regions, false, alertSuccesses+1)
	d.finish(t, 90*time.Second)
	if want := d.expected(t); len(want) != 2 {
		t.Errorf("the schedule implies %d incidents, want one of each target: %v", len(want), want)
	}

	if n := d.sys.count(t, `SELECT count(*) FROM notification_outbox o JOIN notification_outbox r USING (incident_id)
		WHERE o.seq = 0 AND r.seq = 1 AND r.delivered_at < o.delivered_at`); n != 0 {
		t.Errorf("%d resolved notifications delivered before their opened one", n)
	}
	for _, r := range d.outbox(t) {
		got := d.hook.snapshot()[r.key]
		switch r.target {
		case "while-down":
			// The opened one was refused while the receiver was down; the
			// resolved one waited for it (never overtakes), then went once.
			if got.wire != 1 || (r.transition == "opened" && r.attempts < 2) || (r.transition == "resolved" && r.attempts != 1) {
				t.Errorf("%s %s: %d requests, %d attempts; want 1 request, after at least 2 attempts for opened and 1 for resolved", r.target, r.transition, got.wire, r.attempts)
			}
		case "errors-500":
			if got.wire != 4 || r.attempts != 4 {
				t.Errorf("%s %s: %d requests, %d attempts; want 4 and 4 (three 500s, then 200)", r.target, r.transition, got.wire, r.attempts)
			}
		}
	}
}

// e, f. Kafka is stopped for 20 s while a site's incident opens and
// resolves (the probers keep the results, the alerter evaluates them
// after), then PostgreSQL for 20 s while another's does (the alerter
// retries its batches, the sender its claims). Senders that cannot mark a
// delivered row (PostgreSQL gone mid-delivery) send it again: duplicates
// on the wire are allowed there, and counted; distinct keys are exact.
func TestDrillAlertKafkaAndPostgresDown(t *testing.T) {
	kafka, pg := &failing{}, &failing{}
	d := startAlertDrill(t, []string{"r1"}, 1, map[string]func(string, int) bool{
		"kafka-outage":    kafka.decide,
		"postgres-outage": pg.decide,
	})
	d.redelivery = true
	time.Sleep(2 * time.Second)
	d.outageWhileFailing(t, "kafka", "kafka-outage", kafka)
	time.Sleep(5 * time.Second)
	d.outageWhileFailing(t, "postgres", "postgres-outage", pg)
	time.Sleep(3 * time.Second)
	d.finish(t, 120*time.Second)
	if want := d.expected(t); len(want) != 2 {
		t.Errorf("the schedule implies %d incidents, want one of each target: %v", len(want), want)
	}
	t.Logf("requests on the wire: %v", d.wire())
}

// outageWhileFailing stops service for 20 s; the site fails for its first
// checks, then succeeds, so that an incident opens and resolves while the
// service is away.
func (d *alertDrill) outageWhileFailing(t testing.TB, service, id string, f *failing) {
	t.Helper()
	t.Cleanup(func() { stackCtl(t, "start", service) })
	stackCtl(t, "stop", service)
	back := time.Now().Add(20 * time.Second)
	f.set(true)
	d.waitRun(t, id, d.regions, true, alertFailures+1)
	f.set(false)
	d.waitRun(t, id, d.regions, false, alertSuccesses+1)
	time.Sleep(time.Until(back))
	stackCtl(t, "start", service)
}

// h. Two regions, a quorum of 2: an outage seen from one region opens
// nothing; one seen from both opens exactly one incident, resolved when
// the first region recovers.
func TestDrillAlertQuorum(t *testing.T) {
	f := &failing{}
	d := startAlertDrill(t, []string{"r1", "r2"}, 2, map[string]func(string, int) bool{"quorum": f.decide})
	time.Sleep(2 * time.Second)
	f.set(true, "r1")
	d.waitRun(t, "quorum", []string{"r1"}, true, alertFailures+2)
	f.set(false)
	d.waitRun(t, "quorum", []string{"r1"}, false, alertSuccesses+1)
	if n := d.sys.count(t, `SELECT count(*) FROM incidents`); n != 0 {
		t.Errorf("%d incidents after an outage seen from one region of two, want none", n)
	}
	f.set(true)
	d.waitRun(t, "quorum", d.regions, true, alertFailures+2)
	f.set(false)
	d.waitRun(t, "quorum", d.regions, false, alertSuccesses+1)
	d.finish(t, 60*time.Second)
	if want := d.expected(t); len(want) != 1 {
		t.Errorf("the schedule implies %d incidents, want the drill to make exactly 1: %v", len(want), want)
	}
}

// The schedule's evaluation across regions (no services): a quorum of 2
// confirms at the later region's confirming check, or at the earlier one's
// when the alerter got the two out of order, and resolves at the first
// region's recovery, or the other's.
func TestDrillAlertExpectedAcrossRegions(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	checks := map[string]map[string][]arrival{"q": {
		"r1": {{at(0), true}, {at(1000), true}, {at(2000), false}, {at(3000), false}},
		"r2": {{at(500), true}, {at(1500), true}, {at(2500), false}, {at(3500), false}},
	}}
	got := expected(2, checks)
	if len(got) != 1 {
		t.Fatalf("%d incidents, want 1: %v", len(got), got)
	}
	w := got[0]
	if !w.started.Equal(at(0)) || !w.confirmed.Equal(at(1500)) || !w.resolved.Equal(at(3000)) ||
		!slices.Equal(w.regions, []string{"r1", "r2"}) ||
		!slices.EqualFunc(w.confirms, []time.Time{at(1500), at(1000)}, time.Time.Equal) ||
		!slices.EqualFunc(w.resolves, []time.Time{at(3000), at(3500)}, time.Time.Equal) {
		t.Errorf("got %v confirms %v resolves %v", w, w.confirms, w.resolves)
	}
	if got := expected(1, map[string]map[string][]arrival{"q": {"r1": checks["q"]["r1"]}}); len(got) != 1 ||
		!slices.EqualFunc(got[0].confirms, []time.Time{at(1000)}, time.Time.Equal) ||
		!slices.EqualFunc(got[0].resolves, []time.Time{at(3000)}, time.Time.Equal) {
		t.Errorf("one region: %v", got)
	}
}
