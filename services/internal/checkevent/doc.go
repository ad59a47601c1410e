// Package checkevent holds the facts about the CheckResult event that its
// producer and its consumers must agree on beyond the schema: the names of
// failure kinds and outcomes in metric labels and in the database, and the
// limits of its fields. They are derived from the generated enums, so that
// a new failure kind is one edit of check_result.proto (plus the migration
// that gives it a column, which a test of the recorder's store demands).
package checkevent
