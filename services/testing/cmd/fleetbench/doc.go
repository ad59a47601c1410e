// Command fleetbench measures fleet mode with the real prober binary as
// separate processes: -targets targets every -interval, published with
// `prober targets apply` to a fresh targets topic (60 partitions), checked
// by -probers probers in fleet mode (one region, distinct -instance,
// -spool-dir and -listen) against nginx on -ports local ports
// (benchhost). It reads the probers' events from a fresh check-results
// topic itself (no recorder) and counts distinct (target, scheduled_at)
// per window of one interval, in which every target has exactly one slot.
//
//	fleetbench -prober bin/prober -targets 100000 -interval 60s -probers 4 -session-timeout 10s
//
// The timeline: all probers ready, -warmup, then three windows of one
// interval each: steady (CPU and RSS of each prober, /proc via benchhost),
// kill (the first prober gets SIGKILL at its start), join (a new prober
// starts at its start); then the run waits for the last slots' events and
// stops the probers with SIGTERM. The group's state is polled with
// DescribeGroups every 250 ms. Topics, schema subjects and the group are
// removed at the end. It prints one JSON object on stdout for
// deploy/bench/bench.sh:
//
//	targets, interval_s, probers, session_timeout_s, ports   the run's settings
//	apply_s                 `prober targets apply` of the whole file (validate, read the empty topic, publish)
//	demanded_per_s          targets ÷ interval
//	achieved_per_s          checks started in the steady window ÷ its length
//	up_fraction             share of those checks that got status 200
//	lag_p50_ms, lag_p99_ms, lag_max_ms   started_at − scheduled_at of those checks
//	event_bytes_mean        mean Kafka record value (wire-format header + encoded CheckResult) over all events
//	log_bytes_per_event     the results topic's log on the brokers (DescribeAllLogDirs, every replica, lz4
//	                        batches as the probers produce them) ÷ its records (end offsets), at the end
//	windows[]               name (steady, kill, join), expected slots (= targets), slots (distinct
//	                        (target, scheduled_at) with scheduled_at in the window), duplicates (events
//	                        beyond one per slot), completeness (slots ÷ expected)
//	per_prober[]            instance, checks (started in the steady window), cpu_ms_per_check
//	                        (user+system over the window ÷ checks), rss_mib (largest VmRSS sampled every
//	                        second in the window), peak_rss_mib (VmHWM at its end)
//	kill                    instance, targets (those it checked in the steady window), group_stable_s (kill
//	                        to the group Stable without it), first_taken_s and all_taken_s (kill to the first
//	                        and to the last first check of one of its targets by another prober), taken
//	                        (how many of its targets were checked by another prober by the end),
//	                        missed_dead and missed_others (slots of the kill window with no event, of its
//	                        targets and of the others')
//	join                    instance, group_stable_s (start to the group Stable with it),
//	                        first_check_s (start to its first check), targets (distinct targets it checked),
//	                        missed (slots of the join window with no event), missed_moved (of those, the
//	                        targets it checked: moved to it)
package main
