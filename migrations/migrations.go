// Package migrations holds sitewatch's PostgreSQL schema as goose SQL
// migrations, embedded so that the recorder binary carries and applies them
// (`recorder migrate`). Schema changes are made only by adding a file here.
package migrations

import "embed"

// FS holds the migrations, named NNNNN_what.sql, in goose's SQL format.
//
//go:embed *.sql
var FS embed.FS
