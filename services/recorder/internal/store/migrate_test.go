package store_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/services/internal/stacktest"
	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
)

// Every migration applies to an empty database, goes down cleanly, and
// applies again.
func TestMigrationsUpDownUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := stacktest.Database(t)
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
	want := int64(len(p.ListSources()))

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
	url := stacktest.Database(t)
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
