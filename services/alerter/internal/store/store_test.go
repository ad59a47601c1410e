package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/services/alerter/internal/alertertest"
	"github.com/sitewatch/sitewatch/services/alerter/internal/evaluate"
	"github.com/sitewatch/sitewatch/services/alerter/internal/outbox"
	"github.com/sitewatch/sitewatch/services/alerter/internal/store"
)

// A batch's incident, transition and outbox row are stored once, and the
// transaction that inserts outbox rows wakes the senders; a batch that
// finds them stored (a last guard, past the fencing) stores nothing again
// and wakes no one.
func TestWriteStoresOnceAndWakesTheSenders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := alertertest.Database(t)
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SchemaReady(ctx); err != nil {
		t.Fatal(err)
	}
	listener, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(context.Background())
	if _, err := listener.Exec(ctx, "LISTEN "+outbox.Channel); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	inc := evaluate.Incident{ID: "i1", TargetID: "web", Kind: "down", StartedAt: at, FirstEventID: "e1", ConfirmedAt: at,
		Regions: []string{"eu"}, FirstFailureKind: "timeout", FirstError: "x", LastFailureKind: "timeout", LastError: "x", LastFailureAt: at}
	batch := func(expected, next int64) *store.Batch {
		return &store.Batch{Topic: "t", Offsets: map[int32]store.Offset{0: {Expected: expected, Next: next}},
			Incidents:   []evaluate.Incident{inc},
			Transitions: []evaluate.Transition{{IncidentID: "i1", Seq: 0, Transition: "opened", At: at, EventID: "e1", Regions: []string{"eu"}}},
			Outbox:      []store.OutboxRow{{IdempotencyKey: "i1/0-opened/hook", IncidentID: "i1", Seq: 0, Channel: "hook", ChannelType: "webhook", Payload: []byte(`{}`)}},
		}
	}
	w, err := st.Write(ctx, batch(store.NoOffset, 5))
	if err != nil || w != (store.Written{Incidents: 1, Transitions: 1, Outbox: 1}) {
		t.Fatalf("first write: %+v, %v", w, err)
	}
	waitCtx, stop := context.WithTimeout(ctx, 5*time.Second)
	n, err := listener.WaitForNotification(waitCtx)
	stop()
	if err != nil || n.Channel != outbox.Channel {
		t.Fatalf("no notification on %s after the insert: %v", outbox.Channel, err)
	}
	w, err = st.Write(ctx, batch(5, 9))
	if err != nil || w != (store.Written{}) {
		t.Fatalf("second write: %+v, %v", w, err)
	}
	waitCtx, stop = context.WithTimeout(ctx, 500*time.Millisecond)
	defer stop()
	if n, err := listener.WaitForNotification(waitCtx); err == nil {
		t.Errorf("a notification without rows inserted: %+v", n)
	}
}
