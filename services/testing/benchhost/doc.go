// Package benchhost is what the benchmark programs (probebench,
// recorderbench, e2ebench) and deploy/bench/bench.sh (through
// cmd/benchhost) measure on and start on the host, written once: a free
// loopback address, a process's CPU time and memory from /proc, the
// benchmark page, and nginx serving it with a configuration of its own.
// Linux only, as the benchmarks are.
package benchhost
