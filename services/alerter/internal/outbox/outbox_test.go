package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sitewatch/sitewatch/services/alerter/internal/notify"
	"github.com/sitewatch/sitewatch/services/alerter/internal/outbox"
	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/testing/receivers"
	"github.com/sitewatch/sitewatch/services/testing/stackdb"
)

// database returns a pool on a migrated database of the test's own.
func database(t *testing.T) *pgxpool.Pool {
	t.Helper()
	url := stackdb.Migrated(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

var t0 = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

func notification(incident string, seq int) *notify.Notification {
	n := &notify.Notification{IncidentID: incident, Transition: notify.Opened, Seq: seq, Kind: "down",
		TargetID: "t-" + incident, URL: "https://example.com/", Regions: []string{"eu"},
		At: t0.Add(time.Minute), StartedAt: t0, ConfirmedAt: t0.Add(time.Minute),
		FailureKind: "connect", Error: "connection refused"}
	switch {
	case seq > 0 && seq%2 == 1:
		end := t0.Add(time.Duration(seq) * time.Minute)
		n.Transition, n.At, n.ResolvedAt = notify.Resolved, end, &end
	case seq > 0:
		n.Transition, n.At = notify.Reminder, t0.Add(time.Duration(seq)*time.Minute)
	}
	return n
}

// enqueue writes what the evaluator writes for transitions of an incident
// (the incident, its transitions, one outbox row per channel) in one
// transaction that wakes the senders, and returns the rows' keys.
func enqueue(t *testing.T, pool *pgxpool.Pool, incident string, seqs []int, channels map[string]string) []string {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }() // after Commit: a no-op
	if _, err := tx.Exec(ctx, `
INSERT INTO incidents (incident_id, target_id, kind, started_at, first_event_id, confirmed_at, regions,
	first_failure_kind, first_error, last_failure_kind, last_error, last_failure_at)
VALUES ($1, $2, 'down', $3, 'e1', $3, '{eu}', 'connect', 'refused', 'connect', 'refused', $3)
ON CONFLICT DO NOTHING`, incident, "t-"+incident, t0); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, seq := range seqs {
		n := notification(incident, seq)
		if _, err := tx.Exec(ctx, `INSERT INTO incident_transitions (incident_id, seq, transition, at, regions)
VALUES ($1, $2, $3, $4, '{eu}')`, incident, seq, n.Transition, n.At); err != nil {
			t.Fatal(err)
		}
		for name, typ := range channels {
			payload, _ := json.Marshal(n)
			key := n.IdempotencyKey(name)
			if _, err := tx.Exec(ctx, `INSERT INTO notification_outbox
	(idempotency_key, incident_id, seq, channel, channel_type, payload) VALUES ($1, $2, $3, $4, $5, $6)`,
				key, incident, seq, name, typ, payload); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, key)
		}
	}
	if err := outbox.Wake(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return keys
}

// outboxRow is a row as the test reads it back.
type outboxRow struct {
	Key       string
	Attempts  int
	Delivered bool
	Failed    bool
	LastError string
	ClaimedBy string
}

func rows(t *testing.T, pool *pgxpool.Pool) map[string]outboxRow {
	t.Helper()
	rs, err := pool.Query(context.Background(), `SELECT idempotency_key, attempts, delivered_at IS NOT NULL,
	failed_at IS NOT NULL, coalesce(last_error, ''), coalesce(claimed_by, '') FROM notification_outbox`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	m := map[string]outboxRow{}
	for rs.Next() {
		var r outboxRow
		if err := rs.Scan(&r.Key, &r.Attempts, &r.Delivered, &r.Failed, &r.LastError, &r.ClaimedBy); err != nil {
			t.Fatal(err)
		}
		m[r.Key] = r
	}
	return m
}

// waitSettled polls until every row is delivered or given up.
func waitSettled(t *testing.T, pool *pgxpool.Pool, within time.Duration) map[string]outboxRow {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		m := rows(t, pool)
		settled := true
		for _, r := range m {
			settled = settled && (r.Delivered || r.Failed)
		}
		if settled {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows not settled after %s: %+v", within, m)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hook is a webhook receiver: it records each request's idempotency key
// and transition, and answers with the next of its statuses (200 once
// they run out).
type hook struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	got      []string // idempotency keys in arrival order
	answered map[string]int
}

func newHook(statuses ...int) *hook {
	h := &hook{statuses: statuses, answered: map[string]int{}}
	h.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		key := r.Header.Get(notify.HeaderIdempotencyKey)
		h.mu.Lock()
		status := http.StatusOK
		if len(h.statuses) > 0 {
			status, h.statuses = h.statuses[0], h.statuses[1:]
		}
		if status == http.StatusOK {
			h.got = append(h.got, key)
			h.answered[key]++
		}
		h.mu.Unlock()
		w.WriteHeader(status)
	}))
	return h
}

func (h *hook) delivered() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...)
}

func webhook(t *testing.T, name, url string) notify.Sender {
	t.Helper()
	s, err := notify.New(targets.Channel{Name: name, Type: targets.ChannelWebhook, URL: targets.NewSecret("", url),
		Timeout: 2 * time.Second}, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fast are options that retry within milliseconds, for tests.
func fast(instance string, reg prometheus.Registerer) outbox.Options {
	return outbox.Options{Instance: instance, Registerer: reg, FirstRetry: 20 * time.Millisecond,
		MaxRetry: 100 * time.Millisecond, Poll: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// run starts the sender until the test ends.
func run(t *testing.T, s *outbox.Sender) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func counter(t *testing.T, reg *prometheus.Registry, name, channel string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "channel" && l.GetValue() == channel {
					if m.GetHistogram() != nil {
						return float64(m.GetHistogram().GetSampleCount())
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// A receiver that answers 500 three times gets the row on the fourth
// attempt, and the row says so.
func TestRetriesUntilDelivered(t *testing.T) {
	pool := database(t)
	h := newHook(500, 500, 500)
	h.Start()
	defer h.Close()
	reg := prometheus.NewRegistry()
	run(t, outbox.New(pool, map[string]notify.Sender{"hook": webhook(t, "hook", h.URL)}, fast("a", reg)))
	keys := enqueue(t, pool, "inc-retry", []int{0}, map[string]string{"hook": "webhook"})

	got := waitSettled(t, pool, 30*time.Second)[keys[0]]
	want := outboxRow{Key: keys[0], Attempts: 4, Delivered: true,
		LastError: "webhook channel hook: 500 Internal Server Error"}
	if got != want {
		t.Errorf("row %+v, want %+v", got, want)
	}
	if d := h.delivered(); len(d) != 1 || d[0] != keys[0] {
		t.Errorf("receiver accepted %q", d)
	}
	for name, want := range map[string]float64{
		"sitewatch_alerter_notifications_delivered_total": 1,
		"sitewatch_alerter_notification_retries_total":    3,
		"sitewatch_alerter_notifications_failed_total":    0,
		"sitewatch_alerter_notification_delivery_seconds": 1,
	} {
		if got := counter(t, reg, name, "hook"); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// A receiver that is down for a while gets the row once it is up.
func TestReceiverDownThenUp(t *testing.T) {
	pool := database(t)
	addr := receivers.FreeAddr(t) // down: nothing listens
	run(t, outbox.New(pool, map[string]notify.Sender{"hook": webhook(t, "hook", "http://"+addr+"/")}, fast("a", nil)))
	keys := enqueue(t, pool, "inc-down", []int{0}, map[string]string{"hook": "webhook"})

	deadline := time.Now().Add(30 * time.Second)
	for rows(t, pool)[keys[0]].Attempts < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 3 attempts after 30s: %+v", rows(t, pool))
		}
		time.Sleep(20 * time.Millisecond)
	}
	h := newHook()
	h.Listener.Close() // its own, on another port
	var err error
	if h.Listener, err = net.Listen("tcp", addr); err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	h.Start()
	defer h.Close()
	got := waitSettled(t, pool, 30*time.Second)[keys[0]]
	if !got.Delivered || got.Attempts < 4 || !strings.HasPrefix(got.LastError, "webhook channel hook: Post http://"+addr+"/xxxxx: dial tcp") {
		t.Errorf("row %+v", got)
	}
	if d := h.delivered(); len(d) != 1 {
		t.Errorf("receiver accepted %q", d)
	}
}

// A later transition of an incident never reaches a channel before an
// earlier one, even while the earlier one is being retried.
func TestTransitionsInOrder(t *testing.T) {
	pool := database(t)
	h := newHook(500, 500) // the first two requests fail: opened is retried
	h.Start()
	defer h.Close()
	run(t, outbox.New(pool, map[string]notify.Sender{"hook": webhook(t, "hook", h.URL)}, fast("a", nil)))
	keys := enqueue(t, pool, "inc-order", []int{0, 1}, map[string]string{"hook": "webhook"})
	waitSettled(t, pool, 30*time.Second)
	if got := strings.Join(h.delivered(), " "); got != "inc-order/0-opened/hook inc-order/1-resolved/hook" {
		t.Errorf("delivered %s; want opened, then resolved", got)
	}
	m := rows(t, pool)
	if m[keys[0]].Attempts != 3 || m[keys[1]].Attempts != 1 {
		t.Errorf("attempts opened %d, resolved %d; want 3, 1", m[keys[0]].Attempts, m[keys[1]].Attempts)
	}
}

// Refused for good: given up at once. Still failing at the end of the
// budget: given up then.
func TestGivesUp(t *testing.T) {
	pool := database(t)
	refuse := newHook(400, 400, 400, 400)
	refuse.Start()
	defer refuse.Close()
	broken := newHook(500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500)
	broken.Start()
	defer broken.Close()
	reg := prometheus.NewRegistry()
	o := fast("a", reg)
	o.Budget = 150 * time.Millisecond
	run(t, outbox.New(pool, map[string]notify.Sender{
		"refuse": webhook(t, "refuse", refuse.URL), "broken": webhook(t, "broken", broken.URL),
	}, o))
	keys := enqueue(t, pool, "inc-fail", []int{0, 1}, map[string]string{"refuse": "webhook", "broken": "webhook", "gone": "webhook"})
	m := waitSettled(t, pool, 30*time.Second)
	for _, k := range keys {
		r := m[k]
		if !r.Failed || r.Delivered {
			t.Errorf("%s: %+v, want failed", k, r)
		}
	}
	if r := m["inc-fail/0-opened/refuse"]; r.Attempts != 1 || r.LastError != "webhook channel refuse: 400 Bad Request" {
		t.Errorf("refused row %+v", r)
	}
	// resolved goes once opened was given up: an earlier failure does not
	// hold the later transitions back for good.
	if r := m["inc-fail/1-resolved/refuse"]; r.Attempts != 1 {
		t.Errorf("refused resolved row %+v", r)
	}
	if r := m["inc-fail/0-opened/broken"]; r.Attempts < 2 || r.LastError != "webhook channel broken: 500 Internal Server Error" {
		t.Errorf("broken row %+v", r)
	}
	if r := m["inc-fail/0-opened/gone"]; r.LastError != `channel "gone" is not configured in this alerter` {
		t.Errorf("row of an unknown channel %+v", r)
	}
	if got := counter(t, reg, "sitewatch_alerter_notifications_failed_total", "refuse"); got != 2 {
		t.Errorf("failed_total{refuse} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(mustGauge(t, reg)); got != 0 {
		t.Errorf("pending gauge %v after all settled, want 0", got)
	}
}

func mustGauge(t *testing.T, reg *prometheus.Registry) prometheus.Collector {
	t.Helper()
	// The pending gauge is refreshed at the sender's next wait.
	time.Sleep(300 * time.Millisecond)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "sitewatch_alerter_outbox_pending" {
			g.Set(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return g
}

// Two senders on one table deliver each row once, in order per incident.
func TestTwoSendersShareTheTable(t *testing.T) {
	pool := database(t)
	h := newHook()
	h.Start()
	defer h.Close()
	senders := map[string]notify.Sender{"hook": webhook(t, "hook", h.URL)}
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	run(t, outbox.New(pool, senders, fast("a", regA)))
	run(t, outbox.New(pool, senders, fast("b", regB)))
	var keys []string
	for i := range 40 {
		keys = append(keys, enqueue(t, pool, fmt.Sprintf("inc-%02d", i), []int{0, 1}, map[string]string{"hook": "webhook"})...)
	}
	waitSettled(t, pool, 30*time.Second)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.got) != len(keys) {
		t.Errorf("%d deliveries of %d rows", len(h.got), len(keys))
	}
	pos := map[string]int{}
	for i, k := range h.got {
		pos[k] = i
	}
	for _, k := range keys {
		if h.answered[k] != 1 {
			t.Errorf("%s delivered %d times", k, h.answered[k])
		}
	}
	for i := range 40 {
		o, r := fmt.Sprintf("inc-%02d/0-opened/hook", i), fmt.Sprintf("inc-%02d/1-resolved/hook", i)
		if pos[o] > pos[r] {
			t.Errorf("%s before %s", r, o)
		}
	}
	byA := counter(t, regA, "sitewatch_alerter_notifications_delivered_total", "hook")
	byB := counter(t, regB, "sitewatch_alerter_notifications_delivered_total", "hook")
	if byA+byB != float64(len(keys)) {
		t.Errorf("delivered by a %v + by b %v, want %d", byA, byB, len(keys))
	}
	var p50, p99 float64
	if err := pool.QueryRow(context.Background(), `SELECT
	extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY delivered_at - created_at)),
	extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY delivered_at - created_at))
	FROM notification_outbox WHERE seq = 0`).Scan(&p50, &p99); err != nil {
		t.Fatal(err)
	}
	t.Logf("delivered by a: %v, by b: %v; insert to delivered of the opened rows (figures, not asserted): p50 %.3fs p99 %.3fs",
		byA, byB, p50, p99)
}

// A sender that dies holding claims leaves them to the others when the
// lease ends.
func TestExpiredClaimIsTakenOver(t *testing.T) {
	pool := database(t)
	h := newHook()
	h.Start()
	defer h.Close()
	keys := enqueue(t, pool, "inc-lease", []int{0}, map[string]string{"hook": "webhook"})
	// A sender that claimed the row and died: its lease ends in 300ms.
	if _, err := pool.Exec(context.Background(), `UPDATE notification_outbox
	SET claimed_by = 'dead', claimed_until = now() + interval '300 milliseconds', attempts = 1`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run(t, outbox.New(pool, map[string]notify.Sender{"hook": webhook(t, "hook", h.URL)}, fast("b", nil)))
	got := waitSettled(t, pool, 30*time.Second)[keys[0]]
	if took := time.Since(start); !got.Delivered || got.Attempts != 2 || got.ClaimedBy != "" || took < 250*time.Millisecond {
		t.Errorf("row %+v after %s", got, took)
	}
}

// The NOTIFY of the inserting transaction wakes an idle sender: the row goes
// out long before the sender's next poll.
func TestNotifyWakesTheSender(t *testing.T) {
	pool := database(t)
	h := newHook()
	h.Start()
	defer h.Close()
	o := fast("a", nil)
	o.Poll = time.Hour
	run(t, outbox.New(pool, map[string]notify.Sender{"hook": webhook(t, "hook", h.URL)}, o))
	time.Sleep(500 * time.Millisecond) // idle: listening, the next poll an hour away
	keys := enqueue(t, pool, "inc-wake", []int{0}, map[string]string{"hook": "webhook"})
	if got := waitSettled(t, pool, 30*time.Second)[keys[0]]; !got.Delivered || got.Attempts != 1 {
		t.Errorf("row %+v", got)
	}
}

// A receiver's Retry-After is waited out before the next attempt.
func TestHonoursRetryAfter(t *testing.T) {
	pool := database(t)
	var mu sync.Mutex
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, time.Now())
		if len(at) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	o := fast("a", nil)
	o.MaxRetry = 5 * time.Second
	run(t, outbox.New(pool, map[string]notify.Sender{"hook": webhook(t, "hook", srv.URL)}, o))
	keys := enqueue(t, pool, "inc-429", []int{0}, map[string]string{"hook": "webhook"})
	got := waitSettled(t, pool, 30*time.Second)[keys[0]]
	mu.Lock()
	defer mu.Unlock()
	if !got.Delivered || got.Attempts != 2 || len(at) != 2 || at[1].Sub(at[0]) < time.Second {
		t.Errorf("row %+v; requests at %v", got, at)
	}
}

// A delivery slower than the lease is cut off when the lease ends, so no
// other sender delivers the row while it is still under way (a second
// request at once, and, were the row an opened one, its resolved overtaking
// it at the receiver).
func TestDeliveryEndsWithItsLease(t *testing.T) {
	pool := database(t)
	var mu sync.Mutex
	inFlight, most, requests := 0, 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read to the end: only then does net/http see the client hang up.
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		inFlight++
		requests++
		most = max(most, inFlight)
		first := requests == 1
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight--
			mu.Unlock()
		}()
		if first { // slower than the lease
			select {
			case <-r.Context().Done():
			case <-time.After(6 * time.Second):
			}
		}
	}))
	defer srv.Close()
	// The channel's timeout (10 s) outlasts the lease (2 s).
	ch, err := notify.New(targets.Channel{Name: "hook", Type: targets.ChannelWebhook,
		URL: targets.NewSecret("", srv.URL), Timeout: 10 * time.Second}, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		o := fast(name, nil)
		o.Lease = 2 * time.Second
		run(t, outbox.New(pool, map[string]notify.Sender{"hook": ch}, o))
	}
	keys := enqueue(t, pool, "inc-slow", []int{0}, map[string]string{"hook": "webhook"})
	got := waitSettled(t, pool, 30*time.Second)[keys[0]]
	mu.Lock()
	defer mu.Unlock()
	if !got.Delivered || got.Attempts != 2 || requests != 2 || most != 1 {
		t.Errorf("row %+v; %d requests, at most %d at once; want delivered on attempt 2, 2 requests, 1 at once",
			got, requests, most)
	}
}
