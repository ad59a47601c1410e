package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/cmdline"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/prober/internal/check"
	"github.com/sitewatch/sitewatch/services/prober/internal/publish"
	"github.com/sitewatch/sitewatch/services/prober/internal/schedule"
	"github.com/sitewatch/sitewatch/services/testing/benchhost"
	"github.com/sitewatch/sitewatch/services/testing/stackenv"
)

func main() { cmdline.Main("probebench", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("probebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	serve := fs.String("serve", "", "only serve the test page on this address (used as a child process)")
	useNginx := fs.Bool("nginx", false, "serve the page with nginx (must be installed)")
	url := fs.String("url", "", "check this URL instead of starting a server")
	nTargets := fs.Int("targets", 1000, "number of targets")
	interval := fs.Duration("interval", time.Second, "interval of every target")
	duration := fs.Duration("duration", 20*time.Second, "measured time")
	warmup := fs.Duration("warmup", 0, "time before measuring (default: one interval)")
	concurrency := fs.Int("concurrency", 256, "checks running at once, at most")
	buffer := fs.Int("buffer", 10000, "results waiting for Kafka, at most")
	compression := fs.String("compression", "lz4", "zstd, lz4, snappy, gzip or none")
	linger := fs.Duration("linger", 20*time.Millisecond, "producer linger")
	noKafka := fs.Bool("no-kafka", false, "check only; do not encode or produce")
	pattern := fs.String("pattern", "", "RE2 pattern each target looks for")
	coalesce := fs.Duration("coalesce", 20*time.Millisecond, "scheduler wake-up coalescing (the prober's -coalesce)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the measured time")
	noSpool := fs.Bool("no-spool", false, "results wait in memory only, not in the on-disk spool")
	spoolDir := fs.String("spool-dir", "", "spool directory (default: a temporary one, removed at the end)")
	drain := fs.Int("drain", 0, "spool mode: spool this many results with Kafka unreachable, then measure the drain into Kafka while the targets are checked")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *serve != "" {
		return servePage(ctx, *serve)
	}
	if *warmup == 0 {
		*warmup = *interval
	}

	target := *url
	switch {
	case target != "":
	case *useNginx:
		n, err := benchhost.StartNginx(ctx, 1)
		if err != nil {
			return err
		}
		defer n.Stop()
		target = n.URLs[0]
	default:
		u, stop, err := startChild(ctx)
		if err != nil {
			return err
		}
		defer stop()
		target = u
	}

	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir := ""
	if !*noSpool {
		dir = *spoolDir
		if dir == "" {
			tmp, err := os.MkdirTemp("", "probebench-spool")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			dir = tmp
		}
	}
	var re string
	if *pattern != "" {
		re = *pattern
	}
	ts, err := makeTargets(*nTargets, target, *interval, re)
	if err != nil {
		return err
	}
	if *drain > 0 {
		if dir == "" {
			return errors.New("-drain needs the spool")
		}
		return runDrain(ctx, drainOptions{n: *drain, dir: dir, targets: ts, interval: *interval, concurrency: *concurrency,
			getenv: getenv, logger: logger}, stdout, stderr)
	}

	var published func(check.Result)
	var pub *publish.Publisher
	var produced func() float64
	topic := fmt.Sprintf("probebench_%d", time.Now().UnixNano())
	if *noKafka {
		published = func(check.Result) {}
		produced = func() float64 { return 0 }
	} else {
		kcfg, err := kafkaenv.FromEnv(stackenv.Lookup(getenv))
		if err != nil {
			return err
		}
		codec := map[string]kgo.CompressionCodec{"zstd": kgo.ZstdCompression(), "lz4": kgo.Lz4Compression(),
			"snappy": kgo.SnappyCompression(), "gzip": kgo.GzipCompression(), "none": kgo.NoCompression()}[*compression]
		reg := prometheus.NewRegistry()
		pub, err = publish.New(kcfg, publish.Options{
			Topic: topic, Partitions: 6, ReplicationFactor: -1, Buffer: *buffer,
			Compression: codec, Linger: *linger, FlushTimeout: 30 * time.Second,
			Prober:   &sitewatchv1.Prober{Instance: "probebench", Region: "local"},
			SpoolDir: dir, SpoolMaxBytes: 8 << 30, SpoolSync: time.Second,
			Logger: logger, Registerer: reg,
		})
		if err != nil {
			return err
		}
		defer pub.Close()
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := stackenv.RemoveTopic(ctx, kcfg, topic); err != nil {
				fmt.Fprintln(stderr, "probebench:", err)
			}
		}()
		published = pub.Publish
		produced = func() float64 { return counter(reg, "sitewatch_prober_results_produced_total") }
	}

	var (
		checks, ups atomic.Int64
		skipped     atomic.Int64
		measuring   atomic.Bool
		lagMu       sync.Mutex
		lags        []time.Duration
	)
	prober := check.New(check.Options{})
	defer prober.Close()
	job := func(ctx context.Context, t *targets.Target) {
		r := prober.Check(ctx, t)
		if measuring.Load() {
			checks.Add(1)
			if r.Outcome == sitewatchv1.Outcome_OUTCOME_UP {
				ups.Add(1)
			}
		}
		published(r)
	}
	sched := schedule.New(job, schedule.Options{
		Concurrency: *concurrency,
		Coalesce:    *coalesce,
		OnRun: func(_ *targets.Target, _ time.Time, lag time.Duration) {
			if measuring.Load() {
				lagMu.Lock()
				lags = append(lags, lag)
				lagMu.Unlock()
			}
		},
		OnSkip: func(_ *targets.Target, _ string, n int) {
			if measuring.Load() {
				skipped.Add(int64(n))
			}
		},
	})
	sched.Set(ts)

	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPub()
	pubDone := make(chan error, 1)
	if pub != nil {
		go func() { pubDone <- pub.Run(pubCtx) }()
		// Wait for the topic and schema, so that set-up is not measured.
		for pub.Ready(ctx) != nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	} else {
		close(pubDone)
	}
	schedCtx, stopSched := context.WithCancel(ctx)
	defer stopSched()
	schedDone := make(chan struct{})
	go func() {
		sched.Run(schedCtx)
		close(schedDone)
	}()

	fmt.Fprintf(stderr, "probebench: %d targets every %v (%.0f checks/s offered) against %s, concurrency %d, kafka %t, spool %q; warming up %v, measuring %v\n",
		*nTargets, *interval, float64(*nTargets)/interval.Seconds(), target, *concurrency, !*noKafka, dir, *warmup, *duration)
	select {
	case <-time.After(*warmup):
	case <-ctx.Done():
	}
	stopProfile, err := startProfile(*cpuprofile)
	if err != nil {
		return err
	}
	producedBefore := produced()
	userBefore, sysBefore, err := benchhost.CPU(os.Getpid())
	if err != nil {
		return err
	}
	start := time.Now()
	measuring.Store(true)
	select {
	case <-time.After(*duration):
	case <-ctx.Done():
	}
	measuring.Store(false)
	elapsed := time.Since(start)
	userAfter, sysAfter, err := benchhost.CPU(os.Getpid())
	if err != nil {
		return err
	}
	user, sys := userAfter-userBefore, sysAfter-sysBefore
	cpu := user + sys
	producedDuring := produced() - producedBefore
	stopProfile()
	rss, hwm, err := benchhost.Memory(os.Getpid())
	if err != nil {
		return err
	}

	stopSched()
	<-schedDone
	stopPub()
	if err := <-pubDone; err != nil {
		return err
	}

	n := checks.Load()
	slices.Sort(lags)
	rep := report{
		Targets: *nTargets, IntervalS: interval.Seconds(), OfferedPerS: float64(*nTargets) / interval.Seconds(),
		MeasuredS: elapsed.Seconds(), Checks: n, Up: ups.Load(), Skipped: skipped.Load(),
		ChecksPerS: float64(n) / elapsed.Seconds(), Kafka: !*noKafka, Spool: dir != "",
		CPUUserS: user.Seconds(), CPUSystemS: sys.Seconds(), CorePct: 100 * cpu.Seconds() / elapsed.Seconds(),
		LagP50Ms: pct(lags, 0.50), LagP99Ms: pct(lags, 0.99), LagMaxMs: pct(lags, 1), LagRuns: len(lags),
		RSSMiB: float64(rss) / (1 << 20), PeakRSSMiB: float64(hwm) / (1 << 20),
	}
	if !*noKafka {
		rep.ProducedPerS, rep.Topic = producedDuring/elapsed.Seconds(), topic
	}
	if n > 0 {
		rep.CPUMsPerCheck = cpu.Seconds() * 1000 / float64(n)
	}
	return json.NewEncoder(stdout).Encode(rep)
}

// report is the JSON object of a run (doc.go describes the fields).
type report struct {
	Targets       int     `json:"targets"`
	IntervalS     float64 `json:"interval_s"`
	OfferedPerS   float64 `json:"offered_per_s"`
	MeasuredS     float64 `json:"measured_s"`
	Checks        int64   `json:"checks"`
	Up            int64   `json:"up"`
	Skipped       int64   `json:"skipped"`
	ChecksPerS    float64 `json:"checks_per_s"`
	Kafka         bool    `json:"kafka"`
	Spool         bool    `json:"spool"`
	ProducedPerS  float64 `json:"produced_per_s"`
	Topic         string  `json:"topic"`
	CPUUserS      float64 `json:"cpu_user_s"`
	CPUSystemS    float64 `json:"cpu_system_s"`
	CPUMsPerCheck float64 `json:"cpu_ms_per_check"`
	CorePct       float64 `json:"core_pct"`
	LagP50Ms      float64 `json:"lag_p50_ms"`
	LagP99Ms      float64 `json:"lag_p99_ms"`
	LagMaxMs      float64 `json:"lag_max_ms"`
	LagRuns       int     `json:"lag_runs"`
	RSSMiB        float64 `json:"rss_mib"`
	PeakRSSMiB    float64 `json:"peak_rss_mib"`
}

// pct is the p-quantile of sorted durations in milliseconds; 0 when there
// are none.
func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i].Round(10*time.Microsecond)) / float64(time.Millisecond)
}

func makeTargets(n int, url string, interval time.Duration, pattern string) ([]*targets.Target, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "defaults:\n  interval: %s\n  timeout: %s\n", interval, min(interval/2, 5*time.Second))
	if pattern != "" {
		fmt.Fprintf(&b, "  pattern: %q\n", pattern)
	}
	b.WriteString("targets:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - id: bench-%05d\n    url: %s?t=%d\n", i, url, i)
	}
	f, err := targets.Parse("bench.yaml", []byte(b.String()))
	if err != nil {
		return nil, err
	}
	return f.Targets, nil
}

func servePage(ctx context.Context, addr string) error {
	srv := &http.Server{
		Addr: addr,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Content-Length", strconv.Itoa(len(benchhost.Page)))
			_, _ = w.Write(benchhost.Page)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// startChild starts this program as the page server, in its own process.
func startChild(ctx context.Context) (string, func(), error) {
	addr, err := benchhost.FreeAddr()
	if err != nil {
		return "", nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(self, "-serve", addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // may have exited
		cmd.Wait()                          //nolint:errcheck // its exit status is the signal's
	}
	if err := benchhost.WaitListening(ctx, addr, 10*time.Second); err != nil {
		stop()
		return "", nil, err
	}
	return "http://" + addr + "/", stop, nil
}

// counter sums the series of a counter or gauge.
func counter(g prometheus.Gatherer, name string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
			return sum
		}
	}
	return 0
}
