// Package store keeps sitewatch's PostgreSQL projections: it applies the goose
// migrations and writes batches of check results.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/sitewatch/sitewatch/migrations"
)

// NewMigrator returns a goose provider for the embedded migrations on the
// database at url. Its session locker (a PostgreSQL advisory lock) makes it
// safe for several recorders to migrate at once: one applies, the others wait
// and then find nothing left to do. Close the returned closer when done.
func NewMigrator(url string, logger *slog.Logger) (*goose.Provider, func() error, error) {
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
	return p, db.Close, nil
}

// Migrate applies every pending migration.
func Migrate(ctx context.Context, url string, logger *slog.Logger) error {
	p, closeDB, err := NewMigrator(url, logger)
	if err != nil {
		return err
	}
	defer closeDB()
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

// stdlib registers the "pgx" database/sql driver that goose runs on.
var _ = stdlib.GetDefaultDriver
