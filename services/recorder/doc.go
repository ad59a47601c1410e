// Command recorder consumes CheckResult events from Kafka into PostgreSQL.
//
//	recorder [flags]                apply migrations, then consume
//	recorder migrate                only apply migrations
//	recorder [flags] reset-offsets  rewind the group to the earliest offsets (recorders stopped), to replay
package main
