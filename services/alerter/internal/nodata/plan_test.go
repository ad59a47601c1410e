package nodata

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The decisions of a pass, without a database: each step as
// "transition target/region channels suppressed".
func TestPlan(t *testing.T) {
	pol := loadPolicies(t, `
maintenance:
  - name: deploy
    targets: [t1]
    from: 2026-11-30T09:00:00Z
    to: 2026-11-30T12:00:00Z
targets:
  - id: t1
    url: https://t1.example/
    alert: {reminder_interval: 10m, notify: [hook]}
  - id: t2
    url: https://t2.example/
    alert: {reminder_interval: 5m, notify: [am, hook]}
  - id: off
    url: https://off.example/
    alert: {no_data: false, notify: [hook]}
`)
	now := at(time.Hour)
	stale := func(id, region string) freshness {
		return freshness{TargetID: id, Region: region, Interval: time.Minute, StaleSince: at(3 * time.Minute)}
	}
	fresh := func(id, region string) freshness {
		return freshness{TargetID: id, Region: region, Interval: time.Minute, StaleSince: now.Add(time.Minute)}
	}
	openRegion := incident{ID: "R", Region: "b", StartedAt: at(3 * time.Minute), ConfirmedAt: at(4 * time.Minute),
		LastAt: at(55 * time.Minute), LastSeq: 2, Notified: map[string]string{"gone": "webhook"}}
	for _, tc := range []struct {
		name  string
		snap  snapshot
		steps []string
	}{
		{
			name: "a quiet region of targets without no_data opens nothing",
			snap: snapshot{Rows: []freshness{stale("off", "b"), stale("unknown", "b")}},
		},
		{
			name: "targets stale while the region's prober checks others: one each",
			snap: snapshot{Rows: []freshness{stale("t1", "b"), stale("t2", "b")}, Probers: map[string]time.Time{"b": now}},
			steps: []string{
				"opened t1/b [] deploy",
				"opened t2/b [am hook] ",
			},
		},
		{
			name:  "a quiet region notifies the union of its targets' channels; a window that holds only some suppresses nothing",
			snap:  snapshot{Rows: []freshness{stale("t1", "b"), stale("t2", "b"), stale("off", "b")}, Probers: map[string]time.Time{"b": at(0)}},
			steps: []string{"opened */b [am hook] "},
		},
		{
			name:  "a window that holds every target of a quiet region suppresses it",
			snap:  snapshot{Rows: []freshness{stale("t1", "b"), stale("off", "b")}, Probers: map[string]time.Time{"b": at(0)}},
			steps: []string{"opened */b [] deploy"},
		},
		{
			name: "a quiet region's reminder comes at its targets' shortest interval",
			snap: snapshot{Rows: []freshness{stale("t1", "b"), stale("t2", "b")}, Probers: map[string]time.Time{"b": at(0)},
				Incidents: []incident{openRegion}},
			steps: []string{"reminder */b [am hook] "},
		},
		{
			name: "a region that checks again resolves, telling the channels of its opening too",
			snap: snapshot{Rows: []freshness{fresh("t1", "b"), stale("t2", "b")}, Probers: map[string]time.Time{"b": now},
				Incidents: []incident{openRegion}},
			steps: []string{"resolved */b [am gone hook] "},
		},
		{
			name: "fresh targets open nothing",
			snap: snapshot{Rows: []freshness{fresh("t1", "a"), fresh("t2", "b")}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.snap.StaleAfter = 3
			steps, _ := plan(now, tc.snap, pol)
			var got []string
			for _, s := range steps {
				target := s.Notification.TargetID
				if target == "" {
					target = "*"
				}
				var names []string
				for _, c := range s.Channels {
					names = append(names, c.Name)
				}
				got = append(got, fmt.Sprintf("%s %s/%s [%s] %s", s.Transition, target, s.Region, strings.Join(names, " "), s.Suppressed))
			}
			if !reflect.DeepEqual(got, tc.steps) {
				t.Errorf("steps:\n got: %q\nwant: %q", got, tc.steps)
			}
		})
	}
}
