package consume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
)

// schemaIDs registers, under the topic's subject, the CheckResult schema of
// sitewatch's first release, the current one and a newer one (a field this
// recorder does not know), as producers upgrading over time register them,
// and under a subject of its own a schema that is not a CheckResult. It
// returns their IDs by name: "first", "current", "newer", "other".
func schemaIDs(t *testing.T, r *rig, topic string) map[string]int {
	t.Helper()
	first, err := os.ReadFile("testdata/check_result_571e6de.proto")
	if err != nil {
		t.Fatal(err)
	}
	const last = "optional int64 decoded_bytes = 17;"
	if !strings.Contains(sitewatchv1.Schema, last) {
		t.Fatalf("the schema no longer ends CheckResult with %q: update this test", last)
	}
	newer := strings.Replace(sitewatchv1.Schema, last, last+"\n  string added_later = 99;", 1)
	ids := map[string]int{}
	for _, s := range []struct{ name, subject, text string }{
		{"first", kafkaenv.Subject(topic), string(first)},
		{"current", kafkaenv.Subject(topic), sitewatchv1.Schema},
		{"newer", kafkaenv.Subject(topic), newer},
		{"other", topic + "-other-value", "syntax = \"proto3\";\npackage other.v1;\nmessage Thing { string name = 1; }\n"},
	} {
		ss, err := r.reg.CreateSchema(context.Background(), s.subject, sr.Schema{Schema: s.text, Type: sr.TypeProtobuf})
		if err != nil {
			t.Fatalf("register the %s schema: %v", s.name, err)
		}
		ids[s.name] = ss.ID
	}
	return ids
}

// checkResult is validEvent of target, started at at, taking rt.
func checkResult(target string, at time.Time, rt time.Duration) *sitewatchv1.CheckResult {
	m := validEvent()
	m.Target = &sitewatchv1.Target{Id: target, Url: "https://" + target + ".test/", Method: "GET"}
	m.StartedAt, m.ResponseTime = timestamppb.New(at), durationpb.New(rt)
	return m
}

// runUntilCommitted runs the consumer until the group has committed offset
// end of partition 0, then stops it and returns what Run returned.
func runUntilCommitted(t *testing.T, r *rig, c *Consumer, end int64) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for committed(t, r, c) < end {
		if time.Now().After(deadline) {
			t.Fatalf("offset %d not committed in 30 s (committed: %d)", end, committed(t, r, c))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	return <-done
}

// Run stores the events of every schema a producer may have registered
// (the first release's, without protocol and decoded_bytes, stores NULL for
// them; a newer one's unknown field is ignored), stores a redelivered event
// once, dead-letters each kind of bad record with its reason while storing
// the records after it, and commits the whole partition.
func TestRunStoresEverySchemaAndDeadLettersTheRest(t *testing.T) {
	eachBackend(t, testRunStoresEverySchemaAndDeadLettersTheRest)
}

func testRunStoresEverySchemaAndDeadLettersTheRest(t *testing.T, b backend) {
	r := b.open(t, 0)
	c, _ := openConsumer(t, r, Config{ShutdownGrace: time.Second, MaxBatch: 4})
	ids := schemaIDs(t, r, c.cfg.Topic)
	at := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }

	current := checkResult("alpha", at.Add(time.Minute), ms(20))
	current.Protocol, current.DecodedBytes = "HTTP/2.0", proto.Int64(1200)
	newer := checkResult("beta", at.Add(2*time.Minute), ms(30))
	newer.Protocol = "HTTP/1.1"
	invalid := checkResult("alpha", at.Add(4*time.Minute), ms(50))
	invalid.StatusCode = 1000
	values := [][]byte{
		wire(t, ids["first"], checkResult("alpha", at, ms(10))),
		wire(t, ids["current"], current),
		protowire.AppendString(protowire.AppendTag(wire(t, ids["newer"], newer), 99, protowire.BytesType), "from the future"),
		[]byte("not the wire format"),
		wire(t, 1<<30, checkResult("alpha", at, ms(10))),
		wire(t, ids["other"], checkResult("alpha", at, ms(10))),
		wire(t, ids["current"], invalid),
		wire(t, ids["current"], checkResult("alpha", at.Add(3*time.Minute), ms(40))),
		wire(t, ids["current"], current), // redelivered
	}
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: c.cfg.Topic, Value: v}
	}
	if err := r.client(t).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	if err := runUntilCommitted(t, r, c, int64(len(recs))); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := r.rows(t), strings.Join([]string{
		"alpha 10000 - -", "alpha 20000 HTTP/2.0 1200", "beta 30000 HTTP/1.1 -", "alpha 40000 - -"}, "\n"); got != want {
		t.Errorf("stored (target response_time_us protocol decoded_bytes):\n%s\nwant:\n%s", got, want)
	}
	dead := deadLetters(t, r, c, 4)
	for i, want := range []struct {
		offset         int
		reason, detail string
	}{
		{3, ReasonNoMagicByte, "the value does not start with the wire format's magic byte 0"},
		{4, ReasonUnknownSchemaID, fmt.Sprintf("schema ID %d is not in the registry", 1<<30)},
		{5, ReasonWrongSchema, fmt.Sprintf("message index [0] of schema %d names other.v1.Thing, not sitewatch.v1.CheckResult", ids["other"])},
		{6, ReasonInvalidEvent, "status_code 1000"},
	} {
		d := dead[i]
		if header(d, HeaderReason) != want.reason || header(d, HeaderDetail) != want.detail ||
			header(d, HeaderOffset) != fmt.Sprint(want.offset) || header(d, HeaderTopic) != c.cfg.Topic {
			t.Errorf("dead letter %d: reason %q detail %q topic %q offset %q, want %s %q of %s offset %d", i,
				header(d, HeaderReason), header(d, HeaderDetail), header(d, HeaderTopic), header(d, HeaderOffset),
				want.reason, want.detail, c.cfg.Topic, want.offset)
		}
		if got := testutil.ToFloat64(c.m.deadLettered.WithLabelValues(want.reason)); got != 1 {
			t.Errorf("%s dead letters counted: %v, want 1", want.reason, got)
		}
	}
	if got := testutil.ToFloat64(c.m.stored); got != 4 {
		t.Errorf("stored counted: %v, want 4", got)
	}
	if got := testutil.ToFloat64(c.m.duplicates); got != 1 {
		t.Errorf("duplicates counted: %v, want 1 (the redelivered event)", got)
	}
}

// errConnRefused is how a store's write fails while PostgreSQL is away.
var errConnRefused = errors.New("failed to connect to `user=sitewatch database=sitewatch`: 127.0.0.1:15432: dial error: connection refused")

// With the store away for longer than the shutdown grace, Run gives up the
// batch in hand with an error, and the group keeps the offsets of what was
// stored, not of what was polled (the batch that failed and the one decoded
// behind it); the next member of the group stores the rest exactly once.
func TestRunCommitsOnlyWhatIsStored(t *testing.T) {
	r := fakeRig(t, 0)
	cfg := Config{ShutdownGrace: 300 * time.Millisecond, MaxBatch: 4}
	c, closeC := openConsumer(t, r, cfg)
	ids := schemaIDs(t, r, c.cfg.Topic)
	at := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	produce := func(from, to int) {
		t.Helper()
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			m := checkResult("alpha", at.Add(time.Duration(i)*time.Minute), time.Duration(10+i)*time.Millisecond)
			recs = append(recs, &kgo.Record{Topic: c.cfg.Topic, Value: wire(t, ids["current"], m)})
		}
		if err := r.client(t).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, "the first 3 records committed", func() bool { return committed(t, r, c) == 3 })

	r.fake.setDown(errConnRefused)
	produce(3, 12) // batches of 4: one in flight, the next decoded behind it
	waitFor(t, "two database retries", func() bool {
		return testutil.ToFloat64(c.m.retries.WithLabelValues("database")) >= 2
	})
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "batch not stored (will be redelivered): database: "+errConnRefused.Error()) {
			t.Errorf("Run returned %v, want the batch not stored for the database", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of its context ending with the store away")
	}
	closeC() // revokes the partition: commits what is stored, nothing more
	if got := committed(t, r, c); got != 3 {
		t.Errorf("committed offset %d after a failed batch, want 3 (what was stored)", got)
	}

	r.fake.setDown(nil)
	cfg.Topic, cfg.Group = c.cfg.Topic, c.cfg.Group
	next, _ := openConsumer(t, r, cfg)
	if err := runUntilCommitted(t, r, next, 12); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := r.summary(t), "rows=12 response_time_us=186000"; got != want {
		t.Errorf("stored %s, want %s (10+11+...+21 ms, each once)", got, want)
	}
}

// When the commit after a stored batch fails, the offsets are committed when
// the partition is revoked (here, on leaving the group), so that the next
// owner does not redo the batch; offsets polled but not stored never are.
func TestRevokeCommitsWhatIsStored(t *testing.T) {
	r := fakeRig(t, 0)
	c, closeC := openConsumer(t, r, Config{ShutdownGrace: time.Second, MaxBatch: 100})
	ids := schemaIDs(t, r, c.cfg.Topic)
	at := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	var recs []*kgo.Record
	for i := range 5 {
		m := checkResult("alpha", at.Add(time.Duration(i)*time.Minute), time.Duration(10+i)*time.Millisecond)
		recs = append(recs, &kgo.Record{Topic: c.cfg.Topic, Value: wire(t, ids["current"], m)})
	}
	if err := r.client(t).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The broker refuses the first offset commit, as it would one that
	// reaches a coordinator moving away.
	var refused atomic.Int32
	r.cluster.ControlKey(int16(kmsg.OffsetCommit), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		req := kreq.(*kmsg.OffsetCommitRequest)
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.OffsetMetadataTooLarge.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		refused.Add(1)
		return resp, nil, true
	})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, "the batch stored and its commit refused", func() bool {
		return refused.Load() == 1 && r.summary(t) == "rows=5 response_time_us=60000"
	})
	if got := committed(t, r, c); got != -1 {
		t.Errorf("committed offset %d after the refused commit, want none (-1)", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	closeC()
	if got := committed(t, r, c); got != 5 {
		t.Errorf("committed offset %d after leaving the group, want 5 (the stored batch)", got)
	}
}

// waitFor polls cond until it holds, for at most 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 20 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
