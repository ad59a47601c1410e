package store

import (
	"log/slog"

	"github.com/pressly/goose/v3"
)

// NewMigrator gives the tests of package store_test the migrator that
// Migrate uses, to step through the migrations; close the returned closer.
func NewMigrator(url string, logger *slog.Logger) (*goose.Provider, func() error, error) {
	p, db, err := newMigrator(url, logger)
	if err != nil {
		return nil, nil, err
	}
	return p, db.Close, nil
}
