package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
)

// slotEv is an event of target's slot at scheduled, checked at checked by
// instance in region; IDs are UUIDv7, so of two events built one after the
// other the second has the greater ID.
func slotEv(target, region, instance string, scheduled, checked time.Time, rt time.Duration) store.Event {
	e := ev(target, checked, "", rt)
	e.ProberRegion, e.ProberInstance, e.ScheduledAt = region, instance, scheduled
	return e
}

func mustWrite(t *testing.T, s *store.Store, events ...store.Event) store.Result {
	t.Helper()
	res, err := s.Write(context.Background(), events)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func expectResult(t *testing.T, what string, res store.Result, inserted, dupSlots int) {
	t.Helper()
	if res.Inserted != inserted || res.DuplicateSlots != dupSlots {
		t.Errorf("%s: inserted %d, duplicate slots %d; want %d and %d", what, res.Inserted, res.DuplicateSlots, inserted, dupSlots)
	}
}

// One result per target, region and slot is stored and counted, whoever
// writes it: the first stored wins, within a batch the smaller event ID; the
// same event redelivered is no slot duplicate; another region's result of
// the slot is its own; events without a slot are stored as before. The raw
// rows, both rollups, the claims and the region views hold exact values.
func TestSlotDuplicatesCountOnce(t *testing.T) {
	s, conn := openStore(t, store.Config{})
	// Yesterday 23:00 UTC: slots of the last hour before midnight.
	midnight := time.Now().UTC().Truncate(24 * time.Hour)
	s1 := midnight.Add(-time.Hour)
	at := func(d time.Duration) time.Time { return s1.Add(d) }

	// Two probers of region eu (a rebalance) check slot s1.
	a := slotEv("alpha", "eu", "p1", s1, at(10*time.Millisecond), ms(10))
	b := slotEv("alpha", "eu", "p2", s1, at(20*time.Millisecond), ms(20))
	expectResult(t, "first result of the slot", mustWrite(t, s, a), 1, 0)
	expectResult(t, "second result of the slot, another instance", mustWrite(t, s, b), 0, 1)
	// The same event redelivered, alone and beside the duplicate.
	expectResult(t, "redelivery", mustWrite(t, s, a), 0, 0)
	expectResult(t, "redelivery and duplicate", mustWrite(t, s, b, a), 0, 1)
	// Region us checks the same slot: its own result.
	c := slotEv("alpha", "us", "p3", s1, at(30*time.Millisecond), ms(30))
	expectResult(t, "the slot in another region", mustWrite(t, s, c), 1, 0)

	// One batch with both results of slot s2 (the greater ID first), a
	// redelivery, a duplicate of s1, and a new slot.
	s2 := at(time.Minute)
	d := slotEv("alpha", "eu", "p1", s2, s2.Add(40*time.Millisecond), ms(40))
	e := slotEv("alpha", "eu", "p2", s2, s2.Add(5*time.Millisecond), ms(50)) // earlier, but a greater ID
	f := slotEv("alpha", "eu", "p2", s1, at(60*time.Millisecond), ms(60))
	g := slotEv("alpha", "eu", "p2", at(2*time.Minute), at(2*time.Minute+time.Millisecond), ms(70))
	expectResult(t, "batch with duplicates", mustWrite(t, s, e, a, d, f, g, e), 2, 2)

	// Slot 23:59:59.990; one result checked before midnight, one after,
	// each in its own check_results partition. The later one is stored
	// first and wins.
	s3 := midnight.Add(-10 * time.Millisecond)
	before := slotEv("alpha", "eu", "p1", s3, midnight.Add(-5*time.Millisecond), ms(80))
	after := slotEv("alpha", "eu", "p2", s3, midnight.Add(5*time.Millisecond), ms(90))
	expectResult(t, "after midnight", mustWrite(t, s, after), 1, 0)
	expectResult(t, "before midnight, same slot", mustWrite(t, s, before), 0, 1)

	// Events of older probers: no slot, stored as before, both of them.
	old1 := ev("alpha", at(3*time.Minute), "", ms(100))
	old2 := ev("alpha", at(3*time.Minute+time.Millisecond), "timeout", ms(110))
	old1.ProberRegion, old2.ProberRegion = "eu", "eu"
	expectResult(t, "events without a slot", mustWrite(t, s, old1, old2, old1), 2, 0)

	expect(t, "raw rows", query(t, conn, `SELECT prober_region, prober_instance, response_time_us,
			to_char(scheduled_at AT TIME ZONE 'UTC', 'HH24:MI:SS.MS'), tableoid::regclass::text LIKE '%' || to_char($1::timestamptz AT TIME ZONE 'UTC', 'YYYYMMDD')
		FROM check_results ORDER BY checked_at, prober_region`, midnight),
		`eu | p1 | 10000 | 23:00:00.000 | false
		us | p3 | 30000 | 23:00:00.000 | false
		eu | p1 | 40000 | 23:01:00.000 | false
		eu | p2 | 70000 | 23:02:00.000 | false
		eu | NULL | 100000 | NULL | false
		eu | NULL | 110000 | NULL | false
		eu | p2 | 90000 | 23:59:59.990 | true`)
	expect(t, "claims", query(t, conn, `SELECT s.region, to_char(s.scheduled_at AT TIME ZONE 'UTC', 'HH24:MI:SS.MS'), c.response_time_us
		FROM check_slots s JOIN check_results c USING (event_id) ORDER BY 2, 1`),
		`eu | 23:00:00.000 | 10000
		us | 23:00:00.000 | 30000
		eu | 23:01:00.000 | 40000
		eu | 23:02:00.000 | 70000
		eu | 23:59:59.990 | 90000`)
	expect(t, "hourly rollup", query(t, conn, `SELECT hour, checks, up, down, response_time_sum_us FROM check_results_hourly ORDER BY hour`),
		fmt.Sprintf("%s | 6 | 5 | 1 | 360000\n%s | 1 | 1 | 0 | 90000", s1.Format(time.RFC3339), midnight.Format(time.RFC3339)))
	expect(t, "region rollup", query(t, conn, `SELECT region, hour, checks, up, down, response_time_sum_us FROM check_results_region_hourly ORDER BY hour, region`),
		fmt.Sprintf("eu | %s | 5 | 4 | 1 | 330000\nus | %[1]s | 1 | 1 | 0 | 30000\neu | %s | 1 | 1 | 0 | 90000", s1.Format(time.RFC3339), midnight.Format(time.RFC3339)))
	expect(t, "availability per region", query(t, conn, `SELECT region, day::text, checks, up, down, availability_pct, avg_ms FROM availability_region_daily ORDER BY day, region`),
		fmt.Sprintf("eu | %s | 5 | 4 | 1 | 80.000 | 66.000\nus | %[1]s | 1 | 1 | 0 | 100.000 | 30.000\neu | %s | 1 | 1 | 0 | 100.000 | 90.000",
			s1.Format(time.DateOnly), midnight.Format(time.DateOnly)))
	// The target-wide views are as before, over every region.
	expect(t, "availability_daily", query(t, conn, `SELECT day::text, checks, up, availability_pct FROM availability_daily ORDER BY day`),
		fmt.Sprintf("%s | 6 | 5 | 83.333\n%s | 1 | 1 | 100.000", s1.Format(time.DateOnly), midnight.Format(time.DateOnly)))
	expect(t, "target_status", query(t, conn, `SELECT state, since, last_checked_at, last_response_time_ms FROM target_status`),
		fmt.Sprintf("up | %s | %[1]s | 90.000", midnight.Format(time.RFC3339)))
}

// The region views: per target and region the latest state and since when;
// per target how many regions see it down.
func TestRegionViews(t *testing.T) {
	s, conn := openStore(t, store.Config{})
	base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	slot := func(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) }
	down := func(e store.Event) store.Event {
		e.Up, e.FailureKind, e.StatusCode, e.Error = false, "connect", 0, "connection refused"
		return e
	}
	var events []store.Event
	for n := range 4 {
		events = append(events, slotEv("alpha", "eu", "p1", slot(n), slot(n).Add(time.Second), ms(10)))
		us := slotEv("alpha", "us", "p2", slot(n), slot(n).Add(2*time.Second), ms(20))
		if n >= 2 {
			us = down(us)
		}
		events = append(events, us)
		events = append(events, down(slotEv("beta", "eu", "p1", slot(n), slot(n).Add(3*time.Second), ms(30))))
		events = append(events, down(slotEv("beta", "us", "p2", slot(n), slot(n).Add(4*time.Second), ms(40))))
		events = append(events, slotEv("gamma", "", "p9", slot(n), slot(n).Add(5*time.Second), ms(50)))
	}
	expectResult(t, "write", mustWrite(t, s, events...), 20, 0)
	ts := func(n, sec int) string { return slot(n).Add(time.Duration(sec) * time.Second).Format(time.RFC3339) }
	expect(t, "target_region_status", query(t, conn, `SELECT target_id, region, state, since, last_checked_at, last_failure_kind, last_error
		FROM target_region_status ORDER BY 1, 2`),
		fmt.Sprintf(`alpha | eu | up | %s | %s | NULL | NULL
			alpha | us | down | %s | %s | connect | connection refused
			beta | eu | down | %s | %s | connect | connection refused
			beta | us | down | %s | %s | connect | connection refused
			gamma |  | up | %s | %s | NULL | NULL`,
			ts(0, 1), ts(3, 1), ts(2, 2), ts(3, 2), ts(0, 3), ts(3, 3), ts(0, 4), ts(3, 4), ts(0, 5), ts(3, 5)))
	expect(t, "target_regions_down", query(t, conn, `SELECT target_id, regions, regions_down, down_regions FROM target_regions_down ORDER BY 1`),
		"alpha | 2 | 1 | [us]\nbeta | 2 | 2 | [eu us]\ngamma | 1 | 0 | []")
	// alpha recovers in us.
	expectResult(t, "recovery", mustWrite(t, s, slotEv("alpha", "us", "p2", slot(4), slot(4).Add(2*time.Second), ms(20))), 1, 0)
	expect(t, "target_regions_down after recovery", query(t, conn, `SELECT target_id, regions_down FROM target_regions_down ORDER BY 1`),
		"alpha | 0\nbeta | 2\ngamma | 0")
	expect(t, "alpha us since", query(t, conn, `SELECT state, since FROM target_region_status WHERE target_id = 'alpha' AND region = 'us'`),
		"up | "+ts(4, 2))
}

// Two recorders write the results of two probers that both check the same
// 1,000 slots (two owners during a rebalance), batches in opposite orders:
// each slot is stored and counted once, and every other result is counted
// as a slot duplicate by exactly one of them.
func TestConcurrentSlotDuplicates(t *testing.T) {
	ctx := context.Background()
	s1, conn := openStore(t, store.Config{})
	s2 := reopen(t, conn, store.Config{})
	base := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	const n = 1000
	var fromA, fromB []store.Event
	for i := range n {
		sched := base.Add(time.Duration(i) * time.Second)
		target := fmt.Sprintf("t%02d", i%13)
		fromA = append(fromA, slotEv(target, "eu", "a", sched, sched.Add(time.Millisecond), ms(5)))
		fromB = append(fromB, slotEv(target, "eu", "b", sched, sched.Add(2*time.Millisecond), ms(5)))
	}
	var mu sync.Mutex
	var inserted, dups int
	write := func(s *store.Store, batches [][]store.Event) error {
		for _, b := range batches {
			for attempt := 0; ; attempt++ {
				res, err := s.Write(ctx, b)
				if err == nil {
					mu.Lock()
					inserted += res.Inserted
					dups += res.DuplicateSlots
					mu.Unlock()
					break
				}
				if attempt == 20 {
					return err
				}
			}
		}
		return nil
	}
	var b1, b2 [][]store.Event
	for i := 0; i < n; i += 100 {
		b1 = append(b1, fromA[i:i+100])
	}
	for i := n; i > 0; i -= 125 {
		b2 = append(b2, slices.Concat(fromB[i-125:i], fromA[i-125:i]))
	}
	errs := make(chan error, 2)
	go func() { errs <- write(s1, b1) }()
	go func() { errs <- write(s2, b2) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if inserted != n || dups != n {
		t.Errorf("inserted %d, duplicate slots %d; want %d and %d", inserted, dups, n, n)
	}
	expect(t, "totals", query(t, conn, `SELECT (SELECT count(*) FROM check_results), (SELECT count(*) FROM check_slots),
		(SELECT sum(checks) FROM check_results_hourly), (SELECT sum(checks) FROM check_results_region_hourly),
		(SELECT count(*) FROM check_slots s JOIN check_results c USING (event_id))`),
		fmt.Sprintf("%d | %d | %d | %d | %d", n, n, n, n, n))
}

// The retention drops check_slots' partitions with check_results' ones;
// Maintain creates both ahead.
func TestSlotPartitionsRetention(t *testing.T) {
	ctx := context.Background()
	all, conn := openStore(t, store.Config{})
	s := reopen(t, conn, store.Config{Retention: 10 * 24 * time.Hour})
	now := time.Now().UTC()
	today := now.Truncate(24 * time.Hour)
	d := func(n int) time.Time { return today.Add(time.Duration(n) * 24 * time.Hour) }
	var events []store.Event
	for _, n := range []int{-12, -1} {
		events = append(events, slotEv("alpha", "eu", "p1", d(n).Add(time.Hour), d(n).Add(time.Hour+time.Millisecond), ms(10)))
	}
	expectResult(t, "write", mustWrite(t, all, events...), 2, 0)
	days := func(list func(context.Context) ([]time.Time, error)) string {
		ds, err := list(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, day := range ds {
			out = append(out, fmt.Sprint(int(day.Sub(today).Hours()/24)))
		}
		return strings.Join(out, " ")
	}
	expect(t, "slot partitions before", days(s.SlotPartitions), "-12 -1")
	dropped, err := s.Maintain(ctx, now, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(dropped)
	if want := []string{"check_results_p" + d(-12).Format("20060102"), "check_slots_p" + d(-12).Format("20060102")}; !slices.Equal(dropped, want) {
		t.Errorf("dropped %v, want %v", dropped, want)
	}
	expect(t, "slot partitions after", days(s.SlotPartitions), "-1 0 1 2")
	expect(t, "raw partitions after", days(s.Partitions), "-1 0 1 2")
	expect(t, "claims kept", query(t, conn, `SELECT count(*) FROM check_slots`), "1")
}

// A check_slots partition dropped behind the store's back (another
// recorder's retention pass): the write fails as no partition found, the
// store forgets what it knew, and the retry creates the partition.
func TestMissingSlotPartitionIsCreatedOnRetry(t *testing.T) {
	ctx := context.Background()
	s, conn := openStore(t, store.Config{})
	at := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	expectResult(t, "first", mustWrite(t, s, slotEv("alpha", "eu", "p1", at, at.Add(time.Millisecond), ms(1))), 1, 0)
	if _, err := conn.Exec(ctx, `DROP TABLE check_slots_p`+at.Format("20060102")); err != nil {
		t.Fatal(err)
	}
	next := slotEv("alpha", "eu", "p1", at.Add(time.Minute), at.Add(time.Minute+time.Millisecond), ms(1))
	_, err := s.Write(ctx, []store.Event{next})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23514" || pgErr.Routine != "ExecFindPartition" {
		t.Fatalf("write without a slot partition: %v, want SQLSTATE 23514 from ExecFindPartition", err)
	}
	if _, ok := store.Refused(err); ok {
		t.Errorf("no partition is refused for good: %v", err)
	}
	expectResult(t, "retry", mustWrite(t, s, next), 1, 0)
	expect(t, "claims", query(t, conn, `SELECT count(*) FROM check_slots`), "1")
}
