// Package storetest gives the alerter's integration tests a database of
// their own on the stack's PostgreSQL with every migration applied, as
// the recorder applies them (the alerter never migrates), and writes
// check results into it as the recorder would store them.
package storetest

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver goose runs on
	"github.com/pressly/goose/v3"

	"github.com/sitewatch/sitewatch/migrations"
	"github.com/sitewatch/sitewatch/services/testing/stackdb"
)

// Database returns the connection string of a new database, migrated.
func Database(t testing.TB) string {
	t.Helper()
	url := stackdb.Database(t)
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
		t.Fatalf("migrate: %v", err)
	}
	return url
}

// Check is a stored check result.
type Check struct {
	EventID, TargetID, Region string
	CheckedAt                 time.Time
	Up                        bool
	FailureKind, Error        string
	CertNotAfter              *time.Time
}

// Insert stores checks in check_results (creating the days' partitions).
func Insert(t testing.TB, conn *pgx.Conn, checks []Check) {
	t.Helper()
	ctx := context.Background()
	days := map[time.Time]bool{}
	for _, c := range checks {
		day := c.CheckedAt.UTC().Truncate(24 * time.Hour)
		if days[day] {
			continue
		}
		days[day] = true
		name := pgx.Identifier{"check_results_p" + day.Format("20060102")}.Sanitize()
		if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+name+` PARTITION OF check_results FOR VALUES FROM ('`+
			day.Format(time.RFC3339)+`') TO ('`+day.Add(24*time.Hour).Format(time.RFC3339)+`')`); err != nil {
			t.Fatalf("create partition %s: %v", name, err)
		}
	}
	for _, c := range checks {
		outcome := "up"
		var kind, msg any
		if !c.Up {
			outcome, kind, msg = "down", c.FailureKind, c.Error
		}
		if _, err := conn.Exec(ctx, `INSERT INTO check_results (event_id, target_id, checked_at, outcome, failure_kind,
				response_time_us, bytes_read, body_truncated, redirects, error, prober_instance, prober_region, tls_cert_expires_at)
			VALUES ($1, $2, $3, $4, $5, 1000, 0, false, 0, $6, 'test', $7, $8)`,
			c.EventID, c.TargetID, c.CheckedAt, outcome, kind, msg, c.Region, c.CertNotAfter); err != nil {
			t.Fatalf("insert check %s: %v", c.EventID, err)
		}
	}
}
