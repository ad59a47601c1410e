package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/prober/internal/schedule"
)

var reloadSizes = flag.String("reload-sizes", "10000,100000", "BenchmarkReload: the numbers of targets removed and added, comma-separated")

// BenchmarkReload measures a whole reload (read, parse, forget the metric
// series of the removed targets, reschedule) of a file of N targets replaced
// by one of 2 (remove) and of 2 replaced by N (add). Before each timed
// reload, every current target has the series a running prober gives it
// (a check counter, a skip counter, a certificate expiry).
// task bench runs it with -benchtime 3x and reports ns/op; parse-ns/op is
// the share of the parse alone.
func BenchmarkReload(b *testing.B) {
	var sizes []int
	for _, s := range strings.Split(*reloadSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 3 {
			b.Fatalf("-reload-sizes: %q is not a number of targets above 2", s)
		}
		sizes = append(sizes, n)
	}
	for _, n := range sizes {
		many, two := targetsFile(n), targetsFile(2)
		for _, step := range []struct {
			name     string
			from, to []byte
		}{
			{"remove", many, two},
			{"add", two, many},
		} {
			b.Run(fmt.Sprintf("%s_%d", step.name, n), func(b *testing.B) {
				path := filepath.Join(b.TempDir(), "targets.yaml")
				sched := schedule.New(func(context.Context, *targets.Target) {}, schedule.Options{Concurrency: 1})
				m := newMetrics(prometheus.NewRegistry())
				rl := &reloader{path: path, sched: sched, metrics: m, logger: slog.New(slog.DiscardHandler)}
				var parse time.Duration
				for b.Loop() {
					b.StopTimer()
					rl.last = nil
					write(b, path, step.from)
					rl.reload("bench")
					// The series of the current targets, as checks leave them.
					f, err := targets.Parse(path, step.from)
					if err != nil {
						b.Fatal(err)
					}
					for _, t := range f.Targets {
						m.checks.WithLabelValues(t.ID, "up", "none").Inc()
						m.skipped.WithLabelValues(t.ID, "overlap").Inc()
						m.certExpiry.WithLabelValues(t.ID).Set(4e9)
					}
					write(b, path, step.to)
					start := time.Now()
					if _, err := targets.Parse(path, step.to); err != nil {
						b.Fatal(err)
					}
					parse += time.Since(start)
					b.StartTimer()
					rl.reload("bench")
				}
				b.StopTimer()
				if got, want := sched.Len(), strings.Count(string(step.to), "- id:"); got != want {
					b.Fatalf("%d targets after the reload, want %d", got, want)
				}
				b.ReportMetric(float64(parse.Nanoseconds())/float64(b.N), "parse-ns/op")
			})
		}
	}
}

// targetsFile returns a targets file of n https targets on 127.0.0.1.
func targetsFile(n int) []byte {
	var sb strings.Builder
	sb.WriteString("defaults:\n  interval: 60s\n  timeout: 5s\ntargets:\n")
	for i := range n {
		fmt.Fprintf(&sb, "  - id: site-%d\n    url: https://127.0.0.1:%d/health\n", i, 1024+i%60000)
	}
	return []byte(sb.String())
}

func write(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}
