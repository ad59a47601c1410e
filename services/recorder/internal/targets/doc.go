// Package targets projects the compacted `targets` topic into PostgreSQL:
// one row of target_config per target ID ever configured, with its
// definition (no secrets: the URL redacted, header names only, whether there
// is a body), when it was configured and updated, and removed_at once a
// tombstone arrives.
//
// The projection reads every partition directly (no consumer group; the
// topic is small) from the offsets stored in target_config_offsets, and
// applies each fetch in one transaction that also stores the next offsets,
// under an advisory lock: every record takes effect exactly once, whichever
// recorder reads it and however often. A record that is no valid target
// (not a Target, a key other than its ID, refused by the targets file's
// rules) is skipped, logged and counted; the row keeps its last valid
// definition. Reset empties the projection so that the next run rebuilds it
// from the topic.
package targets
