package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	"github.com/sitewatch/sitewatch/services/testing/stackenv"
)

// page is the ~2 KB body the local server returns.
var page = []byte("<!doctype html><html><head><title>sitewatch bench</title></head><body>" +
	strings.Repeat("<p>The quick brown fox jumps over the lazy dog.</p>\n", 38) + "</body></html>\n")

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
		u, stop, err := startNginx()
		if err != nil {
			return err
		}
		defer stop()
		target = u
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
	userBefore, sysBefore := cpuTime()
	start := time.Now()
	measuring.Store(true)
	select {
	case <-time.After(*duration):
	case <-ctx.Done():
	}
	measuring.Store(false)
	elapsed := time.Since(start)
	userAfter, sysAfter := cpuTime()
	user, sys := userAfter-userBefore, sysAfter-sysBefore
	cpu := user + sys
	producedDuring := produced() - producedBefore
	stopProfile()
	rss, hwm := memory()

	stopSched()
	<-schedDone
	stopPub()
	if err := <-pubDone; err != nil {
		return err
	}

	n := checks.Load()
	slices.Sort(lags)
	fmt.Fprintf(stdout, "targets=%d interval=%v offered=%.0f/s measured=%.1fs\n", *nTargets, *interval, float64(*nTargets)/interval.Seconds(), elapsed.Seconds())
	fmt.Fprintf(stdout, "checks/s        %10.0f  (%d checks, %d up, %d skipped)\n", float64(n)/elapsed.Seconds(), n, ups.Load(), skipped.Load())
	if !*noKafka {
		fmt.Fprintf(stdout, "produced/s      %10.0f  (acknowledged by Kafka, topic %s)\n", producedDuring/elapsed.Seconds(), topic)
	}
	if n > 0 {
		fmt.Fprintf(stdout, "cpu ms/check    %10.4f  (user %.2fs + sys %.2fs of this process over %.1fs: %.0f%% of one core)\n",
			cpu.Seconds()*1000/float64(n), user.Seconds(), sys.Seconds(), elapsed.Seconds(), 100*cpu.Seconds()/elapsed.Seconds())
	}
	fmt.Fprintf(stdout, "lag p50/p99/max %10s / %s / %s  (%d runs)\n", pct(lags, 0.50), pct(lags, 0.99), pct(lags, 1), len(lags))
	fmt.Fprintf(stdout, "rss             %10.1f MiB (peak %.1f MiB)\n", float64(rss)/(1<<20), float64(hwm)/(1<<20))
	return nil
}

func pct(sorted []time.Duration, p float64) string {
	if len(sorted) == 0 {
		return "-"
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i].Round(10 * time.Microsecond).String()
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
			w.Header().Set("Content-Length", strconv.Itoa(len(page)))
			_, _ = w.Write(page)
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

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startChild starts this program as the page server, in its own process.
func startChild(ctx context.Context) (string, func(), error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(self, "-serve", addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // may have exited
		cmd.Wait()                          //nolint:errcheck // its exit status is the signal's
	}
	if err := waitListening(ctx, addr); err != nil {
		stop()
		return "", nil, err
	}
	return "http://" + addr + "/", stop, nil
}

// startNginx runs nginx in the foreground (one process, as the current
// user) with a temporary configuration serving the page.
func startNginx() (string, func(), error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/nginx"); statErr != nil {
			return "", nil, fmt.Errorf("nginx not found (apt-get install -y nginx-light): %w", err)
		}
		bin = "/usr/sbin/nginx"
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "probebench-nginx")
	if err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "index.html"), page, 0o644); err != nil {
		return "", nil, err
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s;
  proxy_temp_path %[1]s;
  fastcgi_temp_path %[1]s;
  uwsgi_temp_path %[1]s;
  scgi_temp_path %[1]s;
  server {
    listen 127.0.0.1:%[2]d;
    root %[1]s;
    location / { index index.html; }
  }
}
`, dir, port)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "-c", confPath, "-p", dir, "-e", filepath.Join(dir, "error.log"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGQUIT) //nolint:errcheck // may have exited
		cmd.Wait()                          //nolint:errcheck // its exit status is the signal's
		os.RemoveAll(dir)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitListening(context.Background(), addr); err != nil {
		stop()
		return "", nil, fmt.Errorf("nginx: %w: %s", err, out.String())
	}
	return "http://" + addr + "/index.html", stop, nil
}

func waitListening(ctx context.Context, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("server at %s not listening: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cpuTime returns the user and system CPU time of this process.
func cpuTime() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// memory returns VmRSS and VmHWM from /proc/self/status, in bytes.
func memory() (rss, hwm int64) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			hwm = kb << 10
		}
	}
	return rss, hwm
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
