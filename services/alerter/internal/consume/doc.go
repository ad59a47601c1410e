// Package consume is the alerter's consumer of check-results: a member of
// the group sitewatch-alerter (franz-go, cooperative-sticky). Records are
// keyed by target ID, so all regions' results for a target reach one
// owner. Each poll's events are evaluated (package evaluate) and their
// effects stored in one PostgreSQL transaction with the partitions' next
// offsets (package store); the offsets Kafka holds for the group are not
// used. On assignment a partition is read from its offset in PostgreSQL,
// and each target's state is loaded from there when its first event
// arrives, so that a killed alerter's successor, or a partition's next
// owner, continues exactly where the last stored batch ended.
package consume
