package targetstopic

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

// The message index that records carry must name Target in the schema the
// registry holds: the second top-level message of check_result.proto
// (CheckResult is the first). A consumer in another language resolves the
// index against the registry's text, not against our generated code.
func TestMessageIndexNamesTargetInTheRegistry(t *testing.T) {
	reg := stacktest.Registry(t)
	ctx := context.Background()
	topic := stacktest.Name("targets")
	c, err := Register(ctx, reg, topic)
	if err != nil {
		t.Fatal(err)
	}
	m := &sitewatchv1.Target{Id: "a", Url: "http://127.0.0.1/"}
	b, err := c.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	var h sr.ConfluentHeader
	id, rest, err := h.DecodeID(b)
	if err != nil {
		t.Fatal(err)
	}
	idx, _, err := h.DecodeIndex(rest, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx) != 1 || idx[0] != 1 {
		t.Fatalf("message index %v, want [1]", idx)
	}
	s, err := reg.SchemaByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var messages []string
	for _, line := range strings.Split(s.Schema, "\n") {
		if name, ok := strings.CutPrefix(line, "message "); ok {
			messages = append(messages, strings.TrimSuffix(name, " {"))
		}
	}
	if len(messages) < 2 || messages[idx[0]] != "Target" {
		t.Fatalf("the registry's schema %d has the top-level messages %v; index %v is not Target", id, messages, idx)
	}
	got, err := Decode(b)
	if err != nil || !proto.Equal(got, m) {
		t.Fatalf("Decode = %v, %v", got, err)
	}
	comp := reg.Compatibility(ctx, kafkaenv.Subject(topic))
	if len(comp) != 1 || comp[0].Err != nil || comp[0].Level != sr.CompatBackward {
		t.Fatalf("compatibility of %s: %+v, want BACKWARD", kafkaenv.Subject(topic), comp)
	}
}

func TestEnsureCreatesACompactedTopic(t *testing.T) {
	cl := stacktest.KafkaClient(t)
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	topic := stacktest.Name("targets")
	for range 2 { // creates, then finds it as it should be
		if err := Ensure(ctx, adm, topic, 7); err != nil {
			t.Fatal(err)
		}
	}
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(details[topic].Partitions); n != 7 {
		t.Errorf("%d partitions, want 7", n)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cfgs.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && (c.Value == nil || *c.Value != "compact") {
			t.Errorf("cleanup.policy %v, want compact", c.MaybeValue())
		}
	}
	other := stacktest.Name("targets")
	del := "delete"
	if _, err := adm.CreateTopic(ctx, 7, -1, map[string]*string{"cleanup.policy": &del}, other); err != nil {
		t.Fatal(err)
	}
	want := "the targets topic exists with other settings: " + other + " has cleanup.policy=delete, not compact: it would lose targets"
	if err := Ensure(ctx, adm, other, 7); err == nil || err.Error() != want {
		t.Errorf("Ensure on a deleting topic: %v, want %s", err, want)
	}

	// compact,delete also deletes whole segments by age or size: a target
	// applied once and left alone would go with its segment.
	both := "compact,delete"
	aged := stacktest.Name("targets")
	if _, err := adm.CreateTopic(ctx, 7, -1, map[string]*string{"cleanup.policy": &both}, aged); err != nil {
		t.Fatal(err)
	}
	want = "the targets topic exists with other settings: " + aged + " has cleanup.policy=compact,delete with retention.ms=604800000 and retention.bytes=-1: it would delete targets applied longer ago; set both to -1, or cleanup.policy=compact"
	if err := Ensure(ctx, adm, aged, 7); err == nil || err.Error() != want {
		t.Errorf("Ensure on a compacted topic that deletes by age: %v, want %s", err, want)
	}
	kept := stacktest.Name("targets")
	never := "-1"
	if _, err := adm.CreateTopic(ctx, 7, -1, map[string]*string{"cleanup.policy": &both, "retention.ms": &never}, kept); err != nil {
		t.Fatal(err)
	}
	if err := Ensure(ctx, adm, kept, 7); err != nil {
		t.Errorf("Ensure on compact,delete without retention: %v", err)
	}
}

func TestDecodeRefusesOtherRecords(t *testing.T) {
	for _, tt := range []struct {
		name  string
		value []byte
		want  string
	}{
		{"not the wire format", []byte("{}"), "not in the Confluent wire format: 5 byte header for value is missing or does not have 0 magic byte"},
		{"CheckResult's index", []byte{0, 0, 0, 0, 1, 0}, "message index [0] is not Target's [1]"},
		{"not a Target", []byte{0, 0, 0, 0, 1, 2, 2, 0xff}, "not a Target: "},
	} {
		_, err := Decode(tt.value)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.want)
		}
	}
}

// A record outside its key's partition is not part of the state: probers
// skip it, and apply could never remove it with a tombstone of its own.
func TestReadLeavesOutMisplacedRecords(t *testing.T) {
	cl := stacktest.KafkaClient(t)
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	topic := stacktest.Name("targets")
	if err := Ensure(ctx, adm, topic, 4); err != nil {
		t.Fatal(err)
	}
	c, err := Register(ctx, stacktest.Registry(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Record(topic, &sitewatchv1.Target{Id: "x", Url: "http://127.0.0.1:8080/", Interval: durationpb.New(time.Minute), Timeout: durationpb.New(time.Second), Method: "GET", MaxBodyBytes: 1024, ExpectStatus: []*sitewatchv1.StatusRange{{Min: 200, Max: 299}}})
	if err != nil {
		t.Fatal(err)
	}
	right := kgo.StickyKeyPartitioner(nil).ForTopic(topic).Partition(r, 4)
	r.Partition = int32((right + 1) % 4)
	pcl := stacktest.KafkaClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := pcl.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	opts, err := stacktest.KafkaConfig(t).ClientOpts()
	if err != nil {
		t.Fatal(err)
	}
	st, err := Read(ctx, opts, topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Targets) != 0 || len(st.Bad) != 0 {
		t.Errorf("targets %v, bad %v; want none", st.Targets, st.Bad)
	}
	want := fmt.Sprintf("%s partition %d offset 0: target \"x\" belongs in partition %d; remove this record with a tombstone in partition %d", topic, r.Partition, right, r.Partition)
	if len(st.Misplaced) != 1 || st.Misplaced[0] != want {
		t.Errorf("misplaced %q, want [%s]", st.Misplaced, want)
	}
}
