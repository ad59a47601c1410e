package publish

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"google.golang.org/protobuf/proto"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/prober/internal/spool"
)

// fakeKafka is kfake with a switch that refuses every produce request (the
// connection is closed, as when the broker is gone), while metadata and
// topic creation still answer.
type fakeKafka struct {
	c    *kfake.Cluster
	down atomic.Bool
	kcfg kafkaenv.Config
}

func newFakeKafka(t testing.TB) *fakeKafka {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	reg := srfake.New()
	t.Cleanup(reg.Close)
	f := &fakeKafka{c: c, kcfg: kafkaenv.Config{Brokers: c.ListenAddrs(), RegistryURL: reg.URL()}}
	c.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if f.down.Load() {
			return nil, errors.New("kafka away"), true
		}
		return nil, nil, false
	})
	return f
}

// events reads the topic from the start until n records came, returning
// event IDs per key in topic order.
func (f *fakeKafka) events(t testing.TB, topic string, n int) map[string][]string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.kcfg.Brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	perKey := map[string][]string{}
	got := 0
	for got < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var e sitewatchv1.CheckResult
			// Confluent framing: magic byte, 4-byte schema ID, index [0].
			if err := proto.Unmarshal(r.Value[6:], &e); err != nil {
				t.Fatalf("record %d: %v", got, err)
			}
			perKey[string(r.Key)] = append(perKey[string(r.Key)], e.EventId)
			got++
		})
	}
	if got != n {
		t.Fatalf("read %d records, want %d", got, n)
	}
	return perKey
}

func spoolOptions(t testing.TB, dir string, maxBytes int64) Options {
	return Options{Topic: "checks", Partitions: 3, ReplicationFactor: 1, Buffer: 1000,
		Compression: kgo.NoCompression(), Linger: 5 * time.Millisecond, FlushTimeout: 300 * time.Millisecond,
		Prober:   &sitewatchv1.Prober{Instance: "t"},
		SpoolDir: dir, SpoolMaxBytes: maxBytes, SpoolSync: 50 * time.Millisecond,
		Registerer: prometheus.NewRegistry()}
}

type running struct {
	p    *Publisher
	stop context.CancelFunc
	done chan error
}

func startPublisher(t testing.TB, f *fakeKafka, o Options) *running {
	t.Helper()
	p, err := New(f.kcfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	waitUntil(t, 10*time.Second, "ready", func() bool { return p.Ready(context.Background()) == nil })
	return r
}

func (r *running) close(t testing.TB) {
	t.Helper()
	r.stop()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	r.p.Close()
}

func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// publishN publishes n results over keys, each with a fresh UUIDv7, never
// letting the memory buffer overflow, into an empty spool while Kafka is
// away.
func publishN(t testing.TB, p *Publisher, n, keys int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		r := result(fmt.Sprintf("target-%d", i%keys))
		r.EventID = uuid.Must(uuid.NewV7())
		ids[i] = r.EventID.String()
		p.Publish(r)
		if i%500 == 499 {
			waitUntil(t, 10*time.Second, "memory buffer written to the spool", func() bool { return p.queued() == 0 })
		}
	}
	// Kafka is away in every caller: once the writer appended the batch it
	// took last (queued() is 0 already while it encodes it), each result is
	// spooled or dropped at the cap.
	waitUntil(t, 10*time.Second, "memory buffer written to the spool", func() bool {
		spoolFull := testutil.ToFloat64(p.dropped.WithLabelValues(DropSpoolFull))
		return p.queued() == 0 && p.spool.Stats().Records+int64(spoolFull) == int64(n)
	})
	return ids
}

// dropped sums the dropped counter over its reasons.
func dropped(p *Publisher) float64 {
	sum := 0.0
	for _, reason := range []string{DropBufferFull, DropSpoolFull, DropSpoolError, DropCorrupt} {
		sum += testutil.ToFloat64(p.dropped.WithLabelValues(reason))
	}
	return sum
}

func assertOrdered(t testing.TB, perKey map[string][]string, keys, each int) {
	t.Helper()
	if len(perKey) != keys {
		t.Errorf("%d keys, want %d", len(perKey), keys)
	}
	for k, ids := range perKey {
		if len(ids) != each {
			t.Errorf("%s: %d events, want %d", k, len(ids), each)
		}
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] { // UUIDv7 strings sort by time
				t.Fatalf("%s: event %d (%s) after %s: per-key order broken", k, i, ids[i], ids[i-1])
			}
		}
	}
}

func TestSpoolKeepsEveryResultWhileKafkaIsAway(t *testing.T) {
	f := newFakeKafka(t)
	dir := t.TempDir()
	r := startPublisher(t, f, spoolOptions(t, dir, 1<<30))
	defer r.close(t)

	f.down.Store(true)
	const n, keys = 20000, 50
	publishN(t, r.p, n, keys)
	st := r.p.spool.Stats()
	if st.Records != n || dropped(r.p) != 0 {
		t.Fatalf("with Kafka away: %d spooled, %v dropped; want %d and 0", st.Records, dropped(r.p), n)
	}
	if st.Oldest.IsZero() {
		t.Error("oldest spooled age unknown while results wait")
	}
	t.Logf("%d results in %d bytes: %.0f bytes per result", n, st.Bytes, float64(st.Bytes)/n)
	if err := r.p.Ready(context.Background()); err != nil {
		t.Errorf("not ready while Kafka is away and the spool works: %v", err)
	}

	f.down.Store(false)
	waitUntil(t, 30*time.Second, "spool drained", func() bool { return r.p.spool.Stats().Records == 0 })
	assertOrdered(t, f.events(t, "checks", n), keys, n/keys)
	if got := testutil.ToFloat64(r.p.drained); got != n {
		t.Errorf("drained %v, want %d", got, n)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(files) != 1 {
		t.Errorf("%d segment files after the drain, want only the active one", len(files))
	}
}

func TestSpoolIsDeliveredByTheNextProber(t *testing.T) {
	f := newFakeKafka(t)
	dir := t.TempDir()
	f.down.Store(true)
	a := startPublisher(t, f, spoolOptions(t, dir, 1<<30))
	const n, keys = 3000, 10
	publishN(t, a.p, n, keys)
	a.close(t) // Kafka still away: the flush times out, the spool keeps all

	f.down.Store(false)
	b := startPublisher(t, f, spoolOptions(t, dir, 1<<30))
	defer b.close(t)
	waitUntil(t, 30*time.Second, "spool drained", func() bool { return b.p.spool.Stats().Records == 0 })
	assertOrdered(t, f.events(t, "checks", n), keys, n/keys)
	if got := testutil.ToFloat64(b.p.produced); got != n {
		t.Errorf("the second prober produced %v, want the %d the first one spooled", got, n)
	}
}

func TestSpoolCapDropsTheOldest(t *testing.T) {
	f := newFakeKafka(t)
	r := startPublisher(t, f, spoolOptions(t, t.TempDir(), 256<<10))
	defer r.close(t)
	f.down.Store(true)
	const n = 20000
	ids := publishN(t, r.p, n, 1)
	spoolFull := testutil.ToFloat64(r.p.dropped.WithLabelValues(DropSpoolFull))
	if spoolFull == 0 || dropped(r.p) != spoolFull {
		t.Fatalf("dropped %v, of which spool_full %v; want drops, all spool_full", dropped(r.p), spoolFull)
	}
	if st := r.p.spool.Stats(); st.Bytes > 256<<10 {
		t.Errorf("spool %d bytes, cap %d", st.Bytes, 256<<10)
	}
	f.down.Store(false)
	waitUntil(t, 30*time.Second, "spool drained", func() bool { return r.p.spool.Stats().Records == 0 })
	delivered := n - int(spoolFull)
	got := f.events(t, "checks", delivered)["target-0"]
	// In order, the newest last; what is missing is older than what came.
	if got[len(got)-1] != ids[n-1] {
		t.Errorf("the newest result was not delivered last")
	}
	t.Logf("%d delivered, %v dropped (the oldest spooled; the first %d were already in the producer)", delivered, spoolFull, producerBuffer)
}

// fullDisk is a spool whose disk can be made full.
type fullDisk struct {
	spooler
	full atomic.Bool
}

func (d *fullDisk) Append(e []spool.Entry) (int, error) {
	if d.full.Load() {
		return 0, fmt.Errorf("%w: write 00000000000000000001.seg: %w", spool.ErrUnavailable, syscall.ENOSPC)
	}
	return d.spooler.Append(e)
}

// With the disk full and Kafka away, results beyond the producer's buffer
// are dropped and counted; once the disk takes writes again the spool keeps
// them, though Kafka is still away.
func TestFullDiskRecoversWhileKafkaIsAway(t *testing.T) {
	f := newFakeKafka(t)
	p, err := New(f.kcfg, spoolOptions(t, t.TempDir(), 1<<30))
	if err != nil {
		t.Fatal(err)
	}
	disk := &fullDisk{spooler: p.spool}
	p.spool = disk
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	defer r.close(t)
	waitUntil(t, 10*time.Second, "ready", func() bool { return p.Ready(context.Background()) == nil })

	f.down.Store(true)
	disk.full.Store(true)
	const n = producerBuffer + 3000
	for i := range n {
		p.Publish(result(fmt.Sprintf("target-%d", i%10)))
		if i%500 == 499 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	spoolError := func() float64 { return testutil.ToFloat64(p.dropped.WithLabelValues(DropSpoolError)) }
	// The writer must not wait for room in the producer: it would then
	// never try the disk again.
	inProducer := 0
	waitUntil(t, 10*time.Second, "every result in the producer or dropped", func() bool {
		inProducer = int(p.cl.BufferedProduceRecords())
		return p.queued() == 0 && inProducer >= producerBuffer && inProducer+int(spoolError()) == n
	})
	if !p.spoolDown.Load() {
		t.Error("spool not marked unavailable on a full disk")
	}

	disk.full.Store(false)
	for i := range 100 {
		p.Publish(result(fmt.Sprintf("target-%d", i%10)))
	}
	waitUntil(t, 5*time.Second, "results spooled once the disk takes writes again",
		func() bool { return p.spool.Stats().Records == 100 })
	if p.spoolDown.Load() {
		t.Error("spool still marked unavailable after it took writes")
	}
	if got := spoolError(); got != float64(n-inProducer) {
		t.Errorf("dropped spool_error %v, want %d", got, n-inProducer)
	}
}
