// Command benchhost gives deploy/bench/bench.sh what the benchmark programs
// take from package benchhost, so that the script does not write it again:
//
//	benchhost nginx -ports 10   # nginx serving the benchmark page on 10 free ports
//	benchhost proc PID          # a process's CPU time and memory
//	benchhost addr              # a free 127.0.0.1 address: {"addr": "127.0.0.1:40123"}
//
// `nginx` prints one JSON line, then runs until SIGTERM or SIGINT and stops
// nginx:
//
//	{"pid": 1234, "page_bytes": 2269, "version": "1.22.1", "urls": ["http://127.0.0.1:40123/index.html", ...]}
//
// `proc` prints one JSON line:
//
//	{"pid": 1234, "cpu_s": 12.34, "rss_mib": 20.1, "peak_rss_mib": 25.3}
//
// with cpu_s the user+system time so far and the memory VmRSS and VmHWM.
package main
