package store_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
)

// A target removed days ago while down and configured again a minute ago is
// pending until its first check since, not stale since days nor an outage
// of days: checks from before its latest configuration say nothing of it
// now. Once checked again it is up or down from that check.
func TestViewsTargetReAdded(t *testing.T) {
	ctx := context.Background()
	_, conn := openStore(t, store.Config{})
	now := time.Now().UTC().Truncate(time.Second)
	// at writes now + d as a timestamptz literal.
	at := func(d string) string {
		dd, err := time.ParseDuration(d)
		if err != nil {
			t.Fatal(err)
		}
		return "'" + now.Add(dd).Format(time.RFC3339) + "'::timestamptz"
	}
	sql := func(s string) string {
		return strings.NewReplacer("NOW-1m", at("-1m"), "NOW-10d", at("-240h"), "NOW-5d", at("-120h"), "NOW-4d", at("-96h"),
			"NOW-10s", at("-10s")).Replace(s)
	}
	if _, err := conn.Exec(ctx, sql(`
		INSERT INTO target_config VALUES ('alpha', 'http://alpha.test/', 'GET', 60000000, 5000000, '{}', false,
			'{200-399}', NULL, false, false, 1048576, '{eu}', '{}',
			NOW-1m, NOW-1m, NULL);
		INSERT INTO targets (target_id, url, method, first_seen, last_seen, last_event_id, last_outcome,
			last_failure_kind, last_response_time_us, last_error, last_up_at, last_down_at, check_interval_us)
		VALUES ('alpha', 'http://alpha.test/', 'GET', NOW-10d, NOW-4d,
			'0190a000-0000-7000-8000-000000000001', 'down', 'timeout', 5000000, 'timeout',
			NOW-5d, NOW-4d, 60000000);
		INSERT INTO target_regions VALUES ('alpha', 'eu', NOW-10d, NOW-4d,
			'0190a000-0000-7000-8000-000000000001', 'down', 'timeout', NULL, 5000000, 'timeout',
			NOW-5d, NOW-4d, 60000000)`)); err != nil {
		t.Fatal(err)
	}
	expect(t, "target_status re-added", query(t, conn, sql(`SELECT status, since = NOW-1m, stale_since, quiet_regions
		FROM target_status WHERE target_id = 'alpha'`)), "pending | true | NULL | NULL")
	expect(t, "current_outages re-added", query(t, conn, `SELECT count(*) FROM current_outages`), "0")
	expect(t, "target_region_status re-added", query(t, conn, sql(`SELECT region, stale, stale_since = NOW-1m + interval '3 minutes'
		FROM target_region_status`)), "eu | false | true")
	expect(t, "target_regions_down re-added", query(t, conn, `SELECT count(*) FROM target_regions_down WHERE regions_down > 0`), "0")

	// Its first check since: down from then on, stale 3 intervals after.
	if _, err := conn.Exec(ctx, sql(`
		UPDATE targets SET last_seen = NOW-10s, last_down_at = NOW-10s;
		UPDATE target_regions SET last_seen = NOW-10s, last_down_at = NOW-10s`)); err != nil {
		t.Fatal(err)
	}
	expect(t, "target_status checked again", query(t, conn, `SELECT status, state, stale_since FROM target_status`), "down | down | NULL")
	expect(t, "current_outages checked again", query(t, conn, `SELECT target_id, status FROM current_outages`), "alpha | down")
	expect(t, "target_region_status checked again", query(t, conn, sql(`SELECT region, stale, stale_since = NOW-10s + interval '3 minutes'
		FROM target_region_status`)), "eu | false | true")
	expect(t, "target_regions_down checked again", query(t, conn, `SELECT target_id, regions_down FROM target_regions_down`), "alpha | 1")
}

// A target configured but never checked is pending until 3 intervals have
// passed since configured_at, then stale (migration 00012): in its
// configured regions, or, on every region, in every region a prober was
// seen in (the empty region before any was). It is in no outage and no per-region row
// (nothing was checked); removed, it leaves target_status for
// removed_targets.
func TestViewsNeverCheckedTurnsStale(t *testing.T) {
	ctx := context.Background()
	_, conn := openStore(t, store.Config{})
	now := time.Now().UTC().Truncate(time.Second)
	ago := func(d time.Duration) string { return "'" + now.Add(-d).Format(time.RFC3339) + "'::timestamptz" }
	cfg := func(id, regions string, configured time.Duration, removed string) string {
		return `INSERT INTO target_config VALUES ('` + id + `', 'http://` + id + `.test/', 'GET', 60000000, 5000000, '{}', false,
			'{200-399}', NULL, false, false, 1048576, '` + regions + `', '{}', ` + ago(configured) + `, ` + ago(configured) + `, ` + removed + `);`
	}
	if _, err := conn.Exec(ctx, cfg("added", "{eu,us}", 10*time.Second, "NULL")+
		// 10 s short of 3 intervals: now is truncated to the second, so
		// 179 s left as little as a few milliseconds for the test's
		// queries before almost turned stale.
		cfg("almost", "{}", 170*time.Second, "NULL")+
		cfg("quiet-eu", "{eu}", 4*time.Minute, "NULL")+
		cfg("everywhere", "{}", 4*time.Minute, "NULL")+
		cfg("gone", "{}", 10*time.Minute, ago(time.Minute))); err != nil {
		t.Fatal(err)
	}
	const status = `SELECT target_id, status, state, since = configured_at, stale_since = configured_at + interval '3 minutes',
		quiet_regions::text FROM target_status ORDER BY 1`
	expect(t, "target_status before any prober", query(t, conn, status), `
		added | pending | NULL | true | NULL | NULL
		almost | pending | NULL | true | NULL | NULL
		everywhere | stale | NULL | true | true | {""}
		quiet-eu | stale | NULL | true | true | {eu}`)

	// Probers seen in eu and us: a target on every region is quiet in both.
	if _, err := conn.Exec(ctx, `INSERT INTO probers VALUES ('eu', 'p1', now(), now()), ('us', 'p2', now(), now())`); err != nil {
		t.Fatal(err)
	}
	expect(t, "target_status with probers", query(t, conn, status), `
		added | pending | NULL | true | NULL | NULL
		almost | pending | NULL | true | NULL | NULL
		everywhere | stale | NULL | true | true | {eu,us}
		quiet-eu | stale | NULL | true | true | {eu}`)
	expect(t, "freshness", query(t, conn, `SELECT target_id, region, last_checked_at, interval_source, stale
		FROM target_region_freshness ORDER BY 1, 2`), `
		added | eu | NULL | config | false
		added | us | NULL | config | false
		almost | eu | NULL | config | false
		almost | us | NULL | config | false
		everywhere | eu | NULL | config | true
		everywhere | us | NULL | config | true
		quiet-eu | eu | NULL | config | true`)
	for _, view := range []string{"current_outages", "target_region_status", "target_regions_down"} {
		expect(t, view, query(t, conn, `SELECT count(*) FROM `+view), "0")
	}
	expect(t, "removed_targets", query(t, conn, `SELECT target_id, last_checked_at FROM removed_targets`), "gone | NULL")
}

// A region added to a target's list long after the target was configured
// has had no chance to check it yet: it turns stale 3 intervals after the
// change (updated_at), not at once with a stale_since of days ago (from
// configured_at). A region that did check it still counts from its last
// check, however recent the change.
func TestViewsRegionAddedLaterIsNotStaleAtOnce(t *testing.T) {
	ctx := context.Background()
	_, conn := openStore(t, store.Config{})
	now := time.Now().UTC().Truncate(time.Second)
	ago := func(d time.Duration) string { return "'" + now.Add(-d).Format(time.RFC3339) + "'::timestamptz" }
	if _, err := conn.Exec(ctx, `
		INSERT INTO target_config VALUES ('alpha', 'http://alpha.test/', 'GET', 60000000, 5000000, '{}', false,
			'{200-399}', NULL, false, false, 1048576, '{eu,us}', '{}', `+ago(24*time.Hour)+`, `+ago(10*time.Second)+`, NULL);
		INSERT INTO target_config VALUES ('beta', 'http://beta.test/', 'GET', 60000000, 5000000, '{}', false,
			'{200-399}', NULL, false, false, 1048576, '{eu,us}', '{}', `+ago(24*time.Hour)+`, `+ago(10*time.Second)+`, NULL);
		INSERT INTO targets (target_id, url, method, first_seen, last_seen, last_event_id, last_outcome,
			last_response_time_us, check_interval_us)
		VALUES ('alpha', 'http://alpha.test/', 'GET', `+ago(24*time.Hour)+`, `+ago(20*time.Second)+`,
			'0190a000-0000-7000-8000-000000000001', 'up', 5000, 60000000),
		       ('beta', 'http://beta.test/', 'GET', `+ago(24*time.Hour)+`, `+ago(20*time.Second)+`,
			'0190a000-0000-7000-8000-000000000002', 'up', 5000, 60000000);
		INSERT INTO target_regions (target_id, region, first_seen, last_seen, last_event_id, last_outcome,
			last_response_time_us, check_interval_us)
		VALUES ('alpha', 'eu', `+ago(24*time.Hour)+`, `+ago(20*time.Second)+`,
			'0190a000-0000-7000-8000-000000000001', 'up', 5000, 60000000),
		       ('beta', 'eu', `+ago(24*time.Hour)+`, `+ago(20*time.Second)+`,
			'0190a000-0000-7000-8000-000000000002', 'up', 5000, 60000000),
		       ('beta', 'us', `+ago(24*time.Hour)+`, `+ago(10*time.Minute)+`,
			'0190a000-0000-7000-8000-000000000003', 'up', 5000, 60000000)`); err != nil {
		t.Fatal(err)
	}
	expect(t, "target_status", query(t, conn, `SELECT target_id, status, stale_since = `+ago(10*time.Minute)+` + interval '3 minutes',
		quiet_regions::text FROM target_status ORDER BY 1`), `
		alpha | up | NULL | NULL
		beta | stale | true | {us}`)
	expect(t, "freshness", query(t, conn, `SELECT target_id, region, stale,
		(stale_since - `+ago(0)+`)::text FROM target_region_freshness ORDER BY 1, 2`), `
		alpha | eu | false | 00:02:40
		alpha | us | false | 00:02:50
		beta | eu | false | 00:02:40
		beta | us | true | -00:07:00`)
}

// prober_status (and region_status over it) reads the raw rows of the last
// 10 minutes only: through an index on checked_at, not by scanning the day's
// partition (on 10,000 targets every minute in 3 regions, 43 million rows by
// the evening). One partition holds 200,000 rows of the day before the last
// 30 minutes, and 30 rows of the last 3 minutes.
func TestViewsProberStatusReadsTenMinutes(t *testing.T) {
	ctx := context.Background()
	_, conn := openStore(t, store.Config{})
	if _, err := conn.Exec(ctx, `
		CREATE TABLE check_results_test PARTITION OF check_results
			FOR VALUES FROM (now() - interval '2 days') TO (now() + interval '1 day');
		INSERT INTO check_results (event_id, target_id, checked_at, outcome, response_time_us, bytes_read,
			body_truncated, redirects, prober_region, prober_instance)
		SELECT gen_random_uuid(), 't' || (g % 1000), now() - interval '1 day' + g * interval '420 ms', 'up', 1000, 1,
			false, 0, 'eu', 'p' || (g % 3)
		FROM generate_series(1, 200000) g;
		INSERT INTO check_results (event_id, target_id, checked_at, outcome, response_time_us, bytes_read,
			body_truncated, redirects, prober_region, prober_instance)
		SELECT gen_random_uuid(), 'r' || (g % 7), now() - g * interval '5 s', 'up', 1000, 1, false, 0, 'eu', 'p' || (g % 3)
		FROM generate_series(1, 30) g;
		INSERT INTO probers VALUES ('eu', 'p0', now() - interval '1 day', now()), ('eu', 'p1', now() - interval '1 day', now()),
			('eu', 'p2', now() - interval '1 day', now());
		ANALYZE check_results, probers`); err != nil {
		t.Fatal(err)
	}
	for _, view := range []string{"prober_status", "region_status"} {
		plan := query(t, conn, `EXPLAIN SELECT * FROM `+view)
		if strings.Contains(plan, "Seq Scan on check_results_test") {
			t.Errorf("%s scans the whole partition:\n%s", view, plan)
		}
	}
	expect(t, "prober_status", query(t, conn, `SELECT instance, targets_10m, checks_10m FROM prober_status ORDER BY 1`), `
		p0 | 7 | 10
		p1 | 7 | 10
		p2 | 7 | 10`)
}

// The replay steps of the README and the recorder README empty every table
// the check results are projected into (all but target_config, the targets
// topic's): a table they forget keeps rows of events the replay may no
// longer bring back, or, a rollup, counts the replayed events twice.
func TestReadmeReplayTruncatesEveryProjection(t *testing.T) {
	ctx := context.Background()
	s, conn := openStore(t, store.Config{})
	for _, readme := range []string{"../../../../README.md", "../../README.md"} {
		text, err := os.ReadFile(readme)
		if err != nil {
			t.Fatal(err)
		}
		stmt := regexp.MustCompile("(?s)`(TRUNCATE [^`]*;)`").FindSubmatch(text)
		if stmt == nil {
			t.Fatalf("%s has no `TRUNCATE ...;`", readme)
		}
		now := time.Now().UTC()
		e := ev("alpha", now.Add(-time.Minute), "", ms(7))
		e.ProberRegion, e.ProberInstance, e.ScheduledAt = "eu", "p1", now.Add(-time.Minute).Truncate(time.Minute)
		if _, err := s.Write(ctx, []store.Event{e}); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, string(stmt[1])); err != nil {
			t.Fatalf("%s: %s: %v", readme, stmt[1], err)
		}
		tables := query(t, conn, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
			  AND c.relname NOT IN ('goose_db_version', 'target_config', 'target_config_offsets')
			ORDER BY 1`)
		for _, table := range strings.Split(tables, "\n") {
			if n := query(t, conn, `SELECT count(*) FROM `+table); n != "0" {
				t.Errorf("%s: %s keeps %s rows after %s", readme, table, n, stmt[1])
			}
		}
	}
}
