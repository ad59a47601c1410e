package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/recorder/internal/consume"
	"github.com/sitewatch/sitewatch/services/testing/stackdb"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

// oldSchema is an earlier CheckResult: without bytes_read, body_truncated,
// content_check, tls_cert_expires_at, redirects, protocol and decoded_bytes
// (fields 8-11 and 15-17), as a producer that has not upgraded still
// registers and writes it.
const oldSchema = `syntax = "proto3";
package sitewatch.v1;
import "google/protobuf/duration.proto";
import "google/protobuf/timestamp.proto";
message CheckResult {
  string event_id = 1;
  Target target = 2;
  Prober prober = 3;
  google.protobuf.Timestamp started_at = 4;
  google.protobuf.Duration response_time = 5;
  PhaseTimings timings = 6;
  uint32 status_code = 7;
  Outcome outcome = 12;
  FailureKind failure_kind = 13;
  string error = 14;
}
message Target { string id = 1; string url = 2; string method = 3; }
message Prober { string instance = 1; string region = 2; }
message PhaseTimings {
  google.protobuf.Duration dns = 1;
  google.protobuf.Duration connect = 2;
  google.protobuf.Duration tls_handshake = 3;
  google.protobuf.Duration time_to_first_byte = 4;
}
enum Outcome { OUTCOME_UNSPECIFIED = 0; OUTCOME_UP = 1; OUTCOME_DOWN = 2; }
enum FailureKind {
  FAILURE_KIND_UNSPECIFIED = 0; FAILURE_KIND_DNS = 1; FAILURE_KIND_CONNECT = 2; FAILURE_KIND_TLS = 3;
  FAILURE_KIND_TIMEOUT = 4; FAILURE_KIND_HTTP_STATUS = 5; FAILURE_KIND_CONTENT_MISMATCH = 6; FAILURE_KIND_OTHER = 7;
}
`

// otherSchema is a valid Protobuf schema that is not a CheckResult.
const otherSchema = `syntax = "proto3";
package other.v1;
message Thing { string name = 1; }
`

// fixture is one test's stack: a fresh database, a topic, a group.
type fixture struct {
	t     *testing.T
	env   map[string]string
	topic string
	group string
	// targets is a targets topic that no test creates: the recorder runs in
	// file mode, never projecting a shared topic into the test's database.
	targets string
	kafka   *kgo.Client
	adm     *kadm.Client
	reg     *sr.Client
	db      *pgx.Conn
	serdes  map[string]*sr.Serde // by subject version: "old", "new"
	ids     map[string]int       // schema IDs: "old", "new", "other"
}

func newFixture(t *testing.T, partitions int32) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{
		t:       t,
		topic:   stacktest.Name("check-results"),
		group:   stacktest.Name("recorder"),
		targets: stacktest.Name("targets"),
		kafka:   stacktest.KafkaClient(t),
		reg:     stacktest.Registry(t),
		serdes:  map[string]*sr.Serde{},
		ids:     map[string]int{},
	}
	dbURL := stackdb.Database(t)
	f.env = map[string]string{"DATABASE_URL": dbURL}
	for _, name := range []string{"KAFKA_BROKERS", "SCHEMA_REGISTRY_URL"} {
		f.env[name] = stacktest.Getenv(name)
	}
	f.adm = kadm.NewClient(f.kafka)
	if _, err := f.adm.CreateTopic(ctx, partitions, 1, nil, f.topic); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.db, err = pgx.Connect(ctx, dbURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.db.Close(context.Background()) })

	// The older schema first, then the current one, under the topic's
	// subject, as producers upgrading over time would register them.
	subject := kafkaenv.Subject(f.topic)
	for _, s := range []struct{ name, subject, text string }{
		{"old", subject, oldSchema},
		{"new", subject, sitewatchv1.Schema},
		{"other", kafkaenv.Subject(stacktest.Name("other")), otherSchema},
	} {
		ss, err := f.reg.CreateSchema(ctx, s.subject, sr.Schema{Schema: s.text, Type: sr.TypeProtobuf})
		if err != nil {
			t.Fatalf("register %s schema: %v", s.name, err)
		}
		f.ids[s.name] = ss.ID
		var serde sr.Serde
		serde.Register(ss.ID, &sitewatchv1.CheckResult{}, sr.Index(0),
			sr.EncodeFn(func(v any) ([]byte, error) { return proto.Marshal(v.(*sitewatchv1.CheckResult)) }))
		f.serdes[s.name] = &serde
	}
	if f.ids["old"] == f.ids["new"] {
		t.Fatalf("old and new schema share ID %d", f.ids["old"])
	}
	return f
}

func (f *fixture) getenv(name string) string { return f.env[name] }

// encode writes m in the wire format with the schema version's ID.
func (f *fixture) encode(version string, m *sitewatchv1.CheckResult) []byte {
	f.t.Helper()
	b, err := f.serdes[version].Encode(m)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *fixture) produce(recs ...*kgo.Record) {
	f.t.Helper()
	for _, r := range recs {
		r.Topic = f.topic
	}
	if err := f.kafka.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		f.t.Fatal(err)
	}
}

// recorder is a running `recorder` (its run function).
type recorder struct {
	cancel context.CancelFunc
	done   chan error
	logs   *stacktest.Log
}

func (f *fixture) start(extra ...string) *recorder {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{cancel: cancel, done: make(chan error, 1), logs: &stacktest.Log{}}
	args := append([]string{"-topic", f.topic, "-group", f.group, "-targets-topic", f.targets, "-listen", "127.0.0.1:0", "-batch", "4"}, extra...)
	go func() { r.done <- run(ctx, args, f.getenv, r.logs, r.logs) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			f.t.Logf("recorder stopped with an error: %v", err)
		}
		if f.t.Failed() {
			f.t.Logf("recorder logs:\n%s", r.logs.String())
		}
	})
	return r
}

// stop cancels the recorder's context (SIGTERM) and checks it exits cleanly.
func (r *recorder) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("recorder exited with %v\nlogs:\n%s", err, r.logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("recorder did not stop within 60 s")
	}
}

// metrics scrapes the recorder's /metrics.
func (r *recorder) metrics(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`"msg":"operational endpoints listening","addr":"([^"]+)"`).FindStringSubmatch(r.logs.String())
	if m == nil {
		t.Fatalf("no listening address in the logs:\n%s", r.logs.String())
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitDrained waits until the group has committed the end of every
// partition of the topic.
func (f *fixture) waitDrained(r *recorder) {
	f.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ends, err := f.adm.ListEndOffsets(ctx, f.topic)
		if err != nil {
			f.t.Fatal(err)
		}
		committed, err := f.adm.FetchOffsets(ctx, f.group)
		if err == nil {
			done := true
			ends.Each(func(o kadm.ListedOffset) {
				c, ok := committed.Lookup(o.Topic, o.Partition)
				if (!ok && o.Offset > 0) || (ok && c.At < o.Offset) {
					done = false
				}
			})
			if done {
				return
			}
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("group %s did not drain %s in time\nlogs:\n%s", f.group, f.topic, r.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// dlq reads the whole dead-letter topic.
func (f *fixture) dlq(want int) []*kgo.Record {
	f.t.Helper()
	cl := stacktest.KafkaClient(f.t, kgo.ConsumeTopics(kafkaenv.DLQ(f.topic)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < want && ctx.Err() == nil {
		recs = append(recs, cl.PollFetches(ctx).Records()...)
	}
	if len(recs) != want {
		f.t.Fatalf("dead-letter topic has %d records, want %d", len(recs), want)
	}
	return recs
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return "<none>"
}

func check(t *testing.T, kind string, at time.Time, rt time.Duration) *sitewatchv1.CheckResult {
	m := &sitewatchv1.CheckResult{
		EventId:      uuid.Must(uuid.NewV7()).String(),
		Target:       &sitewatchv1.Target{Id: "alpha", Url: "https://alpha.test/", Method: "GET"},
		Prober:       &sitewatchv1.Prober{Instance: "p1", Region: "local"},
		StartedAt:    timestamppb.New(at),
		ResponseTime: durationpb.New(rt),
		StatusCode:   200,
		Outcome:      sitewatchv1.Outcome_OUTCOME_UP,
	}
	switch kind {
	case "":
	case "timeout":
		m.Outcome, m.FailureKind, m.StatusCode, m.Error = sitewatchv1.Outcome_OUTCOME_DOWN, sitewatchv1.FailureKind_FAILURE_KIND_TIMEOUT, 0, "context deadline exceeded"
	case "http_status":
		m.Outcome, m.FailureKind, m.StatusCode = sitewatchv1.Outcome_OUTCOME_DOWN, sitewatchv1.FailureKind_FAILURE_KIND_HTTP_STATUS, 503
	case "dns":
		m.Outcome, m.FailureKind, m.StatusCode = sitewatchv1.Outcome_OUTCOME_DOWN, sitewatchv1.FailureKind_FAILURE_KIND_DNS, 0
	default:
		t.Fatalf("kind %q", kind)
	}
	return m
}

func withTarget(m *sitewatchv1.CheckResult, id string) *sitewatchv1.CheckResult {
	m.Target.Id, m.Target.Url = id, "https://"+id+".test/"
	return m
}

func rows(t *testing.T, db *pgx.Conn, sql string) string {
	t.Helper()
	r, err := db.Query(context.Background(), sql)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(r, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return strings.Join(lines, "\n")
}

// The recorder stores a known set of events (written with an older and the
// current schema) exactly, dead-letters every kind of bad record with its
// reason while storing the valid records after them, and counts nothing
// twice when the events come again or the group is rewound and replayed.
func TestRecorderEndToEnd(t *testing.T) {
	f := newFixture(t, 1) // one partition: the valid records come after the bad ones
	base := time.Now().UTC().Truncate(24 * time.Hour).Add(-24*time.Hour + 10*time.Hour)
	at := func(minutes int) time.Time { return base.Add(time.Duration(minutes) * time.Minute) }
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }

	withContent := check(t, "", at(2), ms(30))
	withContent.ContentCheck = &sitewatchv1.ContentCheck{Pattern: "Welcome", Matched: true}
	withContent.TlsCertExpiresAt = timestamppb.New(time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC))
	withContent.BytesRead, withContent.Redirects = 1234, 2
	withContent.Protocol, withContent.DecodedBytes = "HTTP/2.0", proto.Int64(5678)
	httpStatus := withTarget(check(t, "http_status", at(5), ms(120)), "beta")
	httpStatus.Protocol, httpStatus.DecodedBytes = "HTTP/1.1", proto.Int64(0)
	valid := []struct {
		version string
		m       *sitewatchv1.CheckResult
	}{
		{"old", check(t, "", at(0), ms(10))},
		{"old", check(t, "", at(1), ms(20))},
		{"old", withTarget(check(t, "timeout", at(0), ms(400)), "beta")},
		{"new", withContent},
		{"new", httpStatus},
		{"new", withTarget(check(t, "dns", at(60), ms(2)), "gamma")},
	}
	var validRecs []*kgo.Record
	for _, v := range valid {
		validRecs = append(validRecs, &kgo.Record{Key: []byte(v.m.Target.Id), Value: f.encode(v.version, v.m)})
	}

	unknownID := make([]byte, 6)
	binary.BigEndian.PutUint32(unknownID[1:], 2_000_000_000)
	invalid := &sitewatchv1.CheckResult{EventId: "nope"}
	expired := check(t, "", time.Now().Add(-40*24*time.Hour), ms(10))
	future := check(t, "", time.Now().Add(48*time.Hour), ms(10))
	wantDead := []struct {
		value          []byte
		reason, detail string
	}{
		{[]byte("hello"), "no_magic_byte", "the value does not start with the wire format's magic byte 0"},
		{[]byte{0, 0, 1}, "bad_header", "no 4-byte schema ID after the magic byte"},
		{unknownID, "unknown_schema_id", "schema ID 2000000000 is not in the registry"},
		{f.encode("other", check(t, "", at(0), ms(1))), "wrong_schema",
			fmt.Sprintf("message index [0] of schema %d names other.v1.Thing, not sitewatch.v1.CheckResult", f.ids["other"])},
		{append(f.encode("new", &sitewatchv1.CheckResult{})[:6:6], 0xff, 0xff, 0xff), "not_a_check_result", ""},
		{f.encode("new", invalid), "invalid_event",
			`event_id "nope" is not a UUID in canonical form; target.id is empty; started_at is missing; response_time is missing; outcome OUTCOME_UNSPECIFIED`},
		{f.encode("new", expired), "expired", ""},
		{f.encode("new", future), "future", ""},
	}
	var deadRecs []*kgo.Record
	for i, d := range wantDead {
		deadRecs = append(deadRecs, &kgo.Record{Key: fmt.Appendf(nil, "bad-%d", i), Value: d.value,
			Headers: []kgo.RecordHeader{{Key: "origin", Value: []byte("test")}}})
	}
	f.produce(deadRecs[:4]...)
	f.produce(validRecs[:3]...)
	f.produce(deadRecs[4:]...)
	f.produce(validRecs[3:]...)

	r := f.start("-retention", "30d")
	f.waitDrained(r)

	wantRaw := `alpha 10:00 up - 10000 200
alpha 10:01 up - 20000 200
alpha 10:02 up - 30000 200
beta 10:00 down timeout 400000 -
beta 10:05 down http_status 120000 503
gamma 11:00 down dns 2000 -`
	rawSQL := `SELECT concat_ws(' ', target_id, to_char(checked_at AT TIME ZONE 'UTC', 'HH24:MI'), outcome,
		coalesce(failure_kind, '-'), response_time_us, coalesce(status_code::text, '-'))
		FROM check_results ORDER BY target_id, checked_at`
	wantHourly := `alpha 10 checks=3 up=3 down=0 timeout=0 http_status=0 dns=0 min=10000 max=30000 sum=60000 p50=25.000 p95=30.000 p99=30.000
beta 10 checks=2 up=0 down=2 timeout=1 http_status=1 dns=0 min=120000 max=400000 sum=520000 p50=150.000 p95=390.000 p99=398.000
gamma 11 checks=1 up=0 down=1 timeout=0 http_status=0 dns=1 min=2000 max=2000 sum=2000 p50=2.000 p95=2.000 p99=2.000`
	hourlySQL := `SELECT format('%s %s checks=%s up=%s down=%s timeout=%s http_status=%s dns=%s min=%s max=%s sum=%s p50=%s p95=%s p99=%s',
		h.target_id, to_char(h.hour AT TIME ZONE 'UTC', 'HH24'), h.checks, h.up, h.down, h.failures_timeout,
		h.failures_http_status, h.failures_dns, h.response_time_min_us, h.response_time_max_us,
		h.response_time_sum_us, a.p50_ms, a.p95_ms, a.p99_ms)
		FROM check_results_hourly h JOIN availability_hourly a USING (target_id, hour) ORDER BY 1`
	assertTables := func(stage string) {
		t.Helper()
		if got := rows(t, f.db, rawSQL); got != wantRaw {
			t.Errorf("%s: raw rows:\n%s\nwant:\n%s", stage, got, wantRaw)
		}
		if got := rows(t, f.db, hourlySQL); got != wantHourly {
			t.Errorf("%s: hourly:\n%s\nwant:\n%s", stage, got, wantHourly)
		}
	}
	assertTables("first delivery")
	if got, want := rows(t, f.db, `SELECT concat_ws(' ', content_pattern, content_matched, bytes_read, redirects,
		to_char(tls_cert_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS'), prober_instance, prober_region)
		FROM check_results WHERE content_pattern IS NOT NULL`), "Welcome t 1234 2 2027-01-02T03:04:05 p1 local"; got != want {
		t.Errorf("event with every field: %q, want %q", got, want)
	}
	// Events of the old schema, and of a check without a response, have
	// neither; a decoded body of 0 bytes is 0, not NULL.
	if got, want := rows(t, f.db, `SELECT concat_ws(' ', target_id, to_char(checked_at AT TIME ZONE 'UTC', 'HH24:MI'),
		coalesce(protocol, '-'), coalesce(decoded_bytes::text, '-'))
		FROM check_results ORDER BY target_id, checked_at`), `alpha 10:00 - -
alpha 10:01 - -
alpha 10:02 HTTP/2.0 5678
beta 10:00 - -
beta 10:05 HTTP/1.1 0
gamma 11:00 - -`; got != want {
		t.Errorf("protocol and decoded bytes:\n%s\nwant:\n%s", got, want)
	}
	if got, want := rows(t, f.db, `SELECT concat_ws(' ', target_id, state, url) FROM target_status ORDER BY 1`),
		"alpha up https://alpha.test/\nbeta down https://beta.test/\ngamma down https://gamma.test/"; got != want {
		t.Errorf("target_status:\n%s\nwant:\n%s", got, want)
	}

	dead := f.dlq(len(wantDead))
	for i, d := range wantDead {
		got := dead[i]
		if header(got, consume.HeaderReason) != d.reason ||
			(d.detail != "" && header(got, consume.HeaderDetail) != d.detail) ||
			header(got, consume.HeaderTopic) != f.topic || header(got, consume.HeaderPartition) != "0" ||
			header(got, "origin") != "test" ||
			!bytes.Equal(got.Key, deadRecs[i].Key) || !bytes.Equal(got.Value, d.value) {
			t.Errorf("dead letter %d: key %q reason %q detail %q topic %q partition %q, want key %q reason %q detail %q",
				i, got.Key, header(got, consume.HeaderReason), header(got, consume.HeaderDetail),
				header(got, consume.HeaderTopic), header(got, consume.HeaderPartition), deadRecs[i].Key, d.reason, d.detail)
		}
	}
	// Offsets: bad-0..3 are 0-3, the valid ones 4-6, bad-4..7 are 7-10.
	var offsets []string
	for _, d := range dead {
		offsets = append(offsets, header(d, consume.HeaderOffset))
	}
	if got, want := strings.Join(offsets, ","), "0,1,2,3,7,8,9,10"; got != want {
		t.Errorf("dead letters' source offsets %s, want %s", got, want)
	}

	metrics := r.metrics(t)
	for _, want := range []string{
		"sitewatch_recorder_events_stored_total 6",
		"sitewatch_recorder_duplicates_skipped_total 0",
		`sitewatch_recorder_dead_lettered_total{reason="expired"} 1`,
		`sitewatch_recorder_dead_lettered_total{reason="no_magic_byte"} 1`,
		`sitewatch_recorder_dead_lettered_total{reason="unknown_schema_id"} 1`,
		"sitewatch_recorder_end_to_end_delay_seconds_count 6",
		`sitewatch_recorder_consumer_lag{partition="0",topic="` + f.topic + `"} 0`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	r.stop(t)

	// The same events again (a producer retrying): nothing changes.
	f.produce(slices.Clone(validRecs)...)
	r = f.start("-retention", "30d")
	f.waitDrained(r)
	if m := r.metrics(t); !strings.Contains(m, "sitewatch_recorder_duplicates_skipped_total 6\n") ||
		!strings.Contains(m, "sitewatch_recorder_events_stored_total 0\n") {
		t.Errorf("after redelivery, metrics say:\n%s", grep(m, "sitewatch_recorder_(duplicates|events)"))
	}
	r.stop(t)
	assertTables("after redelivery")

	// Rewind the group and replay the whole topic: nothing changes.
	if err := run(context.Background(), []string{"-topic", f.topic, "-group", f.group, "-targets-topic", f.targets, "reset-offsets"}, f.getenv, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	committed, err := f.adm.FetchOffsets(context.Background(), f.group)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := committed.Lookup(f.topic, 0); o.At != 0 {
		t.Fatalf("after reset-offsets the group is at %d, want 0", o.At)
	}
	r = f.start("-retention", "30d")
	f.waitDrained(r)
	if m := r.metrics(t); !strings.Contains(m, "sitewatch_recorder_duplicates_skipped_total 12\n") {
		t.Errorf("after replay, metrics say:\n%s", grep(m, "sitewatch_recorder_(duplicates|events)"))
	}
	r.stop(t)
	assertTables("after replay")
}

// Two probers of one region publish a result of the same slot (two owners
// during a rebalance): the recorder stores and counts the first, counts the
// other in sitewatch_recorder_duplicate_slots_total; another region's
// result of the slot and an old prober's event without a slot are stored.
// Delivered again, nothing changes in the tables.
func TestRecorderSlotDuplicatesEndToEnd(t *testing.T) {
	f := newFixture(t, 1)
	slot := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	ofSlot := func(instance, region string, rt time.Duration) *sitewatchv1.CheckResult {
		m := check(t, "", slot.Add(rt), rt)
		m.Prober = &sitewatchv1.Prober{Instance: instance, Region: region}
		m.ScheduledAt = timestamppb.New(slot)
		return m
	}
	first, second := ofSlot("p1", "eu", ms(10)), ofSlot("p2", "eu", ms(20))
	otherRegion := ofSlot("p3", "us", ms(30))
	old := check(t, "", slot.Add(ms(40)), ms(40))
	var recs []*kgo.Record
	for _, m := range []*sitewatchv1.CheckResult{first, second, otherRegion} {
		recs = append(recs, &kgo.Record{Key: []byte(m.Target.Id), Value: f.encode("new", m)})
	}
	recs = append(recs, &kgo.Record{Key: []byte(old.Target.Id), Value: f.encode("old", old)})
	f.produce(slices.Clone(recs)...)

	r := f.start()
	f.waitDrained(r)
	assertTables := func(stage string) {
		t.Helper()
		if got, want := rows(t, f.db, `SELECT concat_ws(' ', prober_instance, prober_region, response_time_us,
			coalesce(to_char(scheduled_at AT TIME ZONE 'UTC', 'HH24:MI:SS'), '-')) FROM check_results ORDER BY checked_at`),
			fmt.Sprintf("p1 eu 10000 %s\np3 us 30000 %[1]s\np1 local 40000 -", slot.Format(time.TimeOnly)); got != want {
			t.Errorf("%s: raw rows:\n%s\nwant:\n%s", stage, got, want)
		}
		if got, want := rows(t, f.db, `SELECT format('%s %s', checks, response_time_sum_us) FROM check_results_hourly`), "3 80000"; got != want {
			t.Errorf("%s: hourly rollup %q, want %q", stage, got, want)
		}
		if got, want := rows(t, f.db, `SELECT format('%s %s %s', region, checks, availability_pct) FROM availability_region_daily ORDER BY region`),
			"eu 1 100.000\nlocal 1 100.000\nus 1 100.000"; got != want {
			t.Errorf("%s: availability per region:\n%s\nwant:\n%s", stage, got, want)
		}
	}
	assertTables("first delivery")
	m := r.metrics(t)
	for _, want := range []string{
		"sitewatch_recorder_events_stored_total 3",
		"sitewatch_recorder_duplicate_slots_total 1",
		"sitewatch_recorder_duplicates_skipped_total 0",
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, grep(m, "sitewatch_recorder_(dup|events)"))
		}
	}
	r.stop(t)

	// Delivered again: the three stored are known event IDs; the slot's
	// loser loses again.
	f.produce(slices.Clone(recs)...)
	r = f.start()
	f.waitDrained(r)
	m = r.metrics(t)
	for _, want := range []string{
		"sitewatch_recorder_events_stored_total 0",
		"sitewatch_recorder_duplicate_slots_total 1",
		"sitewatch_recorder_duplicates_skipped_total 3",
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("after redelivery, metrics lack %q:\n%s", want, grep(m, "sitewatch_recorder_(dup|events)"))
		}
	}
	r.stop(t)
	assertTables("after redelivery")
}

func grep(text, pattern string) string {
	re := regexp.MustCompile(pattern)
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// reset-offsets refuses while a recorder of the group runs.
func TestResetOffsetsRefusesLiveGroup(t *testing.T) {
	f := newFixture(t, 1)
	r := f.start()
	deadline := time.Now().Add(60 * time.Second)
	for {
		groups, err := f.adm.DescribeGroups(context.Background(), f.group)
		if err == nil && len(groups[f.group].Members) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recorder did not join group %s\nlogs:\n%s", f.group, r.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	err := run(context.Background(), []string{"-topic", f.topic, "-group", f.group, "-targets-topic", f.targets, "reset-offsets"}, f.getenv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "live members") {
		t.Fatalf("reset-offsets with a live recorder: %v, want a refusal", err)
	}
	r.stop(t)
}

// tcpProxy stands between the recorder and PostgreSQL so a test can take
// the database away and give it back without touching the shared server.
type tcpProxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }() //nolint:errcheck // ends with either side
			go func() { io.Copy(c, u); c.Close() }() //nolint:errcheck // ends with either side
		}
	}()
}

// down refuses new connections and cuts the open ones.
func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// up listens again on the same address.
func (p *tcpProxy) up() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

// With PostgreSQL gone the recorder stops consuming, retries the batch in
// hand with backoff and reports not ready; when it is back, the batch is
// stored and every count is exact.
func TestRecorderSurvivesDatabaseOutage(t *testing.T) {
	f := newFixture(t, 1)
	u, err := url.Parse(f.env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, u.Host)
	u.Host = proxy.addr
	f.env["DATABASE_URL"] = u.String()

	base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			m := check(t, "", base.Add(time.Duration(i)*time.Minute), time.Duration(10+i)*time.Millisecond)
			f.produce(&kgo.Record{Key: []byte("alpha"), Value: f.encode("new", m)})
		}
	}
	r := f.start()
	produce(0, 3)
	f.waitDrained(r)

	proxy.down()
	produce(3, 6)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(r.metrics(t), `sitewatch_recorder_retries_total{what="database"} 2`+"\n") {
		if time.Now().After(deadline) {
			t.Fatalf("no database retries while PostgreSQL is away:\n%s", grep(r.metrics(t), "retries"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code := r.get(t, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz answered %d with the database away, want 503", code)
	}
	committed, err := f.adm.FetchOffsets(context.Background(), f.group)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := committed.Lookup(f.topic, 0); o.At != 3 {
		t.Errorf("committed offset %d while the batch could not be stored, want 3", o.At)
	}

	proxy.up()
	f.waitDrained(r)
	if code := r.get(t, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz answered %d with the database back, want 200", code)
	}
	r.stop(t)
	if got := rows(t, f.db, `SELECT format('raw=%s checks=%s sum=%s', (SELECT count(*) FROM check_results), sum(checks), sum(response_time_sum_us))
		FROM check_results_hourly`); got != "raw=6 checks=6 sum=75000" {
		t.Errorf("after the outage: %s, want raw=6 checks=6 sum=75000", got)
	}
}

// get requests path of the recorder's operational listener and returns the
// status code.
func (r *recorder) get(t *testing.T, path string) int {
	t.Helper()
	m := regexp.MustCompile(`"msg":"operational endpoints listening","addr":"([^"]+)"`).FindStringSubmatch(r.logs.String())
	if m == nil {
		t.Fatalf("no listening address in the logs")
	}
	resp, err := http.Get("http://" + m[1] + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Bad flags and environment are refused with a message naming the culprit,
// and never echo a password.
func TestParseConfigErrors(t *testing.T) {
	good := map[string]string{
		"DATABASE_URL":        "postgres://u:secret@127.0.0.1:5432/db?sslmode=disable",
		"SCHEMA_REGISTRY_URL": "http://127.0.0.1:8081/apis/ccompat/v7",
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"zero batch", []string{"-batch", "0"}, good, "-batch: 0 is not between 1 and 1000000"},
		{"session timeout below the broker minimum", []string{"-session-timeout", "2s"}, good, "-session-timeout: 2s is not between 6s and 5m"},
		{"retention under two days", []string{"-retention", "1d"}, good, "-retention: 24h0m0s: use 0 (keep everything) or at least 2d"},
		{"retention not a duration", []string{"-retention", "4x"}, good, `invalid value "4x" for flag -retention`},
		{"unknown command", []string{"frobnicate"}, good, `unknown command "frobnicate"`},
		{"every error at once", []string{"-batch", "x", "-retention", "4x", "-topic", " "}, good,
			"invalid value \"x\" for flag -batch: parse error\n" +
				"invalid value \"4x\" for flag -retention: time: unknown unit \"x\" in duration \"4x\"\n" +
				"-topic: empty"},
		{"flags after the command", []string{"migrate", "-batch", "5"}, good, "unexpected arguments after migrate"},
		{"no database", nil, map[string]string{"SCHEMA_REGISTRY_URL": good["SCHEMA_REGISTRY_URL"]}, "DATABASE_URL: not set"},
		{"bad database URL", nil, map[string]string{"DATABASE_URL": "postgres://u:secret@h:99999999/x", "SCHEMA_REGISTRY_URL": "http://r"},
			"DATABASE_URL: not a valid PostgreSQL connection string"},
		{"no registry", nil, map[string]string{"DATABASE_URL": good["DATABASE_URL"]}, "SCHEMA_REGISTRY_URL: not set"},
		{"bad SASL", nil, map[string]string{"DATABASE_URL": good["DATABASE_URL"], "SCHEMA_REGISTRY_URL": "http://r", "KAFKA_SASL_MECHANISM": "GSSAPI"},
			`KAFKA_SASL_MECHANISM: "GSSAPI" is not one of`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
	c, err := parseConfig([]string{"-retention", "400d"}, func(k string) string { return good[k] }, io.Discard)
	if err != nil || c.retention != 400*24*time.Hour || c.batch != 50000 || c.topic != "check-results" || c.group != "sitewatch-recorder" {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
}

// Two recorders share the group: the second joins while the first idles
// with a batch just landed, partitions move when the first stops, and every
// event is counted once.
func TestRecorderRebalance(t *testing.T) {
	f := newFixture(t, 4)
	base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	produce := func(from, to int) {
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			m := withTarget(check(t, "", base.Add(time.Duration(i)*time.Second), time.Duration(1+i%50)*time.Millisecond), fmt.Sprintf("t%02d", i%20))
			recs = append(recs, &kgo.Record{Key: []byte(m.Target.Id), Value: f.encode("new", m)})
		}
		f.produce(recs...)
	}
	members := func(want int) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for {
			g, err := f.adm.DescribeGroups(context.Background(), f.group)
			if err == nil && len(g[f.group].Members) == want && g[f.group].State == "Stable" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("group %s did not settle with %d members", f.group, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	r1 := f.start("-batch", "50")
	produce(0, 200)
	f.waitDrained(r1)
	r2 := f.start("-batch", "50")
	members(2)
	produce(200, 400)
	f.waitDrained(r1)
	r1.stop(t)
	members(1)
	produce(400, 600)
	f.waitDrained(r2)
	r2.stop(t)
	if got := rows(t, f.db, `SELECT format('raw=%s checks=%s targets=%s', (SELECT count(*) FROM check_results), sum(checks),
		(SELECT count(*) FROM targets)) FROM check_results_hourly`); got != "raw=600 checks=600 targets=20" {
		t.Errorf("after the rebalances: %s, want raw=600 checks=600 targets=20", got)
	}
}

// With PostgreSQL gone for longer than the shutdown grace, SIGTERM still
// ends the recorder promptly, with an error; the group keeps the offsets of
// what was stored, not of what was polled (the batch that failed and the one
// decoded behind it), and the next recorder stores the rest exactly once.
func TestRecorderStopsWhenBatchCannotBeStored(t *testing.T) {
	f := newFixture(t, 1)
	u, err := url.Parse(f.env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, u.Host)
	dbURL := f.env["DATABASE_URL"]
	u.Host = proxy.addr
	f.env["DATABASE_URL"] = u.String()

	base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	produce := func(from, to int) {
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			m := check(t, "", base.Add(time.Duration(i)*time.Minute), time.Duration(10+i)*time.Millisecond)
			recs = append(recs, &kgo.Record{Key: []byte("alpha"), Value: f.encode("new", m)})
		}
		f.produce(recs...)
	}
	const grace = 2 * time.Second
	r := f.start("-shutdown-grace", grace.String())
	produce(0, 3)
	f.waitDrained(r)

	proxy.down()
	produce(3, 12) // batches of 4: one in flight, the next decoded behind it
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(r.metrics(t), `sitewatch_recorder_retries_total{what="database"} 2`+"\n") {
		if time.Now().After(deadline) {
			t.Fatalf("no database retries while PostgreSQL is away:\n%s", grep(r.metrics(t), "retries"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopped := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		if err == nil || !strings.Contains(err.Error(), "batch not stored") {
			t.Errorf("recorder exited with %v, want a batch not stored", err)
		}
		if took := time.Since(stopped); took > grace+10*time.Second {
			t.Errorf("recorder took %s to stop, want at most the grace %s and a few seconds", took, grace)
		}
	case <-time.After(grace + 30*time.Second):
		t.Fatalf("recorder did not stop within %s of SIGTERM with the database away\nlogs:\n%s", grace+30*time.Second, r.logs.String())
	}
	committed, err := f.adm.FetchOffsets(context.Background(), f.group)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := committed.Lookup(f.topic, 0); o.At != 3 {
		t.Errorf("committed offset %d after a failed batch, want 3 (what was stored)", o.At)
	}

	proxy.up()
	f.env["DATABASE_URL"] = dbURL
	r = f.start()
	f.waitDrained(r)
	r.stop(t)
	if got := rows(t, f.db, `SELECT format('raw=%s checks=%s sum=%s', (SELECT count(*) FROM check_results), sum(checks), sum(response_time_sum_us))
		FROM check_results_hourly`); got != "raw=12 checks=12 sum=186000" {
		t.Errorf("after the restart: %s, want raw=12 checks=12 sum=186000", got)
	}
}

// Logs go to stderr, leaving stdout to output (the recorder has none).
func TestLogsGoToStderr(t *testing.T) {
	db := stackdb.Database(t)
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string {
		if k == "DATABASE_URL" {
			return db
		}
		return ""
	}
	if err := run(context.Background(), []string{"migrate"}, getenv, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if stdout.Len() != 0 || !strings.Contains(stderr.String(), `"msg":"database schema up to date"`) {
		t.Errorf("stdout %q, stderr %q: want the logs on stderr only", stdout.String(), stderr.String())
	}
}
