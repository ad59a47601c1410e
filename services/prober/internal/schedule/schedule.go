package schedule

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// Job runs one check of a target. Its ctx is not cancelled when the
// scheduler stops, so a running check ends on its own deadline.
type Job func(ctx context.Context, t *targets.Target)

// Skip reasons, as reported to Options.OnSkip.
const (
	// SkipOverlap: the target's previous run was still going.
	SkipOverlap = "overlap"
	// SkipBehind: the scheduler (or the machine) fell more than an interval
	// behind; only the latest due run is made.
	SkipBehind = "behind"
)

// SkipReasons returns every reason OnSkip may give.
func SkipReasons() []string { return []string{SkipOverlap, SkipBehind} }

// Options tune a Scheduler.
type Options struct {
	// Clock is the time source; nil is the real clock.
	Clock Clock
	// Concurrency bounds the jobs running at once; at least 1.
	Concurrency int
	// Coalesce is the least time the scheduler sleeps between wake-ups:
	// runs due meanwhile start together, up to Coalesce late, which saves
	// a wake-up per run when many targets are due close together. Zero
	// starts every run on time.
	Coalesce time.Duration
	// OnRun, when set, is called as a run starts, with the time it was due
	// and how late it starts. It runs on the scheduler's goroutine: keep it
	// short.
	OnRun func(t *targets.Target, due time.Time, lag time.Duration)
	// OnSkip, when set, is called for every run skipped, with a reason
	// (SkipOverlap, SkipBehind) and the number of runs skipped.
	OnSkip func(t *targets.Target, reason string, runs int)
}

// Scheduler runs a Job per target on each target's schedule.
type Scheduler struct {
	job   Job
	opts  Options
	clock Clock
	sem   chan struct{}
	wake  chan struct{}
	wg    sync.WaitGroup

	mu      sync.Mutex
	entries map[string]*entry
	// draining holds the entries of removed targets whose run is still
	// going, by ID, so that a target removed and added back before that
	// run ends gets its entry back, running flag and all, and is not run
	// twice at once.
	draining map[string]*entry
	queue    queue
}

type entry struct {
	target   *targets.Target
	interval time.Duration
	next     time.Time // the next time a run is due
	running  bool
	index    int // in the queue; -1 when removed
}

// New returns a Scheduler without targets; give them with Set.
func New(job Job, o Options) *Scheduler {
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	return &Scheduler{
		job:      job,
		opts:     o,
		clock:    o.Clock,
		sem:      make(chan struct{}, o.Concurrency),
		wake:     make(chan struct{}, 1),
		entries:  map[string]*entry{},
		draining: map[string]*entry{},
	}
}

// Set replaces the targets; it may be called at any time, before or while
// Run runs. A target whose ID and interval are unchanged keeps its rhythm
// (its next run is due when it would have been) and runs with the new
// definition from its next run on. New targets, and targets whose interval
// changed, get their first runs spread evenly over their interval from now,
// in the order given. Once Set returns, a removed target starts no run,
// not even one that was due before and waits for a concurrency slot; a run
// in progress finishes, and a target added back while it runs is the same
// target to the scheduler: its next run is skipped if that run is still
// going, and with an unchanged interval it keeps its rhythm. Set takes time
// linear in the number of targets, old and new.
func (s *Scheduler) Set(ts []*targets.Target) {
	s.mu.Lock()
	now := s.clock.Now()
	// One pass over the targets, one over the old entries and one rebuild
	// of the queue: O(n) plus the heap's O(n) init, whatever the change. A
	// heap.Remove per removed target was O(log n) each, but a reload is
	// also a new map and a new queue, so it is as cheap to build them whole.
	next := make(map[string]*entry, len(ts))
	var fresh, back []*entry
	for _, t := range ts {
		if e, dup := next[t.ID]; dup { // the parser refuses duplicates
			e.target = t
			continue
		}
		e, ok := s.entries[t.ID]
		switch {
		case ok && e.interval == t.Interval:
			e.target = t
		case ok:
			// Keep the entry, and with it the running flag: the new
			// rhythm must not overlap a run of the old one.
			e.target, e.interval = t, t.Interval
			e.index = -1 // out of the queue, in again below
			fresh = append(fresh, e)
		default:
			// Added back while the run from before its removal goes
			// on: the same entry, so the running flag holds.
			if e, ok = s.draining[t.ID]; ok {
				delete(s.draining, t.ID)
				if e.interval == t.Interval {
					// Due when it would have been had it stayed (if
					// that passed meanwhile, takeDue skips it as an
					// overlap, as it would have).
					e.target = t
					back = append(back, e)
				} else {
					e.target, e.interval = t, t.Interval
					fresh = append(fresh, e)
				}
			} else {
				e = &entry{target: t, interval: t.Interval, index: -1}
				fresh = append(fresh, e)
			}
		}
		next[t.ID] = e
	}
	for id, e := range s.entries {
		if next[id] != e && e.running {
			s.draining[id] = e
		}
	}
	q := s.queue[:0]
	for _, e := range s.queue {
		if e.index >= 0 && next[e.target.ID] == e {
			q = append(q, e)
		} else {
			e.index = -1
		}
	}
	clear(s.queue[len(q):]) // no references to removed entries
	q = append(q, back...)
	for j, e := range fresh {
		e.next = now.Add(time.Duration(int64(e.interval) * int64(j) / int64(len(fresh))))
		q = append(q, e)
	}
	for i, e := range q {
		e.index = i
	}
	s.queue = q
	heap.Init(&s.queue)
	s.entries = next
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Len returns the number of targets.
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Run schedules until ctx ends, then waits for the running jobs to finish
// and returns.
func (s *Scheduler) Run(ctx context.Context) {
	defer s.wg.Wait()
	jobCtx := context.WithoutCancel(ctx)
	timer := s.clock.NewTimer(time.Hour)
	defer timer.Stop()
	var due []run
	for {
		due = s.takeDue(due[:0])
		for i, r := range due {
			select {
			case s.sem <- struct{}{}:
			case <-ctx.Done():
				s.mu.Lock()
				for _, r := range due[i:] {
					s.ended(r.e)
				}
				s.mu.Unlock()
				return
			}
			// Waiting for the slot, the target may have been removed by
			// Set: once Set returns, a removed target never starts. One
			// that changed meanwhile runs with its new definition.
			s.mu.Lock()
			current := s.entries[r.e.target.ID] == r.e
			if current {
				r.t = r.e.target
			} else {
				s.ended(r.e)
			}
			s.mu.Unlock()
			if !current {
				<-s.sem
				continue
			}
			start := s.clock.Now()
			if s.opts.OnRun != nil {
				s.opts.OnRun(r.t, r.due, start.Sub(r.due))
			}
			s.wg.Add(1)
			go s.do(jobCtx, r)
		}

		s.mu.Lock()
		var wait <-chan time.Time
		if len(s.queue) > 0 {
			timer.Reset(max(s.queue[0].next.Sub(s.clock.Now()), s.opts.Coalesce))
			wait = timer.C()
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-wait:
		case <-s.wake:
		}
	}
}

type run struct {
	e   *entry
	t   *targets.Target
	due time.Time
}

// takeDue appends the runs due now to runs and moves their entries on.
func (s *Scheduler) takeDue(runs []run) []run {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	for len(s.queue) > 0 && !s.queue[0].next.After(now) {
		e := s.queue[0]
		due := e.next
		// Past more than one due time: make only the latest.
		if behind := int64(now.Sub(due) / e.interval); behind > 0 {
			due = due.Add(time.Duration(behind) * e.interval)
			if s.opts.OnSkip != nil {
				s.opts.OnSkip(e.target, SkipBehind, int(behind))
			}
		}
		e.next = due.Add(e.interval)
		heap.Fix(&s.queue, 0)
		if e.running {
			if s.opts.OnSkip != nil {
				s.opts.OnSkip(e.target, SkipOverlap, 1)
			}
			continue
		}
		e.running = true
		runs = append(runs, run{e: e, t: e.target, due: due})
	}
	return runs
}

func (s *Scheduler) do(ctx context.Context, r run) {
	defer s.wg.Done()
	defer func() { <-s.sem }()
	defer func() {
		s.mu.Lock()
		s.ended(r.e)
		s.mu.Unlock()
	}()
	s.job(ctx, r.t)
}

// ended marks e's run as ended, and forgets e if its target was removed
// meanwhile (and not added back). s.mu must be held.
func (s *Scheduler) ended(e *entry) {
	e.running = false
	if s.draining[e.target.ID] == e {
		delete(s.draining, e.target.ID)
	}
}

// queue is a min-heap of entries by next due time.
type queue []*entry

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].next.Before(q[j].next) }
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *queue) Push(x any) {
	e := x.(*entry)
	e.index = len(*q)
	*q = append(*q, e)
}
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*q = old[:len(old)-1]
	return e
}
