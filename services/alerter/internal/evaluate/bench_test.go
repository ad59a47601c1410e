package evaluate_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sitewatch/sitewatch/services/alerter/internal/evaluate"
	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// BenchmarkApply evaluates one event of 1,000 targets checked from two
// regions, 1 check in 10 failing, under a 3-of-5 quorum-2 policy with
// reminders: the evaluator's share of the alerter's drain rate.
func BenchmarkApply(b *testing.B) {
	p := evaluate.Policy{Alert: &targets.Alert{FailureThreshold: 3, FailureWindow: 5, SuccessThreshold: 2, Regions: 2,
		ReminderInterval: time.Hour, TLSExpiryDays: 14, Notify: []string{"hook"}}}
	rng := rand.New(rand.NewPCG(1, 2))
	const targetsN = 1000
	states := make([]evaluate.State, targetsN)
	evs := make([]evaluate.Event, 1<<16)
	for i := range evs {
		evs[i] = evaluate.Event{EventID: fmt.Sprintf("e%d", i), TargetID: fmt.Sprintf("t%d", i%targetsN),
			Region: []string{"eu", "us"}[i/targetsN%2], CheckedAt: base.Add(time.Duration(i/(2*targetsN)) * time.Minute),
			Up: rng.IntN(10) != 0, CertNotAfter: base.Add(90 * 24 * time.Hour)}
		if !evs[i].Up {
			evs[i].FailureKind, evs[i].Error = "timeout", "deadline exceeded"
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ev := evs[i%len(evs)]
		ev.CheckedAt = ev.CheckedAt.Add(time.Duration(i/len(evs)) * 24 * time.Hour)
		states[i%targetsN].Apply(ev, p, nil)
	}
}
