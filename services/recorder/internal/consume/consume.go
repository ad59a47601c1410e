package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/sitewatch/sitewatch/services/internal/backoff"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/internal/shutdown"
	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
)

// Config of a Consumer.
type Config struct {
	Topic string // the DLQ topic is kafkaenv.DLQ(Topic)
	Group string
	// MaxBatch bounds the records of one poll, and so of one transaction.
	MaxBatch int
	// Retention dead-letters events that started before now minus it; zero
	// keeps everything.
	Retention time.Duration
	// MaxFuture dead-letters events that started after now plus it; zero
	// accepts any time.
	MaxFuture time.Duration
	// ShutdownGrace is how long, after the context ends, the batch in hand
	// may still take to be stored and committed.
	ShutdownGrace time.Duration
}

// Writer stores a batch of events; *store.Store is one.
type Writer interface {
	Write(ctx context.Context, events []store.Event) (store.Result, error)
}

// Consumer is one member of the recorders' consumer group.
type Consumer struct {
	cfg    Config
	cl     *kgo.Client
	dec    *Decoder
	w      Writer
	m      *metrics
	logger *slog.Logger
	now    func() time.Time

	// stored holds, per topic and partition, the offset after the last
	// record whose batch is stored: what may be committed. Offsets polled
	// but not stored (a batch that failed, the batch decoded behind it)
	// are never in it.
	storedMu sync.Mutex
	stored   map[string]map[int32]kgo.EpochOffset
}

// New joins the group (lazily, at the first poll) with the connection
// options opts (from kafkaenv), decoding through schemas and writing to w.
// Close the consumer when done.
func New(cfg Config, opts []kgo.Opt, schemas SchemaSource, w Writer, reg prometheus.Registerer, logger *slog.Logger) (*Consumer, error) {
	if cfg.Topic == "" || cfg.Group == "" {
		return nil, errors.New("consumer: topic and group are required")
	}
	if cfg.MaxBatch <= 0 {
		return nil, fmt.Errorf("consumer: batch size %d must be positive", cfg.MaxBatch)
	}
	m, err := newMetrics(reg, cfg.MaxBatch)
	if err != nil {
		return nil, err
	}
	c := &Consumer{cfg: cfg, dec: NewDecoder(schemas), w: w, m: m, logger: logger, now: time.Now,
		stored: map[string]map[int32]kgo.EpochOffset{}}
	c.cl, err = kgo.NewClient(append(slices.Clip(opts),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Offsets are committed by hand, after the batch's database
		// transaction has committed (franz-go examples/group_committing).
		kgo.DisableAutoCommit(),
		// A rebalance waits until the batch in hand is stored and committed,
		// so no batch is ever half-written across two owners.
		kgo.BlockRebalanceOnPoll(),
		// Should a commit have failed, commit what is stored before giving
		// partitions away, so the next owner need not redo it. Only what is
		// stored: CommitUncommittedOffsets would commit every polled
		// offset, and so lose a batch that could not be stored.
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
			c.commitStored(ctx, revoked)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			c.takeStored(lost)
		}),
		kgo.WithLogger(kslog.New(logger.With("component", "kafka"))),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return c, nil
}

// leaveTimeout bounds leaving the group, and the commit on revoke that
// leaving makes, when Kafka does not answer.
const leaveTimeout = 5 * time.Second

// Close leaves the group (committing what is stored) and closes the client.
// It waits at most about twice leaveTimeout; call it after Run has returned.
func (c *Consumer) Close() {
	// With BlockRebalanceOnPoll, leaving waits for AllowRebalance: without
	// it Close would wait forever once a poll has returned records (franz-go
	// Client.Close). The partitions' final revoke commits what is stored.
	c.cl.AllowRebalance()
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	if err := c.cl.LeaveGroupContext(ctx); err != nil {
		c.logger.Warn("leaving the group failed; the group waits for the session timeout", "err", err)
	}
	c.cl.Close()
}

// markStored records that the batch of recs is stored: their offsets may be
// committed.
func (c *Consumer) markStored(recs []*kgo.Record) {
	c.storedMu.Lock()
	defer c.storedMu.Unlock()
	for _, r := range recs {
		parts := c.stored[r.Topic]
		if parts == nil {
			parts = map[int32]kgo.EpochOffset{}
			c.stored[r.Topic] = parts
		}
		if o, ok := parts[r.Partition]; !ok || r.Offset+1 > o.Offset {
			parts[r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
		}
	}
}

// takeStored removes the given partitions' stored offsets and returns them:
// a partition that comes back later starts afresh, so an old offset is never
// committed over a newer owner's.
func (c *Consumer) takeStored(parts map[string][]int32) map[string]map[int32]kgo.EpochOffset {
	c.storedMu.Lock()
	defer c.storedMu.Unlock()
	taken := map[string]map[int32]kgo.EpochOffset{}
	for topic, ps := range parts {
		for _, p := range ps {
			o, ok := c.stored[topic][p]
			if !ok {
				continue
			}
			delete(c.stored[topic], p)
			if taken[topic] == nil {
				taken[topic] = map[int32]kgo.EpochOffset{}
			}
			taken[topic][p] = o
		}
	}
	return taken
}

// commitStored commits, for the revoked partitions, the offsets of what is
// stored, within leaveTimeout.
func (c *Consumer) commitStored(ctx context.Context, revoked map[string][]int32) {
	offsets := c.takeStored(revoked)
	if len(offsets) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, leaveTimeout)
	defer cancel()
	c.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err == nil {
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err == nil {
						err = kerr.ErrorForCode(p.ErrorCode)
					}
				}
			}
		}
		if err != nil {
			c.logger.Warn("commit on revoke failed; the next owner redelivers (harmless)", "err", err)
		}
	})
}

// Ping checks that a broker answers (readiness).
func (c *Consumer) Ping(ctx context.Context) error { return c.cl.Ping(ctx) }

// Run consumes until ctx ends, then finishes the batches in hand (within
// ShutdownGrace), commits them and returns nil. It returns an error only when
// a batch in hand could not be stored in time (its offsets are then not
// committed: the group redelivers it). Either way it returns with rebalances
// allowed, so that Close can leave the group.
//
// Batches are pipelined: while one batch is being written to PostgreSQL,
// the next is polled and decoded. Offsets are committed per batch, in order,
// after its transaction. Rebalances are allowed only with nothing in hand:
// whenever the pipeline runs dry, and at least every rebalanceEvery under a
// steady flow (the pipeline is drained for it).
func (c *Consumer) Run(ctx context.Context) error {
	// Whatever the way out, nothing is in hand any more: let the group
	// rebalance, so that leaving it (Close) does not wait forever.
	defer c.cl.AllowRebalance()
	c.ensureDLQTopic(ctx)
	var inflight *flight
	lastAllowed := time.Now()
	for {
		fetches := c.poll(ctx, inflight)
		if fetches.IsClientClosed() {
			return inflight.wait()
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				c.logger.Warn("fetch failed", "topic", topic, "partition", p, "err", err)
			}
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				lag := p.HighWatermark - p.Records[n-1].Offset - 1
				c.m.lag.WithLabelValues(p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(lag))
			}
		})
		var next *batch
		if recs := fetches.Records(); len(recs) > 0 {
			var err error
			if next, err = c.prepare(ctx, recs); err != nil {
				inflight.wait() //nolint:errcheck // already failing
				return err
			}
		}
		if err := inflight.wait(); err != nil {
			return err
		}
		inflight = nil
		if next != nil {
			inflight = c.start(ctx, next)
		}
		if inflight == nil || ctx.Err() != nil || time.Since(lastAllowed) > rebalanceEvery {
			if err := inflight.wait(); err != nil {
				return err
			}
			inflight = nil
			c.cl.AllowRebalance()
			lastAllowed = time.Now()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// poll returns the next records; while a batch is in flight it returns
// early, empty, when that batch lands, so that an idle topic never keeps a
// landed batch from allowing a rebalance.
func (c *Consumer) poll(ctx context.Context, inflight *flight) kgo.Fetches {
	if inflight == nil {
		return c.cl.PollRecords(ctx, c.cfg.MaxBatch)
	}
	pollCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-inflight.done:
			cancel()
		case <-pollCtx.Done():
		}
	}()
	return c.cl.PollRecords(pollCtx, c.cfg.MaxBatch)
}

// rebalanceEvery bounds how long a steady flow keeps a rebalance waiting.
const rebalanceEvery = time.Second

// batch is one poll's records, decoded.
type batch struct {
	recs      []*kgo.Record
	events    []store.Event
	eventRecs []*kgo.Record // the record of each event
	dead      []*kgo.Record
	reasons   []string
	polled    time.Time
}

// prepare decodes a polled batch and sorts out its dead letters. An
// unreachable registry is retried with backoff (nothing more is polled
// meanwhile).
func (c *Consumer) prepare(ctx context.Context, recs []*kgo.Record) (*batch, error) {
	b := &batch{recs: recs, events: make([]store.Event, 0, len(recs)), polled: time.Now()}
	work, cancel := shutdown.WithGrace(ctx, c.cfg.ShutdownGrace)
	defer cancel()
	now := c.now()
	for _, r := range recs {
		var ev store.Event
		var dl *deadLetter
		err := c.retry(work, "registry", func() error {
			var err error
			ev, err = c.dec.Decode(work, r.Value)
			if dl = nil; errors.As(err, &dl) {
				return nil
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("batch not stored (will be redelivered): %w", err)
		}
		if dl == nil {
			dl = c.policy(ev, now)
		}
		if dl != nil {
			b.dead = append(b.dead, dlqRecord(kafkaenv.DLQ(c.cfg.Topic), r, dl))
			b.reasons = append(b.reasons, dl.reason)
			c.logger.Warn("dead-lettering record", "topic", r.Topic, "partition", r.Partition,
				"offset", r.Offset, "reason", dl.reason, "detail", dl.detail)
			continue
		}
		b.events = append(b.events, ev)
		b.eventRecs = append(b.eventRecs, r)
	}
	return b, nil
}

// flight is a batch being stored.
type flight struct {
	done chan struct{}
	err  error
}

// wait waits for the flight to land; a nil flight has landed.
func (f *flight) wait() error {
	if f == nil {
		return nil
	}
	<-f.done
	return f.err
}

// start stores a prepared batch in the background: dead letters produced,
// events written in one transaction, offsets committed. Each step that fails
// for a transient reason (Kafka or PostgreSQL unavailable) is retried with
// backoff while the loop polls nothing more.
func (c *Consumer) start(ctx context.Context, b *batch) *flight {
	f := &flight{done: make(chan struct{})}
	go func() {
		defer close(f.done)
		f.err = c.store(ctx, b)
	}()
	return f
}

func (c *Consumer) store(ctx context.Context, b *batch) error {
	work, cancel := shutdown.WithGrace(ctx, c.cfg.ShutdownGrace)
	defer cancel()
	if len(b.dead) > 0 {
		err := c.retry(work, "dead-letter", func() error { return c.cl.ProduceSync(work, b.dead...).FirstErr() })
		if err != nil {
			return fmt.Errorf("batch not stored (will be redelivered): %w", err)
		}
		for _, reason := range b.reasons {
			c.m.deadLettered.WithLabelValues(reason).Inc()
		}
	}
	res, refused, err := c.write(work, b.events, 0)
	if err != nil {
		return fmt.Errorf("batch not stored (will be redelivered): %w", err)
	}
	if len(refused) > 0 {
		// The other events are stored; should these dead letters fail, the
		// batch is redelivered, its stored events skipped as known, and
		// these refused again.
		dead := make([]*kgo.Record, len(refused))
		for i, rf := range refused {
			r := b.eventRecs[rf.index]
			dead[i] = dlqRecord(kafkaenv.DLQ(c.cfg.Topic), r, &rf.deadLetter)
			c.logger.Warn("dead-lettering record", "topic", r.Topic, "partition", r.Partition,
				"offset", r.Offset, "reason", rf.reason, "detail", rf.detail)
		}
		err := c.retry(work, "dead-letter", func() error { return c.cl.ProduceSync(work, dead...).FirstErr() })
		if err != nil {
			return fmt.Errorf("batch not stored (will be redelivered): %w", err)
		}
		for _, rf := range refused {
			c.m.deadLettered.WithLabelValues(rf.reason).Inc()
		}
	}
	c.markStored(b.recs)
	stored := time.Now()
	c.m.stored.Add(float64(res.Inserted))
	c.m.duplicates.Add(float64(len(b.events) - len(refused) - res.Inserted - res.DuplicateSlots))
	c.m.dupSlots.Add(float64(res.DuplicateSlots))
	for _, at := range res.InsertedCheckedAt {
		c.m.endToEnd.Observe(stored.Sub(at).Seconds())
	}
	if err := c.cl.CommitRecords(work, b.recs...); err != nil {
		// The rows are committed: a later commit covers these offsets, and if
		// none does, redelivery inserts nothing.
		c.logger.Warn("offset commit failed", "err", err)
	}
	c.m.batchSize.Observe(float64(len(b.recs)))
	c.m.batchDuration.Observe(time.Since(b.polled).Seconds())
	c.logger.Debug("batch stored", "records", len(b.recs), "inserted", res.Inserted, "dead_lettered", len(b.dead))
	return nil
}

// refusal is an event of the batch the store would not take: events[index],
// and why.
type refusal struct {
	index int
	deadLetter
}

// write stores events (the batch's from its index first on), retrying
// transient failures, and returns the events not stored: those past the
// retention by now (store.Result.Expired) and those the database refuses.
// When the database refuses the events for good (store.Refused), it halves
// them and writes each half, down to the single events it refuses, instead
// of retrying them forever: one bad event would otherwise stall its
// partition.
func (c *Consumer) write(ctx context.Context, events []store.Event, first int) (store.Result, []refusal, error) {
	var res store.Result
	var refused string
	err := c.retry(ctx, "database", func() error {
		var err error
		res, err = c.w.Write(ctx, events)
		if detail, ok := store.Refused(err); ok {
			refused = detail
			return nil
		}
		return err
	})
	switch {
	case err != nil:
		return store.Result{}, nil, err
	case refused == "":
		var rf []refusal
		for _, i := range res.Expired {
			rf = append(rf, refusal{first + i, deadLetter{ReasonExpired, fmt.Sprintf(
				"started_at %s: the retention %s drops its day's partition by the time it is written",
				events[i].CheckedAt.UTC().Format(time.RFC3339), c.cfg.Retention)}})
		}
		return res, rf, nil
	case len(events) == 1:
		return store.Result{}, []refusal{{first, deadLetter{ReasonRejectedByDatabase, refused}}}, nil
	}
	c.logger.Warn("the database refuses the batch; halving it to find the events it refuses",
		"events", len(events), "err", refused)
	mid := len(events) / 2
	res, rf, err := c.write(ctx, events[:mid], first)
	if err != nil {
		return store.Result{}, nil, err
	}
	res2, rf2, err := c.write(ctx, events[mid:], first+mid)
	if err != nil {
		return store.Result{}, nil, err
	}
	res.Inserted += res2.Inserted
	res.DuplicateSlots += res2.DuplicateSlots
	res.InsertedCheckedAt = append(res.InsertedCheckedAt, res2.InsertedCheckedAt...)
	return res, append(rf, rf2...), nil
}

// policy dead-letters events outside the time window the recorder keeps.
func (c *Consumer) policy(ev store.Event, now time.Time) *deadLetter {
	if c.cfg.Retention > 0 && ev.CheckedAt.Before(now.Add(-c.cfg.Retention)) {
		return &deadLetter{ReasonExpired, fmt.Sprintf("started_at %s is older than the retention %s",
			ev.CheckedAt.UTC().Format(time.RFC3339), c.cfg.Retention)}
	}
	if c.cfg.MaxFuture > 0 && ev.CheckedAt.After(now.Add(c.cfg.MaxFuture)) {
		return &deadLetter{ReasonFuture, fmt.Sprintf("started_at %s is more than %s ahead of this recorder's clock",
			ev.CheckedAt.UTC().Format(time.RFC3339), c.cfg.MaxFuture)}
	}
	// The slot too: each day of scheduled_at gets a check_slots partition,
	// and one in the future is never dropped by the retention.
	if c.cfg.MaxFuture > 0 && ev.ScheduledAt.After(now.Add(c.cfg.MaxFuture)) {
		return &deadLetter{ReasonFuture, fmt.Sprintf("scheduled_at %s is more than %s ahead of this recorder's clock",
			ev.ScheduledAt.UTC().Format(time.RFC3339), c.cfg.MaxFuture)}
	}
	return nil
}

// Dead-letter headers, beside the record's own headers.
const (
	HeaderReason    = "dlq.reason"
	HeaderDetail    = "dlq.detail"
	HeaderTopic     = "dlq.topic"
	HeaderPartition = "dlq.partition"
	HeaderOffset    = "dlq.offset"
)

func dlqRecord(topic string, r *kgo.Record, dl *deadLetter) *kgo.Record {
	h := append(slices.Clip(r.Headers),
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(dl.reason)},
		kgo.RecordHeader{Key: HeaderDetail, Value: []byte(dl.detail)},
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
		kgo.RecordHeader{Key: HeaderOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
	)
	return &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: h}
}

// ensureDLQTopic creates the dead-letter topic with the broker's defaults
// when missing. Failing (no permission on a managed cluster) is not fatal:
// the topic may exist or be auto-created.
func (c *Consumer) ensureDLQTopic(ctx context.Context) {
	topic := kafkaenv.DLQ(c.cfg.Topic)
	resp, err := kadm.NewClient(c.cl).CreateTopic(ctx, -1, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	switch {
	case err == nil:
		c.logger.Info("created dead-letter topic", "topic", topic)
	case errors.Is(err, kerr.TopicAlreadyExists):
	default:
		c.logger.Warn("could not create the dead-letter topic", "topic", topic, "err", err)
	}
}

// retry runs fn until it succeeds or ctx ends, backing off from 100 ms to
// 10 s, and counts and logs each failure.
func (c *Consumer) retry(ctx context.Context, what string, fn func() error) error {
	return backoff.Batch(ctx, c.logger, what, fn, nil, func() { c.m.retries.WithLabelValues(what).Inc() })
}
