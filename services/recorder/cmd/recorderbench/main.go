package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/cmdline"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/recorder/internal/consume"
	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
	"github.com/sitewatch/sitewatch/services/testing/benchhost"
	"github.com/sitewatch/sitewatch/services/testing/stackenv"
)

func main() { cmdline.Main("recorderbench", run) }

type config struct {
	events     int
	partitions int
	targets    int
	batch      int
	span       time.Duration
	rate       int
	rateFor    time.Duration
	keep       bool
	slots      bool
	cpuProfile string
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c config
	fs := flag.NewFlagSet("recorderbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.events, "events", 1_000_000, "backlog size")
	fs.IntVar(&c.partitions, "partitions", 4, "partitions of the benchmark topic")
	fs.IntVar(&c.targets, "targets", 1000, "distinct targets")
	fs.IntVar(&c.batch, "batch", 50000, "recorder -batch")
	fs.DurationVar(&c.span, "span", 48*time.Hour, "the backlog's events started over this much time up to now")
	fs.IntVar(&c.rate, "rate", 1000, "events per second of the end-to-end phase (0 skips it)")
	fs.DurationVar(&c.rateFor, "rate-for", 30*time.Second, "duration of the end-to-end phase")
	fs.BoolVar(&c.keep, "keep", false, "keep the database and topics")
	fs.BoolVar(&c.slots, "slots", true, "events carry scheduled_at (each its own slot), as fleet probers' do; false: as older probers'")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the drain to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.events < 1 || c.partitions < 1 || c.targets < 1 || c.batch < 1 {
		return errors.New("-events, -partitions, -targets and -batch must be positive")
	}
	getenv = stackenv.Lookup(getenv)
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := setup(ctx, c, getenv, logger)
	if err != nil {
		return err
	}
	defer b.cleanup()
	fmt.Fprintf(stderr, "recorderbench: %d events, %d targets, %d partitions, batch %d, GOMAXPROCS %d, load average before: %s\n",
		c.events, c.targets, c.partitions, c.batch, runtime.GOMAXPROCS(0), loadavg())
	rep := report{Events: c.events, Targets: c.targets, Partitions: c.partitions, Batch: c.batch,
		GOMAXPROCS: runtime.GOMAXPROCS(0), LoadBefore: loadavg()}
	progress := func(what, figure, note string) {
		fmt.Fprintf(stderr, "%-40s %s  %s\n", what, figure, note)
	}

	// 1. The backlog.
	start := time.Now()
	if err := b.produce(ctx, 0, c.events, nil); err != nil {
		return err
	}
	d := time.Since(start)
	rep.ProduceS, rep.ProducePerS = d.Seconds(), float64(c.events)/d.Seconds()
	progress("produce backlog", rate(c.events, d), fmt.Sprintf("%d events in %.2f s (benchmark producer)", c.events, d.Seconds()))

	// 2. Drain the backlog with the recorder.
	runtime.GC()
	debug.FreeOSMemory()
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	dr, err := b.drain(ctx, c)
	if c.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	rep.DrainS, rep.DrainPerS = dr.steady.Seconds(), float64(c.events-dr.firstBatch)/dr.steady.Seconds()
	rep.DrainTotalS, rep.DrainTotalPerS = dr.total.Seconds(), float64(c.events)/dr.total.Seconds()
	rep.RSSMaxMiB, rep.HeapEndMiB = float64(dr.maxRSS)/(1<<20), float64(dr.heap)/(1<<20)
	progress("recorder drain (from first commit)", rate(c.events-dr.firstBatch, dr.steady), fmt.Sprintf("%.2f s", dr.steady.Seconds()))
	progress("recorder drain (from start, incl. group join)", rate(c.events, dr.total), fmt.Sprintf("%.2f s", dr.total.Seconds()))
	progress("recorder RSS while draining", fmt.Sprintf("%.0f MiB max", rep.RSSMaxMiB), fmt.Sprintf("Go heap in use at end %.0f MiB", rep.HeapEndMiB))
	if err := b.verify(ctx, c.events); err != nil {
		return err
	}
	rep.RollupsExact = true

	// 3. The anchors: the same rows, as PostgreSQL stores them, COPYed
	// (binary) into a table without keys or indexes, and into a table with
	// check_results' keys, indexes and daily partitions: the limit of the
	// storage design itself, without deduplication, rollups or Kafka.
	plain, keyed, err := b.copyAnchors(ctx)
	if err != nil {
		return err
	}
	rep.CopyS, rep.CopyPerS = plain.Seconds(), float64(c.events)/plain.Seconds()
	rep.KeyedCopyS, rep.KeyedCopyPerS = keyed.Seconds(), float64(c.events)/keyed.Seconds()
	progress("anchor: plain COPY of the same rows", rate(c.events, plain), fmt.Sprintf("%.2f s", plain.Seconds()))
	progress("storage anchor: COPY into a table like check_results", rate(c.events, keyed), fmt.Sprintf("%.2f s", keyed.Seconds()))

	// 4. End-to-end delay at a steady rate.
	if c.rate > 0 {
		e2e, err := b.endToEnd(ctx, c)
		if err != nil {
			return err
		}
		rep.E2E = &e2eReport{Rate: c.rate, ForS: c.rateFor.Seconds(), Events: e2e.n,
			P50Ms: e2e.p50 * 1000, P99Ms: e2e.p99 * 1000, MaxMs: e2e.max * 1000}
		progress(fmt.Sprintf("end-to-end delay at %d events/s", c.rate),
			fmt.Sprintf("p50 %.0f ms, p99 %.0f ms, max %.0f ms", e2e.p50*1000, e2e.p99*1000, e2e.max*1000),
			fmt.Sprintf("%d events over %s", e2e.n, c.rateFor))
	}
	rep.LoadAfter = loadavg()
	return json.NewEncoder(stdout).Encode(rep)
}

// report is the JSON object of a run (doc.go describes the fields).
type report struct {
	Events         int        `json:"events"`
	Targets        int        `json:"targets"`
	Partitions     int        `json:"partitions"`
	Batch          int        `json:"batch"`
	GOMAXPROCS     int        `json:"gomaxprocs"`
	LoadBefore     string     `json:"load_before"`
	LoadAfter      string     `json:"load_after"`
	ProduceS       float64    `json:"produce_s"`
	ProducePerS    float64    `json:"produce_per_s"`
	DrainS         float64    `json:"drain_s"`
	DrainPerS      float64    `json:"drain_per_s"`
	DrainTotalS    float64    `json:"drain_total_s"`
	DrainTotalPerS float64    `json:"drain_total_per_s"`
	RSSMaxMiB      float64    `json:"rss_max_mib"`
	HeapEndMiB     float64    `json:"heap_end_mib"`
	RollupsExact   bool       `json:"rollups_exact"`
	CopyS          float64    `json:"copy_s"`
	CopyPerS       float64    `json:"copy_per_s"`
	KeyedCopyS     float64    `json:"keyed_copy_s"`
	KeyedCopyPerS  float64    `json:"keyed_copy_per_s"`
	E2E            *e2eReport `json:"e2e,omitempty"`
}

type e2eReport struct {
	Rate   int     `json:"rate"`
	ForS   float64 `json:"for_s"`
	Events int     `json:"events"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
}

func rate(n int, d time.Duration) string {
	return fmt.Sprintf("%s events/s", thousands(int64(float64(n)/d.Seconds())))
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// bench holds the fresh resources of one run.
type bench struct {
	cfg      config
	getenv   func(string) string
	logger   *slog.Logger
	kcfg     kafkaenv.Config
	kopts    []kgo.Opt
	registry *sr.Client
	serde    *sr.Serde
	topic    string
	dbName   string
	dbURL    string
	adminURL string
	base     time.Time // the backlog's first started_at
	cleanup  func()
}

func setup(ctx context.Context, c config, getenv func(string) string, logger *slog.Logger) (*bench, error) {
	b := &bench{cfg: c, getenv: getenv, logger: logger, cleanup: func() {}}
	var err error
	if b.kcfg, err = kafkaenv.FromEnv(getenv); err != nil {
		return nil, err
	}
	if b.kopts, err = b.kcfg.ClientOpts(); err != nil {
		return nil, err
	}
	if b.registry, err = b.kcfg.Registry(); err != nil {
		return nil, err
	}
	b.adminURL = getenv("DATABASE_URL")
	if b.adminURL == "" {
		return nil, errors.New("DATABASE_URL: not set (start the stack: go tool task stack:up)")
	}
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	b.topic, b.dbName = "bench-check-results-"+suffix, "bench_"+suffix

	admin, err := pgx.Connect(ctx, b.adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+b.dbName); err != nil {
		return nil, err
	}
	u, err := url.Parse(b.adminURL)
	if err != nil {
		return nil, err
	}
	u.Path = "/" + b.dbName
	b.dbURL = u.String()

	cl, err := kgo.NewClient(b.kopts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, int32(c.partitions), 1, nil, b.topic); err != nil {
		return nil, fmt.Errorf("create topic: %w", err)
	}
	b.cleanup = func() {
		if c.keep {
			fmt.Fprintf(os.Stderr, "kept database %s and topic %s\n", b.dbName, b.topic)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if admin, err := pgx.Connect(ctx, b.adminURL); err == nil {
			admin.Exec(ctx, "DROP DATABASE "+b.dbName+" WITH (FORCE)") //nolint:errcheck // best effort
			admin.Close(ctx)
		}
		if cl, err := kgo.NewClient(b.kopts...); err == nil {
			kadm.NewClient(cl).DeleteTopics(ctx, b.topic, kafkaenv.DLQ(b.topic)) //nolint:errcheck // best effort
			cl.Close()
		}
	}
	if err := store.Migrate(ctx, b.dbURL, logger); err != nil {
		b.cleanup()
		return nil, err
	}
	ss, err := b.registry.CreateSchema(ctx, kafkaenv.Subject(b.topic), sr.Schema{Schema: sitewatchv1.Schema, Type: sr.TypeProtobuf})
	if err != nil {
		b.cleanup()
		return nil, fmt.Errorf("register schema: %w", err)
	}
	b.serde = &sr.Serde{}
	b.serde.Register(ss.ID, &sitewatchv1.CheckResult{}, sr.Index(0),
		sr.AppendEncodeFn(func(b []byte, v any) ([]byte, error) {
			return proto.MarshalOptions{}.MarshalAppend(b, v.(*sitewatchv1.CheckResult))
		}))
	b.base = time.Now().Add(-c.span).Truncate(time.Millisecond)
	return b, nil
}

var kinds = []sitewatchv1.FailureKind{
	sitewatchv1.FailureKind_FAILURE_KIND_DNS, sitewatchv1.FailureKind_FAILURE_KIND_CONNECT,
	sitewatchv1.FailureKind_FAILURE_KIND_TLS, sitewatchv1.FailureKind_FAILURE_KIND_TIMEOUT,
	sitewatchv1.FailureKind_FAILURE_KIND_HTTP_STATUS, sitewatchv1.FailureKind_FAILURE_KIND_CONTENT_MISMATCH,
	sitewatchv1.FailureKind_FAILURE_KIND_OTHER,
}

// event n of the backlog, the same every time it is asked for: targets take
// turns, started_at advances evenly over the span, 2% are down, latencies
// are log-normal around 80 ms. A nil at uses the backlog's schedule.
func (b *bench) event(n int, at *time.Time) *sitewatchv1.CheckResult {
	r := rand.New(rand.NewPCG(uint64(n), 0x5173))
	started := b.base.Add(time.Duration(int64(b.cfg.span) / int64(b.cfg.events) * int64(n)))
	if at != nil {
		started = *at
	}
	var id uuid.UUID // UUIDv7: started_at's milliseconds, then n
	ms := uint64(started.UnixMilli())
	binary.BigEndian.PutUint64(id[0:8], ms<<16|0x7000)
	binary.BigEndian.PutUint64(id[8:16], uint64(n)|0x8000000000000000)
	target := fmt.Sprintf("target-%04d", n%b.cfg.targets)
	rt := time.Duration(math.Exp(math.Log(80e6) + 0.8*r.NormFloat64())) // ns
	m := &sitewatchv1.CheckResult{
		EventId:      id.String(),
		Target:       &sitewatchv1.Target{Id: target, Url: "https://" + target + ".example/", Method: "GET"},
		Prober:       &sitewatchv1.Prober{Instance: "bench", Region: "local"},
		StartedAt:    timestamppb.New(started),
		ResponseTime: durationpb.New(rt.Round(time.Microsecond)),
		Timings: &sitewatchv1.PhaseTimings{
			Dns:             durationpb.New(rt / 20),
			Connect:         durationpb.New(rt / 10),
			TimeToFirstByte: durationpb.New(rt / 2),
		},
		StatusCode: 200,
		BytesRead:  int64(1000 + r.IntN(50000)),
		Outcome:    sitewatchv1.Outcome_OUTCOME_UP,
		Protocol:   "HTTP/2.0",
	}
	m.DecodedBytes = proto.Int64(m.BytesRead * 4)
	if b.cfg.slots {
		m.ScheduledAt = timestamppb.New(started.Add(-2 * time.Millisecond))
	}
	if r.IntN(50) == 0 {
		m.Outcome, m.FailureKind = sitewatchv1.Outcome_OUTCOME_DOWN, kinds[r.IntN(len(kinds))]
		m.StatusCode, m.Error = 503, "unexpected status 503"
	}
	return m
}

// produce sends events [from, to) (or, with at set, stamps them at.()).
func (b *bench) produce(ctx context.Context, from, to int, at func() time.Time) error {
	cl, err := kgo.NewClient(append(slices.Clip(b.kopts), kgo.DefaultProduceTopic(b.topic),
		kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchCompression(kgo.NoCompression()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var firstErr atomic.Pointer[error]
	for n := from; n < to; n++ {
		var m *sitewatchv1.CheckResult
		if at != nil {
			t := at()
			m = b.event(n, &t)
		} else {
			m = b.event(n, nil)
		}
		v, err := b.serde.AppendEncode(nil, m)
		if err != nil {
			return err
		}
		cl.Produce(ctx, &kgo.Record{Key: []byte(m.Target.Id), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if e := firstErr.Load(); e != nil {
		return *e
	}
	return nil
}

// copyAnchors reads the stored raw rows back (COPY TO, binary) and times a
// COPY of exactly those bytes into two tables: copy_anchor, without keys or
// indexes, and copy_anchor_keyed, built like check_results (LIKE ...
// INCLUDING ALL copies the primary key, the index and the checks; the
// partitions are created with check_results' own bounds).
func (b *bench) copyAnchors(ctx context.Context) (plain, keyed time.Duration, err error) {
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	var data bytes.Buffer
	if _, err := conn.PgConn().CopyTo(ctx, &data, "COPY (SELECT * FROM check_results) TO STDOUT (FORMAT binary)"); err != nil {
		return 0, 0, fmt.Errorf("copy out: %w", err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE copy_anchor (LIKE check_results)"); err != nil {
		return 0, 0, err
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE copy_anchor_keyed (LIKE check_results INCLUDING ALL) PARTITION BY RANGE (checked_at)"); err != nil {
		return 0, 0, err
	}
	rows, err := conn.Query(ctx, `SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'check_results'::regclass ORDER BY 1`)
	if err != nil {
		return 0, 0, fmt.Errorf("list partitions: %w", err)
	}
	parts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Name, Bound string }])
	if err != nil {
		return 0, 0, fmt.Errorf("list partitions: %w", err)
	}
	for _, p := range parts {
		name := pgx.Identifier{"copy_anchor_keyed" + strings.TrimPrefix(p.Name, "check_results")}.Sanitize()
		if _, err := conn.Exec(ctx, "CREATE TABLE "+name+" PARTITION OF copy_anchor_keyed "+p.Bound); err != nil {
			return 0, 0, fmt.Errorf("create partition %s: %w", name, err)
		}
	}
	copyInto := func(table string) (time.Duration, error) {
		start := time.Now()
		tag, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(data.Bytes()), "COPY "+table+" FROM STDIN (FORMAT binary)")
		if err != nil {
			return 0, fmt.Errorf("copy into %s: %w", table, err)
		}
		d := time.Since(start)
		if tag.RowsAffected() != int64(b.cfg.events) {
			return 0, fmt.Errorf("%s: copied %d rows, want %d", table, tag.RowsAffected(), b.cfg.events)
		}
		return d, nil
	}
	if plain, err = copyInto("copy_anchor"); err != nil {
		return 0, 0, err
	}
	if keyed, err = copyInto("copy_anchor_keyed"); err != nil {
		return 0, 0, err
	}
	return plain, keyed, nil
}

type drainResult struct {
	total, steady time.Duration
	firstBatch    int
	maxRSS        int64
	heap          uint64
}

// timedWriter is the store, timing the commit of each batch.
type timedWriter struct {
	st *store.Store
	mu sync.Mutex
	// stored counts inserted rows; first* record the first commit.
	stored      int
	firstAt     time.Time
	firstStored int
	delays      []float64 // seconds from started_at to commit, when recording
	record      bool
}

func (w *timedWriter) Write(ctx context.Context, events []store.Event) (store.Result, error) {
	res, err := w.st.Write(ctx, events)
	if err != nil {
		return res, err
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.firstAt.IsZero() && res.Inserted > 0 {
		w.firstAt, w.firstStored = now, res.Inserted
	}
	w.stored += res.Inserted
	if w.record {
		for _, at := range res.InsertedCheckedAt {
			w.delays = append(w.delays, now.Sub(at).Seconds())
		}
	}
	return res, nil
}

func (w *timedWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stored
}

// startRecorder runs the recorder's consumer and store, as `recorder` does.
func (b *bench) startRecorder(ctx context.Context, group string, w *timedWriter) (stop func() error, err error) {
	st, err := store.Open(ctx, b.dbURL, store.Config{}, b.logger)
	if err != nil {
		return nil, err
	}
	if _, err := st.Maintain(ctx, time.Now(), 2, 3); err != nil {
		st.Close()
		return nil, err
	}
	w.st = st
	cons, err := consume.New(consume.Config{
		Topic: b.topic, Group: group, MaxBatch: b.cfg.batch, MaxFuture: 24 * time.Hour, ShutdownGrace: 30 * time.Second,
	}, b.kopts, b.registry, w, prometheus.NewRegistry(), b.logger)
	if err != nil {
		st.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cons.Run(runCtx) }()
	return func() error {
		cancel()
		err := <-done
		cons.Close()
		st.Close()
		return err
	}, nil
}

func (b *bench) drain(ctx context.Context, c config) (drainResult, error) {
	var res drainResult
	w := &timedWriter{}
	start := time.Now()
	stop, err := b.startRecorder(ctx, "bench-drain", w)
	if err != nil {
		return res, err
	}
	var rssMax atomic.Int64
	sampleDone := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampleDone:
				return
			case <-t.C:
				if r := rss(); r > rssMax.Load() {
					rssMax.Store(r)
				}
			}
		}
	}()
	for w.count() < c.events {
		if ctx.Err() != nil {
			close(sampleDone)
			stop() //nolint:errcheck // interrupted anyway
			return res, ctx.Err()
		}
		time.Sleep(5 * time.Millisecond)
	}
	end := time.Now()
	close(sampleDone)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if err := stop(); err != nil {
		return res, err
	}
	w.mu.Lock()
	res.total, res.steady, res.firstBatch = end.Sub(start), end.Sub(w.firstAt), w.firstStored
	w.mu.Unlock()
	res.maxRSS, res.heap = rssMax.Load(), ms.HeapInuse
	return res, nil
}

// verify checks that the rollup counts every stored event exactly once.
func (b *bench) verify(ctx context.Context, want int) error {
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var raw, checks, hist, updown, mismatched int64
	err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM check_results),
		(SELECT sum(checks) FROM check_results_hourly),
		(SELECT sum(x) FROM check_results_hourly, unnest(latency_histogram) x),
		(SELECT sum(up + down) FROM check_results_hourly),
		(SELECT count(*) FROM (
			SELECT target_id, date_trunc('hour', checked_at, 'UTC') AS hour, count(*) AS n,
				sum(response_time_us) AS s, count(*) FILTER (WHERE outcome = 'down') AS down
			FROM check_results GROUP BY 1, 2) r
		 FULL JOIN check_results_hourly h USING (target_id, hour)
		 WHERE r.n IS DISTINCT FROM h.checks OR r.s IS DISTINCT FROM h.response_time_sum_us
			OR r.down IS DISTINCT FROM h.down)`).Scan(&raw, &checks, &hist, &updown, &mismatched)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if raw != int64(want) || checks != int64(want) || hist != int64(want) || updown != int64(want) || mismatched != 0 {
		return fmt.Errorf("rollup not exact: raw %d, sum(checks) %d, histogram %d, up+down %d, %d mismatched hours; want %d",
			raw, checks, hist, updown, mismatched, want)
	}
	return nil
}

type e2eResult struct {
	n             int
	p50, p99, max float64
}

// endToEnd runs a recorder on a caught-up group and produces c.rate events
// per second stamped with the time they are produced.
func (b *bench) endToEnd(ctx context.Context, c config) (e2eResult, error) {
	w := &timedWriter{}
	stop, err := b.startRecorder(ctx, "bench-drain", w) // the drained group: starts at the end
	if err != nil {
		return e2eResult{}, err
	}
	time.Sleep(3 * time.Second) // let it join before the clock starts
	w.mu.Lock()
	w.record = true
	w.mu.Unlock()
	total := int(float64(c.rate) * c.rateFor.Seconds())
	cl, err := kgo.NewClient(append(slices.Clip(b.kopts), kgo.DefaultProduceTopic(b.topic))...)
	if err != nil {
		return e2eResult{}, err
	}
	defer cl.Close()
	// Ticks of 10 ms, each producing its share, stamped when produced.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	sent := 0
	for sent < total && ctx.Err() == nil {
		<-tick.C
		due := min(total, int(time.Since(start).Seconds()*float64(c.rate)))
		for ; sent < due; sent++ {
			now := time.Now()
			m := b.event(c.events+sent, &now)
			v, err := b.serde.AppendEncode(nil, m)
			if err != nil {
				return e2eResult{}, err
			}
			cl.Produce(ctx, &kgo.Record{Key: []byte(m.Target.Id), Value: v}, nil)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return e2eResult{}, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for w.count() < total && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := stop(); err != nil {
		return e2eResult{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.delays) != total {
		return e2eResult{}, fmt.Errorf("end-to-end phase stored %d of %d events", len(w.delays), total)
	}
	slices.Sort(w.delays)
	q := func(p float64) float64 { return w.delays[min(len(w.delays)-1, int(p*float64(len(w.delays))))] }
	return e2eResult{n: total, p50: q(0.50), p99: q(0.99), max: w.delays[len(w.delays)-1]}, nil
}

// rss is this process's resident set size in bytes.
func rss() int64 {
	r, _, _ := benchhost.Memory(os.Getpid())
	return r
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
