package stacktest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

// The stack's Kafka is a real broker: a record produced to a new topic is
// fetched back with its key and value.
func TestKafkaProduceConsume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := stacktest.Name("smoke")
	admin := kadm.NewClient(stacktest.KafkaClient(t))
	if _, err := admin.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	t.Cleanup(func() { _, _ = admin.DeleteTopics(context.Background(), topic) })

	producer := stacktest.KafkaClient(t, kgo.DefaultProduceTopic(topic))
	if err := producer.ProduceSync(ctx, &kgo.Record{Key: []byte("k1"), Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	consumer := stacktest.KafkaClient(t,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fetches := consumer.PollFetches(ctx)
	if err := fetches.Err(); err != nil {
		t.Fatalf("poll: %v", err)
	}
	recs := fetches.Records()
	if len(recs) != 1 || string(recs[0].Key) != "k1" || string(recs[0].Value) != "hello" {
		t.Fatalf("fetched %d records, want 1 with key k1 and value hello: %+v", len(recs), recs)
	}
}

// The stack's registry is a real Schema Registry: it stores the CheckResult
// schema, returns it by ID, and refuses an incompatible change under BACKWARD.
func TestRegistryRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reg := stacktest.Registry(t)
	subject := kafkaenv.Subject(stacktest.Name("smoke"))
	t.Cleanup(func() {
		_, _ = reg.DeleteSubject(context.Background(), subject, sr.SoftDelete)
		_, _ = reg.DeleteSubject(context.Background(), subject, sr.HardDelete)
	})

	if r := reg.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatBackward}, subject); r[0].Err != nil {
		t.Fatalf("set compatibility: %v", r[0].Err)
	}
	schema := sr.Schema{Schema: sitewatchv1.Schema, Type: sr.TypeProtobuf}
	ss, err := reg.CreateSchema(ctx, subject, schema)
	if err != nil {
		t.Fatalf("register CheckResult: %v", err)
	}
	got, err := reg.SchemaByID(ctx, ss.ID)
	if err != nil {
		t.Fatalf("schema by ID %d: %v", ss.ID, err)
	}
	if got.Type != sr.TypeProtobuf || !strings.Contains(got.Schema, "message CheckResult") {
		t.Fatalf("schema %d read back as %s %q", ss.ID, got.Type, got.Schema)
	}

	// Changing a field's type breaks readers of old events.
	incompatible := strings.Replace(sitewatchv1.Schema, "string event_id = 1;", "int64 event_id = 1;", 1)
	_, err = reg.CreateSchema(ctx, subject, sr.Schema{Schema: incompatible, Type: sr.TypeProtobuf})
	var re *sr.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 409 {
		t.Fatalf("incompatible schema: got %v, want a 409 from the registry", err)
	}
}
