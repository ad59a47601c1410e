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
// It leaves nothing behind: the topics, the schema subject and the database
// are removed at the end. It prints one JSON object on stdout for
// deploy/bench/bench.sh:
//
//	offered_per_s, measured_s            the load offered (targets ÷ interval) and the measured time after the warm-up
//	checks_per_s, stored_per_s           the prober's checks and the recorder's stored rows per second while measuring
//	delay_p50_ms, delay_p99_ms           check start to committed row, interpolated within the histogram's buckets
//	delay_p50_bucket_ms, ..._p99_...     [lower, upper] bounds of the bucket each quantile fell in, ms
//	prober_cpu_ms_per_check              the prober process's user+system CPU per check (/proc/PID/stat)
//	recorder_cpu_ms_per_event            the recorder process's CPU per stored row
//	prober_rss_mib, recorder_rss_mib     the largest VmRSS of each process, sampled every 100 ms
package main
