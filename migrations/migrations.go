package migrations

import "embed"

// FS holds the migrations, named NNNNN_what.sql, in goose's SQL format.
//
//go:embed *.sql
var FS embed.FS
