package consume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/plugin/kslog"
	"google.golang.org/protobuf/proto"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/alerter/internal/evaluate"
	"github.com/sitewatch/sitewatch/services/alerter/internal/store"
	"github.com/sitewatch/sitewatch/services/internal/backoff"
	"github.com/sitewatch/sitewatch/services/internal/shutdown"
)

// Stale is Transition.Suppressed for a transition of a check older than
// Config.MaxNotifyAge when it was evaluated.
const Stale = evaluate.Stale

// Config of a Consumer.
type Config struct {
	Topic, Group string
	// MaxBatch bounds the records of one poll, and so of one transaction.
	MaxBatch int
	// ShutdownGrace is how long, after the context ends, the batch in hand
	// may still take to be stored.
	ShutdownGrace time.Duration
	// MaxNotifyAge: a transition caused by a check older than this when it
	// is evaluated (a first start over a topic's history, a long outage)
	// is recorded but notifies no channel (Suppressed Stale), unless it
	// resolves an incident whose opening was notified; 0 notifies every
	// transition.
	MaxNotifyAge time.Duration
	// MaxFuture skips events whose check started further ahead of this
	// clock (the recorder dead-letters them too): one event of a prober
	// with a broken clock would otherwise make its region ignore every
	// later event as late. 0 accepts any time.
	MaxFuture time.Duration
}

// Policies is what the consumer asks of the current policies
// (*policy.Set is one).
type Policies interface {
	Lookup(targetID string) (evaluate.Policy, evaluate.Maintenance, bool)
	ChannelType(name string) (string, bool)
}

// Store is the database side (*store.Store is one).
type Store interface {
	Offsets(ctx context.Context, topic string) (map[int32]int64, error)
	States(ctx context.Context, targetIDs []string) (map[string]*evaluate.State, error)
	Write(ctx context.Context, b *store.Batch) (store.Written, error)
}

// Consumer is one member of the alerters' group.
type Consumer struct {
	cfg      Config
	cl       *kgo.Client
	st       Store
	policies func() Policies
	m        *metrics
	logger   *slog.Logger
	now      func() time.Time

	// mu guards what the group's callbacks and the poll loop share.
	mu sync.Mutex
	// expected holds, per assigned partition, the stored offset its next
	// batch starts from (store.NoOffset: none stored).
	expected map[int32]int64
	// states caches the states of the targets of assigned partitions, as
	// stored after the last batch; owners tells which partition's.
	states map[string]*evaluate.State
	owners map[int32]map[string]bool
}

// New returns a consumer that joins the group (at its first poll) with the
// connection options opts, and evaluates each event under the policies
// that policies returns then.
func New(cfg Config, opts []kgo.Opt, st Store, policies func() Policies, reg prometheus.Registerer, logger *slog.Logger) (*Consumer, error) {
	if cfg.Topic == "" || cfg.Group == "" {
		return nil, errors.New("consumer: topic and group are required")
	}
	if cfg.MaxBatch <= 0 {
		return nil, fmt.Errorf("consumer: batch size %d must be positive", cfg.MaxBatch)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	c := &Consumer{cfg: cfg, st: st, policies: policies, m: m, logger: logger, now: time.Now,
		expected: map[int32]int64{}, states: map[string]*evaluate.State{}, owners: map[int32]map[string]bool{}}
	c.cl, err = kgo.NewClient(append(slices.Clip(opts),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		// The offsets live in PostgreSQL, with the effects of the events
		// before them; Kafka's are neither committed nor read.
		kgo.DisableAutoCommit(),
		kgo.AdjustFetchOffsetsFn(c.seek),
		// A rebalance waits until the batch in hand is stored, so no batch
		// is ever evaluated by two owners from the same state.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, parts map[string][]int32) { c.forget(parts) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, parts map[string][]int32) { c.forget(parts) }),
		kgo.WithLogger(kslog.New(logger.With("component", "kafka"))),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return c, nil
}

// seek starts each partition assigned at the offset stored in PostgreSQL,
// or at the start of the partition when none is.
func (c *Consumer) seek(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	parts := offsets[c.cfg.Topic]
	if len(parts) == 0 {
		return offsets, nil
	}
	stored, err := c.st.Offsets(ctx, c.cfg.Topic)
	if err != nil {
		// The group session ends and is joined again: the partitions are
		// assigned afresh, and this is tried again.
		c.logger.Warn("could not read the stored offsets of assigned partitions", "err", err)
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range parts {
		c.dropLocked(p)
		if o, ok := stored[p]; ok {
			parts[p] = kgo.NewOffset().At(o)
			c.expected[p] = o
		} else {
			parts[p] = kgo.NewOffset().AtStart()
			c.expected[p] = store.NoOffset
		}
		c.logger.Info("partition assigned", "partition", p, "from", c.expected[p])
	}
	return offsets, nil
}

// forget drops what is known of partitions no longer assigned.
func (c *Consumer) forget(parts map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range parts[c.cfg.Topic] {
		c.dropLocked(p)
		delete(c.expected, p)
	}
}

func (c *Consumer) dropLocked(p int32) {
	for id := range c.owners[p] {
		delete(c.states, id)
	}
	delete(c.owners, p)
}

// Close leaves the group and closes the client; call it after Run.
func (c *Consumer) Close() {
	c.cl.AllowRebalance()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.cl.LeaveGroupContext(ctx); err != nil {
		c.logger.Warn("leaving the group failed; the group waits for the session timeout", "err", err)
	}
	c.cl.Close()
}

// Ping checks that a broker answers (readiness).
func (c *Consumer) Ping(ctx context.Context) error { return c.cl.Ping(ctx) }

// Run consumes until ctx ends, finishing the batch in hand (within
// ShutdownGrace), and returns nil; an error only when a batch could not be
// stored (it is evaluated again by the next owner, from the stored state).
func (c *Consumer) Run(ctx context.Context) error {
	defer c.cl.AllowRebalance()
	for {
		fs := c.cl.PollRecords(ctx, c.cfg.MaxBatch)
		if fs.IsClientClosed() || ctx.Err() != nil && fs.NumRecords() == 0 {
			return nil
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				c.logger.Warn("fetch failed", "topic", topic, "partition", p, "err", err)
			}
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				c.m.lag.WithLabelValues(p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(p.HighWatermark - p.Records[n-1].Offset - 1))
			}
		})
		if recs := fs.Records(); len(recs) > 0 {
			if err := c.process(ctx, recs); err != nil {
				return err
			}
		}
		c.cl.AllowRebalance()
		if ctx.Err() != nil {
			return nil
		}
	}
}

// item is one record and its event.
type item struct {
	rec *kgo.Record
	ev  evaluate.Event
	ok  bool
}

// process evaluates and stores one poll's records.
func (c *Consumer) process(ctx context.Context, recs []*kgo.Record) error {
	start := time.Now()
	work, cancel := shutdown.WithGrace(ctx, c.cfg.ShutdownGrace)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()

	pol := c.policies()
	now := c.now()
	items := make([]item, len(recs))
	var load []string
	seen := map[string]bool{}
	for i, r := range recs {
		items[i].rec = r
		ev, err := decode(r.Value)
		if err != nil {
			c.m.events.WithLabelValues(resultUndecodable).Inc()
			c.logger.Warn("skipped a record that is no check result", "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		if c.cfg.MaxFuture > 0 && ev.CheckedAt.After(now.Add(c.cfg.MaxFuture)) {
			c.m.events.WithLabelValues(resultFuture).Inc()
			c.logger.Warn("skipped an event from the future", "target", ev.TargetID, "checked_at", ev.CheckedAt,
				"max_future", c.cfg.MaxFuture.String(), "event_id", ev.EventID)
			continue
		}
		if _, _, ok := pol.Lookup(ev.TargetID); !ok {
			c.m.events.WithLabelValues(resultNoPolicy).Inc()
			continue
		}
		items[i].ev, items[i].ok = ev, true
		if c.states[ev.TargetID] == nil && !seen[ev.TargetID] {
			seen[ev.TargetID] = true
			load = append(load, ev.TargetID)
		}
	}
	var loaded map[string]*evaluate.State
	if err := c.retry(work, "load states", func() error {
		var err error
		loaded, err = c.st.States(work, load)
		return err
	}, nil); err != nil {
		return fmt.Errorf("batch not stored (evaluated again later): %w", err)
	}

	b := &store.Batch{Topic: c.cfg.Topic, Offsets: map[int32]store.Offset{}, States: map[string]*evaluate.State{}}
	incidents := map[string]int{} // incident ID -> index in b.Incidents
	// The states as they were before the batch: restored should it fail.
	before := map[string]*evaluate.State{}
	for _, it := range items {
		r := it.rec
		o, ok := b.Offsets[r.Partition]
		if !ok {
			exp, assigned := c.expected[r.Partition]
			if !assigned {
				continue // revoked meanwhile (cannot happen while the poll blocks rebalances)
			}
			o.Expected = exp
		}
		o.Next = max(o.Next, r.Offset+1)
		b.Offsets[r.Partition] = o
		if !it.ok {
			continue
		}
		id := it.ev.TargetID
		st := c.states[id]
		if st == nil {
			if st = loaded[id]; st == nil {
				st = &evaluate.State{}
			}
			c.states[id] = st
			if c.owners[r.Partition] == nil {
				c.owners[r.Partition] = map[string]bool{}
			}
			c.owners[r.Partition][id] = true
			before[id] = nil
		} else if _, saved := before[id]; !saved {
			before[id] = st.Clone()
		}
		p, maint, _ := pol.Lookup(id)
		// Decided before Apply: the evaluator still notifies the
		// resolution of an incident whose opening was notified.
		it.ev.Stale = c.cfg.MaxNotifyAge > 0 && now.Sub(it.ev.CheckedAt) > c.cfg.MaxNotifyAge
		res := st.Apply(it.ev, p, maint)
		if res.DuplicateSlot {
			c.m.events.WithLabelValues(resultDupSlot).Inc()
			c.logger.Debug("ignored a second event of a slot its region has counted", "target", id,
				"region", it.ev.Region, "scheduled_at", it.ev.ScheduledAt, "event_id", it.ev.EventID)
			continue
		}
		if res.Ignored {
			c.m.events.WithLabelValues(resultIgnoredLate).Inc()
			c.logger.Warn("ignored an event older than its region's latest check", "target", id,
				"region", it.ev.Region, "checked_at", it.ev.CheckedAt, "event_id", it.ev.EventID)
			continue
		}
		c.m.events.WithLabelValues(resultEvaluated).Inc()
		b.States[id] = st
		b.Incidents = evaluate.Merge(b.Incidents, incidents, res.Changed)
		for _, t := range res.Transitions {
			b.Transitions = append(b.Transitions, t)
			for _, ch := range t.Channels {
				typ, ok := pol.ChannelType(ch)
				if !ok {
					c.m.unknownChannel.Inc()
					c.logger.Warn("the policy names a channel the configuration does not have; not notified", "target", id, "channel", ch, "incident", t.IncidentID)
					continue
				}
				payload, err := json.Marshal(t.Notification)
				if err != nil {
					return fmt.Errorf("notification of incident %s: %w", t.IncidentID, err)
				}
				b.Outbox = append(b.Outbox, store.OutboxRow{IdempotencyKey: t.Notification.IdempotencyKey(ch),
					IncidentID: t.IncidentID, Seq: t.Seq, Channel: ch, ChannelType: typ, Payload: payload})
			}
		}
	}
	if len(b.Offsets) == 0 {
		return nil
	}
	var w store.Written
	err := c.retry(work, "database", func() error {
		var err error
		w, err = c.st.Write(work, b)
		return err
	}, func(err error) bool { var f *store.Fenced; return !errors.As(err, &f) })
	if err != nil {
		// The cached states are ahead of the database: back to before.
		for id, st := range before {
			if st == nil {
				delete(c.states, id)
			} else {
				c.states[id] = st
			}
		}
		var fenced *store.Fenced
		if errors.As(err, &fenced) {
			c.m.fenced.Inc()
			c.logger.Warn("batch not stored: another alerter evaluated the partition meanwhile; reading on from the stored offsets", "err", err)
			return c.reseek(work, b.Offsets)
		}
		return fmt.Errorf("batch not stored (evaluated again later): %w", err)
	}
	for p, o := range b.Offsets {
		c.expected[p] = o.Next
	}
	for _, t := range b.Transitions {
		c.m.transitions.WithLabelValues(t.Notification.Kind, t.Transition).Inc()
	}
	c.m.outbox.Add(float64(w.Outbox))
	c.m.batchDuration.Observe(time.Since(start).Seconds())
	c.logger.Debug("batch stored", "records", len(recs), "transitions", len(b.Transitions), "outbox", w.Outbox)
	return nil
}

// reseek moves the batch's partitions to their stored offsets, dropping
// their cached states: the events after those offsets are evaluated again
// from the stored states, should this alerter still own them.
func (c *Consumer) reseek(ctx context.Context, parts map[int32]store.Offset) error {
	stored, err := c.st.Offsets(ctx, c.cfg.Topic)
	if err != nil {
		return fmt.Errorf("read the stored offsets after a fenced batch: %w", err)
	}
	set := map[int32]kgo.EpochOffset{}
	for p := range parts {
		c.dropLocked(p)
		if o, ok := stored[p]; ok {
			c.expected[p] = o
			set[p] = kgo.EpochOffset{Epoch: -1, Offset: o}
		}
	}
	c.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{c.cfg.Topic: set})
	return nil
}

// retry runs fn until it succeeds, fails for good (retryable refuses;
// nil: every error is retried), or ctx ends, backing off
// from 100 ms to 10 s.
func (c *Consumer) retry(ctx context.Context, what string, fn func() error, retryable func(error) bool) error {
	return backoff.Batch(ctx, c.logger, what, fn, retryable, func() { c.m.retries.WithLabelValues(what).Inc() })
}

// decode returns the event of a record value in the Confluent wire format.
// It reads the payload as this alerter's CheckResult without asking the
// registry: the subject's BACKWARD compatibility keeps every field it reads
// readable, and the recorder, which checks each schema, dead-letters what
// is not a CheckResult.
func decode(value []byte) (evaluate.Event, error) {
	var h sr.ConfluentHeader
	_, rest, err := h.DecodeID(value)
	if err != nil {
		return evaluate.Event{}, fmt.Errorf("not in the Confluent wire format: %w", err)
	}
	idx, payload, err := h.DecodeIndex(rest, 16)
	if err != nil {
		return evaluate.Event{}, fmt.Errorf("message index: %w", err)
	}
	if len(idx) > 1 || len(idx) == 1 && idx[0] != 0 {
		return evaluate.Event{}, fmt.Errorf("message index %v is not CheckResult's [0]", idx)
	}
	var m sitewatchv1.CheckResult
	if err := proto.Unmarshal(payload, &m); err != nil {
		return evaluate.Event{}, fmt.Errorf("not a CheckResult: %w", err)
	}
	return evaluate.FromCheckResult(&m)
}
