package main

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/prober/internal/check"
	"github.com/sitewatch/sitewatch/services/prober/internal/schedule"
)

// TestEventsCarryTheirSlots runs the worker under the scheduler on the real
// clock of a bubble: each published result, and its event, carries the
// slot it was due at, not the time it started.
func TestEventsCarryTheirSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now() // 2000-01-01T00:00:00Z, a whole minute
		var mu sync.Mutex
		var got []time.Time
		w := &worker{
			probe: func(ctx context.Context, tg *targets.Target) check.Result {
				time.Sleep(time.Second) // a check takes time
				return check.Result{Target: tg, StartedAt: time.Now().Add(-time.Second), Outcome: sitewatchv1.Outcome_OUTCOME_UP}
			},
			publish: func(r check.Result) {
				e := r.Event(&sitewatchv1.Prober{Instance: "p1"})
				if !e.GetScheduledAt().AsTime().Equal(r.ScheduledAt) {
					t.Errorf("event scheduled_at %v, result %v", e.GetScheduledAt().AsTime(), r.ScheduledAt)
				}
				mu.Lock()
				got = append(got, r.ScheduledAt)
				mu.Unlock()
			},
			metrics: newMetrics(prometheus.NewRegistry()),
			logger:  slog.New(slog.DiscardHandler),
		}
		ts := []*targets.Target{{ID: "a", URL: "http://127.0.0.1:1/", Interval: time.Minute, Timeout: time.Second}}
		w.metrics.setTargets(ts)
		sched := schedule.New(w.check, schedule.Options{Concurrency: 1})
		sched.Set(ts)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		sched.Run(ctx)
		// The offset of "a" in a minute: FNV-1a 64 of "a" modulo 1m.
		off := 20_555_641_996 * time.Nanosecond
		want := []time.Time{start.Add(off), start.Add(off + time.Minute)}
		mu.Lock()
		defer mu.Unlock()
		if len(got) != len(want) || !got[0].Equal(want[0]) || !got[1].Equal(want[1]) {
			t.Errorf("results scheduled at %v, want %v", got, want)
		}
	})
}
