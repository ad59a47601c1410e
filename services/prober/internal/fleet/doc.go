// Package fleet is the prober's side of the targets topic (docs/design.md,
// "Fleet"): `prober targets apply FILE` publishes the difference between a
// targets file and what the topic holds, `prober targets list` prints what
// it holds. A Member is a prober in fleet mode: in its region's consumer
// group on the topic, it gives the scheduler the targets of the partitions
// Kafka assigns it that are in its region, and stops them (waiting for
// their running checks) before it lets a partition go.
package fleet
