package consume

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
)

// produced produces one record per event to the consumer's topic and
// returns them with their offsets, as a poll would.
func produced(t *testing.T, r *rig, c *Consumer, events []store.Event) []*kgo.Record {
	t.Helper()
	recs := make([]*kgo.Record, len(events))
	for i, e := range events {
		recs[i] = &kgo.Record{Topic: c.cfg.Topic, Key: []byte(e.TargetID[:min(len(e.TargetID), 10)]), Value: fmt.Appendf(nil, "event %d", i)}
	}
	if err := r.client(t).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return recs
}

func event(target string, at time.Time, rt time.Duration) store.Event {
	return store.Event{EventID: uuid.Must(uuid.NewV7()), TargetID: target, URL: "https://" + target + ".test/",
		Method: "GET", CheckedAt: at, Up: true, ResponseTime: rt, StatusCode: 200}
}

// The database refusing one event of a batch for good (a target id over
// btree's entry limit, which decoding would have refused but a bug or a
// lower limit elsewhere may let through) dead-letters that event with the
// SQLSTATE, stores the others exactly (the batch is halved down to the
// event refused), and lets the batch's offsets be committed: the partition
// is not stalled. An event whose day the retention has passed by the time it
// is written (it was decoded before) is dead-lettered as expired.
func TestStoreDeadLettersRefusedEvents(t *testing.T) {
	eachBackend(t, testStoreDeadLettersRefusedEvents)
}

func testStoreDeadLettersRefusedEvents(t *testing.T, b backend) {
	const retention = 48 * time.Hour
	r := b.open(t, retention)
	c, _ := openConsumer(t, r, Config{ShutdownGrace: time.Second, Retention: retention})
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
	recs := produced(t, r, c, events)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.store(ctx, &batch{recs: recs, events: events, eventRecs: recs, polled: time.Now()}); err != nil {
		t.Fatalf("store: %v", err)
	}
	// 1+2+3+4+7 ms without the refused event's 5 ms and the expired one's 6.
	if got, want := r.summary(t), "rows=5 response_time_us=17000"; got != want {
		t.Errorf("stored %s, want %s", got, want)
	}
	dead := deadLetters(t, r, c, 2)
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
	if got, want := committed(t, r, c), recs[6].Offset+1; got != want {
		t.Errorf("committed offset %d, want %d (the whole batch)", got, want)
	}
}
