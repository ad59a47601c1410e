package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/sethvargo/go-retry"

	"github.com/sitewatch/sitewatch/migrations"
	"github.com/sitewatch/sitewatch/services/internal/backoff"
)

// newMigrator returns a goose provider for the embedded migrations on the
// database at url, and the database to close when done. Its session locker
// (a PostgreSQL advisory lock) makes it safe for several recorders to
// migrate at once: one applies, the others wait and then find nothing left
// to do.
func newMigrator(url string, logger *slog.Logger) (*goose.Provider, *sql.DB, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, nil, fmt.Errorf("open database: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithSessionLocker(locker),
		goose.WithSlog(logger),
	)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, db, nil
}

// Migrate applies every pending migration. It first waits, within a bound
// (connectBackoff), for the database to accept a connection: `recorder
// migrate` often starts beside a PostgreSQL that is still starting (a
// container on a fresh volume, a host that just booted).
func Migrate(ctx context.Context, url string, logger *slog.Logger) error {
	p, db, err := newMigrator(url, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := waitForDatabase(ctx, db, connectBackoff(), logger); err != nil {
		return err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	logger.Info("database schema up to date", "applied", len(results), "version", v)
	return nil
}

// connectBackoff paces the first connection: 100 ms doubling to at most 2 s,
// with jitter, for at most 30 s in all. A PostgreSQL container on a fresh
// volume accepts TCP after initdb, a few seconds; 30 s covers a slow disk
// without hiding a wrong DATABASE_URL for long.
func connectBackoff() retry.Backoff {
	return retry.WithMaxDuration(30*time.Second, backoff.Exponential(100*time.Millisecond, 2*time.Second))
}

// waitForDatabase pings until the database answers, retrying only what a
// starting server does: refusing connections (no listener yet, a failing
// name lookup) and PostgreSQL's own "starting up" and "shutting down"
// answers. A definite answer such as a wrong password fails at once.
func waitForDatabase(ctx context.Context, db *sql.DB, b retry.Backoff, logger *slog.Logger) error {
	start := time.Now()
	attempts, err := backoff.Do(ctx, b, db.PingContext, retryableConnectError, func(attempt int, _ time.Duration, err error) {
		logger.Warn("database not reachable yet; retrying", "attempt", attempt, "err", err)
	})
	if err != nil {
		return fmt.Errorf("connect to the database: %d attempts in %s: %w", attempts, time.Since(start).Round(time.Millisecond), err)
	}
	if attempts > 1 {
		logger.Info("database reachable", "attempts", attempts, "after", time.Since(start).Round(time.Millisecond).String())
	}
	return nil
}

func retryableConnectError(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case pgerrcode.CannotConnectNow, pgerrcode.AdminShutdown, pgerrcode.CrashShutdown:
			return true
		}
		return false
	}
	// Anything else never reached a server that answered: refused, reset,
	// timed out, a name not (yet) resolvable.
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// stdlib registers the "pgx" database/sql driver that goose runs on.
var _ = stdlib.GetDefaultDriver
