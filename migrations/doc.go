// Package migrations holds sitewatch's PostgreSQL schema as goose SQL
// migrations, embedded so that the recorder binary carries and applies them
// (`recorder migrate`). Schema changes are made only by adding a file here.
package migrations
