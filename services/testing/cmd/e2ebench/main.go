package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sitewatch/sitewatch/services/internal/cmdline"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/testing/benchhost"
	"github.com/sitewatch/sitewatch/services/testing/stackenv"
)

func main() { cmdline.Main("e2ebench", run) }

type config struct {
	prober, recorder, url string
	targets               int
	interval, warmup      time.Duration
	duration              time.Duration
	logDir                string
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c config
	fs := flag.NewFlagSet("e2ebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.prober, "prober", "", "the prober binary")
	fs.StringVar(&c.recorder, "recorder", "", "the recorder binary")
	fs.StringVar(&c.url, "url", "", "the page every target checks (a query string tells the targets apart)")
	fs.IntVar(&c.targets, "targets", 1000, "number of targets")
	fs.DurationVar(&c.interval, "interval", time.Second, "interval of every target")
	fs.DurationVar(&c.warmup, "warmup", 5*time.Second, "time after the first stored row before measuring")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "measured time")
	fs.StringVar(&c.logDir, "logs", "", "directory for the logs of the two processes (default: a temporary one, removed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.prober == "" || c.recorder == "" || c.url == "" {
		return errors.New("-prober, -recorder and -url are required")
	}
	if c.targets < 1 || c.interval <= 0 || c.duration <= 0 {
		return errors.New("-targets, -interval and -duration must be positive")
	}
	kcfg, err := kafkaenv.FromEnv(getenv)
	if err != nil {
		return err
	}
	adminURL := getenv("DATABASE_URL")
	if adminURL == "" {
		return errors.New("DATABASE_URL: not set (start the stack: go tool task stack:up)")
	}
	work, err := os.MkdirTemp("", "e2ebench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if c.logDir == "" {
		c.logDir = work
	}

	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	topic, dbName := "bench-e2e-"+suffix, "bench_e2e_"+suffix
	dbURL, err := createDatabase(ctx, adminURL, dbName)
	if err != nil {
		return err
	}
	defer dropDatabase(adminURL, dbName, stderr)
	if err := createTopic(ctx, kcfg, topic); err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := stackenv.RemoveTopic(ctx, kcfg, topic); err != nil {
			fmt.Fprintln(stderr, "e2ebench:", err)
		}
	}()

	targetsFile := filepath.Join(work, "targets.yaml")
	if err := writeTargets(targetsFile, c); err != nil {
		return err
	}

	// The recorder first, so that it has joined the group before events come.
	recAddr, err := benchhost.FreeAddr()
	if err != nil {
		return err
	}
	recorder, err := benchhost.Start(c.recorder, filepath.Join(c.logDir, "e2e-recorder.Log"),
		benchhost.WithEnv(os.Environ(), "DATABASE_URL", dbURL),
		"-topic", topic, "-group", topic, "-listen", recAddr, "-log-level", "warn")
	if err != nil {
		return err
	}
	defer recorder.Stop()
	if err := recorder.WaitReady(ctx, recAddr, 60*time.Second); err != nil {
		return fmt.Errorf("recorder: %w (see %s)", err, recorder.Log)
	}
	probAddr, err := benchhost.FreeAddr()
	if err != nil {
		return err
	}
	prober, err := benchhost.Start(c.prober, filepath.Join(c.logDir, "e2e-prober.Log"), os.Environ(),
		"-config", targetsFile, "-topic", topic, "-listen", probAddr, "-instance", "e2ebench",
		"-region", "local", "-log-level", "warn", "-spool-dir", filepath.Join(work, "spool"))
	if err != nil {
		return err
	}
	defer prober.Stop()
	if err := prober.WaitReady(ctx, probAddr, 60*time.Second); err != nil {
		return fmt.Errorf("prober: %w (see %s)", err, prober.Log)
	}

	fmt.Fprintf(stderr, "e2ebench: %d targets every %v against %s, topic %s, database %s; waiting for rows\n",
		c.targets, c.interval, c.url, topic, dbName)
	deadline := time.Now().Add(60 * time.Second)
	for {
		m, err := scrape(ctx, recAddr)
		if err == nil && m.sum("sitewatch_recorder_events_stored_total") > 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no row stored within 60 s (see %s and %s)", recorder.Log, prober.Log)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	if err := sleep(ctx, c.warmup); err != nil {
		return err
	}

	rec0, err := scrape(ctx, recAddr)
	if err != nil {
		return err
	}
	prob0, err := scrape(ctx, probAddr)
	if err != nil {
		return err
	}
	rcpu0, pcpu0 := cpu(recorder.Cmd.Process.Pid), cpu(prober.Cmd.Process.Pid)
	start := time.Now()
	var recRSS, probRSS int64
	for time.Since(start) < c.duration {
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
		recRSS = max(recRSS, rss(recorder.Cmd.Process.Pid))
		probRSS = max(probRSS, rss(prober.Cmd.Process.Pid))
	}
	elapsed := time.Since(start)
	rcpu1, pcpu1 := cpu(recorder.Cmd.Process.Pid), cpu(prober.Cmd.Process.Pid)
	rec1, err := scrape(ctx, recAddr)
	if err != nil {
		return err
	}
	prob1, err := scrape(ctx, probAddr)
	if err != nil {
		return err
	}

	checks := prob1.sum("sitewatch_prober_checks_total") - prob0.sum("sitewatch_prober_checks_total")
	stored := rec1.sum("sitewatch_recorder_events_stored_total") - rec0.sum("sitewatch_recorder_events_stored_total")
	const delay = "sitewatch_recorder_end_to_end_delay_seconds"
	buckets := rec1.buckets(delay).minus(rec0.buckets(delay))
	rep := report{
		OfferedPerS: float64(c.targets) / c.interval.Seconds(), MeasuredS: elapsed.Seconds(),
		ChecksPerS: checks / elapsed.Seconds(), StoredPerS: stored / elapsed.Seconds(),
		ProberRSSMiB: float64(probRSS) / (1 << 20), RecorderRSSMiB: float64(recRSS) / (1 << 20),
	}
	ms := func(s float64) float64 { return math.Round(s * 1000) }
	v, lo, hi := buckets.quantile(0.50)
	rep.DelayP50Ms, rep.DelayP50BucketMs = ms(v), [2]float64{ms(lo), ms(hi)}
	v, lo, hi = buckets.quantile(0.99)
	rep.DelayP99Ms, rep.DelayP99BucketMs = ms(v), [2]float64{ms(lo), ms(hi)}
	if checks > 0 {
		rep.ProberCPUMsPerCheck = (pcpu1 - pcpu0).Seconds() * 1000 / checks
	}
	if stored > 0 {
		rep.RecorderCPUMsPerEvent = (rcpu1 - rcpu0).Seconds() * 1000 / stored
	}
	return json.NewEncoder(stdout).Encode(rep)
}

// report is the JSON object of a run (doc.go describes the fields).
type report struct {
	OfferedPerS           float64    `json:"offered_per_s"`
	MeasuredS             float64    `json:"measured_s"`
	ChecksPerS            float64    `json:"checks_per_s"`
	StoredPerS            float64    `json:"stored_per_s"`
	DelayP50Ms            float64    `json:"delay_p50_ms"`
	DelayP50BucketMs      [2]float64 `json:"delay_p50_bucket_ms"`
	DelayP99Ms            float64    `json:"delay_p99_ms"`
	DelayP99BucketMs      [2]float64 `json:"delay_p99_bucket_ms"`
	ProberCPUMsPerCheck   float64    `json:"prober_cpu_ms_per_check"`
	RecorderCPUMsPerEvent float64    `json:"recorder_cpu_ms_per_event"`
	ProberRSSMiB          float64    `json:"prober_rss_mib"`
	RecorderRSSMiB        float64    `json:"recorder_rss_mib"`
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func writeTargets(path string, c config) error {
	var b strings.Builder
	fmt.Fprintf(&b, "defaults:\n  interval: %s\n  timeout: %s\ntargets:\n", c.interval, min(c.interval/2, 5*time.Second))
	sep := "?"
	if strings.Contains(c.url, "?") {
		sep = "&"
	}
	for i := range c.targets {
		fmt.Fprintf(&b, "  - id: e2e-%05d\n    url: %s%st=%d\n", i, c.url, sep, i)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// metrics is one scrape in the Prometheus text format: sample lines by
// metric name.
type metrics map[string][]sample

type sample struct {
	labels string
	value  float64
}

func scrape(ctx context.Context, addr string) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name, labels := line[:i], ""
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name, labels = name[:j], name[j:]
		}
		m[name] = append(m[name], sample{labels, v})
	}
	return m, sc.Err()
}

func (m metrics) sum(name string) float64 {
	var s float64
	for _, x := range m[name] {
		s += x.value
	}
	return s
}

// histogram is cumulative counts by upper bound, in order.
type histogram struct {
	le    []float64
	count []float64
}

func (m metrics) buckets(name string) histogram {
	var h histogram
	for _, x := range m[name+"_bucket"] {
		_, rest, ok := strings.Cut(x.labels, `le="`)
		if !ok {
			continue
		}
		bound, _, _ := strings.Cut(rest, `"`)
		le, err := strconv.ParseFloat(bound, 64) // "+Inf" parses as +Inf
		if err != nil {
			continue
		}
		h.le = append(h.le, le)
		h.count = append(h.count, x.value)
	}
	return h
}

func (h histogram) minus(o histogram) histogram {
	d := histogram{le: slices.Clone(h.le), count: slices.Clone(h.count)}
	for i := range d.le {
		if i < len(o.le) && o.le[i] == d.le[i] {
			d.count[i] -= o.count[i]
		}
	}
	return d
}

// quantile interpolates linearly within the bucket holding the q-quantile,
// as PromQL's histogram_quantile does, and returns that bucket's bounds.
func (h histogram) quantile(q float64) (v, lo, hi float64) {
	if len(h.count) == 0 || h.count[len(h.count)-1] == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	rank := q * h.count[len(h.count)-1]
	prev := 0.0
	for i, c := range h.count {
		if c >= rank {
			if i > 0 {
				lo = h.le[i-1]
			}
			hi = h.le[i]
			if math.IsInf(hi, 1) {
				return lo, lo, hi
			}
			if c == prev {
				return hi, lo, hi
			}
			return lo + (hi-lo)*(rank-prev)/(c-prev), lo, hi
		}
		prev = c
	}
	return math.NaN(), math.NaN(), math.NaN()
}

func createDatabase(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", fmt.Errorf("DATABASE_URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func dropDatabase(adminURL, name string, stderr io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err == nil {
		_, err = conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)")
		conn.Close(ctx)
	}
	if err != nil {
		fmt.Fprintf(stderr, "e2ebench: drop database %s: %v\n", name, err)
	}
}

// createTopic creates the run's topic as the prober would (6 partitions),
// before the recorder subscribes to it.
func createTopic(ctx context.Context, kcfg kafkaenv.Config, topic string) error {
	opts, err := kcfg.ClientOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 6, -1, nil, topic); err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// cpu is a process's user+system time; 0 once it has gone, as its figure
// is then missing rather than wrong.
func cpu(pid int) time.Duration {
	user, sys, _ := benchhost.CPU(pid)
	return user + sys
}

// rss is a process's resident set size; 0 once it has gone.
func rss(pid int) int64 {
	r, _, _ := benchhost.Memory(pid)
	return r
}
