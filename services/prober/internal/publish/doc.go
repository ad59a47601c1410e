// Package publish sends check results to Kafka as CheckResult events in the
// Confluent wire format, with the schema registered in the Schema Registry
// (twmb/franz-go examples/schema_registry).
//
// Checks never wait for Kafka: Publish puts a result in a bounded memory
// buffer and returns. A writer encodes the results and appends them to the
// on-disk spool (package spool); a pump reads the spool oldest first into
// the franz-go producer (idempotent, acks=all) and removes a record only
// once Kafka acknowledged it. While Kafka is away the spool grows up to its
// cap, then drops its oldest records; a restarted prober delivers what its
// predecessor spooled. When the spool cannot write (a full disk), or
// without a spool, results go from memory straight to the producer and the
// memory buffer drops its oldest when full. Every drop is counted by
// reason.
package publish
