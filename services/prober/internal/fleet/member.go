package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/internal/targetstopic"
)

// Scheduler is what a Member drives: the prober's scheduler.
type Scheduler interface {
	// Set replaces the targets checked.
	Set(ts []*targets.Target)
	// Wait blocks until no check of the given target IDs is running.
	Wait(ctx context.Context, ids []string) error
}

// Group returns the consumer group of the probers of region.
func Group(region string) string { return "sitewatch-prober-" + region }

// Options configure a Member.
type Options struct {
	// Topic is the targets topic.
	Topic string
	// Region is the prober's region: it checks the targets that list it,
	// and those that list no region.
	Region string
	// Instance is the static member ID (kgo.InstanceID): a prober
	// restarted with the same instance within the session timeout gets
	// its partitions back without a rebalance.
	Instance string
	// SessionTimeout is how long the group waits for a prober that stopped
	// heartbeating before it gives its partitions to the others; 0 is
	// franz-go's default (45s).
	SessionTimeout time.Duration
	// HeartbeatInterval is how often the Member heartbeats to the group
	// coordinator, and so how late it learns that a rebalance began; 0 is
	// DefaultHeartbeat.
	HeartbeatInterval time.Duration
	Logger            *slog.Logger
	Registerer        prometheus.Registerer
}

// DefaultHeartbeat is the heartbeat of a Member, not franz-go's 3s: a
// member learns of a rebalance at its next heartbeat, and a hand-over takes
// up to two of them (a cooperative rebalance revokes in one round and
// assigns in the next), during which the targets that move are checked by
// nobody. With 500ms the gap stays below a second on an idle machine, so
// that with the prober's -catch-up a target checked every 2s or more
// misses no slot on a graceful change. The cost is two small requests a
// second per prober to the group coordinator.
const DefaultHeartbeat = 500 * time.Millisecond

// Member is a prober in its region's consumer group on the targets topic.
//
// The group protocol (cooperative-sticky, static membership) decides which
// partitions a Member owns; it checks exactly the targets of those
// partitions that are in its region. Offsets are never committed: the
// compacted topic is state, not a queue, so each partition assigned is read
// again from its start (ConsumeResetOffset start, with no committed offset
// to resume from), then followed live. Direct per-partition reads would
// need an assignor of our own; the group consumer gives assignment,
// failover and static membership from Kafka.
type Member struct {
	cl    *kgo.Client
	sched Scheduler
	o     Options
	log   *slog.Logger

	// mu guards the bookkeeping; the callbacks of the group and the
	// handling of polled records take it.
	mu     sync.Mutex
	parts  map[int32]*partition
	joined bool

	// nparts and partitioner give the partition a target's key belongs
	// in: where apply (franz-go's default, murmur2 as Kafka's clients)
	// writes it.
	nparts      int
	partitioner kgo.TopicPartitioner

	partitions prometheus.Gauge
	targets    prometheus.Gauge
	bad        prometheus.Counter
}

// partition is what a Member knows of a partition it owns.
type partition struct {
	// targets of this partition in the region, by ID
	targets map[string]*targets.Target
	// end is the partition's end offset when it was assigned; next is the
	// offset after the last record read. The partition is read to its
	// end once next >= end.
	end, next int64
	// live is set once the partition is read to its end (or its end is
	// unknown): only then do its targets reach the scheduler. Read from
	// its start, a partition replays the history of its targets (the
	// active segment is never compacted), and a read that takes several
	// fetches would otherwise check old definitions and deleted targets.
	live bool
	// lost: the client lost the partition (Kafka out of reach, the session
	// expired) and its targets are still checked until the next
	// assignment says whether it is still ours.
	lost bool
	// held: the targets a lost partition had when it was assigned again,
	// still checked until the partition is read to its end again.
	held map[string]*targets.Target
}

// NewMember returns a Member that joins the group of o.Region on o.Topic,
// with a client built from opts, once Run runs. The topic must exist
// (`prober targets apply` creates it).
func NewMember(ctx context.Context, opts []kgo.Opt, sched Scheduler, o Options) (*Member, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	m := &Member{
		sched: sched,
		o:     o,
		log:   o.Logger.With("component", "fleet", "group", Group(o.Region), "topic", o.Topic),
		parts: map[int32]*partition{},
		partitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sitewatch_prober_fleet_partitions",
			Help: "Partitions of the targets topic this prober owns.",
		}),
		targets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sitewatch_prober_fleet_targets",
			Help: "Targets of the owned partitions in this prober's region (the targets it checks).",
		}),
		bad: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_prober_fleet_bad_records_total",
			Help: "Records of the targets topic skipped because they hold no valid target (logged with the target ID).",
		}),
	}
	for _, c := range []prometheus.Collector{m.partitions, m.targets, m.bad} {
		if err := o.Registerer.Register(c); err != nil {
			return nil, err
		}
	}
	gopts := []kgo.Opt{
		kgo.WithLogger(kslog.New(o.Logger.With("component", "kafka-fleet"))),
		kgo.ConsumerGroup(Group(o.Region)),
		kgo.ConsumeTopics(o.Topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.InstanceID(o.Instance),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// Callbacks never run while polled records are being applied, so
		// a revoked partition's records cannot come back after its
		// targets were removed.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(m.assigned),
		kgo.OnPartitionsRevoked(m.revoked),
		kgo.OnPartitionsLost(m.lost),
	}
	if o.SessionTimeout > 0 {
		gopts = append(gopts, kgo.SessionTimeout(o.SessionTimeout))
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeat
	}
	gopts = append(gopts, kgo.HeartbeatInterval(o.HeartbeatInterval))
	// A check that the topic exists, with a client that joins no group:
	// a member of a group on a missing topic would sit ready with nothing.
	probe, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	ends, err := kadm.NewClient(probe).ListEndOffsets(ctx, o.Topic)
	probe.Close()
	if err == nil {
		err = ends.Error()
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return nil, fmt.Errorf("the targets topic %s does not exist: create it with `prober targets apply FILE`", o.Topic)
	}
	if err != nil {
		return nil, fmt.Errorf("list the end offsets of %s: %w", o.Topic, err)
	}
	m.nparts = len(ends[o.Topic])
	m.partitioner = kgo.StickyKeyPartitioner(nil).ForTopic(o.Topic)
	if m.cl, err = kgo.NewClient(append(slices.Clone(opts), gopts...)...); err != nil {
		return nil, err
	}
	return m, nil
}

// Ready reports why the Member is not ready, or nil once it joined the
// group and read each partition assigned to it to the end offset the
// partition had when it was assigned. A partition whose last records the
// log cleaner removed below that offset never counts as read, which cannot
// happen to a live topic: the cleaner leaves the active segment alone.
func (m *Member) Ready(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.joined {
		return fmt.Errorf("not yet in group %s", Group(m.o.Region))
	}
	var behind []int32
	for p, st := range m.parts {
		if st.next < st.end {
			behind = append(behind, p)
		}
	}
	if len(behind) > 0 {
		slices.Sort(behind)
		return fmt.Errorf("reading partitions %v of %s", behind, m.o.Topic)
	}
	return nil
}

// Run follows the owned partitions until ctx ends, then hands them over:
// it stops their checks, waits for the running ones and leaves the group,
// so that the other probers of the region take them at once. Close the
// Member after.
func (m *Member) Run(ctx context.Context) error {
	for {
		fs := m.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			m.cl.AllowRebalance()
			break
		}
		var fenced bool
		fs.EachError(func(t string, p int32, err error) {
			fenced = fenced || errors.Is(err, kerr.FencedInstanceID)
			m.log.Warn("reading the targets topic", "partition", p, "err", err)
		})
		if fenced {
			m.cl.AllowRebalance()
			// Not m.leave: a LeaveGroup naming our instance would remove
			// the other prober that holds it.
			m.revokeAll(context.Background())
			return fmt.Errorf("%w: another prober of group %s runs with -instance %s; give each its own", ErrFenced, Group(m.o.Region), m.o.Instance)
		}
		m.apply(fs)
		m.cl.AllowRebalance()
	}
	return m.leave()
}

// ErrFenced is returned by Run when another prober joined the group with
// the same instance ID: two probers with one ID would take turns fencing
// each other, each believing it holds the partitions.
var ErrFenced = errors.New("fenced by a prober with the same instance")

// Close closes the Kafka client.
func (m *Member) Close() { m.cl.Close() }

// leaveTimeout bounds the hand-over at shutdown.
const leaveTimeout = 30 * time.Second

func (m *Member) leave() error {
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	// Ends the group session: franz-go calls revoked for what we own
	// (stopping and waiting for those checks) but, for a static member,
	// sends no LeaveGroup.
	err := m.cl.LeaveGroupContext(ctx)
	m.revokeAll(ctx)
	// A static member is removed from the group only by an explicit
	// leave naming its instance; without it the others would wait the
	// session timeout. A crash (no leave) keeps the partitions reserved
	// for the same instance until then.
	resp, lerr := kadm.NewClient(m.cl).LeaveGroup(ctx, kadm.LeaveGroup(Group(m.o.Region)).InstanceIDs(m.o.Instance))
	if lerr == nil {
		lerr = resp.Error()
	}
	if lerr != nil && !errors.Is(lerr, kerr.UnknownMemberID) {
		err = errors.Join(err, fmt.Errorf("leave group %s as %s: %w", Group(m.o.Region), m.o.Instance, lerr))
	}
	if err != nil {
		m.log.Warn("leaving the group; the other probers take our targets after the session timeout", "err", err)
	} else {
		m.log.Info("left the group; the other probers take our targets", "instance", m.o.Instance)
	}
	return nil
}

func (m *Member) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	ps := assigned[m.o.Topic]
	ends := map[int32]int64{}
	if len(ps) > 0 {
		listed, err := kadm.NewClient(cl).ListEndOffsets(ctx, m.o.Topic)
		if err == nil {
			err = listed.Error()
		}
		if err != nil {
			// Ready then waits for a record at or past MaxInt64: never.
			// Better unready than ready with half the targets.
			m.log.Error("listing end offsets of assigned partitions; not ready", "err", err)
		}
		for _, p := range ps {
			ends[p] = unknownEnd
			if o, ok := listed.Lookup(m.o.Topic, p); ok && o.Err == nil {
				ends[p] = o.Offset
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.joined = true
	// Partitions lost before this assignment: those assigned again keep
	// their targets (read again from the start, they set the same ones,
	// and a tombstone written meanwhile removes its target); the others
	// went to other probers while we were away, and stop here.
	var dropped []int32
	for p, st := range m.parts {
		if st.lost && !slices.Contains(ps, p) {
			dropped = append(dropped, p)
			delete(m.parts, p)
		}
	}
	for _, p := range ps {
		// With its end unknown, a partition is checked as it is read:
		// unready, but not left unchecked until the next rebalance.
		np := &partition{targets: map[string]*targets.Target{}, end: ends[p], live: ends[p] <= 0 || ends[p] == unknownEnd}
		if st, ok := m.parts[p]; ok && st.lost {
			// Ours again: its targets go on being checked while it is
			// read again from the start.
			np.held = st.checked()
		}
		m.parts[p] = np
	}
	if len(dropped) > 0 {
		slices.Sort(dropped)
		m.setLocked()
		m.log.Info("partitions lost earlier went to other probers; their targets stop here", "partitions", dropped)
	}
	m.partitions.Set(float64(len(m.parts)))
	m.log.Info("partitions assigned", "partitions", ps, "owned", len(m.parts))
}

// unknownEnd is the end of a partition whose end offset could not be
// listed: no record reaches it, so the partition never counts as read.
const unknownEnd = int64(^uint64(0) >> 1)

// lost keeps checking the targets of partitions the client lost: Kafka
// out of reach (the "Kafka down while probers hold targets") or a
// session that expired. Stopping them would leave them unchecked for as
// long as Kafka is away, and for every prober of the region at once. If
// the group gave them to another prober meanwhile, both check them until
// this one is assigned again (assigned then drops them); the recorder
// counts one result per target, region and slot.
func (m *Member) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	ps := lost[m.o.Topic]
	m.mu.Lock()
	n := 0
	for _, p := range ps {
		if st, ok := m.parts[p]; ok {
			st.lost = true
			n += len(st.targets)
		}
	}
	m.mu.Unlock()
	m.log.Warn("partitions lost (Kafka out of reach or the session expired); still checking their targets until the group assigns partitions again",
		"partitions", ps, "targets", n)
}

// revoked removes the targets of the partitions taken away, then waits for
// their running checks: the group hands them to another prober only once
// this returns, so two probers never check a target at once.
func (m *Member) revoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	ps := revoked[m.o.Topic]
	m.mu.Lock()
	var ids []string
	for _, p := range ps {
		if st, ok := m.parts[p]; ok {
			ids = slices.AppendSeq(ids, maps.Keys(st.targets))
			delete(m.parts, p)
		}
	}
	m.setLocked()
	m.partitions.Set(float64(len(m.parts)))
	m.mu.Unlock()
	if err := m.sched.Wait(ctx, ids); err != nil {
		m.log.Warn("partitions revoked before their running checks ended", "partitions", ps, "err", err)
	}
	m.log.Info("partitions revoked", "partitions", ps, "targets", len(ids))
}

func (m *Member) revokeAll(ctx context.Context) {
	m.mu.Lock()
	ps := slices.Collect(maps.Keys(m.parts))
	m.mu.Unlock()
	if len(ps) > 0 {
		m.revoked(ctx, nil, map[string][]int32{m.o.Topic: ps})
	}
}

// apply takes polled records into the bookkeeping of their partitions and
// gives the scheduler the union of the owned targets when it changed.
func (m *Member) apply(fs kgo.Fetches) {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	fs.EachRecord(func(r *kgo.Record) {
		st, ok := m.parts[r.Partition]
		if !ok || r.Topic != m.o.Topic {
			return
		}
		st.next = max(st.next, r.Offset+1)
		id := string(r.Key)
		old, had := st.targets[id]
		t, err := m.target(r)
		if err != nil {
			m.bad.Inc()
			m.log.Error("skipping a record of the targets topic", "target", id, "partition", r.Partition, "offset", r.Offset, "err", err)
			// The last good definition stays: a bad record must not
			// stop checking a target that was fine.
			return
		}
		if t == nil {
			delete(st.targets, id)
			changed = changed || (st.live && had)
		} else {
			st.targets[id] = t
			changed = changed || (st.live && (!had || old != t))
		}
		if !st.live && st.next >= st.end {
			st.live, st.held = true, nil
			changed = true
		}
	})
	if changed {
		m.setLocked()
	}
}

// target returns the target a record sets, nil for a tombstone or a
// target of other regions.
func (m *Member) target(r *kgo.Record) (*targets.Target, error) {
	if r.Value == nil {
		return nil, nil
	}
	// A record outside its key's partition (written by hand, or by a
	// tool with another partitioner) would give its target a second
	// owner, or two definitions on one prober. A tombstone there is
	// harmless: it removes what was skipped.
	if p := m.partitioner.Partition(r, m.nparts); int32(p) != r.Partition {
		return nil, fmt.Errorf("in partition %d, but its key belongs in partition %d: write targets with `prober targets apply`, and remove this one with a tombstone in partition %d", r.Partition, p, r.Partition)
	}
	pb, err := targetstopic.Decode(r.Value)
	if err != nil {
		return nil, err
	}
	id := string(r.Key)
	if pb.GetId() != id {
		return nil, fmt.Errorf("the key %q differs from the target's id %q", id, pb.GetId())
	}
	t, err := targets.FromProto(fmt.Sprintf("%s partition %d offset %d", r.Topic, r.Partition, r.Offset), pb)
	if err != nil {
		return nil, err
	}
	if !InRegion(t, m.o.Region) {
		return nil, nil
	}
	return t, nil
}

// InRegion reports whether the probers of region check t: t lists region,
// or lists none.
func InRegion(t *targets.Target, region string) bool {
	return len(t.Regions) == 0 || slices.Contains(t.Regions, region)
}

// checked returns the targets of the partition that the scheduler checks:
// its own once it is read to its end, else those it held when it was
// assigned again after a loss.
func (st *partition) checked() map[string]*targets.Target {
	if st.live {
		return st.targets
	}
	return st.held
}

// setLocked gives the scheduler the targets of every owned partition read
// to its end, sorted by ID so that first checks spread the same way on every prober.
// m.mu must be held.
func (m *Member) setLocked() {
	all := map[string]*targets.Target{}
	for _, st := range m.parts {
		maps.Copy(all, st.checked())
	}
	ts := make([]*targets.Target, 0, len(all))
	for _, id := range slices.Sorted(maps.Keys(all)) {
		ts = append(ts, all[id])
	}
	m.sched.Set(ts)
	m.targets.Set(float64(len(ts)))
}
