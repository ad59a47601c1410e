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
// refuses fails the whole batch with an error store.Refused recognises.
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

	huge := make([]byte, 6000) // incompressible: the index entry keeps its size
	for i := range huge {
		huge[i] = byte('a' + rand.IntN(26))
	}
	bad := event(string(huge), at.Add(4*time.Minute), ms(5))
	_, err = r.w.Write(ctx, []store.Event{event("epsilon", at.Add(5*time.Minute), ms(6)), bad})
	if detail, ok := store.Refused(err); !ok || !strings.HasPrefix(detail, "SQLSTATE 54000: index row size ") {
		t.Errorf("a row over the index limit: %v, want refused with SQLSTATE 54000", err)
	}
	if got, want := r.rows(t), "alpha 1000 - -\ngamma 3000 - -\ndelta 4000 - -"; got != want {
		t.Errorf("stored:\n%s\nwant:\n%s", got, want)
	}
}
