package main

import (
	"testing"
	"time"
)

// analyze counts slots per window by scheduled time, the victim's targets
// by who checked them in the steady window, and what nobody checked.
func TestAnalyze(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	s := func(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }
	tl := timeline{interval: 10 * time.Second, steady: t0, kill: s(10), join: s(20)}
	ev := func(target, inst string, sched float64) event {
		return event{target: target, instance: inst, scheduled: s(sched), started: s(sched + 0.01), up: true}
	}
	events := []event{
		// steady: a by p1, b by p1 and p2 (counted twice; p2 last), c by p1.
		ev("a", "p1", 1), ev("b", "p1", 2), ev("b", "p2", 2), ev("c", "p1", 3),
		// kill of p1: a taken by p2 at 11 s; c missed; b checked.
		ev("a", "p2", 11), ev("b", "p2", 12),
		// join of p3: c by p3 (first check 3 s after the join), a by p2; b missed.
		ev("a", "p2", 21), ev("c", "p3", 23),
	}
	states := []groupState{
		{at: s(12), state: "Stable", members: []string{"p1", "p2"}},
		{at: s(14), state: "PreparingRebalance", members: []string{"p2"}},
		{at: s(15), state: "Stable", members: []string{"p2"}},
		{at: s(21), state: "Stable", members: []string{"p2"}},
		{at: s(22), state: "Stable", members: []string{"p2", "p3"}},
	}
	rep := analyze(collected{events: events, bytes: 8 * 200}, states, tl, []string{"a", "b", "c"}, "p1", "p3")

	want := []window{
		{Name: "steady", Expected: 3, Slots: 3, Duplicates: 1, Completeness: 1},
		{Name: "kill", Expected: 3, Slots: 2, Duplicates: 0, Completeness: 2.0 / 3},
		{Name: "join", Expected: 3, Slots: 2, Duplicates: 0, Completeness: 2.0 / 3},
	}
	for i, w := range want {
		if rep.Windows[i] != w {
			t.Errorf("window %d = %+v, want %+v", i, rep.Windows[i], w)
		}
	}
	if rep.AchievedPerS != 0.4 || rep.DemandedPerS != 0.3 || rep.EventBytesMean != 200 || rep.UpFraction != 1 {
		t.Errorf("achieved %v, demanded %v, bytes %v, up %v; want 0.4, 0.3, 200, 1", rep.AchievedPerS, rep.DemandedPerS, rep.EventBytesMean, rep.UpFraction)
	}
	if rep.steadyChecks["p1"] != 3 || rep.steadyChecks["p2"] != 1 {
		t.Errorf("steady checks %v, want p1 3, p2 1", rep.steadyChecks)
	}
	round := func(x float64) float64 { return float64(int(x*100+0.5)) / 100 }
	k := rep.Kill
	k.FirstTakenS, k.AllTakenS = round(k.FirstTakenS), round(k.AllTakenS)
	// a and c were p1's; only a was checked again (c's next slot is in the join window, by p3).
	wantKill := killFigures{Instance: "p1", Targets: 2, GroupStableS: 5, FirstTakenS: 1.01, AllTakenS: 13.01, Taken: 2, MissedDead: 1, MissedOthers: 0}
	if k != wantKill {
		t.Errorf("kill = %+v, want %+v", k, wantKill)
	}
	j := rep.Join
	j.FirstCheckS = round(j.FirstCheckS)
	wantJoin := joinFigures{Instance: "p3", GroupStableS: 2, FirstCheckS: 3.01, Targets: 1, Missed: 1, MissedMoved: 0}
	if j != wantJoin {
		t.Errorf("join = %+v, want %+v", j, wantJoin)
	}
}
