// Command alertbench measures the alerter (services/alerter) as a process
// against the stack of the environment (.stack/env), on fresh topics and
// databases that it removes at the end:
//
//  1. Latency: -rate checks per second (one per target per second, each
//     target failing 3 checks in 10, so that its incidents open and resolve
//     every 10 s) produced to a topic for -rate-for; the alerter confirms
//     and notifies a local webhook receiver. The latency of an opened
//     notification is its arrival at the receiver minus its `confirmed_at`,
//     the time of the check that confirmed the incident (the producer stamps
//     each check with the time it produces it).
//
//  2. Drain: a backlog of -events check results of -targets targets (one
//     check a second each, 10% of the targets down for 5 checks) produced
//     before anything reads it; the recorder binary drains it into
//     check_results, then the alerter binary evaluates it (incidents, outbox
//     rows, deliveries to the receiver), one after the other on the same
//     machine, each timed from ready to the last event.
//
//  3. Backtest: `alerter backtest` over the -events checks the recorder
//     stored, timed.
//
//     alertbench -alerter bin/alerter -recorder bin/recorder [-events 1000000] [-targets 10000] [-rate 1000] [-rate-for 30s]
//
// It prints one JSON object on stdout for deploy/bench/bench.sh:
//
//	rate_per_s, rate_for_s                       the load of part 1
//	opened, opened_p50_ms, opened_p99_ms, opened_max_ms
//	                                             opened notifications received in part 1, confirming check to request
//	resolved, resolved_p50_ms, resolved_p99_ms   the same for resolved notifications (resolving check to request)
//	events                                       the backlog of parts 2 and 3
//	recorder_drain_s, recorder_events_per_s      the recorder's drain
//	alerter_drain_s, alerter_events_per_s        the alerter's drain
//	backlog_incidents, backlog_notifications     what the alerter made of the backlog (incidents, notifications received)
//	backtest_s, backtest_checks_per_s            the backtest over the stored checks
//	backtest_incidents                           incidents the backtest printed
package main
