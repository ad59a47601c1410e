package targets_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Without a targets topic (file mode) the projection waits quietly, and
// staleness works from the interval the events carry, or, for events of
// probers older than that field, from default_check_interval_us() (60s).
func TestFileModeStaleness(t *testing.T) {
	e := newEnv(t, false)
	pr := e.project()
	now := time.Now().UTC().Truncate(time.Second)
	e.write(
		// 10s interval: stale after 30s without a check.
		event("fresh10", "", "p1", now.Add(-5*time.Second), true, 10*time.Second),
		event("quiet10", "", "p1", now.Add(-40*time.Second), false, 10*time.Second),
		// No interval in the events: 60s, stale after 3 minutes.
		event("old-fresh", "", "p1", now.Add(-2*time.Minute), true, 0),
		event("old-quiet", "", "p1", now.Add(-4*time.Minute), true, 0),
	)
	e.expect("target_status", e.rows(`SELECT target_id, status, state, stale_since, quiet_regions, check_interval::text, interval_source, configured_at
		FROM target_status ORDER BY 1`), fmt.Sprintf(`
		fresh10 | up | up | NULL | NULL | 00:00:10 | event | NULL
		old-fresh | up | up | NULL | NULL | 00:01:00 | default | NULL
		old-quiet | stale | up | %s | [] | 00:01:00 | default | NULL
		quiet10 | stale | down | %s | [] | 00:00:10 | event | NULL`,
		ts(now.Add(-time.Minute)), ts(now.Add(-10*time.Second))))
	// A newer event without the field keeps the interval known from before.
	e.write(event("quiet10", "", "p1", now.Add(-35*time.Second), false, 0))
	e.expect("interval kept", e.rows(`SELECT check_interval::text, stale_since FROM target_status WHERE target_id = 'quiet10'`),
		fmt.Sprintf("00:00:10 | %s", ts(now.Add(-5*time.Second))))

	time.Sleep(300 * time.Millisecond) // a few looks for the topic
	if err := pr.stop(); err != nil {
		t.Fatalf("Run in file mode: %v, want nil", err)
	}
	if n := strings.Count(pr.logs.String(), "the targets topic does not exist"); n != 1 {
		t.Errorf("the missing topic is logged %d times, want once:\n%s", n, pr.logs.String())
	}
	if strings.Contains(pr.logs.String(), "level=WARN") || strings.Contains(pr.logs.String(), "level=ERROR") {
		t.Errorf("file mode logs warnings:\n%s", pr.logs.String())
	}
}

// prober_status lists every prober ever seen with its last check; a dead
// one stays, its quiet_for growing, with nothing checked in 10 minutes.
func TestProberStatus(t *testing.T) {
	e := newEnv(t, false)
	now := time.Now().UTC().Truncate(time.Second)
	e.write(
		event("a", "eu", "p-eu-1", now.Add(-5*time.Second), true, time.Minute),
		event("b", "eu", "p-eu-1", now.Add(-4*time.Second), true, time.Minute),
		event("a", "eu", "p-eu-1", now.Add(-65*time.Second), true, time.Minute),
		event("a", "eu", "p-eu-2", now.Add(-2*time.Hour), true, time.Minute),
		event("a", "us", "p-us-1", now.Add(-3*time.Hour), true, time.Minute),
		event("c", "", "", now.Add(-time.Second), true, time.Minute),
	)
	e.expect("prober_status", e.rows(`SELECT coalesce(nullif(region, ''), '-'), coalesce(nullif(instance, ''), '-'), first_seen, last_checked_at, quiet_for >= interval '1 second', targets_10m, checks_10m
		FROM prober_status ORDER BY 1, 2`), fmt.Sprintf(`
		- | - | %[1]s | %[1]s | true | 1 | 1
		eu | p-eu-1 | %[2]s | %[3]s | true | 2 | 3
		eu | p-eu-2 | %[4]s | %[4]s | true | 0 | 0
		us | p-us-1 | %[5]s | %[5]s | true | 0 | 0`,
		ts(now.Add(-time.Second)), ts(now.Add(-65*time.Second)), ts(now.Add(-4*time.Second)), ts(now.Add(-2*time.Hour)), ts(now.Add(-3*time.Hour))))
	e.expect("region_status", e.rows(`SELECT coalesce(nullif(region, ''), '-'), instances, active_10m, last_checked_at FROM region_status ORDER BY 1`), fmt.Sprintf(`
		- | 1 | 1 | %s
		eu | 2 | 1 | %s
		us | 1 | 0 | %s`, ts(now.Add(-time.Second)), ts(now.Add(-4*time.Second)), ts(now.Add(-3*time.Hour))))
}
