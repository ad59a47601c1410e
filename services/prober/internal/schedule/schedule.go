package schedule

import (
	"container/heap"
	"context"
	"hash/fnv"
	"sync"
	"time"

	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// Job runs one check of a target. Its ctx is not cancelled when the
// scheduler stops, so a running check ends on its own deadline; Due(ctx)
// is the slot the run was due at.
type Job func(ctx context.Context, t *targets.Target)

type dueKey struct{}

// Due returns the slot a run was due at, from the ctx the scheduler gives
// its Job; false for any other ctx. It travels in the ctx, not as an
// argument, so that Job keeps the signature of check.Func.
func Due(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(dueKey{}).(time.Time)
	return t, ok
}

// Offset returns where in every interval the slots of the target id fall:
// FNV-1a 64 of the ID modulo the interval. Every prober, of any version,
// must compute the same slots (a prober that takes a target over keeps its
// grid, and the recorder counts one result per slot), so this function
// never changes; TestOffsetIsStable pins it.
func Offset(id string, interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(id)) // never fails
	return time.Duration(h.Sum64() % uint64(interval))
}

// NextSlot returns the first slot at or after t of a target with the given
// offset and interval: slots fall at the Unix epoch + offset + k*interval.
func NextSlot(offset, interval time.Duration, t time.Time) time.Time {
	if interval <= 0 {
		return t
	}
	n := t.UnixNano()
	r := (n - int64(offset)) % int64(interval)
	if r < 0 { // before the epoch
		r += int64(interval)
	}
	if r == 0 {
		return time.Unix(0, n).In(t.Location())
	}
	return time.Unix(0, n-r+int64(interval)).In(t.Location())
}

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
	// CatchUp, when more than zero, lets a target new to the scheduler run
	// its latest slot (the last one at or before now) at once, due at that
	// slot, when that slot is at most CatchUp old; then it goes on on its
	// grid. A prober that takes a target over from another thus checks the
	// slot that fell between the other's revoke and its own assignment;
	// if the other did check it, the recorder drops the second result.
	// Zero: a new target waits for its next slot. A value at or above a
	// target's interval catches up its latest slot only, never more. A
	// catch-up run still going at the target's next slot (it may start up
	// to an interval late) makes that slot wait until it ends, rather
	// than skip it as overlapping.
	CatchUp time.Duration
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
	// runEnded, when not nil, is closed as a run ends, for Wait.
	runEnded chan struct{}
	// offset is Offset but in tests, whose grids are easier to read.
	offset func(id string, interval time.Duration) time.Duration
	// gone holds, with CatchUp only, the next slot of targets removed
	// within the last CatchUp, by ID: a target added back is not caught
	// up on a slot before it, one this scheduler ran or skipped already.
	gone map[string]time.Time
}

type entry struct {
	target   *targets.Target
	interval time.Duration
	next     time.Time // the next time a run is due
	running  bool
	index    int // in the queue; -1 when removed
	// catchUp: the first run, due now, is a catch-up (Options.CatchUp);
	// lateRun: the run going on is one. Started up to an interval late by
	// design, a catch-up run may still go on at the target's next slot,
	// which then waits for it (waiting) instead of being skipped as
	// overlapping: catching up one slot must not cost the next.
	catchUp, lateRun bool
	waiting          time.Time
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
		offset:   Offset,
		gone:     map[string]time.Time{},
	}
}

// Set replaces the targets; it may be called at any time, before or while
// Run runs. Every run of a target is due on a slot of the target's grid:
// the Unix epoch + Offset(ID, interval) + k*interval, the same in every
// prober and across restarts. A new target's first run waits for its next
// slot (at most an interval): a run off the grid would be a second result
// in a slot, or one in none; with Options.CatchUp it runs its latest slot
// at once instead when that slot is recent enough (see CatchUp), unless
// it was removed and added back and this scheduler had run or skipped that
// slot already. Every Set may thus start at once the runs of the new
// targets whose latest slot is within CatchUp: about CatchUp/interval of
// them, all of them at a first Set with CatchUp >= interval. A target
// whose interval changed moves to the
// grid of its new interval from its next slot there. A target whose ID and
// interval are unchanged runs with the new definition from its next slot
// on. Once Set returns, a removed target starts no run, not even one that
// was due before and waits for a concurrency slot; a run in progress
// finishes (Wait waits for it), and a target added back while it runs is
// the same target to the scheduler: its next run is skipped if that run is
// still going, and a slot already run is not run again. Set takes time
// linear in the number of targets, old and new.
func (s *Scheduler) Set(ts []*targets.Target) {
	s.mu.Lock()
	now := s.clock.Now()
	// One pass over the targets, one over the old entries and one rebuild
	// of the queue: O(n) plus the heap's O(n) init, whatever the change. A
	// heap.Remove per removed target was O(log n) each, but a reload is
	// also a new map and a new queue, so it is as cheap to build them whole.
	next := make(map[string]*entry, len(ts))
	var fresh, back, added []*entry
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
			e.target, e.interval, e.waiting = t, t.Interval, time.Time{}
			e.index = -1 // out of the queue, in again below
			fresh = append(fresh, e)
		default:
			// Added back while the run from before its removal goes
			// on: the same entry, so the running flag holds.
			if e, ok = s.draining[t.ID]; ok {
				delete(s.draining, t.ID)
				if e.interval == t.Interval {
					// Its next slot, but never one it already ran.
					e.target = t
					back = append(back, e)
				} else {
					e.target, e.interval = t, t.Interval
					fresh = append(fresh, e)
				}
			} else {
				e = &entry{target: t, interval: t.Interval, index: -1}
				added = append(added, e)
			}
		}
		next[t.ID] = e
	}
	for id, e := range s.entries {
		if next[id] == e {
			continue
		}
		if e.running {
			s.draining[id] = e
		}
		if s.opts.CatchUp > 0 {
			s.gone[id] = e.next
		}
		e.waiting = time.Time{}
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
	for _, e := range back {
		// e.next is the slot after the last one it ran; the slots that
		// passed while it was away were not this scheduler's to run.
		e.next = laterOf(e.next, NextSlot(s.offset(e.target.ID, e.interval), e.interval, now))
		q = append(q, e)
	}
	for _, e := range fresh {
		e.next = NextSlot(s.offset(e.target.ID, e.interval), e.interval, now)
		q = append(q, e)
	}
	for _, e := range added {
		e.next = s.firstSlot(e, now)
		e.catchUp = e.next.Before(now)
		q = append(q, e)
	}
	if s.opts.CatchUp > 0 {
		// Once a removal is more than CatchUp old, any slot catch-up
		// could run is after the removed target's next slot anyway.
		for id, t := range s.gone {
			if !t.After(now.Add(-s.opts.CatchUp)) {
				delete(s.gone, id)
			}
		}
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

// firstSlot returns the first due time of e, a target new to the
// scheduler: its next slot, or with CatchUp its latest one when that is at
// most CatchUp old and not before a slot it had reached before a removal.
// s.mu must be held.
func (s *Scheduler) firstSlot(e *entry, now time.Time) time.Time {
	next := NextSlot(s.offset(e.target.ID, e.interval), e.interval, now)
	if s.opts.CatchUp <= 0 || e.interval <= 0 || next.Equal(now) {
		return next
	}
	latest := next.Add(-e.interval)
	gone, wasGone := s.gone[e.target.ID]
	delete(s.gone, e.target.ID)
	if now.Sub(latest) > s.opts.CatchUp || (wasGone && latest.Before(gone)) {
		return next
	}
	return latest
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Wait blocks until no check of the given target IDs is running, or ctx ends
// (then it returns ctx.Err()). After Set without those targets, no check of
// them starts, so once Wait returns another prober may take them over
// without two checks of a target at once. A run due and waiting for a
// concurrency slot counts as running until it is dropped.
func (s *Scheduler) Wait(ctx context.Context, ids []string) error {
	for {
		s.mu.Lock()
		busy := false
		for _, id := range ids {
			if e := s.entries[id]; e != nil && e.running {
				busy = true
				break
			}
			if e := s.draining[id]; e != nil && e.running {
				busy = true
				break
			}
		}
		if !busy {
			s.mu.Unlock()
			return nil
		}
		if s.runEnded == nil {
			s.runEnded = make(chan struct{})
		}
		ch := s.runEnded
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
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
			go s.do(context.WithValue(jobCtx, dueKey{}, r.due), r)
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
			if e.lateRun {
				// Run when the catch-up run ends. A slot that waited
				// already gives way to this later one: it is the slot
				// skipped, so that each slot counts once, run or
				// skipped, and at most one slot ever waits.
				if !e.waiting.IsZero() && s.opts.OnSkip != nil {
					s.opts.OnSkip(e.target, SkipOverlap, 1)
				}
				e.waiting = due
				continue
			}
			if s.opts.OnSkip != nil {
				s.opts.OnSkip(e.target, SkipOverlap, 1)
			}
			continue
		}
		e.running = true
		e.lateRun, e.catchUp = e.catchUp, false
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
	e.running, e.lateRun = false, false
	if s.draining[e.target.ID] == e {
		delete(s.draining, e.target.ID)
	}
	if !e.waiting.IsZero() {
		// The slot that waited for a catch-up run is due now.
		if s.entries[e.target.ID] == e && e.index >= 0 {
			e.next = e.waiting
			heap.Fix(&s.queue, e.index)
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
		e.waiting = time.Time{}
	}
	if s.runEnded != nil { // someone waits in Wait
		close(s.runEnded)
		s.runEnded = nil
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
