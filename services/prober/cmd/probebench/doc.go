// Command probebench measures the prober's real pipeline (check engine,
// scheduler, encoding, producing to Kafka) against a local web server:
// checks per second, prober CPU per check, schedule lag, and memory.
//
//	probebench -targets 1000 -interval 1s -duration 20s      # lag at 1,000 checks/s
//	probebench -targets 10000 -interval 1s -duration 20s     # throughput and CPU at 10,000/s offered
//	probebench -targets 10000 -interval 10s -duration 30s    # RSS with 10,000 targets
//	probebench -drain 200000 -targets 1000 -interval 1s      # spool: bytes per result, drain rate
//
// Results go through the on-disk spool, as in the prober, in a temporary
// directory (-spool-dir to choose it); -no-spool keeps them in memory only,
// for the comparison.
//
// The web server is nginx when -nginx is given (started on a free port with a
// temporary configuration, serving a 2 KB page), a URL given with -url, or
// else this program started again as a separate process (-serve), so that
// the CPU measured is the prober's alone. Kafka and the registry come from
// the environment (.stack/env); the topic is new for each run. Only loopback
// addresses are used.
//
// It stays in the prober's module, not in services/testing with the other
// benchmark programs: it drives the prober's internal packages, which Go
// lets only code under services/prober import.
//
// # Output
//
// One JSON object on stdout (progress and errors go to stderr). A run:
//
//	targets, interval_s, offered_per_s   the load offered (targets ÷ interval)
//	measured_s                           the measured time, after the warm-up
//	checks, up, skipped, checks_per_s    checks completed while measuring, those up, runs the scheduler skipped (a target's previous check still running)
//	kafka, spool                         whether results were produced (-no-kafka: false) and went through the spool (-no-spool: false)
//	produced_per_s, topic                results Kafka acknowledged per second, and the run's topic (0 and "" without Kafka)
//	cpu_user_s, cpu_system_s             this process's CPU time while measuring (/proc/self/stat)
//	cpu_ms_per_check, core_pct           CPU per completed check, and CPU time ÷ measured time in percent of one core
//	lag_p50_ms, lag_p99_ms, lag_max_ms   schedule lag (start of a run after its due time), rounded to 10 µs; lag_runs: runs counted
//	rss_mib, peak_rss_mib                VmRSS at the end and VmHWM (peak)
//
// A -drain run:
//
//	spooled, fill_s, dropped             results spooled with Kafka unreachable, how long that took, results dropped
//	bytes_per_result, spool_mib          segment bytes per spooled result, and in all
//	encoded_bytes                        a CheckResult's protobuf size, without the 6-byte framing
//	drain_per_s, drain_s                 spooled results acknowledged per second from the first acknowledgement, and that time
//	total_s                              from the start, incl. connecting and creating the topic
//	targets, interval_s                  the targets checked meanwhile
//	core_pct                             this process's CPU over total_s, in percent of one core
package main
