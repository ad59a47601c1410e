// Command recorderbench measures the recorder against the real stack (the
// variables of .stack/env): it produces a backlog of events into a fresh
// topic, drains it with the recorder's consumer and store (in process, as
// `recorder` wires them) into a fresh database and checks the rollups are
// exact; as anchors, it COPYs the same rows into a table without keys and
// into one keyed, indexed and partitioned like check_results, in the same
// (scratch) database; then it produces at a steady rate and measures the
// delay from each event's started_at to the commit of the transaction that
// stored it.
//
//	go run ./services/recorder/cmd/recorderbench -events 1000000 -rate 1000 -rate-for 30s
//
// It leaves nothing behind (-keep keeps the database and topics). It stays
// in the recorder's module, not in services/testing with e2ebench: it drives
// the recorder's internal packages, which Go lets only code under
// services/recorder import.
//
// # Output
//
// Progress goes to stderr; one JSON object to stdout:
//
//	events, targets, partitions, batch, gomaxprocs   the run's set-up
//	load_before, load_after               /proc/loadavg's 1, 5 and 15 minute figures
//	produce_s, produce_per_s              producing the backlog (the benchmark's producer)
//	drain_s, drain_per_s                  the recorder's drain from its first commit to the last event
//	drain_total_s, drain_total_per_s      the same from its start, incl. joining the group
//	rss_max_mib                           this process's largest VmRSS while draining, sampled every 100 ms (the recorder plus the idle producer)
//	heap_end_mib                          Go heap in use at the end of the drain
//	rollups_exact                         raw rows = sum(checks) = sum(histogram) = events, and every (target, hour) matches a GROUP BY of the raw rows (the run fails otherwise)
//	copy_s, copy_per_s                    anchor: binary COPY of the same rows into a table without keys or indexes, same database
//	keyed_copy_s, keyed_copy_per_s        storage anchor: binary COPY into a table LIKE check_results INCLUDING ALL with the same daily partitions
//	e2e                                   with -rate above 0: {rate, for_s, events, p50_ms, p99_ms, max_ms}, started_at to transaction commit
package main
