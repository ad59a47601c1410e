package fleet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/internal/targetstopic"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

// fakeScheduler records what a Member gives it: the targets by ID with
// their URL, and the IDs it was asked to wait for.
type fakeScheduler struct {
	mu    sync.Mutex
	set   map[string]string
	sets  int
	waits []string
	// ever holds every "id path" the scheduler was ever given.
	ever map[string]bool
}

func (s *fakeScheduler) Set(ts []*targets.Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set = map[string]string{}
	if s.ever == nil {
		s.ever = map[string]bool{}
	}
	for _, t := range ts {
		s.set[t.ID] = strings.TrimPrefix(t.URL, "http://127.0.0.1:8080")
		s.ever[t.ID+" "+s.set[t.ID]] = true
	}
	s.sets++
}

func (s *fakeScheduler) Wait(_ context.Context, ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waits = append(s.waits, ids...)
	return nil
}

// current returns "id path" lines, sorted.
func (s *fakeScheduler) current() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, id := range slices.Sorted(maps.Keys(s.set)) {
		out = append(out, id+" "+s.set[id])
	}
	return strings.Join(out, ",")
}

func regionFile(extra string) string {
	return `defaults:
  interval: 30s
  timeout: 5s
targets:
  - id: all
    url: http://127.0.0.1:8080/all
  - id: eu
    url: http://127.0.0.1:8080/eu
    regions: [eu-west]
  - id: eu-us
    url: http://127.0.0.1:8080/eu-us
    regions: [us-east, eu-west]
  - id: us
    url: http://127.0.0.1:8080/us
    regions: [us-east]
` + extra
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, got := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s; last: %s", what, timeout, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMemberBookkeeping: a member checks the targets of its region (or of
// no region), follows changes and tombstones live, skips and counts bad
// records, is ready once it read its partitions, and at the end removes
// every target and waits for them.
func TestMemberBookkeeping(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		topic := stacktest.Name("fleet_member")
		// The region names the group: one no other test (or run) uses.
		eu := strings.ReplaceAll(stacktest.Name("eu-west"), "_", "-")
		inEU := func(file string) string { return strings.ReplaceAll(file, "eu-west", eu) }
		if _, _, err := b.run(t, "apply", writeFile(t, inEU(regionFile(""))), "-topic", topic, "-partitions", "4"); err != nil {
			t.Fatal(err)
		}
		// A record that is no Target, and one whose key is not its ID.
		cl, err := kgo.NewClient(b.opts(t)...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("junk"), Value: []byte("not a target")}).FirstErr(); err != nil {
			t.Fatal(err)
		}

		sched := &fakeScheduler{}
		reg := prometheus.NewRegistry()
		m, err := NewMember(ctx, b.opts(t), sched, Options{Topic: topic, Region: eu, Instance: "p1", SessionTimeout: 10 * time.Second, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.Ready(ctx); err == nil || err.Error() != "not yet in group sitewatch-prober-"+eu {
			t.Errorf("Ready before Run: %v", err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- m.Run(runCtx) }()

		waitFor(t, "ready", 30*time.Second, func() (bool, string) {
			err := m.Ready(ctx)
			return err == nil, fmt.Sprint(err)
		})
		if got, want := sched.current(), "all /all,eu /eu,eu-us /eu-us"; got != want {
			t.Errorf("targets after the read: %s, want %s", got, want)
		}
		if got := testutil.ToFloat64(m.partitions); got != 4 {
			t.Errorf("partitions gauge %v, want 4", got)
		}
		if got := testutil.ToFloat64(m.targets); got != 3 {
			t.Errorf("targets gauge %v, want 3", got)
		}
		if got := testutil.ToFloat64(m.bad); got != 1 {
			t.Errorf("bad records %v, want 1", got)
		}

		// Live: eu changes its URL, eu-us goes (tombstone), eu2 comes, us
		// joins eu-west, all leaves for us-east only.
		next := `defaults:
  interval: 30s
  timeout: 5s
targets:
  - id: all
    url: http://127.0.0.1:8080/all
    regions: [us-east]
  - id: eu
    url: http://127.0.0.1:8080/eu-new
    regions: [eu-west]
  - id: eu2
    url: http://127.0.0.1:8080/eu2
  - id: us
    url: http://127.0.0.1:8080/us
    regions: [us-east, eu-west]
`
		if _, _, err := b.run(t, "apply", writeFile(t, inEU(next)), "-topic", topic, "-partitions", "4"); err != nil {
			t.Fatal(err)
		}
		want := "eu /eu-new,eu2 /eu2,us /us"
		waitFor(t, "live changes", 30*time.Second, func() (bool, string) {
			got := sched.current()
			return got == want, got
		})
		if got := testutil.ToFloat64(m.targets); got != 3 {
			t.Errorf("targets gauge %v, want 3", got)
		}

		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if got := sched.current(); got != "" {
			t.Errorf("targets after Run: %q, want none", got)
		}
		sched.mu.Lock()
		slices.Sort(sched.waits)
		if got := strings.Join(sched.waits, ","); got != "eu,eu2,us" {
			t.Errorf("waited for %s, want eu,eu2,us", got)
		}
		sched.mu.Unlock()
		if got := testutil.ToFloat64(m.partitions); got != 0 {
			t.Errorf("partitions gauge after Run %v, want 0", got)
		}
	})
}

// TestMemberSchedulesAPartitionOnceRead: a partition read from its start
// holds the history of its targets until the cleaner compacts it (the active
// segment never is). Fetched a batch at a time, its older definitions and
// deleted targets must not be checked while the rest is still on its way:
// only the state at the end offset reaches the scheduler.
func TestMemberSchedulesAPartitionOnceRead(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		topic := stacktest.Name("fleet_history")
		region := strings.ReplaceAll(stacktest.Name("history"), "_", "-")
		file := func(targets string) string {
			return writeFile(t, "defaults:\n  interval: 30s\n  timeout: 5s\ntargets:\n"+targets)
		}
		// x at /old, then at /new, then removed as y comes: a batch each.
		for _, ts := range []string{
			"  - id: x\n    url: http://127.0.0.1:8080/old\n",
			"  - id: x\n    url: http://127.0.0.1:8080/new\n",
			"  - id: y\n    url: http://127.0.0.1:8080/y\n",
		} {
			if _, _, err := b.run(t, "apply", file(ts), "-topic", topic, "-partitions", "1"); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sched := &fakeScheduler{}
		// A batch per fetch, as a partition larger than a fetch is read.
		opts := append(b.opts(t), kgo.FetchMaxBytes(1), kgo.FetchMaxPartitionBytes(1))
		m, err := NewMember(ctx, opts, sched, Options{Topic: topic, Region: region, Instance: "p1", SessionTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- m.Run(runCtx) }()
		waitFor(t, "ready", 30*time.Second, func() (bool, string) {
			err := m.Ready(ctx)
			return err == nil, fmt.Sprint(err)
		})
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		sched.mu.Lock()
		defer sched.mu.Unlock()
		if got := strings.Join(slices.Sorted(maps.Keys(sched.ever)), ","); got != "y /y" {
			t.Errorf("the scheduler was given %s, want only y /y", got)
		}
	})
}

// TestMemberSkipsARecordInTheWrongPartition: apply writes a target to the
// partition of its key (murmur2, as Kafka's clients do). A record of the
// same ID written elsewhere (by hand, or by a tool with another
// partitioner) would give the target a second owner, or two definitions on
// one prober: it is bad, and the one in its key's partition runs.
func TestMemberSkipsARecordInTheWrongPartition(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		topic := stacktest.Name("fleet_misplaced")
		region := strings.ReplaceAll(stacktest.Name("misplaced"), "_", "-")
		file := writeFile(t, "defaults:\n  interval: 30s\n  timeout: 5s\ntargets:\n  - id: x\n    url: http://127.0.0.1:8080/good\n")
		if _, _, err := b.run(t, "apply", file, "-topic", topic, "-partitions", "4"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cfg, err := kafkaenv.FromEnv(b.getenv)
		if err != nil {
			t.Fatal(err)
		}
		reg, err := cfg.Registry()
		if err != nil {
			t.Fatal(err)
		}
		codec, err := targetstopic.Register(ctx, reg, topic)
		if err != nil {
			t.Fatal(err)
		}
		f, err := targets.Parse("evil.yaml", []byte("targets:\n  - id: x\n    url: http://127.0.0.1:8080/evil\n"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := codec.Record(topic, targets.ToProto(f.Targets[0]))
		if err != nil {
			t.Fatal(err)
		}
		right := kgo.StickyKeyPartitioner(nil).ForTopic(topic).Partition(r, 4)
		r.Partition = int32((right + 1) % 4)
		cl, err := kgo.NewClient(append(b.opts(t), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}

		sched := &fakeScheduler{}
		m, err := NewMember(ctx, b.opts(t), sched, Options{Topic: topic, Region: region, Instance: "p1", SessionTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- m.Run(runCtx) }()
		waitFor(t, "ready", 30*time.Second, func() (bool, string) {
			err := m.Ready(ctx)
			return err == nil, fmt.Sprint(err)
		})
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if got := testutil.ToFloat64(m.bad); got != 1 {
			t.Errorf("bad records %v, want 1", got)
		}
		sched.mu.Lock()
		defer sched.mu.Unlock()
		if got := strings.Join(slices.Sorted(maps.Keys(sched.ever)), ","); got != "x /good" {
			t.Errorf("the scheduler was given %s, want only x /good", got)
		}
	})
}

// TestMemberNeedsTheTopic: a prober started before any apply says what to
// do rather than sitting ready with nothing.
func TestMemberNeedsTheTopic(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		topic := stacktest.Name("fleet_missing")
		_, err := NewMember(context.Background(), b.opts(t), &fakeScheduler{}, Options{Topic: topic, Region: "r", Instance: "p"})
		want := "the targets topic " + topic + " does not exist: create it with `prober targets apply FILE`"
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
	})
}

func TestInRegion(t *testing.T) {
	for _, c := range []struct {
		name    string
		regions []string
		region  string
		want    bool
	}{
		{"no list: every region", nil, "eu-west", true},
		{"listed", []string{"us-east", "eu-west"}, "eu-west", true},
		{"not listed", []string{"us-east"}, "eu-west", false},
		{"case matters", []string{"EU-WEST"}, "eu-west", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := InRegion(&targets.Target{Regions: c.regions}, c.region); got != c.want {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

// TestMembersSplitAndTakeOver: two members of a region split the targets
// with no overlap and no gap; when one stops, the other takes them all.
func TestMembersSplitAndTakeOver(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		topic := stacktest.Name("fleet_split")
		// The region names the group: one no other test uses.
		region := stacktest.Name("r1")
		var file strings.Builder
		file.WriteString("defaults:\n  interval: 30s\n  timeout: 5s\ntargets:\n")
		var all []string
		for i := range 20 {
			id := fmt.Sprintf("t%02d", i)
			all = append(all, id+" /"+id)
			fmt.Fprintf(&file, "  - id: %s\n    url: http://127.0.0.1:8080/%s\n", id, id)
		}
		if _, _, err := b.run(t, "apply", writeFile(t, file.String()), "-topic", topic, "-partitions", "6"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		type prober struct {
			sched *fakeScheduler
			m     *Member
			stop  context.CancelFunc
			done  chan error
		}
		start := func(instance string) *prober {
			p := &prober{sched: &fakeScheduler{}, done: make(chan error, 1)}
			var err error
			p.m, err = NewMember(ctx, b.opts(t), p.sched, Options{Topic: topic, Region: region, Instance: instance, SessionTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.m.Close)
			var runCtx context.Context
			runCtx, p.stop = context.WithCancel(ctx)
			go func() { p.done <- p.m.Run(runCtx) }()
			return p
		}
		p1, p2 := start("p1"), start("p2")
		waitFor(t, "a split with no overlap and no gap", time.Minute, func() (bool, string) {
			a, b := p1.sched.current(), p2.sched.current()
			if a == "" || b == "" || p1.m.Ready(ctx) != nil || p2.m.Ready(ctx) != nil {
				return false, a + " | " + b
			}
			union := slices.Concat(strings.Split(a, ","), strings.Split(b, ","))
			slices.Sort(union)
			return slices.Equal(union, all), a + " | " + b
		})
		owned := testutil.ToFloat64(p1.m.partitions) + testutil.ToFloat64(p2.m.partitions)
		if owned != 6 {
			t.Errorf("partitions owned by the two: %v, want 6", owned)
		}
		p1.stop()
		if err := <-p1.done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if got := p1.sched.current(); got != "" {
			t.Errorf("stopped member still has %s", got)
		}
		want := strings.Join(all, ",")
		// Well within the session timeout: the stopped member left.
		waitFor(t, "the survivor takes every target", 8*time.Second, func() (bool, string) {
			got := p2.sched.current()
			return got == want, got
		})
		p2.stop()
		<-p2.done
	})
}

// TestMemberFencedBySameInstance: a second prober started with an instance
// ID already in the group makes one of the two stop with ErrFenced, rather
// than both believing they hold the partitions.
func TestMemberFencedBySameInstance(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		topic := stacktest.Name("fleet_fenced")
		region := strings.ReplaceAll(stacktest.Name("r"), "_", "-")
		if _, _, err := b.run(t, "apply", writeFile(t, regionFile("")), "-topic", topic, "-partitions", "2"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		done := make(chan error, 2)
		for range 2 {
			m, err := NewMember(ctx, b.opts(t), &fakeScheduler{}, Options{Topic: topic, Region: region, Instance: "same", SessionTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(m.Close)
			go func() { done <- m.Run(ctx) }()
			time.Sleep(time.Second) // the first joins first
		}
		select {
		case err := <-done:
			want := "fenced by a prober with the same instance: another prober of group sitewatch-prober-" + region + " runs with -instance same; give each its own"
			if !errors.Is(err, ErrFenced) || err.Error() != want {
				t.Errorf("Run: %v, want %s", err, want)
			}
		case <-ctx.Done():
			t.Fatal("neither member stopped")
		}
		cancel()
		<-done
	})
}
