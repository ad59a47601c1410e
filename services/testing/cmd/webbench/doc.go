// Command webbench measures how long the web service takes to answer its
// pages over a database the size of a real installation: -targets targets
// (1,000) with -days days (30) of hourly rollups each, two regions, some
// down, degraded and with open incidents, and 20 raw rows a target in the
// last hour. It creates a fresh database on the stack's PostgreSQL
// (DATABASE_URL), migrates it with `recorder migrate`, fills it with SQL,
// runs the web binary as a process on a free loopback port, asks each page
// -requests times in a row after a warm-up, and removes the database.
//
//	webbench -web bin/web -recorder bin/recorder -targets 1000 -days 30 -requests 100
//
// Times are taken at the client on loopback, one request at a time: the
// server's time plus well under a millisecond of transport. It prints one
// JSON object on stdout for deploy/bench/bench.sh:
//
//	targets, days, hourly_rows, load_s       the data set and the time to load it
//	requests                                 requests per page
//	pages[]                                  per page: name, path, first_ms (the first request, before
//	                                         the warm-up: the web service's caches empty), p50_ms,
//	                                         p95_ms, max_ms, bytes
//	overview_p50_ms, overview_p95_ms,        the same figures of `/` (first page of 100 targets)
//	overview_first_ms
//	web_rss_mib                              the web process's largest VmRSS afterwards
package main
