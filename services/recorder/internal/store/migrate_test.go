package store_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
	"github.com/sitewatch/sitewatch/services/testing/stackdb"
)

// Every migration applies to an empty database, goes down cleanly, and
// applies again.
func TestMigrationsUpDownUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := stackdb.Database(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, closeDB, err := store.NewMigrator(url, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := closeDB(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	// The highest version, not the count: migration numbers are given out
	// ahead to work landing at different times, so they may have gaps.
	sources := p.ListSources()
	want := sources[len(sources)-1].Version

	for _, step := range []string{"up", "down", "up"} {
		switch step {
		case "up":
			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("up: %v", err)
			}
		case "down":
			if _, err := p.DownTo(ctx, 0); err != nil {
				t.Fatalf("down: %v", err)
			}
		}
		v, err := p.GetDBVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantV := want
		if step == "down" {
			wantV = 0
		}
		if v != wantV {
			t.Fatalf("after %s: version %d, want %d", step, v, wantV)
		}
		if n := userTables(t, ctx, url); (step == "down") != (n == 0) {
			t.Fatalf("after %s: %d sitewatch tables", step, n)
		}
	}
}

// userTables counts the tables of the public schema other than goose's own.
func userTables(t testing.TB, ctx context.Context, url string) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables
		WHERE schemaname = 'public' AND tablename <> 'goose_db_version'`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Migration 00005 adds protocol and decoded_bytes to check_results when
// partitions with rows exist: the rows get NULL (their events predate the
// fields), the existing partitions and those created later take the
// columns, and going down drops the columns and keeps the rows.
func TestMigrationProtocolColumnsOnPartitionedRows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := stackdb.Database(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, closeDB, err := store.NewMigrator(url, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := closeDB(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	if _, err := p.UpTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE check_results_p20260101 PARTITION OF check_results
			FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-01-02 00:00:00+00');
		INSERT INTO check_results (event_id, target_id, checked_at, outcome, response_time_us, bytes_read, body_truncated, redirects)
		VALUES ('0190a000-0000-7000-8000-000000000001', 'old', '2026-01-01 10:00:00+00', 'up', 1000, 300, false, 0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}

	s, err := store.Open(ctx, url, store.Config{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// One event into the partition made before the migration, one into a
	// partition the store makes after it.
	decoded := int64(4096)
	inOld := ev("new", time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC), "", ms(10))
	inOld.Protocol, inOld.DecodedBytes = "HTTP/2.0", &decoded
	inNew := ev("new", time.Date(2026, 1, 2, 11, 0, 0, 0, time.UTC), "", ms(10))
	inNew.Protocol, inNew.DecodedBytes = "HTTP/1.1", &decoded
	if _, err := s.Write(ctx, []store.Event{inOld, inNew}); err != nil {
		t.Fatal(err)
	}
	rowsSQL := `SELECT tableoid::regclass::text, target_id, bytes_read, protocol, decoded_bytes FROM check_results ORDER BY checked_at`
	expect(t, "rows after 00005", query(t, conn, rowsSQL), `check_results_p20260101 | old | 300 | NULL | NULL
check_results_p20260101 | new | 512 | HTTP/2.0 | 4096
check_results_p20260102 | new | 512 | HTTP/1.1 | 4096`)

	if _, err := p.DownTo(ctx, 4); err != nil {
		t.Fatalf("down to 4: %v", err)
	}
	expect(t, "columns after going down", query(t, conn, `SELECT count(*) FROM pg_attribute
		WHERE attrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'check_results'::regclass)
			AND attname IN ('protocol', 'decoded_bytes') AND NOT attisdropped`), "0")
	expect(t, "rows after going down", query(t, conn, `SELECT count(*) FROM check_results`), "3")
}

// Migration 00006 starts the region rollup and target_regions from the raw
// rows stored before it (events without a region under the empty region), so the
// region views answer at once; the store then adds to them; going down
// drops them and keeps the raw rows.
func TestMigrationRegionTablesFromExistingRows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := stackdb.Database(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, closeDB, err := store.NewMigrator(url, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := closeDB(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	if _, err := p.UpTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE check_results_p20260101 PARTITION OF check_results
			FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-01-02 00:00:00+00');
		INSERT INTO check_results (event_id, target_id, checked_at, outcome, failure_kind, response_time_us, bytes_read, body_truncated, redirects, prober_region, error)
		VALUES ('0190a000-0000-7000-8000-000000000001', 'alpha', '2026-01-01 10:00:00+00', 'up', NULL, 1000, 300, false, 0, 'eu', NULL),
		       ('0190a000-0000-7000-8000-000000000002', 'alpha', '2026-01-01 10:01:00+00', 'down', 'timeout', 3000, 0, false, 0, 'eu', 'deadline'),
		       ('0190a000-0000-7000-8000-000000000003', 'alpha', '2026-01-01 10:00:30+00', 'up', NULL, 2000, 300, false, 0, 'us', NULL),
		       ('0190a000-0000-7000-8000-000000000004', 'alpha', '2026-01-01 11:00:00+00', 'up', NULL, 4000, 300, false, 0, NULL, NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	rollupSQL := `SELECT coalesce(nullif(region, ''), '-'), hour, checks, up, down, response_time_sum_us FROM check_results_region_hourly ORDER BY hour, region`
	expect(t, "region rollup from the raw rows", query(t, conn, rollupSQL), `
		eu | 2026-01-01T10:00:00Z | 2 | 1 | 1 | 4000
		us | 2026-01-01T10:00:00Z | 1 | 1 | 0 | 2000
		- | 2026-01-01T11:00:00Z | 1 | 1 | 0 | 4000`)
	statusSQL := `SELECT coalesce(nullif(region, ''), '-'), state, since, last_checked_at, last_failure_kind, last_error FROM target_region_status ORDER BY 1`
	expect(t, "target_region_status from the raw rows", query(t, conn, statusSQL), `
		- | up | 2026-01-01T11:00:00Z | 2026-01-01T11:00:00Z | NULL | NULL
		eu | down | 2026-01-01T10:01:00Z | 2026-01-01T10:01:00Z | timeout | deadline
		us | up | 2026-01-01T10:00:30Z | 2026-01-01T10:00:30Z | NULL | NULL`)
	expect(t, "target_regions_down", query(t, conn, `SELECT regions, regions_down, down_regions FROM target_regions_down`), "3 | 1 | [eu]")

	s, err := store.Open(ctx, url, store.Config{}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := ev("alpha", time.Date(2026, 1, 1, 10, 2, 0, 0, time.UTC), "", ms(5))
	e.ProberRegion, e.ScheduledAt = "eu", time.Date(2026, 1, 1, 10, 2, 0, 0, time.UTC)
	if _, err := s.Write(ctx, []store.Event{e}); err != nil {
		t.Fatal(err)
	}
	expect(t, "eu after a new event", query(t, conn, `SELECT checks, up, response_time_sum_us FROM check_results_region_hourly WHERE region = 'eu'`), "3 | 2 | 9000")
	expect(t, "eu state after a new event", query(t, conn, `SELECT state, since FROM target_region_status WHERE region = 'eu'`), "up | 2026-01-01T10:02:00Z")

	if _, err := p.DownTo(ctx, 5); err != nil {
		t.Fatalf("down to 5: %v", err)
	}
	expect(t, "tables after going down", query(t, conn, `SELECT count(*) FROM pg_class WHERE relname IN
		('check_slots', 'check_results_region_hourly', 'target_regions', 'target_region_status')`), "0")
	expect(t, "rows after going down", query(t, conn, `SELECT count(*) FROM check_results`), "5")
}

// Migration 00008 starts probers from the raw rows stored before it; the
// targets checked by then have no interval (events of older probers, or
// stored before the column), so staleness uses the 60 s default; going down
// restores the views as they were, which still answer.
func TestMigrationProbersFromExistingRows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := stackdb.Database(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, closeDB, err := store.NewMigrator(url, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := closeDB(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	if _, err := p.UpTo(ctx, 7); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// alpha's row in targets without rows in target_regions: checked only
	// before target_regions existed.
	if _, err := conn.Exec(ctx, `CREATE TABLE check_results_p20260101 PARTITION OF check_results
			FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2026-01-02 00:00:00+00');
		INSERT INTO check_results (event_id, target_id, checked_at, outcome, response_time_us, bytes_read, body_truncated, redirects, prober_region, prober_instance)
		VALUES ('0190a000-0000-7000-8000-000000000001', 'alpha', '2026-01-01 10:00:00+00', 'up', 1000, 300, false, 0, 'eu', 'p1'),
		       ('0190a000-0000-7000-8000-000000000002', 'alpha', '2026-01-01 10:01:00+00', 'up', 3000, 0, false, 0, 'eu', 'p1'),
		       ('0190a000-0000-7000-8000-000000000003', 'alpha', '2026-01-01 10:00:30+00', 'up', 2000, 300, false, 0, NULL, NULL);
		INSERT INTO targets (target_id, url, method, first_seen, last_seen, last_event_id, last_outcome, last_response_time_us, last_up_at)
		VALUES ('alpha', 'http://alpha.test/', 'GET', '2026-01-01 10:00:00+00', '2026-01-01 10:01:00+00',
		        '0190a000-0000-7000-8000-000000000002', 'up', 3000, '2026-01-01 10:01:00+00')`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	expect(t, "probers from the raw rows", query(t, conn, `SELECT coalesce(nullif(region, ''), '-'), coalesce(nullif(instance, ''), '-'), first_seen, last_seen FROM probers ORDER BY 1`), `
		- | - | 2026-01-01T10:00:30Z | 2026-01-01T10:00:30Z
		eu | p1 | 2026-01-01T10:00:00Z | 2026-01-01T10:01:00Z`)
	expect(t, "target_status", query(t, conn, `SELECT target_id, state, status, stale_since, quiet_regions, check_interval::text, interval_source FROM target_status`),
		"alpha | up | stale | 2026-01-01T10:04:00Z | [] | 00:01:00 | default")
	if _, err := p.DownTo(ctx, 7); err != nil {
		t.Fatalf("down to 7: %v", err)
	}
	expect(t, "target_status after going down", query(t, conn, `SELECT target_id, state, since FROM target_status`), "alpha | up | 2026-01-01T10:00:00Z")
	expect(t, "tables after going down", query(t, conn, `SELECT count(*) FROM pg_class WHERE relname IN
		('target_config', 'target_config_offsets', 'probers', 'prober_status', 'removed_targets', 'availability_daily_all')`), "0")
}
