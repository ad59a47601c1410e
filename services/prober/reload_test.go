package main

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/prober/internal/schedule"
)

func TestReloadKeepsTheOldTargetsWhenTheFileIsBad(t *testing.T) {
	const one = "targets:\n  - id: a\n    url: http://127.0.0.1:1/\n"
	const two = "targets:\n  - id: a\n    url: http://127.0.0.1:1/\n  - id: b\n    url: http://127.0.0.1:2/\n"
	path := writeFile(t, one)
	file, err := targets.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sched := schedule.New(func(context.Context, *targets.Target) {}, schedule.Options{Concurrency: 1})
	sched.Set(file.Targets)
	m := newMetrics(prometheus.NewRegistry())
	rl := &reloader{path: path, last: []byte(one), sched: sched, metrics: m, logger: slog.New(slog.DiscardHandler)}
	rl.forget(file.Targets)

	steps := []struct {
		name        string
		content     string
		targets     int
		ok, errored float64
	}{
		{"unchanged content is no reload", one, 1, 0, 0},
		{"a valid change applies", two, 2, 1, 0},
		{"an invalid file keeps the old targets", "targets:\n  - id: a\n    url: nope\n", 2, 1, 1},
		{"an empty file keeps the old targets", "", 2, 1, 2},
		{"a valid file again applies", one, 1, 2, 2},
	}
	for _, s := range steps {
		if err := os.WriteFile(path, []byte(s.content), 0o644); err != nil {
			t.Fatal(err)
		}
		rl.reload("test")
		ok := testutil.ToFloat64(m.reloads.WithLabelValues("ok"))
		errored := testutil.ToFloat64(m.reloads.WithLabelValues("error"))
		if sched.Len() != s.targets || ok != s.ok || errored != s.errored {
			t.Errorf("%s: %d targets, reloads ok %v error %v; want %d, %v, %v", s.name, sched.Len(), ok, errored, s.targets, s.ok, s.errored)
		}
	}
}
