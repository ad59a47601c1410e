package store

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/services/internal/stacktest"
)

// Every migration applies to an empty database, goes down cleanly, and
// applies again.
func TestMigrationsUpDownUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := stacktest.Database(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, db, err := newMigrator(url, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
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
