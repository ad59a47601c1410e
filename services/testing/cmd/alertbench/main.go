package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/cmdline"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/testing/benchhost"
	"github.com/sitewatch/sitewatch/services/testing/stackenv"
)

func main() { cmdline.Main("alertbench", run) }

type config struct {
	alerter, recorder string
	events, targets   int
	rate              int
	rateFor           time.Duration
	logDir            string
}

// report is the JSON object of a run (doc.go describes the fields).
type report struct {
	RatePerS      int     `json:"rate_per_s"`
	RateForS      float64 `json:"rate_for_s"`
	Opened        int     `json:"opened"`
	OpenedP50Ms   float64 `json:"opened_p50_ms"`
	OpenedP99Ms   float64 `json:"opened_p99_ms"`
	OpenedMaxMs   float64 `json:"opened_max_ms"`
	Resolved      int     `json:"resolved"`
	ResolvedP50Ms float64 `json:"resolved_p50_ms"`
	ResolvedP99Ms float64 `json:"resolved_p99_ms"`

	Events               int     `json:"events"`
	RecorderDrainS       float64 `json:"recorder_drain_s"`
	RecorderEventsPerS   float64 `json:"recorder_events_per_s"`
	AlerterDrainS        float64 `json:"alerter_drain_s"`
	AlerterEventsPerS    float64 `json:"alerter_events_per_s"`
	BacklogIncidents     int     `json:"backlog_incidents"`
	BacklogNotifications int     `json:"backlog_notifications"`

	BacktestS           float64 `json:"backtest_s"`
	BacktestChecksPerS  float64 `json:"backtest_checks_per_s"`
	BacktestIncidents   int     `json:"backtest_incidents"`
	BacktestCheckedRows int     `json:"backtest_checks"`
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c config
	fs := flag.NewFlagSet("alertbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.alerter, "alerter", "", "the alerter binary")
	fs.StringVar(&c.recorder, "recorder", "", "the recorder binary")
	fs.IntVar(&c.events, "events", 1_000_000, "check results in the backlog")
	fs.IntVar(&c.targets, "targets", 10_000, "targets of the backlog")
	fs.IntVar(&c.rate, "rate", 1000, "checks per second of the latency part (as many targets, each checked every second)")
	fs.DurationVar(&c.rateFor, "rate-for", 30*time.Second, "how long the latency part produces")
	fs.StringVar(&c.logDir, "logs", "", "directory for the processes' logs (default: a temporary one, removed)")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if c.alerter == "" || c.recorder == "" {
		return errors.New("-alerter and -recorder are required")
	}
	if c.events < 1 || c.targets < 1 || c.rate < 1 || c.rateFor <= 0 {
		return errors.New("-events, -targets, -rate and -rate-for must be positive")
	}
	getenv = stackenv.Lookup(getenv)
	kcfg, err := kafkaenv.FromEnv(getenv)
	if err != nil {
		return err
	}
	adminURL := getenv("DATABASE_URL")
	if adminURL == "" {
		return errors.New("DATABASE_URL: not set (start the stack: go tool task stack:up)")
	}
	work, err := os.MkdirTemp("", "alertbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if c.logDir == "" {
		c.logDir = work
	}
	b := &bench{c: c, kcfg: kcfg, adminURL: adminURL, work: work, stderr: stderr}
	defer b.cleanup()
	rep := report{RatePerS: c.rate, RateForS: c.rateFor.Seconds(), Events: c.events}
	if err := b.latency(ctx, &rep); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	if err := b.drain(ctx, &rep); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	return json.NewEncoder(stdout).Encode(rep)
}

type bench struct {
	c        config
	kcfg     kafkaenv.Config
	adminURL string
	work     string
	stderr   io.Writer
	undo     []func()
}

func (b *bench) cleanup() {
	for i := len(b.undo) - 1; i >= 0; i-- {
		b.undo[i]()
	}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.stderr, "alertbench: "+format+"\n", args...)
}

// system is one fresh topic (with its schema) and database, migrated.
type system struct {
	topic, dbURL string
	serde        *sr.Serde
}

func (b *bench) newSystem(ctx context.Context, name string) (*system, error) {
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	s := &system{topic: "bench-alert-" + name + "-" + suffix}
	dbName := "bench_alert_" + name + "_" + suffix
	conn, err := pgx.Connect(ctx, b.adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to DATABASE_URL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		return nil, fmt.Errorf("create database %s: %w", dbName, err)
	}
	b.undo = append(b.undo, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if conn, err := pgx.Connect(ctx, b.adminURL); err == nil {
			if _, err := conn.Exec(ctx, "DROP DATABASE "+dbName+" WITH (FORCE)"); err != nil {
				b.logf("drop database %s: %v", dbName, err)
			}
			conn.Close(ctx)
		}
	})
	u, err := url.Parse(b.adminURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	u.Path = "/" + dbName
	s.dbURL = u.String()

	opts, err := b.kcfg.ClientOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 6, 1, nil, s.topic); err != nil {
		return nil, fmt.Errorf("create topic: %w", err)
	}
	b.undo = append(b.undo, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := stackenv.RemoveTopic(ctx, b.kcfg, s.topic); err != nil {
			b.logf("%v", err)
		}
	})
	registry, err := b.kcfg.Registry()
	if err != nil {
		return nil, err
	}
	ss, err := registry.CreateSchema(ctx, kafkaenv.Subject(s.topic), sr.Schema{Schema: sitewatchv1.Schema, Type: sr.TypeProtobuf})
	if err != nil {
		return nil, fmt.Errorf("register schema: %w", err)
	}
	s.serde = &sr.Serde{}
	s.serde.Register(ss.ID, &sitewatchv1.CheckResult{}, sr.Index(0),
		sr.AppendEncodeFn(func(b []byte, v any) ([]byte, error) {
			return proto.MarshalOptions{}.MarshalAppend(b, v.(*sitewatchv1.CheckResult))
		}))
	return s, nil
}

// migrate runs `recorder migrate` on the system's database.
func (b *bench) migrate(ctx context.Context, s *system) error {
	cmd := exec.CommandContext(ctx, b.c.recorder, "migrate")
	cmd.Env = benchhost.WithEnv(os.Environ(), "DATABASE_URL", s.dbURL)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("recorder migrate: %v\n%s", err, out)
	}
	return nil
}

// check is check k of target i at t; down makes it a failure.
func check(i, k int, t time.Time, down bool) *sitewatchv1.CheckResult {
	var id [16]byte // a UUIDv7: the check's milliseconds, then target and check
	binary.BigEndian.PutUint64(id[0:8], uint64(t.UnixMilli())<<16|0x7000)
	binary.BigEndian.PutUint64(id[8:16], uint64(i)<<32|uint64(k)|0x8000000000000000)
	target := targetID(i)
	m := &sitewatchv1.CheckResult{
		EventId:      fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16]),
		Target:       &sitewatchv1.Target{Id: target, Url: "https://" + target + ".example/", Method: "GET"},
		Prober:       &sitewatchv1.Prober{Instance: "bench", Region: "local"},
		StartedAt:    timestamppb.New(t),
		ResponseTime: durationpb.New(80 * time.Millisecond),
		StatusCode:   200,
		Outcome:      sitewatchv1.Outcome_OUTCOME_UP,
		Protocol:     "HTTP/2.0",
	}
	if down {
		m.Outcome, m.FailureKind = sitewatchv1.Outcome_OUTCOME_DOWN, sitewatchv1.FailureKind_FAILURE_KIND_HTTP_STATUS
		m.StatusCode, m.Error = 503, "unexpected status 503"
	}
	return m
}

func targetID(i int) string { return fmt.Sprintf("bench-%05d", i) }

// producer sends check results to a system's topic.
type producer struct {
	cl       *kgo.Client
	s        *system
	firstErr atomic.Pointer[error]
}

func (b *bench) producer(s *system) (*producer, error) {
	opts, err := b.kcfg.ClientOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic(s.topic),
		kgo.ProducerLinger(2*time.Millisecond), kgo.ProducerBatchCompression(kgo.NoCompression()))...)
	if err != nil {
		return nil, err
	}
	return &producer{cl: cl, s: s}, nil
}

func (p *producer) send(ctx context.Context, m *sitewatchv1.CheckResult) error {
	v, err := p.s.serde.AppendEncode(nil, m)
	if err != nil {
		return err
	}
	p.cl.Produce(ctx, &kgo.Record{Key: []byte(m.Target.Id), Value: v}, func(_ *kgo.Record, err error) {
		if err != nil {
			p.firstErr.CompareAndSwap(nil, &err)
		}
	})
	return nil
}

func (p *producer) close(ctx context.Context) error {
	defer p.cl.Close()
	if err := p.cl.Flush(ctx); err != nil {
		return err
	}
	if e := p.firstErr.Load(); e != nil {
		return *e
	}
	return nil
}

// receiver is the webhook the alerter notifies: it keeps, per transition,
// how long after the transition's check each notification came, once per
// Idempotency-Key.
type receiver struct {
	addr string
	srv  *http.Server

	mu       sync.Mutex
	seen     map[string]bool
	opened   []time.Duration
	resolved []time.Duration
}

func newReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{addr: ln.Addr().String(), seen: map[string]bool{}}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln) //nolint:errcheck // ends with Close
	return r, nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	var n struct {
		Transition  string     `json:"transition"`
		ConfirmedAt time.Time  `json:"confirmed_at"`
		ResolvedAt  *time.Time `json:"resolved_at"`
	}
	if err := json.NewDecoder(req.Body).Decode(&n); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	key := req.Header.Get("Idempotency-Key")
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[key] {
		return
	}
	r.seen[key] = true
	switch {
	case n.Transition == "opened":
		r.opened = append(r.opened, now.Sub(n.ConfirmedAt))
	case n.Transition == "resolved" && n.ResolvedAt != nil:
		r.resolved = append(r.resolved, now.Sub(*n.ResolvedAt))
	}
}

// take returns what came so far and forgets it.
func (r *receiver) take() (opened, resolved []time.Duration, keys int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	opened, resolved, keys = r.opened, r.resolved, len(r.seen)
	r.opened, r.resolved, r.seen = nil, nil, map[string]bool{}
	return opened, resolved, keys
}

func quantile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return math.Round(float64(s[max(i, 0)].Microseconds())/10) / 100 // ms, two decimals
}

// writeTargets writes the alerter's file: n targets, failing 2 in a row to
// confirm and 2 good to resolve, notifying the receiver.
func (b *bench) writeTargets(name string, n int, hook string) (string, error) {
	var s strings.Builder
	fmt.Fprintf(&s, `channels:
  - name: bench
    type: webhook
    url: %s
defaults:
  interval: 1s
  timeout: 500ms
  alert:
    failure_threshold: 2
    success_threshold: 2
    tls_expiry_days: 0
    no_data: false
    notify: [bench]
targets:
`, hook)
	for i := range n {
		fmt.Fprintf(&s, "  - id: %s\n    url: https://%s.example/\n", targetID(i), targetID(i))
	}
	path := filepath.Join(b.work, name+".yaml")
	return path, os.WriteFile(path, []byte(s.String()), 0o644)
}

// prepare makes a fresh, migrated system, a receiver, and the alerter's
// file of n targets notifying it.
func (b *bench) prepare(ctx context.Context, name string, n int) (*system, *receiver, string, error) {
	s, err := b.newSystem(ctx, name)
	if err != nil {
		return nil, nil, "", err
	}
	if err := b.migrate(ctx, s); err != nil {
		return nil, nil, "", err
	}
	recv, err := newReceiver()
	if err != nil {
		return nil, nil, "", err
	}
	b.undo = append(b.undo, func() { recv.srv.Close() })
	file, err := b.writeTargets(name, n, "http://"+recv.addr+"/hook")
	if err != nil {
		return nil, nil, "", err
	}
	return s, recv, file, nil
}

// latency is part 1.
func (b *bench) latency(ctx context.Context, rep *report) error {
	s, recv, file, err := b.prepare(ctx, "latency", b.c.rate)
	if err != nil {
		return err
	}
	al, _, err := b.startAlerter(ctx, s, file, "latency")
	if err != nil {
		return err
	}
	defer al.Stop()
	p, err := b.producer(s)
	if err != nil {
		return err
	}
	b.logf("latency: %d checks/s for %s, topic %s", b.c.rate, b.c.rateFor, s.topic)
	// Target i's check k fails when (k+i) mod 10 < 3: 3 failures in 10,
	// so each target opens and resolves an incident every 10 s, the
	// targets spread over the 10 s.
	const tick = 10 * time.Millisecond
	start := time.Now()
	next := 0 // the next (target, check) pair, in the order checks are due
	t := time.NewTicker(tick)
	defer t.Stop()
	for time.Since(start) < b.c.rateFor {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		due := int(time.Since(start) * time.Duration(b.c.rate) / time.Second)
		for ; next < due; next++ {
			i, k := next%b.c.rate, next/b.c.rate
			if err := p.send(ctx, check(i, k, time.Now(), (k+i)%10 < 3)); err != nil {
				return err
			}
		}
	}
	if err := p.close(ctx); err != nil {
		return err
	}
	// The last notifications: wait for the alerter's outbox to empty.
	if err := waitFor(ctx, 60*time.Second, func() (bool, error) {
		n, err := count(ctx, s.dbURL, `SELECT count(*) FROM notification_outbox WHERE delivered_at IS NULL AND failed_at IS NULL`)
		return n == 0, err
	}); err != nil {
		return fmt.Errorf("outbox not empty: %w", err)
	}
	opened, resolved, _ := recv.take()
	rep.Opened, rep.Resolved = len(opened), len(resolved)
	rep.OpenedP50Ms, rep.OpenedP99Ms, rep.OpenedMaxMs = quantile(opened, 0.5), quantile(opened, 0.99), quantile(opened, 1)
	rep.ResolvedP50Ms, rep.ResolvedP99Ms = quantile(resolved, 0.5), quantile(resolved, 0.99)
	return nil
}

// drain is parts 2 and 3.
func (b *bench) drain(ctx context.Context, rep *report) error {
	s, recv, file, err := b.prepare(ctx, "drain", b.c.targets)
	if err != nil {
		return err
	}
	// One check a second per target, ending now (the alerter notifies
	// only checks of the last hour); every tenth target down for 5 checks.
	checks := (b.c.events + b.c.targets - 1) / b.c.targets
	base := time.Now().Add(-time.Duration(checks+5) * time.Second).Truncate(time.Millisecond)
	p, err := b.producer(s)
	if err != nil {
		return err
	}
	b.logf("drain: producing %d events (%d targets) to %s", b.c.events, b.c.targets, s.topic)
	for n := range b.c.events {
		i, k := n%b.c.targets, n/b.c.targets
		down := i%10 == 0 && k >= checks/2 && k < checks/2+5
		if err := p.send(ctx, check(i, k, base.Add(time.Duration(k)*time.Second+time.Duration(i)*time.Millisecond/10), down)); err != nil {
			return err
		}
	}
	if err := p.close(ctx); err != nil {
		return err
	}

	// The recorder first: its rows are the backtest's.
	recAddr, err := benchhost.FreeAddr()
	if err != nil {
		return err
	}
	// Each drain is timed from the process's start: its start-up counts.
	t0 := time.Now()
	rec, err := benchhost.Start(b.c.recorder, filepath.Join(b.c.logDir, "alertbench-recorder.log"), benchhost.WithEnv(os.Environ(), "DATABASE_URL", s.dbURL),
		"-topic", s.topic, "-group", s.topic+"-recorder", "-listen", recAddr, "-log-level", "warn")
	if err != nil {
		return err
	}
	defer rec.Stop()
	if err := rec.WaitReady(ctx, recAddr, 60*time.Second); err != nil {
		return fmt.Errorf("recorder: %w (see %s)", err, rec.Log)
	}
	if err := waitFor(ctx, 30*time.Minute, func() (bool, error) {
		v, err := scrapeSum(ctx, recAddr, "sitewatch_recorder_events_stored_total")
		return int(v) >= b.c.events, err
	}); err != nil {
		return fmt.Errorf("recorder drain: %w", err)
	}
	rep.RecorderDrainS = time.Since(t0).Seconds()
	rep.RecorderEventsPerS = math.Round(float64(b.c.events) / rep.RecorderDrainS)
	rec.Stop()
	b.logf("drain: recorder %.1f s", rep.RecorderDrainS)

	t0 = time.Now()
	al, alAddr, err := b.startAlerter(ctx, s, file, "drain")
	if err != nil {
		return err
	}
	defer al.Stop()
	if err := waitFor(ctx, 30*time.Minute, func() (bool, error) {
		v, err := scrapeSum(ctx, alAddr, "sitewatch_alerter_events_total")
		return int(v) >= b.c.events, err
	}); err != nil {
		return fmt.Errorf("alerter drain: %w", err)
	}
	rep.AlerterDrainS = time.Since(t0).Seconds()
	rep.AlerterEventsPerS = math.Round(float64(b.c.events) / rep.AlerterDrainS)
	b.logf("drain: alerter %.1f s", rep.AlerterDrainS)
	if err := waitFor(ctx, 5*time.Minute, func() (bool, error) {
		n, err := count(ctx, s.dbURL, `SELECT count(*) FROM notification_outbox WHERE delivered_at IS NULL AND failed_at IS NULL`)
		return n == 0, err
	}); err != nil {
		return fmt.Errorf("outbox not empty: %w", err)
	}
	al.Stop()
	if rep.BacklogIncidents, err = count(ctx, s.dbURL, `SELECT count(*) FROM incidents`); err != nil {
		return err
	}
	_, _, rep.BacklogNotifications = recv.take()

	// Part 3: the backtest over what the recorder stored.
	cmd := exec.CommandContext(ctx, b.c.alerter, "backtest", "-config", file,
		"-from", base.Add(-time.Minute).UTC().Format(time.RFC3339), "-to", time.Now().Add(time.Minute).UTC().Format(time.RFC3339))
	cmd.Env = benchhost.WithEnv(os.Environ(), "DATABASE_URL", s.dbURL)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = b.stderr
	t0 = time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	first, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return fmt.Errorf("backtest: %w", err)
	}
	if _, err := io.Copy(io.Discard, out); err != nil {
		return err
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("backtest: %w", err)
	}
	rep.BacktestS = time.Since(t0).Seconds()
	m := backtestSummary.FindStringSubmatch(strings.TrimSpace(first))
	if m == nil {
		return fmt.Errorf("backtest: unexpected first line %q", first)
	}
	rep.BacktestCheckedRows, _ = strconv.Atoi(m[1])
	rep.BacktestIncidents, _ = strconv.Atoi(m[2])
	rep.BacktestChecksPerS = math.Round(float64(rep.BacktestCheckedRows) / rep.BacktestS)
	return nil
}

// backtestSummary is the first line of `alerter backtest`.
var backtestSummary = regexp.MustCompile(`: (\d+) checks, .*, (\d+) incidents$`)

func (b *bench) startAlerter(ctx context.Context, s *system, file, name string) (*benchhost.Process, string, error) {
	addr, err := benchhost.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	p, err := benchhost.Start(b.c.alerter, filepath.Join(b.c.logDir, "alertbench-alerter-"+name+".log"), benchhost.WithEnv(os.Environ(), "DATABASE_URL", s.dbURL),
		"-config", file, "-topic", s.topic, "-group", s.topic+"-alerter", "-listen", addr, "-log-level", "warn")
	if err != nil {
		return nil, "", err
	}
	if err := p.WaitReady(ctx, addr, 60*time.Second); err != nil {
		p.Stop()
		return nil, "", fmt.Errorf("alerter: %w (see %s)", err, p.Log)
	}
	return p, addr, nil
}

func count(ctx context.Context, dbURL, query string) (int, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int
	return n, conn.QueryRow(ctx, query).Scan(&n)
}

func waitFor(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s (last error: %v)", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// scrapeSum sums every sample of a metric on addr's /metrics.
func scrapeSum(ctx context.Context, addr, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}
