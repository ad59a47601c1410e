package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/cmdline"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/testing/benchhost"
	"github.com/sitewatch/sitewatch/services/testing/stackenv"
)

func main() { cmdline.Main("fleetbench", run) }

type config struct {
	prober                    string
	targets, probers, ports   int
	interval, warmup, session time.Duration
	logDir                    string
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c config
	fs := flag.NewFlagSet("fleetbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.prober, "prober", "", "the prober binary")
	fs.IntVar(&c.targets, "targets", 100000, "number of targets")
	fs.DurationVar(&c.interval, "interval", 60*time.Second, "interval of every target, and the length of each window")
	fs.IntVar(&c.probers, "probers", 4, "probers in the region at the start (one more joins)")
	fs.IntVar(&c.ports, "ports", 8, "nginx ports the targets are spread over (a new connection per check: fewer TIME_WAIT four-tuples per port)")
	fs.DurationVar(&c.warmup, "warmup", 20*time.Second, "time after every prober is ready before the steady window")
	fs.DurationVar(&c.session, "session-timeout", 10*time.Second, "the probers' -session-timeout")
	fs.StringVar(&c.logDir, "logs", "", "directory for the probers' logs (default: a temporary one, removed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.prober == "" {
		return errors.New("-prober is required")
	}
	if c.targets < 1 || c.probers < 2 || c.ports < 1 || c.interval < time.Second || c.warmup < 0 {
		return errors.New("-targets and -ports at least 1, -probers at least 2, -interval at least 1s")
	}
	kcfg, err := kafkaenv.FromEnv(getenv)
	if err != nil {
		return err
	}
	opts, err := kcfg.ClientOpts()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "fleetbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if c.logDir == "" {
		c.logDir = work
	}
	nginx, err := benchhost.StartNginx(ctx, c.ports)
	if err != nil {
		return err
	}
	defer nginx.Stop()

	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	targetsTopic, resultsTopic, region := "bench-fleet-targets-"+suffix, "bench-fleet-"+suffix, "bench-"+suffix
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, t := range []string{resultsTopic, targetsTopic} {
			if err := stackenv.RemoveTopic(ctx, kcfg, t); err != nil {
				fmt.Fprintln(stderr, "fleetbench:", err)
			}
		}
		if _, err := adm.DeleteGroups(ctx, "sitewatch-prober-"+region); err != nil {
			fmt.Fprintln(stderr, "fleetbench: delete group:", err)
		}
	}()
	// Created here, as the prober would (6 partitions), so that the reader
	// below starts from its first event.
	if _, err := adm.CreateTopic(ctx, 6, -1, nil, resultsTopic); err != nil {
		return fmt.Errorf("create topic %s: %w", resultsTopic, err)
	}

	targetsFile := filepath.Join(work, "targets.yaml")
	if err := writeTargets(targetsFile, c, nginx.URLs); err != nil {
		return err
	}
	applyStart := time.Now()
	out, err := exec.CommandContext(ctx, c.prober, "targets", "apply", targetsFile, "-topic", targetsTopic, "-partitions", "60").CombinedOutput()
	applyTime := time.Since(applyStart)
	os.WriteFile(filepath.Join(c.logDir, "fleet-apply.log"), out, 0o644) //nolint:errcheck // a log only
	if err != nil {
		return fmt.Errorf("prober targets apply: %w: %s", err, tail(string(out)))
	}
	fmt.Fprintf(stderr, "fleetbench: applied %d targets to %s in %.1f s\n", c.targets, targetsTopic, applyTime.Seconds())

	col := newCollector()
	readCtx, stopReading := context.WithCancel(ctx)
	readDone := make(chan error, 1)
	go func() { readDone <- col.read(readCtx, opts, resultsTopic) }()
	defer stopReading()

	var states groupLog
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	go states.poll(pollCtx, adm, "sitewatch-prober-"+region)

	startProber := func(i int) (*process, error) {
		addr, err := benchhost.FreeAddr()
		if err != nil {
			return nil, err
		}
		inst := fmt.Sprintf("fleetbench-%d", i)
		bp, err := benchhost.Start(c.prober, filepath.Join(c.logDir, "fleet-"+inst+".log"), nil,
			"-fleet", "-region", region, "-instance", inst, "-targets-topic", targetsTopic,
			"-topic", resultsTopic, "-listen", addr, "-spool-dir", filepath.Join(work, "spool-"+inst),
			"-session-timeout", c.session.String(), "-log-level", "warn")
		if err != nil {
			return nil, err
		}
		return &process{Process: bp, instance: inst, addr: addr}, nil
	}
	var probers []*process
	defer func() {
		var wg sync.WaitGroup
		for _, p := range probers {
			wg.Go(p.Stop)
		}
		wg.Wait()
	}()
	for i := range c.probers {
		p, err := startProber(i + 1)
		if err != nil {
			return err
		}
		probers = append(probers, p)
	}
	for _, p := range probers {
		if err := p.WaitReady(ctx, p.addr, 60*time.Second); err != nil {
			return fmt.Errorf("%s: %w (see %s)", p.instance, err, p.Log)
		}
	}
	fmt.Fprintf(stderr, "fleetbench: %d probers ready (region %s); %v warm-up, then 3 windows of %v\n", c.probers, region, c.warmup, c.interval)
	if err := sleep(ctx, c.warmup); err != nil {
		return err
	}

	// Steady window: CPU over it, RSS sampled every second.
	tl := timeline{interval: c.interval, steady: time.Now()}
	cpu0 := make([]time.Duration, len(probers))
	for i, p := range probers {
		cpu0[i] = cpu(p.Cmd.Process.Pid)
	}
	rssMax := make([]int64, len(probers))
	for time.Since(tl.steady) < c.interval {
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
		for i, p := range probers {
			rssMax[i] = max(rssMax[i], rss(p.Cmd.Process.Pid))
		}
	}
	cpu1 := make([]time.Duration, len(probers))
	peak := make([]int64, len(probers))
	for i, p := range probers {
		cpu1[i] = cpu(p.Cmd.Process.Pid)
		_, peak[i], _ = benchhost.Memory(p.Cmd.Process.Pid)
	}

	// Kill window.
	victim := probers[0]
	tl.kill = time.Now()
	victim.Cmd.Process.Kill() //nolint:errcheck // it is running
	fmt.Fprintf(stderr, "fleetbench: kill -9 %s\n", victim.instance)
	if err := sleep(ctx, time.Until(tl.kill.Add(c.interval))); err != nil {
		return err
	}

	// Join window.
	joiner, err := startProber(c.probers + 1)
	if err != nil {
		return err
	}
	tl.join = time.Now()
	probers = append(probers, joiner)
	fmt.Fprintf(stderr, "fleetbench: %s joins\n", joiner.instance)
	// The last slots' checks, then their events (the producer's linger,
	// the spool) before reading stops.
	if err := sleep(ctx, time.Until(tl.join.Add(c.interval+min(c.interval/2, 5*time.Second)+5*time.Second))); err != nil {
		return err
	}
	logBytes, logRecords := topicLog(ctx, adm, resultsTopic)
	stopReading()
	if err := <-readDone; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	stopPolling()

	rep := analyze(col.snapshot(), states.snapshot(), tl, targetIDs(c.targets), victim.instance, joiner.instance)
	rep.Targets, rep.IntervalS, rep.Probers = c.targets, c.interval.Seconds(), c.probers
	rep.SessionTimeoutS, rep.Ports, rep.ApplyS = c.session.Seconds(), c.ports, applyTime.Seconds()
	if logRecords > 0 {
		rep.LogBytesPerEvent = float64(logBytes) / float64(logRecords)
	}
	for i, p := range probers[:c.probers] {
		pp := proberFigures{Instance: p.instance, Checks: rep.steadyChecks[p.instance],
			RSSMiB: float64(rssMax[i]) / (1 << 20), PeakRSSMiB: float64(peak[i]) / (1 << 20)}
		if pp.Checks > 0 {
			pp.CPUMsPerCheck = (cpu1[i] - cpu0[i]).Seconds() * 1000 / float64(pp.Checks)
		}
		rep.PerProber = append(rep.PerProber, pp)
	}
	return json.NewEncoder(stdout).Encode(rep)
}

func writeTargets(path string, c config, urls []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "defaults:\n  interval: %s\n  timeout: %s\ntargets:\n", c.interval, min(c.interval/2, 5*time.Second))
	for i := range c.targets {
		fmt.Fprintf(&b, "  - id: %s\n    url: %s?t=%d\n", targetID(i), urls[i%len(urls)], i)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func targetID(i int) string { return fmt.Sprintf("fleet-%06d", i) }

func targetIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = targetID(i)
	}
	return ids
}

// topicLog is the size of a topic's log on the brokers, all replicas
// (DescribeAllLogDirs), and its records (end offsets); 0 when unknown.
func topicLog(ctx context.Context, adm *kadm.Client, topic string) (size, records int64) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, 0
	}
	ends.Each(func(o kadm.ListedOffset) { records += o.Offset })
	dirs, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		return 0, 0
	}
	var n int64
	dirs.Each(func(d kadm.DescribedLogDir) {
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
			if p.Topic == topic {
				n += p.Size
			}
		})
	})
	return n, records
}

// event is what the analysis needs of one CheckResult.
type event struct {
	target, instance string
	scheduled        time.Time
	started          time.Time
	up               bool
}

// collector reads the results topic from its start, without a group.
type collector struct {
	mu      sync.Mutex
	events  []event
	bytes   int64
	targets map[string]string // interned target IDs
}

func newCollector() *collector { return &collector{targets: map[string]string{}} }

func (c *collector) read(ctx context.Context, opts []kgo.Opt, topic string) error {
	cl, err := kgo.NewClient(append(slices.Clone(opts), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var h sr.ConfluentHeader
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("read %s: %w", topic, errs[0].Err)
		}
		var batch []event
		var n int64
		var derr error
		fetches.EachRecord(func(r *kgo.Record) {
			if derr != nil {
				return
			}
			_, rest, err := h.DecodeID(r.Value)
			if err == nil {
				_, rest, err = h.DecodeIndex(rest, 16)
			}
			var m sitewatchv1.CheckResult
			if err == nil {
				err = proto.Unmarshal(rest, &m)
			}
			if err != nil {
				derr = fmt.Errorf("%s partition %d offset %d: %w", topic, r.Partition, r.Offset, err)
				return
			}
			n += int64(len(r.Value))
			batch = append(batch, event{target: m.GetTarget().GetId(), instance: m.GetProber().GetInstance(),
				scheduled: m.GetScheduledAt().AsTime(), started: m.GetStartedAt().AsTime(), up: m.GetStatusCode() == 200})
		})
		if derr != nil {
			return derr
		}
		c.mu.Lock()
		for _, e := range batch {
			id, ok := c.targets[e.target]
			if !ok {
				c.targets[e.target] = e.target
				id = e.target
			}
			e.target = id
			c.events = append(c.events, e)
		}
		c.bytes += n
		c.mu.Unlock()
	}
}

type collected struct {
	events []event
	bytes  int64
}

func (c *collector) snapshot() collected {
	c.mu.Lock()
	defer c.mu.Unlock()
	return collected{events: slices.Clone(c.events), bytes: c.bytes}
}

// groupState is one DescribeGroups answer.
type groupState struct {
	at      time.Time
	state   string
	members []string // group instance IDs, or member IDs
}

type groupLog struct {
	mu     sync.Mutex
	states []groupState
}

func (g *groupLog) poll(ctx context.Context, adm *kadm.Client, group string) {
	for {
		described, err := adm.DescribeGroups(ctx, group)
		if err == nil {
			if d, ok := described[group]; ok && d.Err == nil {
				s := groupState{at: time.Now(), state: d.State}
				for _, m := range d.Members {
					id := m.MemberID
					if m.InstanceID != nil {
						id = *m.InstanceID
					}
					s.members = append(s.members, id)
				}
				slices.Sort(s.members)
				g.mu.Lock()
				g.states = append(g.states, s)
				g.mu.Unlock()
			}
		}
		if sleep(ctx, 250*time.Millisecond) != nil {
			return
		}
	}
}

func (g *groupLog) snapshot() []groupState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.states)
}

// timeline is when each window started; each lasts one interval.
type timeline struct {
	interval           time.Duration
	steady, kill, join time.Time
}

func (t timeline) in(start, at time.Time) bool {
	return !at.Before(start) && at.Before(start.Add(t.interval))
}

// report is the JSON object of a run (doc.go describes the fields).
type report struct {
	Targets          int             `json:"targets"`
	IntervalS        float64         `json:"interval_s"`
	Probers          int             `json:"probers"`
	SessionTimeoutS  float64         `json:"session_timeout_s"`
	Ports            int             `json:"ports"`
	ApplyS           float64         `json:"apply_s"`
	DemandedPerS     float64         `json:"demanded_per_s"`
	AchievedPerS     float64         `json:"achieved_per_s"`
	UpFraction       float64         `json:"up_fraction"`
	LagP50Ms         float64         `json:"lag_p50_ms"`
	LagP99Ms         float64         `json:"lag_p99_ms"`
	LagMaxMs         float64         `json:"lag_max_ms"`
	EventBytesMean   float64         `json:"event_bytes_mean"`
	LogBytesPerEvent float64         `json:"log_bytes_per_event"`
	Windows          []window        `json:"windows"`
	PerProber        []proberFigures `json:"per_prober"`
	Kill             killFigures     `json:"kill"`
	Join             joinFigures     `json:"join"`

	steadyChecks map[string]int
}

type window struct {
	Name         string  `json:"name"`
	Expected     int     `json:"expected"`
	Slots        int     `json:"slots"`
	Duplicates   int     `json:"duplicates"`
	Completeness float64 `json:"completeness"`
}

type proberFigures struct {
	Instance      string  `json:"instance"`
	Checks        int     `json:"checks"`
	CPUMsPerCheck float64 `json:"cpu_ms_per_check"`
	RSSMiB        float64 `json:"rss_mib"`
	PeakRSSMiB    float64 `json:"peak_rss_mib"`
}

type killFigures struct {
	Instance     string  `json:"instance"`
	Targets      int     `json:"targets"`
	GroupStableS float64 `json:"group_stable_s"`
	FirstTakenS  float64 `json:"first_taken_s"`
	AllTakenS    float64 `json:"all_taken_s"`
	Taken        int     `json:"taken"`
	MissedDead   int     `json:"missed_dead"`
	MissedOthers int     `json:"missed_others"`
}

type joinFigures struct {
	Instance     string  `json:"instance"`
	GroupStableS float64 `json:"group_stable_s"`
	FirstCheckS  float64 `json:"first_check_s"`
	Targets      int     `json:"targets"`
	Missed       int     `json:"missed"`
	MissedMoved  int     `json:"missed_moved"`
}

type slotKey struct {
	target string
	at     int64
}

// analyze turns the events and the group's states into the report's
// figures; -1 stands for a moment that never came.
func analyze(col collected, states []groupState, tl timeline, ids []string, victim, joiner string) report {
	targets := len(ids)
	rep := report{DemandedPerS: float64(targets) / tl.interval.Seconds(), steadyChecks: map[string]int{}}
	if len(col.events) > 0 {
		rep.EventBytesMean = float64(col.bytes) / float64(len(col.events))
	}
	// Slots per window, by scheduled time.
	names := []string{"steady", "kill", "join"}
	starts := []time.Time{tl.steady, tl.kill, tl.join}
	seen := make([]map[slotKey]int, 3)
	for i := range seen {
		seen[i] = map[slotKey]int{}
	}
	owner := map[string]string{} // target -> who checked it in the steady window
	var lags []time.Duration
	up := 0
	for _, e := range col.events {
		for i, s := range starts {
			if tl.in(s, e.scheduled) {
				seen[i][slotKey{e.target, e.scheduled.UnixNano()}]++
				if i == 0 {
					owner[e.target] = e.instance
				}
			}
		}
		if tl.in(tl.steady, e.started) {
			rep.steadyChecks[e.instance]++
			lags = append(lags, e.started.Sub(e.scheduled))
			if e.up {
				up++
			}
		}
	}
	for i, s := range seen {
		w := window{Name: names[i], Expected: targets, Slots: len(s)}
		for _, n := range s {
			w.Duplicates += n - 1
		}
		w.Completeness = float64(w.Slots) / float64(targets)
		rep.Windows = append(rep.Windows, w)
	}
	if len(lags) > 0 {
		slices.Sort(lags)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		rep.LagP50Ms, rep.LagP99Ms, rep.LagMaxMs = ms(lags[len(lags)/2]), ms(lags[len(lags)*99/100]), ms(lags[len(lags)-1])
		rep.AchievedPerS = float64(len(lags)) / tl.interval.Seconds()
		rep.UpFraction = float64(up) / float64(len(lags))
	}

	// Kill: the victim's targets, first checked by another prober after it.
	dead := map[string]bool{}
	for t, o := range owner {
		if o == victim {
			dead[t] = true
		}
	}
	k := killFigures{Instance: victim, Targets: len(dead), FirstTakenS: -1, AllTakenS: -1}
	taken := map[string]time.Time{}
	for _, e := range col.events {
		if dead[e.target] && e.instance != victim && !e.started.Before(tl.kill) {
			if t, ok := taken[e.target]; !ok || e.started.Before(t) {
				taken[e.target] = e.started
			}
		}
	}
	k.Taken = len(taken)
	for _, at := range taken {
		d := at.Sub(tl.kill).Seconds()
		if k.FirstTakenS < 0 || d < k.FirstTakenS {
			k.FirstTakenS = d
		}
		k.AllTakenS = max(k.AllTakenS, d)
	}
	if k.Taken < len(dead) {
		k.AllTakenS = -1
	}
	// Every target has one slot in the window: those without an event.
	checked := map[string]bool{}
	for key := range seen[1] {
		checked[key.target] = true
	}
	for _, t := range ids {
		switch {
		case checked[t]:
		case dead[t]:
			k.MissedDead++
		default:
			k.MissedOthers++
		}
	}
	k.GroupStableS = stableAfter(states, tl.kill, func(s groupState) bool { return !slices.Contains(s.members, victim) })
	rep.Kill = k

	j := joinFigures{Instance: joiner, FirstCheckS: -1}
	mine := map[string]bool{}
	for _, e := range col.events {
		if e.instance == joiner {
			mine[e.target] = true
			if d := e.started.Sub(tl.join).Seconds(); j.FirstCheckS < 0 || d < j.FirstCheckS {
				j.FirstCheckS = d
			}
		}
	}
	j.Targets = len(mine)
	checked = map[string]bool{}
	for key := range seen[2] {
		checked[key.target] = true
	}
	for _, t := range ids {
		if !checked[t] {
			j.Missed++
			if mine[t] {
				j.MissedMoved++
			}
		}
	}
	j.GroupStableS = stableAfter(states, tl.join, func(s groupState) bool { return slices.Contains(s.members, joiner) })
	rep.Join = j
	return rep
}

// stableAfter is the time from since to the first poll at which the group
// was Stable and cond held, in seconds; -1 when it never was.
func stableAfter(states []groupState, since time.Time, cond func(groupState) bool) float64 {
	for _, s := range states {
		if s.at.After(since) && s.state == "Stable" && cond(s) {
			return s.at.Sub(since).Seconds()
		}
	}
	return -1
}

// process is a prober of the fleet.
type process struct {
	*benchhost.Process
	instance, addr string
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

// cpu is a process's user+system time; 0 once it has gone.
func cpu(pid int) time.Duration {
	user, sys, _ := benchhost.CPU(pid)
	return user + sys
}

// rss is a process's resident set size; 0 once it has gone.
func rss(pid int) int64 {
	r, _, _ := benchhost.Memory(pid)
	return r
}
