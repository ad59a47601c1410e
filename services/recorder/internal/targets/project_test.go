package targets_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/durationpb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/targetstopic"
	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
	"github.com/sitewatch/sitewatch/services/recorder/internal/targets"
	"github.com/sitewatch/sitewatch/services/testing/stackdb"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

// env is one test's database (migrated, with a Store for events) and, with
// a topic, a targets topic and the codec of its values.
type env struct {
	t     *testing.T
	url   string
	st    *store.Store
	conn  *pgx.Conn
	pool  *pgxpool.Pool
	topic string
	kafka *kgo.Client
	codec *targetstopic.Codec
	opts  []kgo.Opt
}

func newEnv(t *testing.T, withTopic bool) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, url: stackdb.Database(t)}
	logger := slog.New(slog.DiscardHandler)
	if err := store.Migrate(ctx, e.url, logger); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.st, err = store.Open(ctx, e.url, store.Config{}, logger); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.st.Close)
	if e.conn, err = pgx.Connect(ctx, e.url); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.conn.Close(context.Background()) })
	if e.pool, err = pgxpool.New(ctx, e.url); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.pool.Close)
	e.topic = stacktest.Name("targets")
	if e.opts, err = stacktest.KafkaConfig(t).ClientOpts(); err != nil {
		t.Fatal(err)
	}
	if withTopic {
		e.kafka = stacktest.KafkaClient(t)
		if err := targetstopic.Ensure(ctx, kadm.NewClient(e.kafka), e.topic, 3); err != nil {
			t.Fatal(err)
		}
		if e.codec, err = targetstopic.Register(ctx, stacktest.Registry(t), e.topic); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// projector runs a Projector until stopped; stop returns its error.
type projector struct {
	p    *targets.Projector
	reg  *prometheus.Registry
	logs *stacktest.Log
	stop func() error
}

func (e *env) project() *projector {
	e.t.Helper()
	pr := &projector{reg: prometheus.NewRegistry(), logs: &stacktest.Log{}}
	logger := slog.New(slog.NewTextHandler(pr.logs, nil))
	var err error
	pr.p, err = targets.New(targets.Config{Topic: e.topic, Retry: 100 * time.Millisecond}, e.opts, e.pool, pr.reg, logger)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error
	var wg sync.WaitGroup
	wg.Go(func() { runErr = pr.p.Run(ctx) })
	var once sync.Once
	pr.stop = func() error {
		once.Do(func() { cancel(); wg.Wait() })
		return runErr
	}
	e.t.Cleanup(func() { _ = pr.stop() })
	return pr
}

func (e *env) produce(recs ...*kgo.Record) {
	e.t.Helper()
	if err := e.kafka.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// set is the record of a target at time at.
func (e *env) set(m *sitewatchv1.Target, at time.Time) *kgo.Record {
	e.t.Helper()
	r, err := e.codec.Record(e.topic, m)
	if err != nil {
		e.t.Fatal(err)
	}
	r.Timestamp = at
	return r
}

func (e *env) tombstone(id string, at time.Time) *kgo.Record {
	r := targetstopic.Tombstone(e.topic, id)
	r.Timestamp = at
	return r
}

// applied waits until the projection has applied n records of the topic.
func (e *env) applied(n int64) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got int64
		if err := e.conn.QueryRow(context.Background(), `SELECT coalesce(sum(next_offset), 0) FROM target_config_offsets WHERE topic = $1`, e.topic).Scan(&got); err != nil {
			e.t.Fatal(err)
		}
		if got == n {
			return
		}
		if got > n || time.Now().After(deadline) {
			e.t.Fatalf("the projection applied %d records, want %d", got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rows returns the rows of a query, a line each, its values joined by " | ",
// times in UTC RFC 3339, NULL for nil.
func (e *env) rows(sql string, args ...any) string {
	e.t.Helper()
	rs, err := e.conn.Query(context.Background(), sql, args...)
	if err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	defer rs.Close()
	var lines []string
	for rs.Next() {
		vals, err := rs.Values()
		if err != nil {
			e.t.Fatal(err)
		}
		cells := make([]string, len(vals))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
				cells[i] = "NULL"
			case time.Time:
				cells[i] = v.UTC().Format(time.RFC3339Nano)
			default:
				cells[i] = fmt.Sprint(v)
			}
		}
		lines = append(lines, strings.Join(cells, " | "))
	}
	if err := rs.Err(); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return strings.Join(lines, "\n")
}

func (e *env) expect(what, got, want string) {
	e.t.Helper()
	var lines []string
	for l := range strings.SplitSeq(strings.TrimSpace(want), "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	if want := strings.Join(lines, "\n"); got != want {
		e.t.Errorf("%s:\n got:\n%s\nwant:\n%s", what, got, want)
	}
}

func target(id string, interval time.Duration, regions ...string) *sitewatchv1.Target {
	return &sitewatchv1.Target{
		Id: id, Url: "http://" + id + ".test/", Method: "GET",
		Interval: durationpb.New(interval), Timeout: durationpb.New(5 * time.Second),
		ExpectStatus: []*sitewatchv1.StatusRange{{Min: 200, Max: 399}},
		MaxBodyBytes: 1 << 20, Regions: regions,
	}
}

// event is a check of target by instance in region at at; interval 0 is
// an event of a prober older than CheckResult.target.interval.
func event(target, region, instance string, at time.Time, up bool, interval time.Duration) store.Event {
	e := store.Event{
		EventID: uuid.Must(uuid.NewV7()), TargetID: target, URL: "http://" + target + ".test/", Method: "GET",
		CheckedAt: at, Up: up, ResponseTime: 10 * time.Millisecond, StatusCode: 200,
		ProberRegion: region, ProberInstance: instance, Interval: interval,
	}
	if !up {
		e.FailureKind, e.StatusCode, e.Error = "http_status", 503, "status 503"
	}
	return e
}

func (e *env) write(events ...store.Event) {
	e.t.Helper()
	if _, err := e.st.Write(context.Background(), events); err != nil {
		e.t.Fatal(err)
	}
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// The whole life of configured targets: pending, checked, stale in a
// region, removed (with its history kept), a hostile record skipped, re-added,
// and a replay that rebuilds every row.
func TestProjection(t *testing.T) {
	e := newEnv(t, true)
	now := time.Now().UTC().Truncate(time.Second)
	base := now.Add(-time.Hour) // the records' times

	alpha := target("alpha", 30*time.Second)
	alpha.Url = "https://user:s3cret@alpha.test/path"
	alpha.Headers = []*sitewatchv1.Header{{Name: "Authorization", Values: []string{"Bearer t0ken"}}, {Name: "X-B", Values: []string{"1"}}}
	alpha.Body, alpha.Method = "secret=1", "POST"
	alpha.Pattern = "Welcome"
	alpha.Labels = map[string]string{"team": "web", "tier": "1"}
	alpha.Alert = &sitewatchv1.AlertPolicy{FailureThreshold: 3, FailureWindow: 5, SuccessThreshold: 2, Regions: 1,
		ReminderInterval: durationpb.New(90 * time.Minute), TlsExpiryDays: 14, NoData: true, Notify: []string{"ops-hook", "pager"}}
	beta := target("beta", time.Minute, "eu", "us")
	beta.Alert = &sitewatchv1.AlertPolicy{FailureThreshold: 2, FailureWindow: 2, SuccessThreshold: 1, AllRegions: true, Notify: []string{"chat"}}
	gamma := target("gamma", 10*time.Second) // a record of a producer older than the policy
	delta := target("delta", time.Minute)
	delta.Alert = &sitewatchv1.AlertPolicy{Off: true}
	e.produce(e.set(alpha, base), e.set(beta, base.Add(time.Second)), e.set(gamma, base.Add(2*time.Second)))
	pr := e.project()
	e.applied(3)

	e.expect("target_config", e.rows(`SELECT target_id, url, method, interval_us, timeout_us, header_names, has_body,
		expect_status, pattern, follow_redirects, tls_skip_verify, max_body_bytes, regions, labels::text,
		configured_at, updated_at, removed_at FROM target_config ORDER BY 1`), fmt.Sprintf(`
		alpha | https://user:xxxxx@alpha.test/path | POST | 30000000 | 5000000 | [Authorization X-B] | true | [200-399] | Welcome | false | false | 1048576 | [] | {"team": "web", "tier": "1"} | %[1]s | %[1]s | NULL
		beta | http://beta.test/ | GET | 60000000 | 5000000 | [] | false | [200-399] | NULL | false | false | 1048576 | [eu us] | {} | %[2]s | %[2]s | NULL
		gamma | http://gamma.test/ | GET | 10000000 | 5000000 | [] | false | [200-399] | NULL | false | false | 1048576 | [] | {} | %[3]s | %[3]s | NULL`,
		ts(base), ts(base.Add(time.Second)), ts(base.Add(2*time.Second))))
	// The alert settings, NULL when off; jsonb orders the keys by length.
	e.expect("alert", e.rows(`SELECT target_id, alert::text FROM target_config ORDER BY 1`), `
		alpha | {"notify": ["ops-hook", "pager"], "no_data": true, "regions": 1, "failure_window": 5, "tls_expiry_days": 14, "failure_threshold": 3, "success_threshold": 2, "reminder_interval_seconds": 5400}
		beta | {"notify": ["chat"], "no_data": false, "regions": "all", "failure_window": 2, "tls_expiry_days": 0, "failure_threshold": 2, "success_threshold": 1, "reminder_interval_seconds": 0}
		gamma | NULL`)
	if got := e.rows(`SELECT count(*) FROM target_config WHERE row_to_json(target_config)::text ~ '(s3cret|t0ken|secret=1)'`); got != "0" {
		t.Errorf("rows holding a secret: %s, want 0", got)
	}
	statusSQL := `SELECT target_id, status, state, since, last_checked_at, stale_since, quiet_regions::text, check_interval::text, interval_source
		FROM target_status ORDER BY 1`
	// Configured an hour ago and never checked: stale 3 intervals after
	// configured_at (migration 00012), in the regions that apply: beta's
	// own, for the others every region a prober was seen in, none yet ("").
	e.expect("target_status before any check", e.rows(statusSQL), fmt.Sprintf(`
		alpha | stale | NULL | %[1]s | NULL | %[4]s | {""} | 00:00:30 | config
		beta | stale | NULL | %[2]s | NULL | %[5]s | {eu,us} | 00:01:00 | config
		gamma | stale | NULL | %[3]s | NULL | %[6]s | {""} | 00:00:10 | config`,
		ts(base), ts(base.Add(time.Second)), ts(base.Add(2*time.Second)),
		ts(base.Add(90*time.Second)), ts(base.Add(time.Second).Add(3*time.Minute)), ts(base.Add(2*time.Second).Add(30*time.Second))))

	// alpha is up; beta down in eu, and us went quiet 4 minutes ago (3
	// intervals of 1m: stale since 1 minute ago); gamma is never checked,
	// stale in every region a prober was seen in.
	e.write(
		event("alpha", "eu", "p-eu-1", now.Add(-10*time.Second), true, 0),
		event("beta", "eu", "p-eu-1", now.Add(-5*time.Second), false, time.Minute),
		event("beta", "us", "p-us-1", now.Add(-4*time.Minute), true, time.Minute),
	)
	e.expect("target_status after checks", e.rows(statusSQL), fmt.Sprintf(`
		alpha | up | up | %[1]s | %[1]s | NULL | NULL | 00:00:30 | config
		beta | stale | down | %[2]s | %[2]s | %[3]s | {us} | 00:01:00 | config
		gamma | stale | NULL | %[4]s | NULL | %[5]s | {eu,us} | 00:00:10 | config`,
		ts(now.Add(-10*time.Second)), ts(now.Add(-5*time.Second)), ts(now.Add(-time.Minute)), ts(base.Add(2*time.Second)),
		ts(base.Add(2*time.Second).Add(30*time.Second))))
	e.expect("target_region_status", e.rows(`SELECT target_id, region, state, stale, stale_since FROM target_region_status ORDER BY 1, 2`), fmt.Sprintf(`
		alpha | eu | up | false | %s
		beta | eu | down | false | %s
		beta | us | up | true | %s`,
		ts(now.Add(-10*time.Second).Add(90*time.Second)), ts(now.Add(-5*time.Second).Add(3*time.Minute)), ts(now.Add(-time.Minute))))
	e.expect("current_outages", e.rows(`SELECT target_id, down_since, status FROM current_outages`),
		fmt.Sprintf(`beta | %s | stale`, ts(now.Add(-5*time.Second))))

	// Remove alpha and beta; a hostile record (not a Target), a Target the
	// targets file's rules refuse and a key that is not the ID are skipped;
	// delta after them is applied.
	bad := target("bad-interval", time.Minute)
	bad.Interval = nil
	other := target("someone-else", time.Minute)
	wrongKey := e.set(other, base.Add(4*time.Minute))
	wrongKey.Key = []byte("not-its-id")
	e.produce(
		e.tombstone("alpha", base.Add(3*time.Minute)),
		e.tombstone("beta", base.Add(3*time.Minute)),
		&kgo.Record{Topic: e.topic, Key: []byte("garbage"), Value: []byte("\x00\x00\x00\x00\x01\x02hostile"), Timestamp: base.Add(4 * time.Minute)},
		e.set(bad, base.Add(4*time.Minute)),
		wrongKey,
		e.set(delta, base.Add(5*time.Minute)),
	)
	e.applied(9)
	e.expect("delta's alerts off", e.rows(`SELECT alert IS NULL FROM target_config WHERE target_id = 'delta'`), "true")
	e.expect("target_status after the removals", e.rows(`SELECT target_id, status FROM target_status ORDER BY 1`), `
		delta | stale
		gamma | stale`)
	e.expect("current_outages after the removals", e.rows(`SELECT count(*) FROM current_outages`), "0")
	e.expect("target_region_status after the removals", e.rows(`SELECT count(*) FROM target_region_status`), "0")
	e.expect("removed_targets", e.rows(`SELECT target_id, removed_at, last_checked_at, last_outcome FROM removed_targets ORDER BY 1`), fmt.Sprintf(`
		alpha | %[1]s | %[2]s | up
		beta | %[1]s | %[3]s | down`, ts(base.Add(3*time.Minute)), ts(now.Add(-10*time.Second)), ts(now.Add(-5*time.Second))))
	e.expect("history by ID", e.rows(`SELECT (SELECT count(*) FROM check_results WHERE target_id = 'beta'),
		(SELECT sum(checks) FROM check_results_hourly WHERE target_id = 'beta')::bigint,
		(SELECT sum(checks) FROM availability_daily_all WHERE target_id = 'beta')::bigint,
		(SELECT count(*) FROM availability_daily WHERE target_id = 'beta'),
		(SELECT count(*) FROM slowest_targets)`), "2 | 2 | 2 | 0 | 0")
	e.expect("records by result", fmt.Sprint(counter(t, pr.reg, "set"), counter(t, pr.reg, "removed"), counter(t, pr.reg, "rejected")), "4 2 3")
	for _, want := range []string{"garbage", "bad-interval", "not-its-id"} {
		if !strings.Contains(pr.logs.String(), want) {
			t.Errorf("no log names %q:\n%s", want, pr.logs.String())
		}
	}
	if strings.Contains(pr.logs.String(), "s3cret") {
		t.Errorf("a secret is in the logs:\n%s", pr.logs.String())
	}

	// alpha added again: configured anew.
	e.produce(e.set(alpha, base.Add(6*time.Minute)))
	e.applied(10)
	e.expect("alpha re-added", e.rows(`SELECT configured_at, updated_at, removed_at FROM target_config WHERE target_id = 'alpha'`),
		fmt.Sprintf(`%[1]s | %[1]s | NULL`, ts(base.Add(6*time.Minute))))
	e.expect("alpha's status re-added", e.rows(`SELECT status FROM target_status WHERE target_id = 'alpha'`), "up")

	// A replay rebuilds every row.
	snapshot := func() string {
		return e.rows(`SELECT c::text FROM target_config c ORDER BY target_id`) + "\n--\n" +
			e.rows(`SELECT s::text FROM target_status s ORDER BY target_id`) + "\n--\n" +
			e.rows(`SELECT r::text FROM removed_targets r ORDER BY target_id`) + "\n--\n" +
			e.rows(`SELECT target_id, down_since, status FROM current_outages ORDER BY target_id`)
	}
	before := snapshot()
	if err := pr.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := targets.Reset(context.Background(), e.pool, e.topic); err != nil {
		t.Fatal(err)
	}
	e.expect("after Reset", e.rows(`SELECT (SELECT count(*) FROM target_config), (SELECT count(*) FROM target_config_offsets)`), "0 | 0")
	e.project()
	e.applied(10)
	if after := snapshot(); after != before {
		t.Errorf("after a replay:\n%s\nbefore:\n%s", after, before)
	}
}

// counter is sitewatch_recorder_targets_records_total{result=result}.
func counter(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "sitewatch_recorder_targets_records_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no sitewatch_recorder_targets_records_total{result=%q}", result)
	return 0
}
