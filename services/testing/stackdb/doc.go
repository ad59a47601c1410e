// Package stackdb gives integration tests a database of their own on the
// stack's PostgreSQL (`task stack:up`), named by DATABASE_URL as stacktest
// names Kafka and the registry, and skipped or failed as stacktest's helpers
// are when the server is missing; Migrated gives one with the repository's
// migrations applied.
//
// It is apart from stacktest so that a module whose tests need only Kafka
// and the registry (the prober's) does not require pgx: Go lists in a
// module's go.mod the modules of the packages its packages and tests import.
package stackdb
