package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/prober/internal/check"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

func result(id string) check.Result {
	return check.Result{Target: &targets.Target{ID: id, URL: "http://" + id + ".test/", Method: "GET"}}
}

// TestBufferDropsTheOldest needs no Kafka: nothing is sent until Run.
func TestBufferDropsTheOldest(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, err := New(kafkaenv.Config{Brokers: []string{"127.0.0.1:1"}, RegistryURL: "http://127.0.0.1:1"},
		Options{Topic: "t", Buffer: 3, Registerer: reg, Compression: kgo.NoCompression()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := 1; i <= 5; i++ {
		p.Publish(result(fmt.Sprint(i)))
	}
	if got := testutil.ToFloat64(p.dropped.WithLabelValues(DropBufferFull)); got != 2 {
		t.Errorf("dropped %v, want 2", got)
	}
	if p.Buffered() != 3 {
		t.Errorf("buffered %d, want 3", p.Buffered())
	}
	out := make([]check.Result, 10)
	n := p.take(out)
	var ids []string
	for _, r := range out[:n] {
		ids = append(ids, r.Target.ID)
	}
	if fmt.Sprint(ids) != "[3 4 5]" {
		t.Errorf("kept %v, want the newest [3 4 5]", ids)
	}
	if p.Buffered() != 0 {
		t.Errorf("buffered %d after taking all, want 0", p.Buffered())
	}
}

func TestIncompatibleSchemaStopsStartUp(t *testing.T) {
	kcfg := stacktest.KafkaConfig(t)
	registry := stacktest.Registry(t)
	topic := stacktest.Name("prober_incompatible")
	subject := topic + "-value"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Someone registered a CheckResult whose field 1 is a number, with
	// BACKWARD compatibility: ours (a string) must be refused.
	old := "syntax = \"proto3\";\npackage sitewatch.v1;\nmessage CheckResult {\n  int64 event_id = 1;\n}\n"
	if _, err := registry.CreateSchema(ctx, subject, sr.Schema{Schema: old, Type: sr.TypeProtobuf}); err != nil {
		t.Fatal(err)
	}
	if r := registry.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatBackward}, subject); r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	t.Cleanup(func() {
		for _, how := range []sr.DeleteHow{sr.SoftDelete, sr.HardDelete} {
			if _, err := registry.DeleteSubject(context.Background(), subject, how); err != nil {
				t.Logf("clean-up: delete subject %s: %v", subject, err)
			}
		}
	})

	p, err := New(kcfg, Options{Topic: topic, Partitions: 1, ReplicationFactor: -1, Buffer: 10,
		Compression: kgo.NoCompression(), FlushTimeout: time.Second, Prober: &sitewatchv1.Prober{Instance: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.Run(ctx)
	if !errors.Is(err, ErrIncompatibleSchema) {
		t.Fatalf("Run: %v, want ErrIncompatibleSchema", err)
	}
	t.Logf("start-up error: %v", err)
	if p.Ready(ctx) == nil {
		t.Error("ready after an incompatible schema")
	}
}

func TestUnreachableRegistryRetriesUntilStopped(t *testing.T) {
	kcfg := stacktest.KafkaConfig(t)
	kcfg.RegistryURL = "http://127.0.0.1:1/apis/ccompat/v7" // nothing listens there
	p, err := New(kcfg, Options{Topic: stacktest.Name("prober_noregistry"), Partitions: 1, ReplicationFactor: -1,
		Buffer: 10, Compression: kgo.NoCompression(), FlushTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p.Publish(result("a"))
	start := time.Now()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run: %v, want nil after retrying until stopped", err)
	}
	if took := time.Since(start); took < 1900*time.Millisecond {
		t.Errorf("Run returned after %v, before it was stopped", took)
	}
	err = p.Ready(context.Background())
	if err == nil {
		t.Fatal("ready without a registry")
	}
	t.Logf("readiness: %v", err)
}

// TestRunSendsEverythingQueuedAtStop stops the publisher right after a
// burst: every result queued must reach Kafka, once, keyed by target.
func TestRunSendsEverythingQueuedAtStop(t *testing.T) {
	kcfg := stacktest.KafkaConfig(t)
	stacktest.Registry(t)
	topic := stacktest.Name("prober_stop")
	reg := prometheus.NewRegistry()
	p, err := New(kcfg, Options{Topic: topic, Partitions: 3, ReplicationFactor: -1, Buffer: 5000,
		Compression: kgo.Lz4Compression(), Linger: 50 * time.Millisecond, FlushTimeout: 20 * time.Second,
		Prober: &sitewatchv1.Prober{Instance: "t"}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for p.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready in 30s: %v", p.Ready(context.Background()))
		}
		time.Sleep(50 * time.Millisecond)
	}
	const n = 3000
	for i := range n {
		p.Publish(result(fmt.Sprintf("target-%d", i%50)))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(p.produced); got != n {
		t.Errorf("produced %v, want %d", got, n)
	}
	if got := testutil.ToFloat64(p.produceErrors) + dropped(p); got != 0 {
		t.Errorf("%v errors or drops, want 0", got)
	}

	consumer := stacktest.KafkaClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	perKey := map[string]int{}
	total := 0
	pollCtx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	for total < n && pollCtx.Err() == nil {
		consumer.PollFetches(pollCtx).EachRecord(func(r *kgo.Record) {
			perKey[string(r.Key)]++
			total++
		})
	}
	if total != n || len(perKey) != 50 || perKey["target-0"] != n/50 {
		t.Errorf("read %d records over %d keys (target-0: %d), want %d over 50 keys, %d each", total, len(perKey), perKey["target-0"], n, n/50)
	}
}

// The registry's refusal of an incompatible schema stops the start, whether
// it says so by its error code or only by the HTTP status.
func TestIncompatibleSchemaByCodeOrStatus(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"error code 409", `{"error_code":409,"message":"Schema being registered is incompatible with an earlier schema"}`},
		{"status only", `{"message":"incompatible"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
				w.WriteHeader(http.StatusConflict)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer registry.Close()
			kafka, err := kfake.NewCluster(kfake.NumBrokers(1))
			if err != nil {
				t.Fatal(err)
			}
			defer kafka.Close()
			p, err := New(kafkaenv.Config{Brokers: kafka.ListenAddrs(), RegistryURL: registry.URL},
				Options{Topic: "checks", Partitions: 1, ReplicationFactor: 1, Buffer: 10,
					Compression: kgo.NoCompression(), FlushTimeout: time.Second, Registerer: prometheus.NewRegistry()})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = p.Run(ctx)
			if !errors.Is(err, ErrIncompatibleSchema) || !strings.Contains(err.Error(), "subject checks-value") {
				t.Fatalf("Run: %v, want ErrIncompatibleSchema naming the subject", err)
			}
		})
	}
}
