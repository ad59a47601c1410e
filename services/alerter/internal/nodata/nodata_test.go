package nodata

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitewatch/sitewatch/services/alerter/internal/notify"
	"github.com/sitewatch/sitewatch/services/alerter/internal/policy"
	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/testing/stackdb"
)

// t0 is the tests' origin; every time is relative to it and every pass is
// given its time, so the database's now() plays no part.
var t0 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

const channels = `
channels:
  - name: hook
    type: webhook
    url: http://127.0.0.1:9/hook
  - name: am
    type: alertmanager
    url: http://127.0.0.1:9/
`

func loadPolicies(t *testing.T, yaml string) *policy.Set {
	t.Helper()
	f, err := targets.Parse("targets.yaml", []byte(channels+yaml))
	if err != nil {
		t.Fatal(err)
	}
	return policy.FromFile(f)
}

// fixture is a migrated database of its own, seeded as the recorder
// would have it.
type fixture struct {
	t    *testing.T
	ctx  context.Context
	pool *pgxpool.Pool
}

func newFixture(t *testing.T) *fixture {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	pool, err := pgxpool.New(ctx, stackdb.Migrated(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &fixture{t: t, ctx: ctx, pool: pool}
}

func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if _, err := f.pool.Exec(f.ctx, sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

// configure projects a target of the targets topic, checked every
// interval in regions.
func (f *fixture) configure(id string, interval time.Duration, regions ...string) {
	f.t.Helper()
	f.exec(`INSERT INTO target_config (target_id, url, method, interval_us, timeout_us, header_names, has_body,
			expect_status, follow_redirects, tls_skip_verify, max_body_bytes, regions, labels, configured_at, updated_at)
		VALUES ($1, $2, 'GET', $3, 10000000, '{}', false, '{200-399}', true, false, 1048576, $4, '{}', $5, $5)`,
		id, "https://"+id+".example/", interval.Microseconds(), regions, t0.Add(-time.Hour))
}

// check records a check of the target in the region at when, by the
// region's prober "p1", as the recorder does.
func (f *fixture) check(id, region string, when time.Time) {
	f.t.Helper()
	f.exec(`INSERT INTO targets (target_id, url, method, first_seen, last_seen, last_event_id, last_outcome, last_response_time_us)
		VALUES ($1, $2, 'GET', $3, $3, gen_random_uuid(), 'up', 1000)
		ON CONFLICT (target_id) DO UPDATE SET last_seen = greatest(targets.last_seen, excluded.last_seen)`,
		id, "https://"+id+".example/", when)
	f.exec(`INSERT INTO target_regions (target_id, region, first_seen, last_seen, last_event_id, last_outcome, last_response_time_us)
		VALUES ($1, $2, $3, $3, gen_random_uuid(), 'up', 1000)
		ON CONFLICT (target_id, region) DO UPDATE SET last_seen = excluded.last_seen`, id, region, when)
	f.exec(`INSERT INTO probers (region, instance, first_seen, last_seen) VALUES ($1, 'p1', $2, $2)
		ON CONFLICT (region, instance) DO UPDATE SET last_seen = greatest(probers.last_seen, excluded.last_seen)`, region, when)
}

// staleInB seeds two targets in regions a and b: t1, checked every
// minute, last in b at t0, in a at 10 min; t2, hourly, in both at 10 min,
// by the prober of b too.
func (f *fixture) staleInB() {
	f.t.Helper()
	f.configure("t1", time.Minute, "a", "b")
	f.configure("t2", time.Hour, "a", "b")
	f.check("t1", "b", at(0))
	f.check("t1", "a", at(10*time.Minute))
	f.check("t2", "a", at(10*time.Minute))
	f.check("t2", "b", at(10*time.Minute))
}

// outboxRow is a row of outbox().
func outboxRow(id string, seq int, transition, channel, typ string) string {
	return fmt.Sprintf("%s/%d-%s/%s | %s | %d | %s | %s", id, seq, transition, channel, id, seq, channel, typ)
}

func (f *fixture) pass(e *Evaluator) Result {
	f.t.Helper()
	res, err := e.Pass(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

func evaluator(pool *pgxpool.Pool, pol Policies, now *time.Time) *Evaluator {
	return New(pool, func() Policies { return pol }, Options{Now: func() time.Time { return *now }})
}

// The rows, as text, in a stable order.
func (f *fixture) incidents() []string {
	return f.rows(`SELECT incident_id, coalesce(target_id, '-'), kind, region, started_at, first_event_id, confirmed_at,
		coalesce(resolved_at::text, '-'), regions, first_failure_kind, first_error, last_failure_kind, last_error,
		last_failure_at, coalesce(maintenance, '-')
		FROM incidents ORDER BY started_at, coalesce(target_id, ''), region`)
}

func (f *fixture) transitions() []string {
	return f.rows(`SELECT incident_id, seq, transition, at, coalesce(event_id, '-'), regions, coalesce(suppressed, '-')
		FROM incident_transitions ORDER BY at, incident_id, seq`)
}

func (f *fixture) outbox() []string {
	return f.rows(`SELECT idempotency_key, incident_id, seq, channel, channel_type FROM notification_outbox ORDER BY id`)
}

func (f *fixture) rows(sql string) []string {
	f.t.Helper()
	rows, err := f.pool.Query(f.ctx, sql)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			f.t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			if tm, ok := v.(time.Time); ok {
				v = tm.UTC().Format("15:04:05")
			}
			parts[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(parts, " | "))
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// payloads returns the notifications in the outbox, in insert order.
func (f *fixture) payloads() []notify.Notification {
	f.t.Helper()
	rows, err := f.pool.Query(f.ctx, `SELECT payload FROM notification_outbox ORDER BY id`)
	if err != nil {
		f.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (notify.Notification, error) {
		var raw []byte
		var n notify.Notification
		if err := r.Scan(&raw); err != nil {
			return n, err
		}
		return n, json.Unmarshal(raw, &n)
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// same compares got and want; notifications by their JSON (time zones).
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	if _, ok := want.([]notify.Notification); ok {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		got, want = string(g), string(w)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got: %s\nwant: %s", what, show(got), show(want))
	}
}

func show(v any) string {
	if l, ok := v.([]string); ok {
		return "\n  " + strings.Join(l, "\n  ")
	}
	return fmt.Sprintf("%+v", v)
}

func ptr[T any](v T) *T { return &v }

// One target stops being checked in region b of two while b's prober
// checks another: one incident for that target and region, its reminder,
// and its resolution when b checks it again; nothing for region a, nor
// for region b as a whole, nor twice.
func TestStaleTargetInOneRegion(t *testing.T) {
	f := newFixture(t)
	pol := loadPolicies(t, `
targets:
  - id: t1
    url: https://t1.example/
    regions: [a, b]
    alert: {reminder_interval: 5m, notify: [hook, am]}
  - id: t2
    url: https://t2.example/
    regions: [a, b]
    alert: {notify: [hook]}
`)
	f.staleInB()
	now := at(10*time.Minute + 30*time.Second)
	e := evaluator(f.pool, pol, &now)

	res := f.pass(e)
	same(t, "first pass", res, Result{Transitions: map[string]int{"opened": 1}, Outbox: 2})
	id := incidentID("t1", "b", at(3*time.Minute))
	msg := `no check in region "b" since 2026-11-30T10:00:00Z (stale after 3 intervals of 1m0s)`
	same(t, "incidents", f.incidents(), []string{
		id + " | t1 | no_data | b | 10:03:00 |  | 10:10:30 | - | [b] | no_data | " + msg + " | no_data | " + msg + " | 10:10:30 | -",
	})
	same(t, "transitions", f.transitions(), []string{id + " | 0 | opened | 10:10:30 | - | [b] | -"})
	same(t, "outbox", f.outbox(), []string{
		outboxRow(id, 0, "opened", "am", "alertmanager"),
		outboxRow(id, 0, "opened", "hook", "webhook"),
	})
	opened := notify.Notification{IncidentID: id, Transition: "opened", Seq: 0, Kind: "no_data", TargetID: "t1",
		URL: "https://t1.example/", Regions: []string{"b"}, At: now, StartedAt: at(3 * time.Minute), ConfirmedAt: now,
		FailureKind: "no_data", Error: msg}
	same(t, "payloads", f.payloads(), []notify.Notification{opened, opened})

	// Again at the same time, and before the reminder is due: nothing.
	same(t, "second pass", f.pass(e), Result{Transitions: map[string]int{}})
	// Region a keeps checking t1.
	f.check("t1", "a", at(14*time.Minute))
	now = at(15 * time.Minute)
	same(t, "before the reminder", f.pass(e), Result{Transitions: map[string]int{}})
	now = at(15*time.Minute + 30*time.Second)
	same(t, "reminder", f.pass(e), Result{Transitions: map[string]int{"reminder": 1}, Outbox: 2})

	// b checks t1 again.
	f.check("t1", "b", at(16*time.Minute))
	f.check("t1", "a", at(16*time.Minute))
	now = at(16*time.Minute + 10*time.Second)
	same(t, "resolving pass", f.pass(e), Result{Transitions: map[string]int{"resolved": 1}, Outbox: 2})
	same(t, "incidents", f.incidents(), []string{
		id + " | t1 | no_data | b | 10:03:00 |  | 10:10:30 | 2026-11-30 10:16:10+00 | [b] | no_data | " + msg + " | no_data | " + msg + " | 10:10:30 | -",
	})
	same(t, "transitions", f.transitions(), []string{
		id + " | 0 | opened | 10:10:30 | - | [b] | -",
		id + " | 1 | reminder | 10:15:30 | - | [b] | -",
		id + " | 2 | resolved | 10:16:10 | - | [b] | -",
	})
	same(t, "outbox", f.outbox()[2:], []string{
		outboxRow(id, 1, "reminder", "am", "alertmanager"),
		outboxRow(id, 1, "reminder", "hook", "webhook"),
		outboxRow(id, 2, "resolved", "am", "alertmanager"),
		outboxRow(id, 2, "resolved", "hook", "webhook"),
	})
	resolved := opened
	resolved.Transition, resolved.Seq, resolved.At, resolved.ResolvedAt = "resolved", 2, now, ptr(now)
	same(t, "resolved payload", f.payloads()[4:], []notify.Notification{resolved, resolved})
	same(t, "after", f.pass(e), Result{Transitions: map[string]int{}})
}

// Every target of region b stale and b's prober quiet: one incident for
// the region, notifying the union of the targets' channels, none per
// target. When b's prober checks again the region's incident resolves, and
// a target it has not checked yet gets an incident of its own only after
// 3 of its intervals more.
func TestQuietRegion(t *testing.T) {
	f := newFixture(t)
	pol := loadPolicies(t, `
targets:
  - id: t1
    url: https://t1.example/
    regions: [a, b]
    alert: {notify: [hook]}
  - id: t2
    url: https://t2.example/
    regions: [a, b]
    alert: {notify: [am]}
`)
	f.configure("t1", time.Minute, "a", "b")
	f.configure("t2", 2*time.Minute, "a", "b")
	f.check("t1", "b", at(0))
	f.check("t2", "b", at(time.Minute))
	for _, id := range []string{"t1", "t2"} {
		f.check(id, "a", at(10*time.Minute))
	}
	now := at(10*time.Minute + 30*time.Second)
	e := evaluator(f.pool, pol, &now)

	same(t, "first pass", f.pass(e), Result{Transitions: map[string]int{"opened": 1}, Outbox: 2})
	// Quiet since the last target went stale (t2: 10:01 + 3 × 2m).
	id := incidentID("", "b", at(7*time.Minute))
	msg := `no prober of region "b" has checked anything since 2026-11-30T10:01:00Z; targets without data: 2`
	same(t, "incidents", f.incidents(), []string{
		id + " | - | no_data | b | 10:07:00 |  | 10:10:30 | - | [b] | no_data | " + msg + " | no_data | " + msg + " | 10:10:30 | -",
	})
	same(t, "transitions", f.transitions(), []string{id + " | 0 | opened | 10:10:30 | - | [b] | -"})
	same(t, "outbox", f.outbox(), []string{
		outboxRow(id, 0, "opened", "am", "alertmanager"),
		outboxRow(id, 0, "opened", "hook", "webhook"),
	})
	opened := notify.Notification{IncidentID: id, Transition: "opened", Kind: "no_data", Regions: []string{"b"},
		At: now, StartedAt: at(7 * time.Minute), ConfirmedAt: now, FailureKind: "no_data", Error: msg}
	same(t, "payloads", f.payloads(), []notify.Notification{opened, opened})

	// b's prober is back and checks t1, not yet t2.
	f.check("t1", "b", at(11*time.Minute))
	for _, id := range []string{"t1", "t2"} {
		f.check(id, "a", at(11*time.Minute))
	}
	now = at(11*time.Minute + 10*time.Second)
	same(t, "the region checks again", f.pass(e), Result{Transitions: map[string]int{"resolved": 1}, Outbox: 2})
	// t2 gets 3 × 2m from the resolution before its own incident.
	f.check("t1", "b", at(17*time.Minute))
	for _, id := range []string{"t1", "t2"} {
		f.check(id, "a", at(17*time.Minute))
	}
	now = at(17*time.Minute + 9*time.Second)
	same(t, "within the grace", f.pass(e), Result{Transitions: map[string]int{}})
	now = at(17*time.Minute + 10*time.Second)
	same(t, "after the grace", f.pass(e), Result{Transitions: map[string]int{"opened": 1}, Outbox: 1})
	own := incidentID("t2", "b", at(7*time.Minute))
	same(t, "transitions", f.transitions(), []string{
		id + " | 0 | opened | 10:10:30 | - | [b] | -",
		id + " | 1 | resolved | 10:11:10 | - | [b] | -",
		own + " | 0 | opened | 10:17:10 | - | [b] | -",
	})
	same(t, "outbox", f.outbox()[2:], []string{
		outboxRow(id, 1, "resolved", "am", "alertmanager"),
		outboxRow(id, 1, "resolved", "hook", "webhook"),
		outboxRow(own, 0, "opened", "am", "alertmanager"),
	})
}

// A region of which no prober was ever seen (a typo in regions:) is quiet
// too, once its targets are stale from their configuration on.
func TestRegionWithoutProber(t *testing.T) {
	f := newFixture(t)
	pol := loadPolicies(t, `
targets:
  - id: t1
    url: https://t1.example/
    regions: [a, bb]
    alert: {notify: [hook]}
`)
	f.configure("t1", time.Minute, "a", "bb")
	f.check("t1", "a", at(0))
	now := at(30 * time.Second)
	e := evaluator(f.pool, pol, &now)
	same(t, "first pass", f.pass(e), Result{Transitions: map[string]int{"opened": 1}, Outbox: 1})
	msg := `no prober was ever seen in region "bb"; targets without data: 1`
	id := incidentID("", "bb", at(-57*time.Minute))
	same(t, "incidents", f.incidents(), []string{
		id + " | - | no_data | bb | 09:03:00 |  | 10:00:30 | - | [bb] | no_data | " + msg + " | no_data | " + msg + " | 10:00:30 | -",
	})
}

// no_data: false, a target without alerts, and a removed target open
// nothing; an open incident of a target removed since resolves, notifying
// the channels told of it.
func TestNoPolicyAndRemoved(t *testing.T) {
	f := newFixture(t)
	pol := loadPolicies(t, `
targets:
  - id: off
    url: https://off.example/
    regions: [a, b]
    alert: {no_data: false, notify: [hook]}
  - id: silent
    url: https://silent.example/
    regions: [a, b]
    alert: false
  - id: gone
    url: https://gone.example/
    regions: [a, b]
    alert: {notify: [hook]}
  - id: fresh
    url: https://fresh.example/
    regions: [a, b]
    alert: {notify: [hook]}
`)
	for _, id := range []string{"off", "silent", "gone", "fresh"} {
		f.configure(id, time.Minute, "a", "b")
		f.check(id, "a", at(10*time.Minute))
		f.check(id, "b", at(0))
	}
	f.check("fresh", "b", at(10*time.Minute))
	f.exec(`UPDATE target_config SET removed_at = $1 WHERE target_id = 'gone'`, at(9*time.Minute))
	now := at(10*time.Minute + 30*time.Second)
	e := evaluator(f.pool, pol, &now)
	same(t, "removed and switched off", f.pass(e), Result{Transitions: map[string]int{}})
	same(t, "incidents", f.incidents(), []string(nil))

	// Configured again, it opens; removed, it resolves through the
	// channel of its opening although no policy names it any more.
	f.exec(`UPDATE target_config SET removed_at = NULL WHERE target_id = 'gone'`)
	same(t, "configured again", f.pass(e), Result{Transitions: map[string]int{"opened": 1}, Outbox: 1})
	f.exec(`UPDATE target_config SET removed_at = $1 WHERE target_id = 'gone'`, now)
	now = now.Add(time.Second)
	e = evaluator(f.pool, loadPolicies(t, `
targets:
  - id: fresh
    url: https://fresh.example/
    alert: {notify: [hook]}
`), &now)
	same(t, "removed", f.pass(e), Result{Transitions: map[string]int{"resolved": 1}, Outbox: 1})
	id := incidentID("gone", "b", at(3*time.Minute))
	same(t, "outbox", f.outbox(), []string{
		outboxRow(id, 0, "opened", "hook", "webhook"),
		outboxRow(id, 1, "resolved", "hook", "webhook"),
	})
}

// In a maintenance window the incident is recorded with the window's name
// and queues no notification, nor does its resolution.
func TestMaintenance(t *testing.T) {
	f := newFixture(t)
	pol := loadPolicies(t, `
maintenance:
  - name: deploy
    targets: [t1]
    from: 2026-11-30T09:00:00Z
    to: 2026-11-30T11:00:00Z
targets:
  - id: t1
    url: https://t1.example/
    regions: [a, b]
    alert: {notify: [hook]}
  - id: t2
    url: https://t2.example/
    regions: [a, b]
    alert: {notify: [hook]}
`)
	f.staleInB()
	now := at(10*time.Minute + 30*time.Second)
	e := evaluator(f.pool, pol, &now)
	same(t, "pass", f.pass(e), Result{Transitions: map[string]int{"opened": 1}})
	id := incidentID("t1", "b", at(3*time.Minute))
	msg := `no check in region "b" since 2026-11-30T10:00:00Z (stale after 3 intervals of 1m0s)`
	same(t, "incidents", f.incidents(), []string{
		id + " | t1 | no_data | b | 10:03:00 |  | 10:10:30 | - | [b] | no_data | " + msg + " | no_data | " + msg + " | 10:10:30 | deploy",
	})
	f.check("t1", "b", at(11*time.Minute))
	now = at(11*time.Minute + 10*time.Second)
	same(t, "resolved", f.pass(e), Result{Transitions: map[string]int{"resolved": 1}})
	same(t, "transitions", f.transitions(), []string{
		id + " | 0 | opened | 10:10:30 | - | [b] | deploy",
		id + " | 1 | resolved | 10:11:10 | - | [b] | deploy",
	})
	same(t, "outbox", f.outbox(), []string(nil))
}

// Evaluators of several alerters pass at once: each transition is stored
// once, and the passes that found the lock taken did nothing.
func TestConcurrentEvaluators(t *testing.T) {
	f := newFixture(t)
	pol := loadPolicies(t, `
targets:
  - id: t1
    url: https://t1.example/
    regions: [a, b]
    alert: {notify: [hook, am]}
  - id: t2
    url: https://t2.example/
    regions: [a, b]
    alert: {notify: [hook]}
`)
	f.staleInB()
	now := at(10*time.Minute + 30*time.Second)
	const alerters, passes = 4, 10
	var wg sync.WaitGroup
	results := make(chan Result, alerters*passes)
	for range alerters {
		// Each alerter has a pool of its own, as in main.
		pool, err := pgxpool.New(f.ctx, f.pool.Config().ConnString())
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		e := evaluator(pool, pol, &now)
		wg.Go(func() {
			for range passes {
				res, err := e.Pass(f.ctx)
				if err != nil {
					t.Error(err)
					return
				}
				results <- res
			}
		})
	}
	wg.Wait()
	close(results)
	opened, outbox, evaluated := 0, 0, 0
	for r := range results {
		opened += r.Transitions["opened"]
		outbox += r.Outbox
		if !r.Skipped {
			evaluated++
		}
	}
	if opened != 1 || outbox != 2 || evaluated == 0 {
		t.Errorf("opened %d, outbox rows %d over %d evaluated passes; want 1 and 2 over at least one", opened, outbox, evaluated)
	}
	id := incidentID("t1", "b", at(3*time.Minute))
	same(t, "transitions", f.transitions(), []string{id + " | 0 | opened | 10:10:30 | - | [b] | -"})
	same(t, "outbox", f.outbox(), []string{
		outboxRow(id, 0, "opened", "am", "alertmanager"),
		outboxRow(id, 0, "opened", "hook", "webhook"),
	})
}

// A pass while another holds the lock is skipped and stores nothing.
func TestLockedPassSkips(t *testing.T) {
	f := newFixture(t)
	pol := loadPolicies(t, `
targets:
  - id: t1
    url: https://t1.example/
    regions: [a, b]
    alert: {notify: [hook]}
`)
	f.staleInB()
	tx, err := f.pool.Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(f.ctx, `SELECT pg_advisory_xact_lock($1)`, LockKey); err != nil {
		t.Fatal(err)
	}
	now := at(10*time.Minute + 30*time.Second)
	e := evaluator(f.pool, pol, &now)
	same(t, "locked", f.pass(e), Result{Skipped: true, Transitions: map[string]int{}})
	if err := tx.Rollback(f.ctx); err != nil {
		t.Fatal(err)
	}
	same(t, "transitions", f.transitions(), []string(nil))
	same(t, "unlocked", f.pass(e), Result{Transitions: map[string]int{"opened": 1}, Outbox: 1})
}
