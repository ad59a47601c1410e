package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/targetstopic"
)

// nowColumns are the view columns that are now() minus a stored time
// (current_outages.duration, prober_status.quiet_for, region_status.quiet_for):
// two reads a second apart differ by the wall clock alone, so the replay
// comparison leaves them out. Their inputs (since, last_checked_at) are
// compared, and the views' other uses of now() (stale after 3 intervals,
// the 10-minute and 7-day windows) are compared too, with every event
// minutes away from those thresholds so that the seconds between the two
// reads cannot move a row across one.
var nowColumns = []string{"duration", "quiet_for"}

// viewsSnapshot reads every view of the database, each row as JSON without
// nowColumns, sorted: one line per row, a header per view.
func (f *fixture) viewsSnapshot() (string, map[string]int) {
	f.t.Helper()
	views := strings.Split(rows(f.t, f.db, `SELECT table_name::text FROM information_schema.views
		WHERE table_schema = 'public' ORDER BY 1`), "\n")
	var b strings.Builder
	counts := map[string]int{}
	for _, v := range views {
		got := rows(f.t, f.db, fmt.Sprintf(`SELECT (to_jsonb(v) - '{%s}'::text[])::text AS r FROM %s v ORDER BY r`,
			strings.Join(nowColumns, ","), v))
		n := 0
		if got != "" {
			n = strings.Count(got, "\n") + 1
		}
		counts[v] = n
		fmt.Fprintf(&b, "== %s (%d rows)\n%s\n", v, n, got)
	}
	return b.String(), counts
}

// The README's replay (issue 13, "Replay: every view is identical before
// and after"): stop the recorder, TRUNCATE the projections as the
// recorder's README says, `recorder reset-offsets`, run again. Every view
// of the database reads the same rows after as before. The events cover
// what the views derive: targets up, down and flapping in two regions, a
// slot checked by two probers, a region gone quiet (stale), events of a
// prober older than the interval and slot fields (file mode, the empty region, the
// default interval), configured targets pending and never checked (stale in
// every region a prober was seen in, the empty one included), one removed with its
// history, four probers.
func TestReplayLeavesEveryViewIdentical(t *testing.T) {
	f := newFixture(t, 3)
	ctx := context.Background()
	codec := f.targetsTopic(2)
	now := time.Now().UTC().Truncate(time.Second)
	target := func(id string, interval time.Duration, at time.Time, regions ...string) *kgo.Record {
		r, err := codec.Record(f.targets, &sitewatchv1.Target{Id: id, Url: "http://" + id + ".test/", Method: "GET",
			Interval: durationpb.New(interval), Timeout: durationpb.New(time.Second),
			ExpectStatus: []*sitewatchv1.StatusRange{{Min: 200, Max: 399}}, MaxBodyBytes: 1024, Regions: regions})
		if err != nil {
			t.Fatal(err)
		}
		r.Timestamp = at
		return r
	}
	removed := targetstopic.Tombstone(f.targets, "gone")
	removed.Timestamp = now.Add(-20 * time.Minute)
	if err := f.kafka.ProduceSync(ctx,
		target("alpha", time.Minute, now.Add(-2*time.Hour), "eu", "us"),
		target("beta", time.Minute, now.Add(-2*time.Hour)),
		target("gone", time.Minute, now.Add(-2*time.Hour)),
		removed,
		target("fresh", time.Hour, now.Add(-time.Minute)), // pending
		target("never", time.Minute, now.Add(-time.Hour)), // never checked: stale
	).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// Checks every minute for 40 minutes, ending 30 s ago.
	var recs []*kgo.Record
	add := func(version, id, kind, region, instance string, slot time.Time, interval time.Duration) {
		m := withTarget(check(t, kind, slot.Add(300*time.Millisecond), 20*time.Millisecond), id)
		m.Prober = &sitewatchv1.Prober{Instance: instance, Region: region}
		if interval > 0 {
			m.ScheduledAt = timestamppb.New(slot)
			m.Target.Interval = durationpb.New(interval)
		}
		recs = append(recs, &kgo.Record{Key: []byte(id), Value: f.encode(version, m)})
	}
	for i := 40; i >= 1; i-- {
		slot := now.Add(-30*time.Second - time.Duration(i-1)*time.Minute)
		kind := ""
		if i%7 < 2 {
			kind = "http_status"
		}
		add("new", "alpha", kind, "eu", "eu-1", slot, time.Minute)
		if i > 5 { // us went quiet 5 minutes ago: stale in us
			add("new", "alpha", "", "us", "us-1", slot, time.Minute)
		}
		add("new", "beta", "", "eu", "eu-1", slot, time.Minute)
		if i%3 == 0 { // a second owner of the slot: counted once
			add("new", "beta", "", "eu", "eu-2", slot, time.Minute)
		}
		if i <= 3 {
			add("new", "beta", "timeout", "us", "us-1", slot, time.Minute) // down in us now
		} else {
			add("new", "beta", "", "us", "us-1", slot, time.Minute)
		}
		if i > 25 {
			add("new", "gone", "dns", "eu", "eu-1", slot, time.Minute)
		}
		add("old", "legacy", "", "", "file-1", slot, 0) // no slot, no interval
	}
	f.produce(recs...)

	waitTargets := func(r *recorder) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for rows(t, f.db, `SELECT count(*)::text FROM target_config`) != "5" {
			if time.Now().After(deadline) {
				t.Fatalf("target_config: %s rows, want 5\n%s", rows(t, f.db, `SELECT count(*)::text FROM target_config`), r.logs.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	r := f.start()
	f.waitDrained(r)
	waitTargets(r)
	r.stop(t)
	before, counts := f.viewsSnapshot()

	// Every view this test means to cover holds rows, and the states are
	// those the events make.
	for _, v := range []string{"target_status", "current_outages", "target_region_status", "target_regions_down",
		"target_region_freshness", "removed_targets", "prober_status", "region_status", "availability_hourly",
		"availability_daily", "availability_region_daily", "target_summary_7d", "slowest_targets",
		"availability_hourly_all", "availability_daily_all", "target_summary_7d_all", "slowest_targets_all",
		"availability_region_daily_all"} {
		if counts[v] == 0 {
			t.Errorf("view %s is empty: the replay would compare nothing", v)
		}
	}
	if got, want := rows(t, f.db, `SELECT concat_ws(' ', target_id, status, coalesce(state, '-'), coalesce(quiet_regions::text, '-'), interval_source)
		FROM target_status ORDER BY 1`), `alpha stale down {us} config
beta down down - config
fresh pending - - config
legacy up up - default
never stale - {"",eu,us} config`; got != want {
		t.Errorf("target_status:\n%s\nwant:\n%s", got, want)
	}

	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	truncate := regexp.MustCompile("(?s)`(TRUNCATE [^`]*;)`").FindSubmatch(readme)
	if truncate == nil {
		t.Fatal("README.md has no `TRUNCATE ...;`")
	}
	if _, err := f.db.Exec(ctx, string(truncate[1])); err != nil {
		t.Fatalf("%s: %v", truncate[1], err)
	}
	if err := run(ctx, []string{"-topic", f.topic, "-group", f.group, "-targets-topic", f.targets, "reset-offsets"}, f.getenv, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, f.db, `SELECT (SELECT count(*) FROM check_results) + (SELECT count(*) FROM target_config)`); got != "0" {
		t.Fatalf("after TRUNCATE and reset-offsets: %s rows left, want 0", got)
	}
	r = f.start()
	f.waitDrained(r)
	waitTargets(r)
	r.stop(t)
	after, _ := f.viewsSnapshot()
	if after != before {
		t.Errorf("views after the replay differ:\n%s", diffLines(before, after))
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	t.Logf("%d views compared, %d rows", len(counts), total)
}

// diffLines lists the lines of a missing from b (-) and of b missing from a (+).
func diffLines(a, b string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	ca, cb := count(a), count(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if cb[l] < ca[l] {
			out = append(out, "- "+l)
			ca[l]--
		}
	}
	ca = count(a)
	for _, l := range strings.Split(b, "\n") {
		if ca[l] < cb[l] {
			out = append(out, "+ "+l)
			cb[l]--
		}
	}
	return strings.Join(out, "\n")
}
