package consume

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/internal/stacktest"
	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
)

// openConsumer returns a consumer of a fresh topic writing to a fresh,
// migrated database (whose connection string it also returns), the topic
// and its dead-letter topic created.
func openConsumer(t *testing.T, storeCfg store.Config, cfg Config) (*Consumer, *store.Store, string) {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	url := stacktest.Database(t)
	if err := store.Migrate(ctx, url, logger); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, url, storeCfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	opts, err := stacktest.KafkaConfig(t).ClientOpts()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Topic, cfg.Group, cfg.MaxBatch = stacktest.Name("check-results"), stacktest.Name("recorder"), 100
	if _, err := kadm.NewClient(stacktest.KafkaClient(t)).CreateTopic(ctx, 1, 1, nil, cfg.Topic); err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg, opts, stacktest.Registry(t), st, prometheus.NewRegistry(), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.ensureDLQTopic(ctx)
	return c, st, url
}

// produced produces one record per event to the consumer's topic and
// returns them with their offsets, as a poll would.
func produced(t *testing.T, c *Consumer, events []store.Event) []*kgo.Record {
	t.Helper()
	recs := make([]*kgo.Record, len(events))
	for i, e := range events {
		recs[i] = &kgo.Record{Topic: c.cfg.Topic, Key: []byte(e.TargetID[:min(len(e.TargetID), 10)]), Value: fmt.Appendf(nil, "event %d", i)}
	}
	if err := c.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return recs
}

func event(target string, at time.Time, rt time.Duration) store.Event {
	return store.Event{EventID: uuid.Must(uuid.NewV7()), TargetID: target, URL: "https://" + target + ".test/",
		Method: "GET", CheckedAt: at, Up: true, ResponseTime: rt, StatusCode: 200}
}

// deadLetters reads n records of the consumer's dead-letter topic.
func deadLetters(t *testing.T, c *Consumer, n int) []*kgo.Record {
	t.Helper()
	cl := stacktest.KafkaClient(t, kgo.ConsumeTopics(kafkaenv.DLQ(c.cfg.Topic)), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n && ctx.Err() == nil {
		recs = append(recs, cl.PollFetches(ctx).Records()...)
	}
	if len(recs) != n {
		t.Fatalf("%d dead letters, want %d", len(recs), n)
	}
	return recs
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return "<none>"
}

func queryString(t *testing.T, url, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var s string
	if err := conn.QueryRow(context.Background(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// The database refusing one event of a batch for good (a target id over
// btree's entry limit, which decoding would have refused but a bug or a
// lower limit elsewhere may let through) dead-letters that event with the
// SQLSTATE, stores the others exactly, and lets the batch's offsets be
// committed: the partition is not stalled. An event whose day the
// retention has passed by the time it is written (it was decoded before) is
// dead-lettered as expired.
func TestStoreDeadLettersRefusedEvents(t *testing.T) {
	const retention = 48 * time.Hour
	c, _, url := openConsumer(t, store.Config{Retention: retention}, Config{ShutdownGrace: time.Second, Retention: retention})
	at := time.Now().UTC().Truncate(time.Hour)
	var events []store.Event
	for i := range 7 {
		events = append(events, event(fmt.Sprintf("t%d", i%3), at.Add(time.Duration(i)*time.Minute), time.Duration(i+1)*time.Millisecond))
	}
	huge := make([]byte, 6000) // incompressible: the index entry keeps its size
	for i := range huge {
		huge[i] = byte('a' + rand.IntN(26))
	}
	events[4].TargetID = string(huge)
	events[5].CheckedAt = at.Add(-4 * 24 * time.Hour)
	recs := produced(t, c, events)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.store(ctx, &batch{recs: recs, events: events, eventRecs: recs, polled: time.Now()}); err != nil {
		t.Fatalf("store: %v", err)
	}
	// 1+2+3+4+7 ms without the refused event's 5 ms and the expired one's 6.
	if got, want := queryString(t, url, `SELECT format('raw=%s checks=%s sum=%s', (SELECT count(*) FROM check_results),
		sum(checks), sum(response_time_sum_us)) FROM check_results_hourly`), "raw=5 checks=5 sum=17000"; got != want {
		t.Errorf("stored %s, want %s", got, want)
	}
	dead := deadLetters(t, c, 2)
	for i, want := range []struct {
		rec            int
		reason, detail string
	}{
		{4, ReasonRejectedByDatabase, "SQLSTATE 54000: index row size "},
		{5, ReasonExpired, "started_at " + events[5].CheckedAt.Format(time.RFC3339) + ": the retention 48h0m0s drops its day's partition"},
	} {
		d := dead[i]
		if header(d, HeaderReason) != want.reason || header(d, HeaderOffset) != fmt.Sprint(recs[want.rec].Offset) ||
			!strings.HasPrefix(header(d, HeaderDetail), want.detail) || string(d.Value) != fmt.Sprint("event ", want.rec) {
			t.Errorf("dead letter %d: reason %q offset %q detail %q value %q, want %s of offset %d, detail %q...",
				i, header(d, HeaderReason), header(d, HeaderOffset), header(d, HeaderDetail), d.Value,
				want.reason, recs[want.rec].Offset, want.detail)
		}
		if got := testutil.ToFloat64(c.m.deadLettered.WithLabelValues(want.reason)); got != 1 {
			t.Errorf("%s dead letters counted: %v, want 1", want.reason, got)
		}
	}
	if got := testutil.ToFloat64(c.m.duplicates); got != 0 {
		t.Errorf("duplicates counted: %v, want 0", got)
	}
	if got, want := c.stored[c.cfg.Topic][0].Offset, recs[6].Offset+1; got != want {
		t.Errorf("stored offset %d, want %d (the whole batch)", got, want)
	}
}
