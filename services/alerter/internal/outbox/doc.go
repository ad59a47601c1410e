// Package outbox delivers the rows of notification_outbox (migration 00011)
// that the evaluator writes in each transition's transaction: it claims due
// rows with FOR UPDATE SKIP LOCKED and a lease (claimed_by, claimed_until),
// so several alerters share the table and a dead one's claims expire; it
// sends each through its channel's notify.Sender and marks it delivered, or
// schedules a retry with exponential backoff and jitter, or gives up after
// the retry budget (failed_at). A transition of an incident reaches a
// channel only after the earlier ones did (or were given up): resolved never
// overtakes opened. Delivery is at least once; the receiver deduplicates by
// the row's idempotency key.
package outbox
