package evaluate_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sitewatch/sitewatch/services/alerter/internal/evaluate"
	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// Whatever the events and the policy, incidents keep their invariants:
// confirmed at or after started, resolved at or after confirmed, an ID
// never reused, transitions numbered from 0 without a gap, one open
// incident per kind, and each incident opened before it resolves.
func FuzzApply(f *testing.F) {
	f.Add([]byte("FFFSSFFFSS"), uint8(3), uint8(3), uint8(2), uint8(1), uint8(10))
	f.Add([]byte("FSFSFFFFSSSFFF"), uint8(2), uint8(5), uint8(1), uint8(2), uint8(0))
	f.Add([]byte{0, 1, 2, 3, 250, 251, 252, 253}, uint8(1), uint8(1), uint8(1), uint8(0), uint8(3))
	f.Fuzz(func(t *testing.T, steps []byte, threshold, window, success, regions, reminder uint8) {
		a := &targets.Alert{FailureThreshold: int(threshold%5) + 1, SuccessThreshold: int(success%4) + 1,
			Regions: int(regions%4) - 1, ReminderInterval: time.Duration(reminder%20) * time.Minute, TLSExpiryDays: 14,
			Notify: []string{"hook"}}
		a.FailureWindow = a.FailureThreshold + int(window%4)
		if a.Regions == 0 {
			a.Regions = targets.AllRegions
		}
		p := evaluate.Policy{Alert: a}
		var st evaluate.State
		opened := map[string]bool{}
		next := map[string]int{} // incident ID -> next seq
		for i, b := range steps {
			// A byte: the region (2 bits), outcome (1 bit), certificate
			// (1 bit), and how far back in time it is (the rest: late
			// events too).
			ev := evaluate.Event{EventID: fmt.Sprintf("e%d", i), TargetID: "t", Region: []string{"a", "b", "c", "d"}[b&3],
				CheckedAt: base.Add(time.Duration(i)*time.Minute - time.Duration(b>>4)*time.Minute), Up: b&4 == 0}
			if b&8 != 0 {
				ev.CertNotAfter = ev.CheckedAt.Add(time.Duration(b>>4) * 48 * time.Hour)
			}
			res := st.Apply(ev, p, nil)
			for _, tr := range res.Transitions {
				if tr.Seq != next[tr.IncidentID] {
					t.Fatalf("event %d: %s #%d, want #%d", i, tr.Transition, tr.Seq, next[tr.IncidentID])
				}
				next[tr.IncidentID]++
				if tr.Transition == "opened" {
					if opened[tr.IncidentID] {
						t.Fatalf("event %d: incident %s opened twice", i, tr.IncidentID)
					}
					opened[tr.IncidentID] = true
				}
			}
			for _, inc := range res.Changed {
				if inc.ConfirmedAt.Before(inc.StartedAt) || (inc.ResolvedAt != nil && inc.ResolvedAt.Before(inc.ConfirmedAt)) {
					t.Fatalf("event %d: incident %+v", i, inc)
				}
			}
			if len(st.Open) > 2 {
				t.Fatalf("event %d: %d open incidents", i, len(st.Open))
			}
		}
	})
}
