package consume_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/alerter/internal/consume"
	"github.com/sitewatch/sitewatch/services/alerter/internal/evaluate"
	"github.com/sitewatch/sitewatch/services/alerter/internal/store"
)

// fakeStore keeps what store.Store keeps, in memory, with its fencing and
// its guards.
type fakeStore struct {
	mu          sync.Mutex
	offsets     map[int32]int64
	states      map[string][]byte
	incidents   map[string]evaluate.Incident
	transitions map[string]string
	outbox      map[string]string
	base        time.Time
}

func newFakeStore(base time.Time) *fakeStore {
	return &fakeStore{offsets: map[int32]int64{}, states: map[string][]byte{}, incidents: map[string]evaluate.Incident{},
		transitions: map[string]string{}, outbox: map[string]string{}, base: base}
}

func (s *fakeStore) Offsets(context.Context, string) (map[int32]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int32]int64{}
	for p, o := range s.offsets {
		out[p] = o
	}
	return out, nil
}

func (s *fakeStore) States(_ context.Context, ids []string) (map[string]*evaluate.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]*evaluate.State{}
	for _, id := range ids {
		if raw, ok := s.states[id]; ok {
			st := &evaluate.State{}
			if err := json.Unmarshal(raw, st); err != nil {
				return nil, err
			}
			out[id] = st
		}
	}
	return out, nil
}

func (s *fakeStore) Write(_ context.Context, b *store.Batch) (store.Written, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var w store.Written
	for p, o := range b.Offsets {
		cur, ok := s.offsets[p]
		if (o.Expected == store.NoOffset && ok) || (o.Expected != store.NoOffset && (!ok || cur != o.Expected)) {
			return w, &store.Fenced{Topic: b.Topic, Partition: p, Expected: o.Expected}
		}
	}
	for p, o := range b.Offsets {
		s.offsets[p] = o.Next
	}
	for _, inc := range b.Incidents {
		if old, ok := s.incidents[inc.ID]; ok && old.ResolvedAt != nil {
			inc.ResolvedAt = old.ResolvedAt
		} else if !ok {
			w.Incidents++
		}
		s.incidents[inc.ID] = inc
	}
	for _, t := range b.Transitions {
		key := t.IncidentID + "#" + strconv.Itoa(t.Seq)
		if _, ok := s.transitions[key]; !ok {
			s.transitions[key] = transitionRow(s.base, t.IncidentID, t.Seq, t.Transition, t.At, t.Suppressed)
			w.Transitions++
		}
	}
	for _, o := range b.Outbox {
		if _, ok := s.outbox[o.IdempotencyKey]; ok {
			continue
		}
		var n struct{ Transition, TargetID string }
		if err := json.Unmarshal(o.Payload, &struct {
			Transition *string `json:"transition"`
			TargetID   *string `json:"target_id"`
		}{&n.Transition, &n.TargetID}); err != nil {
			return w, err
		}
		s.outbox[o.IdempotencyKey] = outboxRow(o.IdempotencyKey, o.ChannelType, n.Transition, n.TargetID)
		w.Outbox++
	}
	for id, st := range b.States {
		raw, err := json.Marshal(st)
		if err != nil {
			return w, err
		}
		s.states[id] = raw
	}
	return w, nil
}

func (s *fakeStore) evaluated() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, o := range s.offsets {
		n += o
	}
	return n
}

func (s *fakeStore) rows() (incidents, transitions, outbox []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, inc := range s.incidents {
		incidents = append(incidents, incidentRow(s.base, inc))
	}
	// By target, as the database query orders them.
	slices.SortFunc(incidents, func(a, b string) int { return strings.Compare(strings.Fields(a)[1], strings.Fields(b)[1]) })
	for _, t := range s.transitions {
		transitions = append(transitions, t)
	}
	for _, o := range s.outbox {
		outbox = append(outbox, o)
	}
	slices.Sort(transitions)
	slices.Sort(outbox)
	return incidents, transitions, outbox
}

// kfakeTopic is a topic on kfake and a way to produce check results to it.
type kfakeTopic struct {
	opts    []kgo.Opt
	produce func(evs []*sitewatchv1.CheckResult)
}

func newKfakeTopic(t *testing.T, topic string) *kfakeTopic {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	k := &kfakeTopic{opts: []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}}
	producer, err := kgo.NewClient(append(k.opts, kgo.DefaultProduceTopic(topic))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	k.produce = func(evs []*sitewatchv1.CheckResult) {
		t.Helper()
		for _, ev := range evs {
			var h sr.ConfluentHeader
			v, _ := h.AppendEncode(nil, 1, []int{0})
			v, err := proto.MarshalOptions{}.MarshalAppend(v, ev)
			if err != nil {
				t.Fatal(err)
			}
			if err := producer.ProduceSync(context.Background(), &kgo.Record{Key: []byte(ev.GetTarget().GetId()), Value: v}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return k
}

// start runs a consumer of the group on st until the returned stop.
func (k *kfakeTopic) start(t *testing.T, topic, group string, st consume.Store, reg prometheus.Registerer) (stop func()) {
	t.Helper()
	return k.startWith(t, consume.Config{Topic: topic, Group: group, MaxBatch: 5, MaxNotifyAge: time.Hour}, st, reg)
}

// startWith runs a consumer of cfg on st until the returned stop. The
// batch in hand at the stop is finished, as the alerter's -shutdown-grace
// does (with none, a stop during a batch is an error of Run).
func (k *kfakeTopic) startWith(t *testing.T, cfg consume.Config, st consume.Store, reg prometheus.Registerer) (stop func()) {
	t.Helper()
	cfg.ShutdownGrace = 10 * time.Second
	return k.startRaw(t, cfg, st, reg)
}

func (k *kfakeTopic) startRaw(t *testing.T, cfg consume.Config, st consume.Store, reg prometheus.Registerer) (stop func()) {
	t.Helper()
	set := Policies()
	c, err := consume.New(cfg,
		k.opts, st, func() consume.Policies { return set }, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		c.Close()
	}
}

func waitEvaluated(t *testing.T, st *fakeStore, n int64) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); st.evaluated() < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d records evaluated in 20 s, want %d", st.evaluated(), n)
		}
	}
}

// The -short layer of the integration tests: the consumer on kfake (a
// Kafka protocol server in memory) with the store in memory gives the
// schedule's rows, through a restart with redelivery.
func TestScheduleOnKfake(t *testing.T) {
	const topic = "check-results"
	k := newKfakeTopic(t, topic)
	base := time.Now().UTC().Truncate(time.Minute).Add(-30 * time.Minute)
	st := newFakeStore(base)
	evs := Schedule(base)
	half := len(evs) / 2
	k.produce(evs[:half])
	stop := k.start(t, topic, "sitewatch-alerter", st, prometheus.NewRegistry())
	waitEvaluated(t, st, int64(half))
	stop()
	k.produce(evs[:half])
	k.produce(evs[half:])
	stop = k.start(t, topic, "sitewatch-alerter", st, prometheus.NewRegistry())
	waitEvaluated(t, st, int64(len(evs)+half))
	stop()
	gi, gt, gob := st.rows()
	compareRows(t, gi, gt, gob)
}

// Two alerters that both believe they own every partition (here: in two
// groups; in life, one that lost its partitions without knowing) store
// each batch once: the one whose stored offset moved is fenced, reads on
// from the stored offset and state, and both end with the schedule's rows.
func TestTwoOwnersAreFenced(t *testing.T) {
	const topic = "check-results"
	k := newKfakeTopic(t, topic)
	base := time.Now().UTC().Truncate(time.Minute).Add(-30 * time.Minute)
	st := newFakeStore(base)
	evs := Schedule(base)
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	stopA := k.start(t, topic, "a", st, regA)
	stopB := k.start(t, topic, "b", st, regB)
	for i := 0; i < len(evs); i += 4 {
		k.produce(evs[i:min(i+4, len(evs))])
	}
	waitEvaluated(t, st, int64(len(evs)))
	stopA()
	stopB()
	gi, gt, gob := st.rows()
	compareRows(t, gi, gt, gob)
	// Not asserted: an alerter that joins after the other has read
	// everything has nothing to be fenced for (4 to 32 in 20 runs here).
	fenced := 0.0
	for _, reg := range []*prometheus.Registry{regA, regB} {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "sitewatch_alerter_fenced_batches_total" {
				fenced += mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
	}
	t.Logf("fenced batches: %g", fenced)
}

// An alerter that comes back after -notify-max-age (down, or Kafka was)
// records the late transitions as stale, but still notifies the
// resolutions of incidents whose openings were notified: receivers would
// keep those alerts open for good.
func TestLateResolutionsAreNotified(t *testing.T) {
	const topic = "check-results"
	k := newKfakeTopic(t, topic)
	base := time.Now().UTC().Truncate(time.Minute).Add(-30 * time.Minute)
	st := newFakeStore(base)
	evs := Schedule(base)
	first := 5 * 4 // minutes 0 to 4: both incidents opened and notified
	k.produce(evs[:first])
	stop := k.start(t, topic, "sitewatch-alerter", st, prometheus.NewRegistry())
	waitEvaluated(t, st, int64(first))
	stop()
	k.produce(evs[first:])
	// Minutes 5 to 9, now older than the maximum age.
	stop = k.startWith(t, consume.Config{Topic: topic, Group: "sitewatch-alerter", MaxBatch: 5, MaxNotifyAge: time.Minute},
		st, prometheus.NewRegistry())
	waitEvaluated(t, st, int64(len(evs)))
	stop()
	_, gt, gob := st.rows()
	_, wt, wo := wantRows()
	s := evaluate.IncidentID("single", "down", EventID(3))
	for i, tr := range wt {
		if tr == s+" #2 reminder at=6 " {
			wt[i] += consume.Stale
		}
	}
	wo = slices.DeleteFunc(wo, func(o string) bool { return strings.HasPrefix(o, s+"/2-reminder/") })
	if !slices.Equal(gt, wt) {
		t.Errorf("transitions:\n%s\nwant:\n%s", strings.Join(gt, "\n"), strings.Join(wt, "\n"))
	}
	if !slices.Equal(gob, wo) {
		t.Errorf("outbox:\n%s\nwant:\n%s", strings.Join(gob, "\n"), strings.Join(wo, "\n"))
	}
}
