// Package store keeps sitewatch's PostgreSQL projections: it applies the goose
// migrations and writes batches of check results.
package store
