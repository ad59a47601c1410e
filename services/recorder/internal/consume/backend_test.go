package consume

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
	"github.com/sitewatch/sitewatch/services/testing/stackdb"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

// rig is what a consumer test runs against: a Kafka cluster, a Schema
// Registry and a store.
type rig struct {
	kafka []kgo.Opt // connection options of the cluster
	reg   *sr.Client
	// regURL is the registry's URL, to put a proxy in front of.
	regURL string
	w      Writer
	// summary tells what is stored: "rows=N response_time_us=S".
	summary func(t *testing.T) string
	// rows lists the stored rows by checked_at, a line each:
	// "target_id response_time_us protocol decoded_bytes", "-" for NULL.
	rows func(t *testing.T) string
	// Only on the fakes: the cluster, to steer its answers, and the store,
	// to take it down.
	cluster *kfake.Cluster
	fake    *fakeStore
}

// backend opens a rig whose store drops days past retention.
type backend struct {
	name string
	open func(t *testing.T, retention time.Duration) *rig
}

// eachBackend runs test against the fast layer's fakes (franz-go's kfake
// and srfake, and fakeStore) and against the stack, which stacktest skips
// under -short (or when the stack is missing outside CI). One body checks
// both, as wild-workouts runs the same repository tests against its memory
// and real stores.
func eachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	for _, b := range []backend{{"fake", fakeRig}, {"stack", stackRig}} {
		t.Run(b.name, func(t *testing.T) { test(t, b) })
	}
}

func fakeRig(t *testing.T, retention time.Duration) *rig {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	registry := srfake.New()
	t.Cleanup(registry.Close)
	reg, err := sr.NewClient(sr.URLs(registry.URL()))
	if err != nil {
		t.Fatal(err)
	}
	fs := newFakeStore(retention)
	return &rig{
		kafka:   []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)},
		reg:     reg,
		regURL:  registry.URL(),
		w:       fs,
		summary: func(*testing.T) string { return fs.summary() },
		rows:    func(*testing.T) string { return fs.rowLines() },
		cluster: cluster,
		fake:    fs,
	}
}

func stackRig(t *testing.T, retention time.Duration) *rig {
	t.Helper()
	ctx := context.Background()
	opts, err := stacktest.KafkaConfig(t).ClientOpts()
	if err != nil {
		t.Fatal(err)
	}
	reg := stacktest.Registry(t)
	url := stackdb.Database(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := store.Migrate(ctx, url, logger); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, url, store.Config{Retention: retention}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	rows := func(t *testing.T) string {
		return queryString(t, url, `SELECT coalesce(string_agg(format('%s %s %s %s', target_id, response_time_us,
				coalesce(protocol, '-'), coalesce(decoded_bytes::text, '-')), E'\n' ORDER BY checked_at), '')
			FROM check_results`)
	}
	return &rig{kafka: opts, reg: reg, regURL: stacktest.Getenv("SCHEMA_REGISTRY_URL"), w: st, rows: rows, summary: func(t *testing.T) string {
		// The rollup must agree with the raw rows; a summary that says so
		// otherwise differs from the fake's.
		return queryString(t, url, `SELECT format('rows=%s response_time_us=%s', count(*),
				CASE WHEN (SELECT coalesce(sum(checks), 0) FROM check_results_hourly) = count(*)
				AND (SELECT coalesce(sum(response_time_sum_us), 0) FROM check_results_hourly) = coalesce(sum(response_time_us), 0)
				THEN coalesce(sum(response_time_us), 0)::text ELSE 'rollup and rows disagree' END)
			FROM check_results`)
	}}
}

// client returns a client of the rig's cluster, closed when the test ends.
func (r *rig) client(t *testing.T, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, r.kafka...), extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// openConsumer returns a consumer writing to the rig's store, and a
// function that closes it (at most once; the test's end does too). Unless
// cfg names them, the topic (of one partition, created with its dead-letter
// topic) and the group are fresh. Its metrics are registered on a registry
// of its own.
func openConsumer(t *testing.T, r *rig, cfg Config) (*Consumer, func()) {
	t.Helper()
	ctx := context.Background()
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 100
	}
	if cfg.Topic == "" {
		cfg.Topic, cfg.Group = stacktest.Name("check-results"), stacktest.Name("recorder")
		if _, err := kadm.NewClient(r.client(t)).CreateTopic(ctx, 1, 1, nil, cfg.Topic); err != nil {
			t.Fatal(err)
		}
	}
	c, err := New(cfg, r.kafka, r.reg, r.w, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	closeC := sync.OnceFunc(c.Close)
	t.Cleanup(closeC)
	c.ensureDLQTopic(ctx)
	return c, closeC
}

// deadLetters reads n records of the consumer's dead-letter topic, in the
// order of their source offsets.
func deadLetters(t *testing.T, r *rig, c *Consumer, n int) []*kgo.Record {
	t.Helper()
	cl := r.client(t, kgo.ConsumeTopics(kafkaenv.DLQ(c.cfg.Topic)), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n && ctx.Err() == nil {
		recs = append(recs, cl.PollFetches(ctx).Records()...)
	}
	if len(recs) != n {
		t.Fatalf("%d dead letters, want %d", len(recs), n)
	}
	// By source offset: the dead-letter topic has the broker's default
	// partitions (kfake's are several), and the records' keys spread them.
	slices.SortFunc(recs, func(a, b *kgo.Record) int {
		x, _ := strconv.ParseInt(header(a, HeaderOffset), 10, 64)
		y, _ := strconv.ParseInt(header(b, HeaderOffset), 10, 64)
		return cmp.Compare(x, y)
	})
	return recs
}

// committed returns the group's committed offset of the topic's partition 0
// (-1: none).
func committed(t *testing.T, r *rig, c *Consumer) int64 {
	t.Helper()
	offsets, err := kadm.NewClient(r.client(t)).FetchOffsets(context.Background(), c.cfg.Group)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := offsets.Lookup(c.cfg.Topic, 0)
	if !ok {
		return -1
	}
	if o.Err != nil {
		t.Fatalf("committed offset of %s: %v", c.cfg.Topic, o.Err)
	}
	return o.At
}

func queryString(t *testing.T, url, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var s string
	if err := conn.QueryRow(context.Background(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return "<none>"
}
