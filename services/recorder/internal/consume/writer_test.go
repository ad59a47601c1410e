package consume

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
)

// The fake store keeps to the contract the consumer relies on, as the real
// one does (one body for both): a batch is stored whole or not at all; an
// event ID known already, or twice in a batch, is stored and counted once; a
// day past the retention is returned as expired, by index; a row PostgreSQL
// refuses fails the whole batch with an error store.Refused recognises; of
// the results of one target, region and slot only the first stored is
// stored and counted (within a batch the smallest event ID), the others are
// counted as slot duplicates, a redelivery is not.
func TestWriterContract(t *testing.T) {
	eachBackend(t, testWriterContract)
}

func testWriterContract(t *testing.T, b backend) {
	const retention = 48 * time.Hour
	r := b.open(t, retention)
	ctx := context.Background()
	at := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	a, c := event("alpha", at, ms(1)), event("gamma", at.Add(2*time.Minute), ms(3))
	old := event("beta", at.Add(-4*24*time.Hour), ms(2))

	res, err := r.w.Write(ctx, []store.Event{a, old, c, a})
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 2 || !slices.Equal(res.Expired, []int{1}) || len(res.InsertedCheckedAt) != 2 {
		t.Errorf("first write: inserted %d expired %v checked_at %v, want 2 [1] and 2 times", res.Inserted, res.Expired, res.InsertedCheckedAt)
	}
	d := event("delta", at.Add(3*time.Minute), ms(4))
	res, err = r.w.Write(ctx, []store.Event{c, d, a})
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 1 || len(res.Expired) != 0 || !slices.EqualFunc(res.InsertedCheckedAt, []time.Time{d.CheckedAt}, time.Time.Equal) {
		t.Errorf("redelivery with one new event: inserted %d expired %v checked_at %v, want 1 [] [%s]", res.Inserted, res.Expired, res.InsertedCheckedAt, d.CheckedAt)
	}

	slot := at.Add(10 * time.Minute)
	ofSlot := func(region, instance string, rt time.Duration) store.Event {
		e := event("zeta", slot.Add(rt), rt)
		e.ProberRegion, e.ProberInstance, e.ScheduledAt = region, instance, slot
		return e
	}
	z1, z2, z3 := ofSlot("eu", "p1", ms(7)), ofSlot("eu", "p2", ms(8)), ofSlot("eu", "p3", ms(9))
	zUS := ofSlot("us", "p4", ms(10))
	for _, w := range []struct {
		what               string
		events             []store.Event
		inserted, dupSlots int
	}{
		{"two results of a slot in one batch", []store.Event{z2, z1}, 1, 1},
		{"a third result of the slot", []store.Event{z3}, 0, 1},
		{"redelivery of the stored result", []store.Event{z1}, 0, 0},
		{"the slot in another region", []store.Event{zUS, z2}, 1, 1},
	} {
		res, err := r.w.Write(ctx, w.events)
		if err != nil {
			t.Fatal(err)
		}
		if res.Inserted != w.inserted || res.DuplicateSlots != w.dupSlots {
			t.Errorf("%s: inserted %d, duplicate slots %d; want %d and %d", w.what, res.Inserted, res.DuplicateSlots, w.inserted, w.dupSlots)
		}
	}

	huge := make([]byte, 6000) // incompressible: the index entry keeps its size
	for i := range huge {
		huge[i] = byte('a' + rand.IntN(26))
	}
	bad := event(string(huge), at.Add(4*time.Minute), ms(5))
	_, err = r.w.Write(ctx, []store.Event{event("epsilon", at.Add(5*time.Minute), ms(6)), bad})
	if detail, ok := store.Refused(err); !ok || !strings.HasPrefix(detail, "SQLSTATE 54000: index row size ") {
		t.Errorf("a row over the index limit: %v, want refused with SQLSTATE 54000", err)
	}
	if got, want := r.rows(t), "alpha 1000 - -\ngamma 3000 - -\ndelta 4000 - -\nzeta 7000 - -\nzeta 10000 - -"; got != want {
		t.Errorf("stored:\n%s\nwant:\n%s", got, want)
	}
}
