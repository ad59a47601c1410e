package store

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// slotKey is a slot as check_slots keys it: target, region (empty for none)
// and scheduled time to the microsecond (PostgreSQL's precision).
type slotKey struct {
	target, region string
	at             int64
}

func slotOf(e *Event) slotKey {
	return slotKey{clean(e.TargetID), clean(e.ProberRegion), e.ScheduledAt.UnixMicro()}
}

func compareSlots(a, b slotKey) int {
	return cmp.Or(strings.Compare(a.target, b.target), strings.Compare(a.region, b.region), cmp.Compare(a.at, b.at))
}

// claimSlots claims in check_slots the slots of events (new to
// check_results, sorted by event ID) and returns the events to store, in the
// same order, and how many were left out because another event ID holds
// their slot. Events without a slot are all kept.
//
// Within the batch the smallest event ID of a slot claims it (events come
// sorted by ID); against what is stored, the claim stored first wins. All
// claims go in one INSERT ... ON CONFLICT DO NOTHING, in slot order (so two
// recorders lock slots in the same order and do not deadlock); when it adds
// fewer rows than it was given, one more statement reads the holders of
// those slots (committed by then: ON CONFLICT waits for a concurrent claim's
// transaction to end, and under READ COMMITTED the next statement sees it).
// A slot held by the event itself is a redelivery: the event is kept and the
// raw key decides (Write probes and retries).
func claimSlots(ctx context.Context, tx pgx.Tx, events []*Event) ([]*Event, int, error) {
	claims := map[slotKey]*Event{}
	var keys []slotKey
	dups := 0
	for _, e := range events {
		if e.ScheduledAt.IsZero() {
			continue
		}
		k := slotOf(e)
		if _, ok := claims[k]; ok {
			dups++ // a larger event ID of a slot this batch claims
			continue
		}
		claims[k] = e
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return events, 0, nil
	}
	slices.SortFunc(keys, compareSlots)
	targets := make([]string, len(keys))
	regions := make([]string, len(keys))
	ats := make([]time.Time, len(keys))
	ids := make([][16]byte, len(keys))
	for i, k := range keys {
		targets[i], regions[i], ats[i], ids[i] = k.target, k.region, time.UnixMicro(k.at), claims[k].EventID
	}
	var added int
	err := tx.QueryRow(ctx, `WITH claimed AS (
		INSERT INTO check_slots (target_id, region, scheduled_at, event_id)
		SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::uuid[])
		ON CONFLICT (target_id, region, scheduled_at) DO NOTHING
		RETURNING 1)
		SELECT count(*) FROM claimed`, targets, regions, ats, ids).Scan(&added)
	if err != nil {
		return nil, 0, fmt.Errorf("claim slots in check_slots: %w", err)
	}
	lost := map[slotKey]bool{}
	if added < len(keys) {
		rows, err := tx.Query(ctx, `SELECT s.target_id, s.region, s.scheduled_at, s.event_id
			FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS b(target_id, region, scheduled_at)
			JOIN check_slots s USING (target_id, region, scheduled_at)`, targets, regions, ats)
		if err != nil {
			return nil, 0, fmt.Errorf("read slot holders: %w", err)
		}
		var k slotKey
		var at time.Time
		var holder [16]byte
		_, err = pgx.ForEachRow(rows, []any{&k.target, &k.region, &at, &holder}, func() error {
			k.at = at.UnixMicro()
			if e := claims[k]; e != nil && !bytes.Equal(e.EventID[:], holder[:]) {
				lost[k] = true
			}
			return nil
		})
		if err != nil {
			return nil, 0, fmt.Errorf("read slot holders: %w", err)
		}
	}
	kept := events[:0:0]
	for _, e := range events {
		if !e.ScheduledAt.IsZero() {
			k := slotOf(e)
			if claims[k] != e || lost[k] {
				if claims[k] == e {
					dups++
				}
				continue
			}
		}
		kept = append(kept, e)
	}
	return kept, dups, nil
}

var regionHourlyColumns = []string{"target_id", "region", "hour", "checks", "up", "down", "response_time_sum_us"}

var targetRegionColumns = []string{
	"target_id", "region", "first_seen", "last_seen", "last_event_id", "last_outcome",
	"last_failure_kind", "last_status_code", "last_response_time_us", "last_error", "last_up_at", "last_down_at",
	"check_interval_us",
}

// regionRollup aggregates new events per target, region and UTC hour, in
// key order: rows of region_hourly_staging.
func regionRollup(events []*Event) [][]any {
	type agg struct{ checks, up, down, sumUS int64 }
	aggs := map[slotKey]*agg{} // at: the hour's Unix seconds
	for _, e := range events {
		k := slotKey{clean(e.TargetID), clean(e.ProberRegion), hourOf(e.CheckedAt)}
		a := aggs[k]
		if a == nil {
			a = &agg{}
			aggs[k] = a
		}
		a.checks++
		if e.Up {
			a.up++
		} else {
			a.down++
		}
		a.sumUS += e.ResponseTime.Microseconds()
	}
	keys := slices.SortedFunc(maps.Keys(aggs), compareSlots)
	rows := make([][]any, len(keys))
	for i, k := range keys {
		a := aggs[k]
		rows[i] = []any{k.target, k.region, time.Unix(k.at, 0).UTC(), a.checks, a.up, a.down, a.sumUS}
	}
	return rows
}
