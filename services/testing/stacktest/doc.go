// Package stacktest connects integration tests to the real Kafka and Schema
// Registry of the stack (`task stack:up`); stackdb does the same for its
// PostgreSQL.
//
// Each service is named by the variables of docs/design.md (one variable per
// service, as jackc/pgx names its test database by PGX_TEST_DATABASE), taken from the
// environment or, when unset there, from the stack's `.stack/env` file. When a
// service is not configured or does not answer, the test is skipped with a
// message saying how to start it; with CI=true it fails instead, so CI can
// never pass by skipping.
package stacktest
