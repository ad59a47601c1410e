package consume

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
)

// fakeStore is the fast layer's Writer: it keeps rows in memory as
// *store.Store keeps them in PostgreSQL, so a test reads what was stored and
// not which calls were made. A batch is one transaction (stored whole or not
// at all); the key is check_results' primary key (event ID, checked_at to the
// microsecond), so a redelivered event is not stored, nor counted, twice;
// events of days past the retention are returned in Result.Expired; of the
// events with a slot (target, region, scheduled_at), only the first stored
// is, within a batch the smallest event ID, the others are counted in
// Result.DuplicateSlots, as check_slots decides in PostgreSQL. It fails
// the way PostgreSQL does: a target id over btree's 2704-byte entry limit
// fails the whole batch with SQLSTATE 54000, every time (store.Refused
// recognises it), and down makes every Write fail as a lost connection does.
type fakeStore struct {
	retention time.Duration

	mu     sync.Mutex
	rows   map[fakeKey]store.Event
	slots  map[fakeSlot][16]byte // the event ID holding each slot
	writes int                   // Write calls, failed ones included
	down   error                 // when set, every Write fails with it
}

type fakeSlot struct {
	target, region string
	at             int64 // microseconds
}

type fakeKey struct {
	id [16]byte
	at int64 // microseconds, PostgreSQL's precision
}

// maxIndexEntry is btree's limit on an index entry (PostgreSQL's
// BTMaxItemSize on 8 KB pages), which an incompressible target id over it
// exceeds.
const maxIndexEntry = 2704

func newFakeStore(retention time.Duration) *fakeStore {
	return &fakeStore{retention: retention, rows: map[fakeKey]store.Event{}, slots: map[fakeSlot][16]byte{}}
}

func (s *fakeStore) Write(ctx context.Context, events []store.Event) (store.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.down != nil {
		return store.Result{}, s.down
	}
	if err := ctx.Err(); err != nil {
		return store.Result{}, err
	}
	var res store.Result
	now := time.Now()
	kept := events[:0:0]
	for i, e := range events {
		expired := func(t time.Time) bool {
			day := t.UTC().Truncate(24 * time.Hour)
			return s.retention > 0 && !day.Add(24*time.Hour).After(now.Add(-s.retention))
		}
		if expired(e.CheckedAt) || (!e.ScheduledAt.IsZero() && expired(e.ScheduledAt)) {
			res.Expired = append(res.Expired, i)
			continue
		}
		if n := len(e.TargetID); n > maxIndexEntry {
			return store.Result{}, &pgconn.PgError{Severity: "ERROR", Code: pgerrcode.ProgramLimitExceeded,
				Message: fmt.Sprintf("index row size %d exceeds btree version 4 maximum %d for index \"check_results_target_id_checked_at_idx\"", n+16, maxIndexEntry)}
		}
		kept = append(kept, e)
	}
	// In event ID order, as the store claims slots: the smaller ID wins.
	slices.SortStableFunc(kept, func(a, b store.Event) int { return bytes.Compare(a.EventID[:], b.EventID[:]) })
	fresh := map[fakeKey]bool{}
	for _, e := range kept {
		k := fakeKey{e.EventID, e.CheckedAt.UnixMicro()}
		if _, ok := s.rows[k]; ok || fresh[k] {
			continue
		}
		if !e.ScheduledAt.IsZero() {
			slot := fakeSlot{e.TargetID, e.ProberRegion, e.ScheduledAt.UnixMicro()}
			if holder, ok := s.slots[slot]; ok && holder != e.EventID {
				res.DuplicateSlots++
				continue
			}
			s.slots[slot] = e.EventID
		}
		fresh[k] = true
		s.rows[k] = e
		res.Inserted++
		res.InsertedCheckedAt = append(res.InsertedCheckedAt, e.CheckedAt)
	}
	return res, nil
}

// setDown makes every Write fail with err (nil: up again).
func (s *fakeStore) setDown(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = err
}

// summary is what is stored, in the form stackRig's summary gives it.
func (s *fakeStore) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum time.Duration
	for _, r := range s.rows {
		sum += r.ResponseTime
	}
	return fmt.Sprintf("rows=%d response_time_us=%d", len(s.rows), sum.Microseconds())
}

// rowLines is what rig.rows says of the stored rows.
func (s *fakeStore) rowLines() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := slices.SortedFunc(maps.Values(s.rows), func(a, b store.Event) int { return a.CheckedAt.Compare(b.CheckedAt) })
	lines := make([]string, len(rows))
	for i, r := range rows {
		protocol, decoded := "-", "-"
		if r.Protocol != "" {
			protocol = r.Protocol
		}
		if r.DecodedBytes != nil {
			decoded = fmt.Sprint(*r.DecodedBytes)
		}
		lines[i] = fmt.Sprintf("%s %d %s %s", r.TargetID, r.ResponseTime.Microseconds(), protocol, decoded)
	}
	return strings.Join(lines, "\n")
}
