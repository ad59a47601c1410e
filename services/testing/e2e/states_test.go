package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 13's tests on the real stack, with the binaries: a fleet prober in a
// region of its own checks targets applied with `prober targets apply`, and
// the recorder projects both topics.
//   - A target added but not yet due is pending.
//   - A target removed with `apply` leaves target_status and current_outages
//     within one interval and is listed in removed_targets.
//   - Every prober of the region stopped: its targets turn stale 3
//     intervals after their last check, the region named; a prober started
//     again: they recover.
func TestTargetStates(t *testing.T) {
	const interval = 3 * time.Second
	s := newSystem(t)
	targetsTopic := s.topic + "-targets"
	region := "r-" + strings.TrimPrefix(s.topic, "e2e_")[:8]
	up := newSite(t, "keep", time.Second, always("up"))
	failing := newSite(t, "drop", time.Second, always("http_status"))
	later := notDueFor("later", time.Hour, time.Now(), 20*time.Minute)
	file := filepath.Join(t.TempDir(), "targets.yaml")
	write := func(withDrop bool) {
		t.Helper()
		var b strings.Builder
		fmt.Fprintf(&b, "defaults:\n  interval: %s\n  timeout: 1s\n  pattern: %q\n  regions: [%s]\ntargets:\n", interval, okPattern, region)
		fmt.Fprintf(&b, "  - id: keep\n    url: %s/\n", up.srv.URL)
		if withDrop {
			fmt.Fprintf(&b, "  - id: drop\n    url: %s/\n", failing.srv.URL)
		}
		// Never due within the test: its first slot is 20 minutes away
		// or more (notDueFor).
		fmt.Fprintf(&b, "  - id: %s\n    url: %s/\n    interval: 1h\n", later, up.srv.URL)
		if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	apply := func() {
		t.Helper()
		cmd := exec.Command(binPath(t, "prober"), "targets", "apply", file, "-topic", targetsTopic, "-partitions", "3")
		cmd.Env = s.env.list()
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("prober targets apply: %v\n%s", err, out.String())
		}
	}
	write(true)
	apply()
	s.recorder(t, "-targets-topic", targetsTopic)
	// -catch-up 0: later must not run a latest slot that happens to be
	// within the default window at the start.
	prober := func() *proc {
		return start(t, s.env, "prober", true, "-fleet", "-region", region, "-instance", region+"-1",
			"-targets-topic", targetsTopic, "-topic", s.topic, "-partitions", "3", "-catch-up", "0",
			"-spool-dir", filepath.Join(t.TempDir(), "spool"))
	}
	p := prober()

	status := func() string {
		t.Helper()
		rows, err := s.db.Query(context.Background(), `SELECT concat_ws(' ', target_id, status, coalesce(quiet_regions::text, '-'))
			FROM target_status ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				t.Fatal(err)
			}
			out = append(out, l)
		}
		return strings.Join(out, "\n")
	}
	waitStatus := func(what, want string, timeout time.Duration) time.Duration {
		t.Helper()
		begin := time.Now()
		waitFor(t, timeout, what, func() (bool, string) {
			got := status()
			return got == want, got
		})
		return time.Since(begin)
	}
	waitStatus("checked", "drop down -\nkeep up -\n"+later+" pending -", 60*time.Second)
	if n := s.count(t, `SELECT count(*) FROM current_outages WHERE target_id = 'drop'`); n != 1 {
		t.Fatalf("current_outages holds drop %d times, want 1", n)
	}

	// Removed with apply: gone from status and outages, in removed_targets.
	write(false)
	apply() // returns once Kafka took the tombstone
	took := waitStatus("drop removed", "keep up -\n"+later+" pending -", 30*time.Second)
	t.Logf("drop left target_status %s after apply published its tombstone (interval %s)", took.Round(time.Millisecond), interval)
	if took > interval {
		t.Errorf("drop left target_status %s after apply; want within one interval (%s)", took.Round(time.Millisecond), interval)
	}
	if n := s.count(t, `SELECT count(*) FROM current_outages`); n != 0 {
		t.Errorf("current_outages holds %d rows after drop's removal, want 0", n)
	}
	if n := s.count(t, `SELECT count(*) FROM removed_targets WHERE target_id = 'drop' AND last_outcome = 'down'`); n != 1 {
		t.Errorf("removed_targets lists drop (last down) %d times, want 1", n)
	}

	// Every prober of the region stopped: stale 3 intervals after the
	// last check, in this region; later, never checked, stays pending (its
	// 3 intervals are 3 hours).
	p.stop(t, 30*time.Second)
	stopped := time.Now()
	waitStatus("stale", "keep stale {"+region+"}\n"+later+" pending -", 3*interval+30*time.Second)
	t.Logf("keep turned stale %s after its prober stopped", time.Since(stopped).Round(time.Millisecond))
	if n := s.count(t, `SELECT count(*) FROM target_status
			WHERE target_id = 'keep' AND stale_since = last_checked_at + 3 * check_interval AND check_interval = interval '3 s'`); n != 1 {
		t.Errorf("keep's stale_since is not its last check + 3 intervals of 3s")
	}
	if n := s.count(t, `SELECT count(*) FROM target_region_status WHERE target_id = 'keep' AND region = $1 AND stale`, region); n != 1 {
		t.Errorf("target_region_status: keep not stale in %s", region)
	}

	// A prober of the region again: keep recovers.
	prober()
	waitStatus("recovered", "keep up -\n"+later+" pending -", 60*time.Second)
	if n := s.count(t, `SELECT count(*) FROM target_status WHERE target_id = 'keep' AND stale_since IS NULL`); n != 1 {
		t.Errorf("keep recovered but keeps a stale_since")
	}
}

// notDueFor returns prefix, or else prefix-N, the first such ID whose slot of the given
// interval (slotOffset) is not within away after now. A fixed ID's slot
// falls at the same point of every interval (for "later" and 1h, 52:58.5
// past each UTC hour), so a test that needs a target not yet due would
// fail whenever its run spans that point.
func notDueFor(prefix string, interval time.Duration, now time.Time, away time.Duration) string {
	for i := 0; ; i++ {
		id := prefix
		if i > 0 {
			id = fmt.Sprintf("%s-%d", prefix, i)
		}
		next := time.Unix(0, slotAt(slotOffset(id, interval), interval, now)).Add(interval)
		if next.Sub(now) > away {
			return id
		}
	}
}

// At 12:52:30 UTC "later" is due in 28.5 s: TestTargetStates run then with
// a fixed ID saw it checked, not pending.
func TestNotDueFor(t *testing.T) {
	at := func(hms string) time.Time {
		t.Helper()
		tm, err := time.Parse(time.RFC3339, "2026-11-30T"+hms+"Z")
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	if id := notDueFor("later", time.Hour, at("12:00:00"), 20*time.Minute); id != "later" {
		t.Errorf("at 12:00: %s, want later (due at 12:52:58)", id)
	}
	now := at("12:52:30")
	id := notDueFor("later", time.Hour, now, 20*time.Minute)
	if id == "later" {
		t.Fatalf("at 12:52:30: later, due in 28.5 s")
	}
	if next := time.Unix(0, slotAt(slotOffset(id, time.Hour), time.Hour, now)).Add(time.Hour); next.Sub(now) <= 20*time.Minute {
		t.Errorf("at 12:52:30: %s, due at %s", id, next.UTC().Format(time.TimeOnly))
	}
}
