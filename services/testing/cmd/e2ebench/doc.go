// Command e2ebench measures the delay from a check's start to its committed
// row with the real binaries as separate processes: a prober checking
// -targets targets every -interval against -url, and a recorder storing
// them into a fresh database, through a fresh topic on the stack of the
// environment (.stack/env). The delay is the recorder's own histogram
// sitewatch_recorder_end_to_end_delay_seconds (an event's started_at to the
// commit of the transaction that stored it), taken as the difference of two
// scrapes around the measured time, so quantiles are interpolated within its
// buckets and printed with the bucket's bounds.
//
//	e2ebench -prober bin/prober -recorder bin/recorder -url http://127.0.0.1:8080/ -targets 1000 -interval 1s
//
// It prints figures as "key value" lines for deploy/bench/bench.sh and
// leaves nothing behind: the topics, the schema subject and the database are
// removed at the end.
package main
