// Package alertertest runs the alerter's consumer against the stack's
// Kafka, registry and PostgreSQL for integration tests: each test gets a
// topic, a group and a database of its own, migrated as the recorder
// migrates it (the alerter never migrates), and can store check results
// as the recorder would, for the backtest.
package alertertest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver goose runs on
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/alerter/internal/consume"
	"github.com/sitewatch/sitewatch/services/alerter/internal/store"
	"github.com/sitewatch/sitewatch/services/internal/checkevent"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/internal/targetstopic"
	"github.com/sitewatch/sitewatch/services/testing/stackdb"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

// Database returns the connection string of a new database, migrated.
func Database(t testing.TB) string { return stackdb.Migrated(t) }

// Stack is one test's topic (its schema registered), group and database.
type Stack struct {
	t     testing.TB
	Topic string
	Group string
	DBURL string
	DB    *pgx.Conn
	kafka *kgo.Client
	serde *sr.Serde
	opts  []kgo.Opt
}

// New creates the test's topic with the partitions, and its database.
func New(t testing.TB, partitions int32) *Stack {
	t.Helper()
	ctx := context.Background()
	s := &Stack{t: t, Topic: stacktest.Name("check-results"), Group: stacktest.Name("alerter"), kafka: stacktest.KafkaClient(t)}
	s.DBURL = Database(t)
	var err error
	if s.DB, err = pgx.Connect(ctx, s.DBURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.DB.Close(context.Background()) })
	adm := kadm.NewClient(s.kafka)
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, s.Topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), s.Topic) })
	reg := stacktest.Registry(t)
	subject := kafkaenv.Subject(s.Topic)
	ss, err := reg.CreateSchema(ctx, subject, sr.Schema{Schema: sitewatchv1.Schema, Type: sr.TypeProtobuf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = reg.DeleteSubject(context.Background(), subject, sr.SoftDelete)
		_, _ = reg.DeleteSubject(context.Background(), subject, sr.HardDelete)
	})
	s.serde = &sr.Serde{}
	s.serde.Register(ss.ID, &sitewatchv1.CheckResult{}, sr.Index(0),
		sr.EncodeFn(func(v any) ([]byte, error) { return proto.Marshal(v.(*sitewatchv1.CheckResult)) }))
	if s.opts, err = stacktest.KafkaConfig(t).ClientOpts(); err != nil {
		t.Fatal(err)
	}
	return s
}

// Produce writes the events to the topic, keyed by target ID, in order.
func (s *Stack) Produce(evs []*sitewatchv1.CheckResult) {
	s.t.Helper()
	recs := make([]*kgo.Record, len(evs))
	for i, ev := range evs {
		v, err := s.serde.Encode(ev)
		if err != nil {
			s.t.Fatal(err)
		}
		recs[i] = &kgo.Record{Topic: s.Topic, Key: []byte(ev.GetTarget().GetId()), Value: v}
	}
	if err := s.kafka.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		s.t.Fatal(err)
	}
}

// Alerter is a running consumer.
type Alerter struct {
	cancel context.CancelFunc
	done   chan error
	c      *consume.Consumer
	Logs   *stacktest.Log
}

// Start starts a consumer of the group under the policies, stopped at the
// end of the test if not before.
func (s *Stack) Start(policies consume.Policies) *Alerter {
	s.t.Helper()
	st, err := store.Open(context.Background(), s.DBURL)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(st.Close)
	a := &Alerter{done: make(chan error, 1), Logs: &stacktest.Log{}}
	a.c, err = consume.New(consume.Config{Topic: s.Topic, Group: s.Group, MaxBatch: 7, ShutdownGrace: 10 * time.Second,
		MaxNotifyAge: time.Hour, MaxFuture: time.Hour}, append(s.opts, kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(600*time.Millisecond)),
		st, func() consume.Policies { return policies }, prometheus.NewRegistry(), slog.New(slog.NewJSONHandler(a.Logs, nil)))
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() { a.done <- a.c.Run(ctx) }()
	s.t.Cleanup(func() { a.Stop(s.t) })
	return a
}

// Stop stops the consumer as SIGTERM does; again, it does nothing.
func (a *Alerter) Stop(t testing.TB) {
	t.Helper()
	if a.cancel == nil {
		return
	}
	a.cancel()
	a.cancel = nil
	if err := <-a.done; err != nil {
		t.Errorf("consumer stopped with %v", err)
	}
	a.c.Close()
	if t.Failed() {
		t.Logf("consumer logs:\n%s", a.Logs.String())
	}
}

// WaitEvaluated waits until the stored offsets cover n records.
func (s *Stack) WaitEvaluated(n int64) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var got int64
	for time.Now().Before(deadline) {
		if err := s.DB.QueryRow(context.Background(), `SELECT coalesce(sum(next_offset), 0) FROM alerter_offsets WHERE topic = $1`, s.Topic).Scan(&got); err != nil {
			s.t.Fatal(err)
		}
		if got == n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("after 60 s the stored offsets cover %d records, want %d", got, n)
}

// InsertChecks stores the events in check_results as the recorder stores
// them, creating the days' partitions (the recorder's job), and returns
// those it stored: the first of each slot.
func (s *Stack) InsertChecks(evs []*sitewatchv1.CheckResult) []*sitewatchv1.CheckResult {
	s.t.Helper()
	ctx := context.Background()
	days := map[time.Time]bool{}
	for _, ev := range evs {
		day := ev.GetStartedAt().AsTime().Truncate(24 * time.Hour)
		if days[day] {
			continue
		}
		days[day] = true
		name := pgx.Identifier{"check_results_p" + day.Format("20060102")}.Sanitize()
		if _, err := s.DB.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+name+` PARTITION OF check_results FOR VALUES FROM ('`+
			day.Format(time.RFC3339)+`') TO ('`+day.Add(24*time.Hour).Format(time.RFC3339)+`')`); err != nil {
			s.t.Fatalf("create partition %s: %v", name, err)
		}
	}
	// One row per target, region and slot, the first, as the recorder
	// keeps (migrations/00006_check_slots.sql).
	type slot struct {
		target, region string
		at             time.Time
	}
	claimed := map[slot]bool{}
	var stored []*sitewatchv1.CheckResult
	for _, ev := range evs {
		var scheduled any
		if ts := ev.GetScheduledAt(); ts != nil {
			k := slot{ev.GetTarget().GetId(), ev.GetProber().GetRegion(), ts.AsTime()}
			if claimed[k] {
				continue
			}
			claimed[k], scheduled = true, ts.AsTime()
		}
		stored = append(stored, ev)
		outcome := checkevent.OutcomeName(ev.GetOutcome())
		var kind, msg, notAfter any
		if ev.GetOutcome() == sitewatchv1.Outcome_OUTCOME_DOWN {
			kind, msg = checkevent.KindName(ev.GetFailureKind()), ev.GetError()
		}
		if ev.GetTlsCertExpiresAt() != nil {
			notAfter = ev.GetTlsCertExpiresAt().AsTime()
		}
		if _, err := s.DB.Exec(ctx, `INSERT INTO check_results (event_id, target_id, checked_at, outcome, failure_kind,
				response_time_us, bytes_read, body_truncated, redirects, error, prober_instance, prober_region, tls_cert_expires_at, scheduled_at)
			VALUES ($1, $2, $3, $4, $5, $6, 0, false, 0, $7, $8, $9, $10, $11)`,
			ev.GetEventId(), ev.GetTarget().GetId(), ev.GetStartedAt().AsTime(), outcome, kind,
			ev.GetResponseTime().AsDuration().Microseconds(), msg, ev.GetProber().GetInstance(), ev.GetProber().GetRegion(), notAfter, scheduled); err != nil {
			s.t.Fatalf("insert check %s: %v", ev.GetEventId(), err)
		}
	}
	return stored
}

// TargetsTopic is a targets topic of the test's own, its schema registered.
type TargetsTopic struct {
	Name   string
	Client *kgo.Client
	Codec  *targetstopic.Codec
}

// NewTargetsTopic creates a compacted targets topic, as `prober targets
// apply` does, deleted with its subject at the end of the test.
func NewTargetsTopic(t testing.TB) *TargetsTopic {
	t.Helper()
	ctx := context.Background()
	tt := &TargetsTopic{Name: stacktest.Name("targets"), Client: stacktest.KafkaClient(t)}
	adm := kadm.NewClient(tt.Client)
	if err := targetstopic.Ensure(ctx, adm, tt.Name, 3); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), tt.Name) })
	reg := stacktest.Registry(t)
	t.Cleanup(func() {
		_, _ = reg.DeleteSubject(context.Background(), kafkaenv.Subject(tt.Name), sr.SoftDelete)
		_, _ = reg.DeleteSubject(context.Background(), kafkaenv.Subject(tt.Name), sr.HardDelete)
	})
	var err error
	if tt.Codec, err = targetstopic.Register(ctx, reg, tt.Name); err != nil {
		t.Fatal(err)
	}
	return tt
}

// Set publishes the targets, and then the other records.
func (tt *TargetsTopic) Set(t testing.TB, ts []*targets.Target, other ...*kgo.Record) {
	t.Helper()
	var recs []*kgo.Record
	for _, tg := range ts {
		r, err := tt.Codec.Record(tt.Name, targets.ToProto(tg))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if err := tt.Client.ProduceSync(context.Background(), append(recs, other...)...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}
