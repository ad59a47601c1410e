package stackdb

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver goose runs on
	"github.com/pressly/goose/v3"

	"github.com/sitewatch/sitewatch/migrations"

	"github.com/sitewatch/sitewatch/services/testing/internal/need"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

// Database creates an empty database on the stack's PostgreSQL server, drops
// it when the test ends (unless STACKTEST_KEEP_DB is set, to look at it), and
// returns its connection string.
func Database(t testing.TB) string {
	t.Helper()
	need.Stack(t)
	admin := need.Var(t, "DATABASE_URL")
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatalf("DATABASE_URL: %v", err)
	}
	need.Listening(t, "PostgreSQL", net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect to DATABASE_URL: %v", err)
	}
	defer conn.Close(ctx)
	name := stacktest.Name("test")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if os.Getenv("STACKTEST_KEEP_DB") != "" {
			t.Logf("kept database %s", name)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Migrated is Database with every migration of the repository applied
// (migrations.FS, as `recorder migrate` applies them).
func Migrated(t testing.TB) string {
	t.Helper()
	url := Database(t)
	Migrate(t, url)
	return url
}

// Migrate applies every migration of the repository to the database at url
// (for a test that migrates a database it created earlier).
func Migrate(t testing.TB, url string) {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithSlog(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("migrations: %v", err)
	}
}
