package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sitewatch/sitewatch/services/internal/backoff"
	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/internal/targetstopic"
)

// Fleet follows the targets topic: it reads every partition from its
// start (no consumer group: every alerter needs every policy, as events
// of any target may reach it) and keeps each key's latest valid target.
type Fleet struct {
	topic  string
	opts   []kgo.Opt
	logger *slog.Logger
	// publish is called with every target known, once the topic is read
	// to the end offsets listed at the start, and after each fetch then.
	publish func(map[string]*targets.Target)
	ready   chan struct{}
}

// NewFleet returns a follower of topic that calls publish with the
// targets (a map it no longer changes).
func NewFleet(topic string, opts []kgo.Opt, publish func(map[string]*targets.Target), logger *slog.Logger) *Fleet {
	return &Fleet{topic: topic, opts: opts, publish: publish, logger: logger.With("targets_topic", topic), ready: make(chan struct{})}
}

// Ready is closed once the topic has been read to its end: events must not
// be evaluated before, or they would find no policy.
func (f *Fleet) Ready() <-chan struct{} { return f.ready }

// Run follows the topic until ctx ends, retrying failures with a backoff
// from the start of the topic, and returns nil then.
func (f *Fleet) Run(ctx context.Context) error {
	_, err := backoff.Do(ctx, backoff.Exponential(time.Second, time.Minute), f.run,
		func(error) bool { return ctx.Err() == nil },
		func(attempt int, wait time.Duration, err error) {
			f.logger.Warn("reading the targets topic failed; retrying", "attempt", attempt, "wait", wait.String(), "err", err)
		})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (f *Fleet) run(ctx context.Context) error {
	cl, err := kgo.NewClient(f.opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, f.topic)
	if err == nil {
		err = ends.Error()
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("the targets topic %s does not exist (yet): apply targets with `prober targets apply`", f.topic)
	}
	if err != nil {
		return fmt.Errorf("list the end offsets of %s: %w", f.topic, err)
	}
	want := map[int32]int64{}
	assign := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		assign[o.Partition] = kgo.NewOffset().AtStart()
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{f.topic: assign})
	known := map[string]*targets.Target{}
	caughtUp := func() bool { return len(want) == 0 }
	if caughtUp() {
		f.caughtUp(known)
	}
	for {
		// A partition whose last records were compacted away never
		// delivers its end offset: an idle poll counts as the end.
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = errors.Join(ferr, fmt.Errorf("read %s partition %d: %w", t, p, err))
			}
		})
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			f.apply(known, r)
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
		if !caughtUp() && fs.NumRecords() == 0 {
			clear(want)
		}
		if caughtUp() && fs.NumRecords() > 0 || caughtUp() && !f.isReady() {
			f.caughtUp(known)
		}
	}
}

func (f *Fleet) isReady() bool {
	select {
	case <-f.ready:
		return true
	default:
		return false
	}
}

func (f *Fleet) caughtUp(known map[string]*targets.Target) {
	f.publish(maps.Clone(known))
	if !f.isReady() {
		f.logger.Info("targets topic read", "targets", len(known))
		close(f.ready)
	}
}

func (f *Fleet) apply(known map[string]*targets.Target, r *kgo.Record) {
	id := string(r.Key)
	delete(known, id)
	if r.Value == nil {
		return
	}
	where := fmt.Sprintf("%s partition %d offset %d", r.Topic, r.Partition, r.Offset)
	m, err := targetstopic.Decode(r.Value)
	if err == nil && m.GetId() != id {
		err = fmt.Errorf("the key %q differs from the target's id %q", id, m.GetId())
	}
	var t *targets.Target
	if err == nil {
		t, err = targets.FromProto(where, m)
	}
	if err != nil {
		f.logger.Warn("skipped a record of the targets topic that is no valid target; the target has no policy", "target", id, "where", where, "err", err)
		return
	}
	known[id] = t
}
