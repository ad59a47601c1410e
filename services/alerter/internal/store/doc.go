// Package store is the alerter's PostgreSQL side: the incidents, their
// transitions and the notification outbox (migration 00011), the
// evaluator's state per target and the offsets of the events it reflects
// (migration 00015). Write stores one batch of events' effects in one
// transaction, fenced by the offsets it starts from, so that every effect
// is stored once whatever Kafka redelivers and whichever alerter owns a
// partition. The migrations are the recorder's to apply: SchemaReady tells
// whether they have been.
package store
