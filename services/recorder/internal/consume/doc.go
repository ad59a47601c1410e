// Package consume reads CheckResult events from Kafka in a consumer group,
// decodes them through the Schema Registry, dead-letters what cannot be
// stored, and hands batches to the store, committing offsets only after the
// database transaction has committed.
package consume
