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
// the CPU measured by getrusage is the prober's alone. Kafka and the
// registry come from the environment (.stack/env); the topic is new for
// each run. Only loopback addresses are used.
package main
