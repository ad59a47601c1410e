package schedule

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// fakeClock is a manual clock with one timer (the scheduler uses one). The
// tests run in a synctest bubble, and synctest.Wait, not the timer's
// arming, tells when the scheduler is done: arming is not waiting (a timer
// armed for a run due now fires at once, and a wake-up from Set may be
// pending), and moving the clock while the scheduler is not blocked lets a
// deadline computed from the old time be armed from the new one.
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	when time.Time // the armed timer's deadline; zero when not armed
	c    chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, c: make(chan time.Time, 1)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns the clock's one timer, stopped: the scheduler arms it
// with Reset.
func (c *fakeClock) NewTimer(time.Duration) Timer { return c }

func (c *fakeClock) C() <-chan time.Time { return c.c }

func (c *fakeClock) Reset(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select { // like Go 1.23 timers: no stale tick after Reset
	case <-c.c:
	default:
	}
	c.when = c.now.Add(d)
	if d <= 0 {
		c.fire()
	}
}

func (c *fakeClock) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.when = time.Time{}
}

// fire sends the tick; c.c never holds two, as every Reset drains it.
func (c *fakeClock) fire() {
	c.when = time.Time{}
	c.c <- c.now
}

// set moves the clock to t, fires the timer if it is due by then, and waits
// until every goroutine of the bubble is blocked: every run due by t has
// then been started (and, unless its job blocks, ended) or skipped, or
// waits for a slot. It must be called in the test's bubble.
func (c *fakeClock) set(t testing.TB, to time.Time) {
	t.Helper()
	// The scheduler must be waiting before the clock moves, not between
	// reading the time and arming its timer.
	synctest.Wait()
	c.mu.Lock()
	if to.Before(c.now) {
		c.mu.Unlock()
		t.Fatalf("the clock cannot go back from %v to %v", c.now, to)
	}
	c.now = to
	if !c.when.IsZero() && !c.when.After(to) {
		c.fire()
	}
	c.mu.Unlock()
	synctest.Wait()
}

// recorder collects what the scheduler reports.
type recorder struct {
	mu    sync.Mutex
	runs  []string // "id@offset" (offset of the due time from t0)
	lags  []time.Duration
	skips []string // "id:reason:n"
	t0    time.Time
	urls  []string
}

func (r *recorder) onRun(t *targets.Target, due time.Time, lag time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, fmt.Sprintf("%s@%v", t.ID, due.Sub(r.t0)))
	r.lags = append(r.lags, lag)
	r.urls = append(r.urls, t.URL)
}

func (r *recorder) onSkip(t *targets.Target, reason string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.skips = append(r.skips, fmt.Sprintf("%s:%s:%d", t.ID, reason, n))
}

// take returns and clears what was recorded.
func (r *recorder) take() (runs, skips []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	runs, skips = r.runs, r.skips
	r.runs, r.skips = nil, nil
	return runs, skips
}

func targetsEvery(interval time.Duration, ids ...string) []*targets.Target {
	var ts []*targets.Target
	for _, id := range ids {
		ts = append(ts, &targets.Target{ID: id, URL: "http://" + id + ".test/", Interval: interval, Timeout: time.Second})
	}
	return ts
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type harness struct {
	clock *fakeClock
	rec   *recorder
	s     *Scheduler
	stop  func()
}

// grid gives the targets of a test offsets that are easy to read (modulo
// the interval, like Offset); an ID it does not name has offset 0.
func grid(offsets map[string]time.Duration) func(string, time.Duration) time.Duration {
	return func(id string, interval time.Duration) time.Duration {
		return offsets[id] % interval
	}
}

// start runs a scheduler on a fake clock at t0 with the targets on the
// given grid, and waits until it has started the runs due at once. It must
// be called in the test's bubble.
func start(t *testing.T, job Job, o Options, ts []*targets.Target, offset func(string, time.Duration) time.Duration) *harness {
	t.Helper()
	return startAt(t, 0, job, o, ts, offset)
}

// startAt is start with the clock at t0+at; the runs are still reported
// from t0.
func startAt(t *testing.T, at time.Duration, job Job, o Options, ts []*targets.Target, offset func(string, time.Duration) time.Duration) *harness {
	t.Helper()
	h := &harness{clock: newFakeClock(t0.Add(at)), rec: &recorder{t0: t0}}
	if job == nil {
		job = func(context.Context, *targets.Target) {}
	}
	o.Clock, o.OnRun, o.OnSkip = h.clock, h.rec.onRun, h.rec.onSkip
	h.s = New(job, o)
	h.s.offset = offset
	h.s.Set(ts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		h.s.Run(ctx)
		close(done)
	}()
	synctest.Wait()
	h.stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(h.stop)
	return h
}

// at moves the clock to t0+offset and returns the runs and skips since the
// last call.
func (h *harness) at(t *testing.T, offset time.Duration) (runs, skips []string) {
	t.Helper()
	h.clock.set(t, t0.Add(offset))
	return h.rec.take()
}

// reload gives the scheduler new targets and waits until it has handled
// them.
func (h *harness) reload(ts []*targets.Target) {
	h.s.Set(ts)
	synctest.Wait()
}

// running reports whether the target has a run in progress.
func (h *harness) running(id string) bool {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.s.entries[id] != nil && h.s.entries[id].running
}

func equal(a, b []string) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// opts is the Options of most tests: the clock and the callbacks are the
// harness's.
func opts(concurrency int) Options { return Options{Concurrency: concurrency} }

func TestFirstRunsWaitForTheirSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		offsets := grid(map[string]time.Duration{"a": 20 * time.Second, "b": 5 * time.Second, "c": 50 * time.Second, "d": 35 * time.Second})
		h := start(t, nil, opts(10), targetsEvery(time.Minute, "a", "b", "c", "d"), offsets)
		var got []string
		for _, off := range []time.Duration{0, 4 * time.Second, 5 * time.Second, 20 * time.Second, 35 * time.Second, 49 * time.Second, 50 * time.Second, 64 * time.Second, 65 * time.Second} {
			runs, _ := h.at(t, off)
			got = append(got, runs...)
		}
		// t0 is a whole minute: every run is on its slot, the first one too.
		want := []string{"b@5s", "a@20s", "d@35s", "c@50s", "b@1m5s"}
		if !equal(got, want) {
			t.Errorf("runs %v, want %v", got, want)
		}
	})
}

func TestNoDriftOverManyIntervals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, nil, opts(10), targetsEvery(10*time.Second, "a"), grid(nil))
		// The scheduler wakes 3.7s late every time: each run starts late,
		// but the next is still due on the grid of the origin, never pushed
		// back.
		var got []string
		for k := range 1000 {
			due := time.Duration(k) * 10 * time.Second
			runs, skips := h.at(t, due+3700*time.Millisecond)
			if len(skips) > 0 {
				t.Fatalf("skips %v at run %d", skips, k)
			}
			got = append(got, runs...)
		}
		if len(got) != 1000 {
			t.Fatalf("%d runs in 1000 intervals, want 1000", len(got))
		}
		for k, r := range got {
			if want := fmt.Sprintf("a@%v", time.Duration(k)*10*time.Second); r != want {
				t.Fatalf("run %d was due %s, want %s", k, r, want)
			}
		}
		for k, lag := range h.rec.lags[1:] { // the first run was due at the start
			if lag != 3700*time.Millisecond {
				t.Fatalf("run %d lag %v, want 3.7s", k, lag)
			}
		}
	})
}

func TestFallingBehindSkipsToTheLatestDueRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, nil, opts(10), targetsEvery(10*time.Second, "a"), grid(nil))
		if runs, _ := h.at(t, 0); !equal(runs, []string{"a@0s"}) {
			t.Fatalf("runs %v", runs)
		}
		// Asleep for 35s: the runs due at 10s and 20s are missed, 30s is made.
		runs, skips := h.at(t, 35*time.Second)
		if !equal(runs, []string{"a@30s"}) || !equal(skips, []string{"a:behind:2"}) {
			t.Errorf("runs %v skips %v, want [a@30s] [a:behind:2]", runs, skips)
		}
		if runs, _ := h.at(t, 40*time.Second); !equal(runs, []string{"a@40s"}) {
			t.Errorf("runs %v, want [a@40s]", runs)
		}
	})
}

func TestNoOverlapSkipsAndCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var mu sync.Mutex
		running, maxRunning := 0, 0
		job := func(ctx context.Context, tg *targets.Target) {
			mu.Lock()
			running++
			maxRunning = max(maxRunning, running)
			mu.Unlock()
			<-release
			mu.Lock()
			running--
			mu.Unlock()
		}
		h := start(t, job, opts(10), targetsEvery(10*time.Second, "a"), grid(nil))
		if runs, _ := h.at(t, 0); !equal(runs, []string{"a@0s"}) {
			t.Fatalf("runs %v", runs)
		}
		// Still running at 10s and 20s: both skipped.
		for _, off := range []time.Duration{10 * time.Second, 20 * time.Second} {
			if runs, skips := h.at(t, off); len(runs) != 0 || !equal(skips, []string{"a:overlap:1"}) {
				t.Errorf("at %v: runs %v skips %v, want none and [a:overlap:1]", off, runs, skips)
			}
		}
		release <- struct{}{}
		synctest.Wait()
		if h.running("a") {
			t.Fatal("a still running after its job returned")
		}
		close(release)
		if runs, skips := h.at(t, 30*time.Second); !equal(runs, []string{"a@30s"}) || len(skips) != 0 {
			t.Errorf("runs %v skips %v after the slow run ended, want [a@30s] none", runs, skips)
		}
		mu.Lock()
		defer mu.Unlock()
		if maxRunning != 1 {
			t.Errorf("%d runs of one target at once", maxRunning)
		}
	})
}

func TestReloadKeepsRhythm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		offsets := grid(map[string]time.Duration{"b": 20 * time.Second, "gone": 40 * time.Second, "c": 45 * time.Second})
		h := start(t, nil, opts(10), targetsEvery(time.Minute, "a", "b", "gone"), offsets)
		// a due at 0s, b at 20s, gone at 40s, each +1m.
		h.at(t, 0)
		h.at(t, 20*time.Second)
		if runs, _ := h.at(t, 30*time.Second); len(runs) != 0 {
			t.Fatalf("runs %v", runs)
		}

		// At 30s: a is unchanged, b changes its URL (same interval), c is
		// new, gone goes.
		next := targetsEvery(time.Minute, "a", "b", "c")
		next[1].URL = "http://b.test/v2"
		h.reload(next)
		// c is the only new target: its first run waits for its slot.
		if runs, _ := h.rec.take(); len(runs) != 0 {
			t.Errorf("runs right after the reload %v, want none", runs)
		}
		var got []string
		for _, off := range []time.Duration{40 * time.Second, 44 * time.Second, 45 * time.Second, 60 * time.Second, 80 * time.Second, 100 * time.Second} {
			runs, _ := h.at(t, off)
			got = append(got, runs...)
		}
		// a and b keep their slots (0s, 20s + k*1m); gone never runs again.
		if want := []string{"c@45s", "a@1m0s", "b@1m20s"}; !equal(got, want) {
			t.Errorf("runs after the reload %v, want %v", got, want)
		}
		h.rec.mu.Lock()
		defer h.rec.mu.Unlock()
		// The run of b after the reload used the new definition.
		if u := h.rec.urls[len(h.rec.urls)-1]; u != "http://b.test/v2" {
			t.Errorf("b ran with %s after the reload, want the new URL", u)
		}
		if h.s.Len() != 3 {
			t.Errorf("%d targets, want 3", h.s.Len())
		}
	})
}

func TestReloadWithANewIntervalMovesToItsGrid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Offset 25s: slots at 25s + k*1m, then at 5s + k*20s.
		h := start(t, nil, opts(10), targetsEvery(time.Minute, "a"), grid(map[string]time.Duration{"a": 25 * time.Second}))
		if runs, _ := h.at(t, 25*time.Second); !equal(runs, []string{"a@25s"}) {
			t.Fatalf("runs %v, want [a@25s]", runs)
		}
		h.at(t, 30*time.Second)
		h.reload(targetsEvery(20*time.Second, "a"))
		var got []string
		for _, off := range []time.Duration{44 * time.Second, 45 * time.Second, 60 * time.Second, 65 * time.Second, 85 * time.Second} {
			runs, _ := h.at(t, off)
			got = append(got, fmt.Sprint(off, runs))
		}
		if want := []string{"44s []", "45s [a@45s]", "1m0s []", "1m5s [a@1m5s]", "1m25s [a@1m25s]"}; !equal(got, want) {
			t.Errorf("runs after the reload %v, want %v", got, want)
		}
	})
}

func TestRemovedAndAddedBackWhileRunningDoesNotOverlap(t *testing.T) {
	// a runs from 0s and is still running when two reloads at 5s remove
	// it and add it back.
	tests := []struct {
		name string
		// interval when added back (it was 10s)
		interval time.Duration
		// skips right after it is added back
		skipsBack []string
		// still running at stillAt, skipped; released, it runs at nextAt
		stillAt, nextAt time.Duration
		wantNext        string
	}{
		{"same interval keeps its slots", 10 * time.Second, nil, 10 * time.Second, 20 * time.Second, "a@20s"},
		// The grid of 20s, from its next slot.
		{"new interval moves to its grid", 20 * time.Second, nil, 20 * time.Second, 40 * time.Second, "a@40s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				var mu sync.Mutex
				running, maxRunning := 0, 0
				job := func(ctx context.Context, tg *targets.Target) {
					mu.Lock()
					running++
					maxRunning = max(maxRunning, running)
					mu.Unlock()
					<-release
					mu.Lock()
					running--
					mu.Unlock()
				}
				h := start(t, job, opts(10), targetsEvery(10*time.Second, "a"), grid(nil))
				// Let every run end before h.stop waits for them, also when
				// the test fails early.
				var once sync.Once
				end := func() { once.Do(func() { close(release) }) }
				t.Cleanup(end)
				if runs, _ := h.at(t, 0); !equal(runs, []string{"a@0s"}) {
					t.Fatalf("runs %v", runs)
				}
				h.at(t, 5*time.Second)
				h.s.Set(nil)
				h.reload(targetsEvery(tt.interval, "a"))
				if runs, skips := h.rec.take(); len(runs) != 0 || !equal(skips, tt.skipsBack) {
					t.Errorf("right after it came back: runs %v skips %v, want none and %v", runs, skips, tt.skipsBack)
				}
				if runs, skips := h.at(t, tt.stillAt); len(runs) != 0 || !equal(skips, []string{"a:overlap:1"}) {
					t.Errorf("at %v: runs %v skips %v, want none and [a:overlap:1]", tt.stillAt, runs, skips)
				}
				end()
				synctest.Wait()
				if h.running("a") {
					t.Fatal("a still running after its job returned")
				}
				if runs, skips := h.at(t, tt.nextAt); !equal(runs, []string{tt.wantNext}) || len(skips) != 0 {
					t.Errorf("at %v: runs %v skips %v after the run ended, want [%s] none", tt.nextAt, runs, skips, tt.wantNext)
				}
				mu.Lock()
				defer mu.Unlock()
				if maxRunning != 1 {
					t.Errorf("%d runs of one target at once", maxRunning)
				}
			})
		})
	}
}

func TestRemovedWhileRunningIsForgottenWhenItEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		h := start(t, func(context.Context, *targets.Target) { <-release }, opts(10), targetsEvery(10*time.Second, "a", "b"),
			grid(map[string]time.Duration{"b": 5 * time.Second}))
		h.at(t, 0) // a runs
		h.reload(targetsEvery(10*time.Second, "b"))
		if n := h.s.Len(); n != 1 {
			t.Errorf("%d targets, want 1", n)
		}
		close(release)
		synctest.Wait()
		h.s.mu.Lock()
		draining := len(h.s.draining)
		h.s.mu.Unlock()
		if draining != 0 {
			t.Fatalf("%d entries draining after every run ended, want 0", draining)
		}
		// a is gone for good: no more runs, even once its run has ended; b
		// keeps its rhythm.
		var got []string
		for _, off := range []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second} {
			runs, _ := h.at(t, off)
			got = append(got, runs...)
		}
		if want := []string{"b@5s", "b@15s"}; !equal(got, want) {
			t.Errorf("runs %v, want %v", got, want)
		}
	})
}

func TestConcurrencyIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var mu sync.Mutex
		running, maxRunning, total := 0, 0, 0
		job := func(ctx context.Context, tg *targets.Target) {
			mu.Lock()
			running++
			total++
			maxRunning = max(maxRunning, running)
			mu.Unlock()
			<-release
			mu.Lock()
			running--
			mu.Unlock()
		}
		// Five targets on slots 2s apart; a is due at once and holds a
		// slot, then the clock jumps to 9s where b..e are all due.
		h := start(t, job, opts(2), targetsEvery(10*time.Second, "a", "b", "c", "d", "e"),
			grid(map[string]time.Duration{"b": 2 * time.Second, "c": 4 * time.Second, "d": 6 * time.Second, "e": 8 * time.Second}))
		// a and b run; the scheduler waits for a slot for c.
		h.clock.set(t, t0.Add(9*time.Second))
		mu.Lock()
		if running != 2 || total != 2 {
			t.Errorf("%d running, %d started with a bound of 2", running, total)
		}
		mu.Unlock()
		for range 3 {
			release <- struct{}{}
		}
		close(release)
		synctest.Wait()
		mu.Lock()
		if total != 5 || running != 0 {
			t.Errorf("%d started, %d running once released, want 5 and 0", total, running)
		}
		if maxRunning != 2 {
			t.Errorf("at most %d ran at once, want 2", maxRunning)
		}
		mu.Unlock()
		runs, _ := h.rec.take()
		if want := []string{"a@0s", "b@2s", "c@4s", "d@6s", "e@8s"}; !equal(runs, want) {
			t.Errorf("runs %v, want %v", runs, want)
		}
		// The ones that waited for a slot report how late they started (the
		// fake clock stands still at 9s).
		h.rec.mu.Lock()
		defer h.rec.mu.Unlock()
		for i, want := range []time.Duration{0, 7 * time.Second, 5 * time.Second, 3 * time.Second, time.Second} {
			if h.rec.lags[i] != want {
				t.Errorf("run %d lag %v, want %v", i, h.rec.lags[i], want)
			}
		}
	})
}

func TestStopWaitsForRunningJobsWithoutCancellingThem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var jobErr error
		job := func(ctx context.Context, tg *targets.Target) {
			<-release
			jobErr = ctx.Err()
		}
		h := start(t, job, opts(10), targetsEvery(10*time.Second, "a"), grid(nil))
		h.at(t, 0)
		stopped := make(chan struct{})
		go func() {
			h.stop()
			close(stopped)
		}()
		synctest.Wait()
		select {
		case <-stopped:
			t.Fatal("Run returned while a job was running")
		default:
		}
		close(release)
		<-stopped
		if jobErr != nil {
			t.Errorf("the job's context ended with %v on stop; it should run to its own deadline", jobErr)
		}
	})
}

// TestRealClockRuns runs the real clock's timer and the real grid in a
// bubble, where time moves only when everything waits: the runs are made
// exactly on the slots of a.
func TestRealClockRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now() // 2000-01-01T00:00:00Z, a whole number of 20ms
		var mu sync.Mutex
		var seen []time.Duration
		s := New(func(ctx context.Context, tg *targets.Target) {
			mu.Lock()
			seen = append(seen, time.Since(start))
			mu.Unlock()
		}, Options{Concurrency: 4})
		s.Set(targetsEvery(20*time.Millisecond, "a"))
		ctx, cancel := context.WithTimeout(context.Background(), 110*time.Millisecond)
		defer cancel()
		s.Run(ctx)
		off := time.Duration(0xaf63dc4c8601ec8c % uint64(20*time.Millisecond)) // FNV-1a 64 of "a"
		var want []time.Duration
		for d := off; d < 110*time.Millisecond; d += 20 * time.Millisecond {
			want = append(want, d)
		}
		mu.Lock()
		defer mu.Unlock()
		if fmt.Sprint(seen) != fmt.Sprint(want) {
			t.Errorf("runs at %v in 110ms at a 20ms interval, want %v", seen, want)
		}
	})
}

func TestCoalescedRunsKeepTheirDueTimes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, nil, Options{Concurrency: 10, Coalesce: 25 * time.Millisecond},
			targetsEvery(40*time.Millisecond, "a", "b", "c", "d"),
			grid(map[string]time.Duration{"b": 10 * time.Millisecond, "c": 20 * time.Millisecond, "d": 30 * time.Millisecond}))
		var got []string
		for _, off := range []time.Duration{10 * time.Millisecond, 24 * time.Millisecond, 25 * time.Millisecond, 49 * time.Millisecond, 50 * time.Millisecond} {
			runs, _ := h.at(t, off)
			got = append(got, fmt.Sprint(off, runs))
		}
		// a starts at once; then the scheduler sleeps at least 25ms: b and c
		// start together at 25ms, d, a and b again at 50ms; each keeps its
		// due time, and the lag says how late it started.
		want := []string{"10ms [a@0s]", "24ms []", "25ms [b@10ms c@20ms]", "49ms []", "50ms [d@30ms a@40ms b@50ms]"}
		if !equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
		h.rec.mu.Lock()
		defer h.rec.mu.Unlock()
		if want := "[0s 15ms 5ms 20ms 10ms 0s]"; fmt.Sprint(h.rec.lags) != want {
			t.Errorf("lags %v, want %s", h.rec.lags, want)
		}
	})
}

func TestRemovedTargetsNeverRunOnceSetReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var mu sync.Mutex
		var started []string
		job := func(ctx context.Context, tg *targets.Target) {
			mu.Lock()
			started = append(started, tg.ID)
			mu.Unlock()
			<-release
		}
		// One slot. a (due at 0s) runs at once and holds it; at 9s b (due
		// 2.5s), c (5s) and d (7.5s) are due and wait for the slot.
		h := start(t, job, opts(1), targetsEvery(10*time.Second, "a", "b", "c", "d"),
			grid(map[string]time.Duration{"b": 2500 * time.Millisecond, "c": 5 * time.Second, "d": 7500 * time.Millisecond, "e": 9 * time.Second}))
		var once sync.Once
		end := func() { once.Do(func() { close(release) }) }
		t.Cleanup(end)
		h.clock.set(t, t0.Add(9*time.Second))
		if !h.running("b") || !h.running("c") || !h.running("d") {
			t.Fatal("b, c and d do not wait for the slot at 9s")
		}

		// b and c go, d stays with a new URL, e is new; a is unchanged. The
		// slot frees only once Set has returned.
		next := targetsEvery(10*time.Second, "a", "d", "e")
		next[1].URL = "http://d.test/v2"
		h.s.Set(next)
		end()
		synctest.Wait()
		got, _ := h.rec.take()
		for _, off := range []time.Duration{10 * time.Second, 12500 * time.Millisecond, 15 * time.Second, 17500 * time.Millisecond, 20 * time.Second} {
			runs, _ := h.at(t, off)
			got = append(got, runs...)
		}

		mu.Lock()
		defer mu.Unlock()
		// d had waited since 9s: it runs then, with its new URL; e's first
		// slot is the time of the reload; a, d and e keep their slots.
		if want := []string{"a", "d", "e", "a", "d", "e", "a"}; !equal(started, want) {
			t.Errorf("runs started %v, want %v", started, want)
		}
		h.rec.mu.Lock()
		defer h.rec.mu.Unlock()
		wantRuns := []string{"a@0s", "d@7.5s", "e@9s", "a@10s", "d@17.5s", "e@19s", "a@20s"}
		if !equal(got, wantRuns) {
			t.Errorf("runs %v, want %v", got, wantRuns)
		}
		if h.rec.urls[1] != "http://d.test/v2" {
			t.Errorf("d ran with %s after the reload, want its new URL", h.rec.urls[1])
		}
		if n := h.s.Len(); n != 3 {
			t.Errorf("%d targets, want 3", n)
		}
	})
}

func TestOffsetIsStable(t *testing.T) {
	// FNV-1a 64 of "" is the offset basis 0xcbf29ce484222325 and of "a"
	// 0xaf63dc4c8601ec8c (the published test vectors); the grid must never
	// move between versions, or two probers would disagree on the slots.
	tests := []struct {
		id       string
		interval time.Duration
		want     time.Duration
	}{
		{"", time.Minute, time.Duration(0xcbf29ce484222325 % uint64(time.Minute))},
		{"a", time.Minute, time.Duration(0xaf63dc4c8601ec8c % uint64(time.Minute))},
		{"a", time.Minute, 20_555_641_996 * time.Nanosecond},
		{"a", 2 * time.Second, 555_641_996 * time.Nanosecond},
		{"example", 30 * time.Second, 1_527_752_769 * time.Nanosecond},
		{"example", time.Minute, 1_527_752_769 * time.Nanosecond},
		{"a", 0, 0},
	}
	for _, tt := range tests {
		if got := Offset(tt.id, tt.interval); got != tt.want {
			t.Errorf("Offset(%q, %v) = %v (%d), want %v", tt.id, tt.interval, got, int64(got), tt.want)
		}
	}
}

func TestNextSlot(t *testing.T) {
	epoch := time.Unix(0, 0).UTC()
	tests := []struct {
		name     string
		offset   time.Duration
		interval time.Duration
		at, want time.Time
	}{
		{"on a slot", 7 * time.Second, time.Minute, t0.Add(7 * time.Second), t0.Add(7 * time.Second)},
		{"a nanosecond after", 7 * time.Second, time.Minute, t0.Add(7*time.Second + 1), t0.Add(67 * time.Second)},
		{"a nanosecond before", 7 * time.Second, time.Minute, t0.Add(7*time.Second - 1), t0.Add(7 * time.Second)},
		{"the epoch", 7 * time.Second, time.Minute, epoch, epoch.Add(7 * time.Second)},
		{"before the epoch", 7 * time.Second, time.Minute, epoch.Add(-54 * time.Second), epoch.Add(-53 * time.Second)},
		{"just before the epoch", 7 * time.Second, time.Minute, epoch.Add(-time.Second), epoch.Add(7 * time.Second)},
		// t0 is 1767225600s from the epoch, 8s past a multiple of 11s.
		{"not a divisor of a day", 0, 11 * time.Second, t0, t0.Add(3 * time.Second)},
		{"keeps the location", 0, time.Minute, t0.In(time.FixedZone("X", 3600)).Add(time.Second), t0.Add(time.Minute).In(time.FixedZone("X", 3600))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NextSlot(tt.offset, tt.interval, tt.at); !got.Equal(tt.want) {
				t.Errorf("NextSlot(%v, %v, %v) = %v, want %v", tt.offset, tt.interval, tt.at, got, tt.want)
			}
		})
	}
}

// TestATakeoverKeepsTheGrid: a prober that gets a target later (a takeover
// in fleet mode, or a restart) makes exactly the slots the first one would
// have made from then on, with the real offsets.
func TestATakeoverKeepsTheGrid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := targetsEvery(time.Minute, "a", "example")
		checkpoints := func(h *harness, from time.Duration) []string {
			var got []string
			for off := from; off <= 4*time.Minute; off += time.Second {
				runs, skips := h.at(t, off)
				if len(skips) > 0 {
					t.Fatalf("skips %v", skips)
				}
				got = append(got, runs...)
			}
			return got
		}
		first := checkpoints(start(t, nil, opts(10), ts, Offset), 0)
		second := checkpoints(startAt(t, 70*time.Second, nil, opts(10), ts, Offset), 70*time.Second)
		// Offsets 20.555641996s and 1.527752769s (TestOffsetIsStable).
		want := []string{"example@1.527752769s", "a@20.555641996s", "example@1m1.527752769s", "a@1m20.555641996s",
			"example@2m1.527752769s", "a@2m20.555641996s", "example@3m1.527752769s", "a@3m20.555641996s"}
		if !equal(first, want) {
			t.Errorf("the first prober ran %v, want %v", first, want)
		}
		if !equal(second, want[3:]) {
			t.Errorf("the prober that took over at 1m10s ran %v, want %v", second, want[3:])
		}
	})
}

func TestJobGetsItsSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []string
		job := func(ctx context.Context, tg *targets.Target) {
			due, ok := Due(ctx)
			mu.Lock()
			defer mu.Unlock()
			got = append(got, fmt.Sprint(tg.ID, "@", due.Sub(t0), " ", ok))
		}
		h := start(t, job, opts(10), targetsEvery(10*time.Second, "a"), grid(map[string]time.Duration{"a": 3 * time.Second}))
		// Started late (at 4s and 14.5s), the runs still carry their slots.
		h.at(t, 4*time.Second)
		h.at(t, 14500*time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		if want := []string{"a@3s true", "a@13s true"}; !equal(got, want) {
			t.Errorf("jobs got %v, want %v", got, want)
		}
		if _, ok := Due(context.Background()); ok {
			t.Error("Due of a context not from the scheduler reported a slot")
		}
	})
}

func TestAddedBackAtOnceDoesNotRunTheSameSlotAgain(t *testing.T) {
	for _, catchUp := range []time.Duration{0, 5 * time.Second, time.Minute} {
		t.Run(fmt.Sprint("catch-up ", catchUp), func(t *testing.T) {
			testAddedBackAtOnce(t, Options{Concurrency: 10, CatchUp: catchUp})
		})
	}
}

func testAddedBackAtOnce(t *testing.T, o Options) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		h := start(t, func(context.Context, *targets.Target) { <-release }, o, targetsEvery(10*time.Second, "a"), grid(nil))
		var once sync.Once
		end := func() { once.Do(func() { close(release) }) }
		t.Cleanup(end)
		if runs, _ := h.at(t, 0); !equal(runs, []string{"a@0s"}) {
			t.Fatalf("runs %v", runs)
		}
		// Removed and back at 0s, its slot: 0s was run, the next is 10s.
		h.s.Set(nil)
		h.reload(targetsEvery(10*time.Second, "a"))
		end()
		synctest.Wait()
		runs, skips := h.rec.take()
		if len(runs) != 0 || len(skips) != 0 {
			t.Errorf("runs %v skips %v when added back, want none", runs, skips)
		}
		if runs, _ := h.at(t, 10*time.Second); !equal(runs, []string{"a@10s"}) {
			t.Errorf("runs %v, want [a@10s]", runs)
		}
	})
}

func TestCatchUpRunsTheLatestSlotAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var dues []string
		job := func(ctx context.Context, tg *targets.Target) {
			due, ok := Due(ctx)
			mu.Lock()
			defer mu.Unlock()
			dues = append(dues, fmt.Sprint(tg.ID, "@", due.Sub(t0), " ", ok))
		}
		// Every 10s; at 7s the latest slots are a 3s (4s old), d 2s (5s
		// old, the window's edge), b 1s (6s old, outside) and c 7s (now).
		offsets := grid(map[string]time.Duration{"a": 3 * time.Second, "b": time.Second, "c": 7 * time.Second, "d": 2 * time.Second})
		h := startAt(t, 7*time.Second, job, Options{Concurrency: 10, CatchUp: 5 * time.Second}, targetsEvery(10*time.Second, "a", "b", "c", "d"), offsets)
		runs, skips := h.rec.take()
		if want := []string{"d@2s", "a@3s", "c@7s"}; !equal(runs, want) || len(skips) != 0 {
			t.Errorf("runs %v skips %v at the start, want %v and none", runs, skips, want)
		}
		h.rec.mu.Lock()
		if want := []time.Duration{5 * time.Second, 4 * time.Second, 0}; fmt.Sprint(h.rec.lags) != fmt.Sprint(want) {
			t.Errorf("lags %v, want %v", h.rec.lags, want)
		}
		h.rec.mu.Unlock()
		// Then on the grid, with no slot twice and none skipped.
		var got []string
		for _, off := range []time.Duration{10 * time.Second, 11 * time.Second, 12 * time.Second, 13 * time.Second, 17 * time.Second, 21 * time.Second} {
			runs, skips := h.at(t, off)
			if len(skips) > 0 {
				t.Fatalf("skips %v at %v", skips, off)
			}
			got = append(got, runs...)
		}
		if want := []string{"b@11s", "d@12s", "a@13s", "c@17s", "b@21s"}; !equal(got, want) {
			t.Errorf("runs after the start %v, want %v", got, want)
		}
		mu.Lock()
		defer mu.Unlock()
		first := slices.Sorted(slices.Values(dues[:3])) // the jobs run at once
		if want := []string{"a@3s true", "c@7s true", "d@2s true"}; !equal(first, want) {
			t.Errorf("jobs got %v, want %v first", dues, want)
		}
	})
}

// startCatchingUp starts a scheduler at 9.5s with target a, every 10s at
// 0s, whose 0s slot is caught up (CatchUp 10s), and moves the clock to 10s,
// where that run still goes: the slot waits. Each run of a lasts until a
// value is sent on release.
func startCatchingUp(t *testing.T) (*harness, chan struct{}) {
	t.Helper()
	release := make(chan struct{}, 4)
	job := func(ctx context.Context, _ *targets.Target) { <-release }
	h := startAt(t, 9500*time.Millisecond, job, Options{Concurrency: 10, CatchUp: 10 * time.Second}, targetsEvery(10*time.Second, "a"), grid(nil))
	if runs, skips := h.rec.take(); !equal(runs, []string{"a@0s"}) || len(skips) != 0 {
		t.Fatalf("runs %v skips %v at the start, want [a@0s] and none", runs, skips)
	}
	if runs, skips := h.at(t, 10*time.Second); len(runs) != 0 || len(skips) != 0 {
		t.Errorf("runs %v skips %v at 10s while the catch-up runs, want none (the slot waits)", runs, skips)
	}
	return h, release
}

// A catch-up run starts up to an interval late, so it may still run at the
// target's next slot: that slot waits for it and runs as it ends, due at
// its slot, rather than being skipped as overlapping (the catch-up would
// then only move the miss to the next slot). A regular run still going at
// its next slot still skips it.
func TestCatchUpRunDelaysTheNextSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, release := startCatchingUp(t)
		h.clock.set(t, t0.Add(10500*time.Millisecond))
		release <- struct{}{} // the catch-up run ends at 10.5s
		synctest.Wait()
		if runs, skips := h.rec.take(); !equal(runs, []string{"a@10s"}) || len(skips) != 0 {
			t.Errorf("runs %v skips %v as the catch-up ended, want [a@10s] and none", runs, skips)
		}
		h.rec.mu.Lock()
		if lag := h.rec.lags[len(h.rec.lags)-1]; lag != 500*time.Millisecond {
			t.Errorf("the waiting slot started %v late, want 500ms", lag)
		}
		h.rec.mu.Unlock()
		// A regular run (10s) still going at 20s: 20s is skipped.
		if runs, skips := h.at(t, 20*time.Second); len(runs) != 0 || !equal(skips, []string{"a:overlap:1"}) {
			t.Errorf("runs %v skips %v at 20s, want none and [a:overlap:1]", runs, skips)
		}
		release <- struct{}{}
		synctest.Wait()
		if runs, skips := h.at(t, 30*time.Second); !equal(runs, []string{"a@30s"}) || len(skips) != 0 {
			t.Errorf("runs %v skips %v at 30s, want [a@30s] and none", runs, skips)
		}
		release <- struct{}{}
	})
}

// A catch-up run still going two slots later (it waited for a concurrency
// slot, or the machine starved it): the slot that waited gives way to the
// latest one, and every slot counts once, as run or as skipped. Before, the
// latest slot was counted skipped as overlapping and then run when the
// catch-up ended, and the slot that waited was counted skipped too.
func TestCatchUpRunPastTwoSlotsCountsEachSlotOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, release := startCatchingUp(t)
		// Still going at 20s: 10s can no longer run; 20s waits instead.
		if runs, skips := h.at(t, 20*time.Second); len(runs) != 0 || !equal(skips, []string{"a:overlap:1"}) {
			t.Errorf("runs %v skips %v at 20s while the catch-up runs, want none and [a:overlap:1] (10s)", runs, skips)
		}
		h.clock.set(t, t0.Add(20500*time.Millisecond))
		release <- struct{}{} // the catch-up run ends at 20.5s
		synctest.Wait()
		if runs, skips := h.rec.take(); !equal(runs, []string{"a@20s"}) || len(skips) != 0 {
			t.Errorf("runs %v skips %v as the catch-up ended, want [a@20s] and none", runs, skips)
		}
		release <- struct{}{}
		synctest.Wait()
		if runs, skips := h.at(t, 30*time.Second); !equal(runs, []string{"a@30s"}) || len(skips) != 0 {
			t.Errorf("runs %v skips %v at 30s, want [a@30s] and none", runs, skips)
		}
		release <- struct{}{}
	})
}

func TestCatchUpOnlyForTargetsNewToTheScheduler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Every 10s: a at 0s, b at 5s, e at 2s; c, new at 7s, at 4s.
		offsets := grid(map[string]time.Duration{"b": 5 * time.Second, "c": 4 * time.Second, "e": 2 * time.Second})
		h := start(t, nil, Options{Concurrency: 10, CatchUp: 5 * time.Second}, targetsEvery(10*time.Second, "a", "b", "e"), offsets)
		h.at(t, 5*time.Second)
		if runs, _ := h.at(t, 7*time.Second); len(runs) != 0 {
			t.Fatalf("runs %v at 7s", runs)
		}
		// At 7s: a unchanged, b with a new URL, c new, e every 4s (its
		// slots 2s + k*4s: 6s, 1s old, is not caught up).
		next := append(targetsEvery(10*time.Second, "a", "b", "c"), targetsEvery(4*time.Second, "e")...)
		next[1].URL = "http://b.test/v2"
		h.reload(next)
		if runs, skips := h.rec.take(); !equal(runs, []string{"c@4s"}) || len(skips) != 0 {
			t.Errorf("runs %v skips %v right after the reload, want [c@4s] and none", runs, skips)
		}
		var got []string
		for _, off := range []time.Duration{9 * time.Second, 10 * time.Second, 14 * time.Second, 15 * time.Second} {
			runs, _ := h.at(t, off)
			slices.Sort(runs) // runs due together start in no set order
			got = append(got, runs...)
		}
		if want := []string{"a@10s", "e@10s", "c@14s", "e@14s", "b@15s"}; !equal(got, want) {
			t.Errorf("runs after the reload %v, want %v", got, want)
		}
	})
}

func TestCatchUpAfterARemovalRunsNoSlotTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Every 10s: a at 0s, b at 5s (-5s, too old at the start).
		offsets := grid(map[string]time.Duration{"b": 5 * time.Second})
		h := start(t, nil, Options{Concurrency: 10, CatchUp: 4 * time.Second}, targetsEvery(10*time.Second, "a", "b"), offsets)
		if runs, _ := h.at(t, time.Second); !equal(runs, []string{"a@0s"}) {
			t.Fatalf("runs %v, want [a@0s]", runs)
		}
		// Both removed at 1s, a after its run ended, b before its first.
		h.reload(nil)
		h.at(t, 6*time.Second)
		// Back at 6s: a's slot 0s was run here, so a waits for 10s; b's
		// 5s was not, and is 1s old: it runs now.
		h.reload(targetsEvery(10*time.Second, "a", "b"))
		if runs, skips := h.rec.take(); !equal(runs, []string{"b@5s"}) || len(skips) != 0 {
			t.Errorf("runs %v skips %v when added back, want [b@5s] and none", runs, skips)
		}
		if runs, _ := h.at(t, 10*time.Second); !equal(runs, []string{"a@10s"}) {
			t.Errorf("runs %v, want [a@10s]", runs)
		}
		// A removal is remembered only while catch-up could reach back to
		// it.
		h.reload(targetsEvery(10*time.Second, "b"))
		h.s.mu.Lock()
		n := len(h.s.gone)
		h.s.mu.Unlock()
		if n != 1 {
			t.Errorf("%d removals remembered at 10s, want 1 (a)", n)
		}
		h.at(t, 26*time.Second)
		h.reload(targetsEvery(10*time.Second, "b"))
		h.s.mu.Lock()
		n = len(h.s.gone)
		h.s.mu.Unlock()
		if n != 0 {
			t.Errorf("%d removals remembered at 26s, want none", n)
		}
	})
}

func TestWait(t *testing.T) {
	type result struct {
		err  error
		done bool
	}
	tests := []struct {
		name string
		// wait for these while a (running) and b (due, waiting for the
		// one concurrency slot that a holds) are removed
		ids    []string
		cancel bool // cancel Wait's ctx before a ends
		// what Wait did before a ended, and then
		before, after result
	}{
		{"a running check", []string{"a"}, false, result{}, result{nil, true}},
		{"a check waiting for a concurrency slot", []string{"b"}, false, result{}, result{nil, true}},
		{"cancelled", []string{"a", "b"}, true, result{context.Canceled, true}, result{context.Canceled, true}},
		{"no check running", []string{"c", "unknown"}, false, result{nil, true}, result{nil, true}},
		{"no IDs", nil, false, result{nil, true}, result{nil, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				var once sync.Once
				end := func() { once.Do(func() { close(release) }) }
				h := start(t, func(context.Context, *targets.Target) { <-release }, opts(1), targetsEvery(10*time.Second, "a", "b", "c"),
					grid(map[string]time.Duration{"b": time.Second, "c": 5 * time.Second}))
				t.Cleanup(end)
				if runs, _ := h.at(t, time.Second); !equal(runs, []string{"a@0s"}) { // b waits for the slot
					t.Fatalf("runs %v, want [a@0s]", runs)
				}
				if !h.running("a") || !h.running("b") || h.running("c") {
					t.Fatal("a does not run or b does not wait at 1s")
				}
				h.reload(targetsEvery(10*time.Second, "c"))
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var mu sync.Mutex
				var got result
				go func() {
					err := h.s.Wait(ctx, tt.ids)
					mu.Lock()
					got = result{err, true}
					mu.Unlock()
				}()
				synctest.Wait()
				if tt.cancel {
					cancel()
					synctest.Wait()
				}
				mu.Lock()
				if got != tt.before {
					t.Errorf("while a runs: Wait %+v, want %+v", got, tt.before)
				}
				mu.Unlock()
				end()
				synctest.Wait()
				mu.Lock()
				if got != tt.after {
					t.Errorf("once a ended: Wait %+v, want %+v", got, tt.after)
				}
				mu.Unlock()
				// b was dropped, never started.
				if runs, _ := h.rec.take(); len(runs) != 0 {
					t.Errorf("runs %v after a ended, want none", runs)
				}
			})
		})
	}
}
