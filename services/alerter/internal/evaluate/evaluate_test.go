package evaluate_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/alerter/internal/evaluate"
	"github.com/sitewatch/sitewatch/services/internal/targets"
)

var base = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

// at is minute m of the test's hour.
func at(m float64) time.Time { return base.Add(time.Duration(m * float64(time.Minute))) }

// step is one check: its region, minute, outcome ('F' failed, 'S' up) and
// optionally the days until its certificate expires.
type step struct {
	region   string
	minute   float64
	outcome  byte
	certDays float64
	id       string // "" for "e<index>"
}

// checks returns steps of one region, one a minute from minute from on,
// with the outcomes of pattern ("FFSF").
func checks(region string, from float64, pattern string) []step {
	var out []step
	for i := range len(pattern) {
		out = append(out, step{region: region, minute: from + float64(i), outcome: pattern[i]})
	}
	return out
}

func events(steps []step) []evaluate.Event {
	out := make([]evaluate.Event, len(steps))
	for i, s := range steps {
		ev := evaluate.Event{
			EventID:   s.id,
			TargetID:  "site",
			URL:       "http://127.0.0.1:8080/",
			Region:    s.region,
			CheckedAt: at(s.minute),
			Up:        s.outcome == 'S',
		}
		if ev.EventID == "" {
			ev.EventID = fmt.Sprintf("e%03d", i)
		}
		if !ev.Up {
			ev.FailureKind, ev.Error = "http_status", fmt.Sprintf("status 500 at %s", s.region)
		}
		if s.certDays != 0 {
			ev.CertNotAfter = ev.CheckedAt.Add(time.Duration(s.certDays * 24 * float64(time.Hour)))
		}
		out[i] = ev
	}
	return out
}

// minute renders t as the test's minute.
func minute(t time.Time) string {
	return strings.TrimSuffix(fmt.Sprintf("%g", t.Sub(base).Minutes()), ".0")
}

// describe renders a transition for comparison.
func describe(t evaluate.Transition) string {
	n := t.Notification
	s := fmt.Sprintf("%s %s #%d at=%s started=%s regions=%s", n.Kind, t.Transition, t.Seq, minute(t.At),
		minute(n.StartedAt), strings.Join(t.Regions, ","))
	if t.Suppressed != "" {
		s += " suppressed=" + t.Suppressed
	} else {
		s += " to=" + strings.Join(t.Channels, ",")
	}
	return s
}

func policy(mod func(a *targets.Alert)) evaluate.Policy {
	a := &targets.Alert{FailureThreshold: 3, FailureWindow: 3, SuccessThreshold: 2, Regions: 1, Notify: []string{"hook"}}
	if mod != nil {
		mod(a)
	}
	return evaluate.Policy{Alert: a}
}

// run applies the steps to a fresh state and returns the transitions
// described, and the number of events ignored.
func run(steps []step, p evaluate.Policy, maint evaluate.Maintenance) ([]string, int, *evaluate.State) {
	var st evaluate.State
	var got []string
	ignored := 0
	opened := map[string]bool{}
	for _, ev := range events(steps) {
		res := st.Apply(ev, p, maint)
		if res.Ignored {
			ignored++
		}
		for _, t := range res.Transitions {
			got = append(got, describe(t))
			if t.Transition == "opened" {
				if opened[t.IncidentID] {
					got = append(got, "the ID of an earlier incident: "+t.IncidentID)
				}
				opened[t.IncidentID] = true
			}
		}
	}
	return got, ignored, &st
}

func concat(parts ...[]step) []step { return slices.Concat(parts...) }

// interleave returns the steps in the order of their minutes, as probers
// publish them (the order of parts within a minute).
func interleave(parts ...[]step) []step {
	all := slices.Concat(parts...)
	slices.SortStableFunc(all, func(a, b step) int { return cmp.Compare(a.minute, b.minute) })
	return all
}

func TestApply(t *testing.T) {
	deploy := func(from, to float64) evaluate.Maintenance {
		return func(t time.Time) string {
			if !t.Before(at(from)) && t.Before(at(to)) {
				return "deploy"
			}
			return ""
		}
	}
	cases := []struct {
		name    string
		steps   []step
		policy  evaluate.Policy
		maint   evaluate.Maintenance
		want    []string
		ignored int
	}{
		{
			name:  "three consecutive failures open, two successes resolve",
			steps: checks("eu", 1, "SFFFSFSS"),
			// The success at 5 breaks the recovery: 2 in a row at 7 and 8.
			policy: policy(nil),
			want: []string{
				"down opened #0 at=4 started=2 regions=eu to=hook",
				"down resolved #1 at=8 started=2 regions=eu to=hook",
			},
		},
		{
			name:   "consecutive: failures broken by a success confirm nothing",
			steps:  checks("eu", 1, "FFSFFSFFSFF"),
			policy: policy(nil),
		},
		{
			name:   "M of N: 3 of the last 5",
			steps:  checks("eu", 1, "FSFSFSS"),
			policy: policy(func(a *targets.Alert) { a.FailureWindow = 5 }),
			want: []string{
				"down opened #0 at=5 started=1 regions=eu to=hook",
				"down resolved #1 at=7 started=1 regions=eu to=hook",
			},
		},
		{
			name:   "M of N: 3 of 5 not reached when failures are spread",
			steps:  checks("eu", 1, "FSSFSSFSSF"),
			policy: policy(func(a *targets.Alert) { a.FailureWindow = 5 }),
		},
		{
			name: "flapping while open: one incident, no storm of transitions",
			// Open at 3; then F S F S ... never two successes in a row.
			steps:  checks("eu", 1, "FFFSFSFSFSFSSFF"),
			policy: policy(nil),
			want: []string{
				"down opened #0 at=3 started=1 regions=eu to=hook",
				"down resolved #1 at=13 started=1 regions=eu to=hook",
			},
		},
		{
			name: "flapping site: after recovery the window starts empty",
			// 3 of 5, one success resolves: without the fresh window the
			// failure at 7 would open again at once.
			steps: checks("eu", 1, "FFFSFSFSF"),
			policy: policy(func(a *targets.Alert) {
				a.FailureWindow = 5
				a.SuccessThreshold = 1
			}),
			want: []string{
				"down opened #0 at=3 started=1 regions=eu to=hook",
				"down resolved #1 at=4 started=1 regions=eu to=hook",
				"down opened #0 at=9 started=5 regions=eu to=hook",
			},
		},
		{
			name:   "2-region quorum: one region down opens nothing",
			steps:  concat(checks("eu", 1, "FFFFFSS"), checks("us", 1, "SSSSSSS")),
			policy: policy(func(a *targets.Alert) { a.Regions = 2 }),
		},
		{
			name: "2-region quorum: the second region down opens one incident",
			steps: concat(checks("eu", 1, "FFFFFF"), checks("us", 2, "FFF"),
				checks("eu", 7, "SS"), checks("us", 10, "SS")),
			policy: policy(func(a *targets.Alert) { a.Regions = 2 }),
			want: []string{
				// started at eu's first failure, confirmed by us's third.
				"down opened #0 at=4 started=1 regions=eu,us to=hook",
				"down resolved #1 at=8 started=1 regions=eu,us to=hook",
			},
		},
		{
			name:   "quorum: a region still down when an incident resolves starts the next from its next failure",
			steps:  interleave(checks("eu", 1, "FFFFFFFFFF"), checks("us", 1, "FFFSS"), checks("ap", 1, "SSSSSFFF")),
			policy: policy(func(a *targets.Alert) { a.Regions = 2 }),
			want: []string{
				"down opened #0 at=3 started=1 regions=eu,us to=hook",
				"down resolved #1 at=5 started=1 regions=eu,us to=hook",
				"down opened #0 at=8 started=6 regions=ap,eu to=hook",
			},
		},
		{
			name: "all regions: every region that reported",
			steps: concat(checks("eu", 1, "S"), checks("us", 1, "S"), checks("ap", 1, "S"),
				checks("eu", 2, "FFF"), checks("us", 2, "FFF"), checks("ap", 2, "FF"), checks("ap", 4, "F")),
			policy: policy(func(a *targets.Alert) { a.Regions = targets.AllRegions }),
			want:   []string{"down opened #0 at=4 started=2 regions=ap,eu,us to=hook"},
		},
		{
			name:  "all regions: the target's listed regions",
			steps: concat(checks("eu", 1, "FFF"), checks("us", 1, "FFF")),
			policy: evaluate.Policy{Regions: []string{"eu", "us"}, Alert: policy(func(a *targets.Alert) {
				a.Regions = targets.AllRegions
			}).Alert},
			want: []string{"down opened #0 at=3 started=1 regions=eu,us to=hook"},
		},
		{
			name:  "all regions: a listed region that never reported keeps it closed",
			steps: checks("eu", 1, "FFFFF"),
			policy: evaluate.Policy{Regions: []string{"eu", "us"}, Alert: policy(func(a *targets.Alert) {
				a.Regions = targets.AllRegions
			}).Alert},
		},
		{
			name:   "reminders by check time while open",
			steps:  checks("eu", 1, strings.Repeat("F", 25)+"SS"),
			policy: policy(func(a *targets.Alert) { a.ReminderInterval = 10 * time.Minute }),
			want: []string{
				"down opened #0 at=3 started=1 regions=eu to=hook",
				"down reminder #1 at=13 started=1 regions=eu to=hook",
				"down reminder #2 at=23 started=1 regions=eu to=hook",
				"down resolved #3 at=27 started=1 regions=eu to=hook",
			},
		},
		{
			name: "certificate expiry opens within the days and resolves when renewed",
			steps: []step{
				{region: "eu", minute: 1, outcome: 'S', certDays: 20},
				{region: "eu", minute: 2, outcome: 'S', certDays: 13.9},
				{region: "eu", minute: 3, outcome: 'F'}, // no certificate seen: no change
				{region: "eu", minute: 4, outcome: 'S', certDays: 13.8},
				{region: "eu", minute: 5, outcome: 'S', certDays: 90},
				{region: "eu", minute: 6, outcome: 'F'},                 // no certificate: the count goes on
				{region: "eu", minute: 7, outcome: 'S', certDays: 89.9}, // success_threshold (2) renewed in a row
			},
			policy: policy(func(a *targets.Alert) { a.TLSExpiryDays = 14 }),
			want: []string{
				"tls_expiry opened #0 at=2 started=2 regions=eu to=hook",
				"tls_expiry resolved #1 at=7 started=2 regions=eu to=hook",
			},
		},
		{
			name:   "certificate expiry off",
			steps:  []step{{region: "eu", minute: 1, outcome: 'S', certDays: 1}},
			policy: policy(nil),
		},
		{
			name:   "confirmed and resolved in maintenance: recorded, never notified",
			steps:  checks("eu", 1, "FFFFFFSS"),
			policy: policy(nil),
			maint:  deploy(0, 10),
			want: []string{
				"down opened #0 at=3 started=1 regions=eu suppressed=deploy",
				"down resolved #1 at=8 started=1 regions=eu suppressed=deploy",
			},
		},
		{
			// The outage outlasted the window: the receivers are told at
			// its first check after the window, reminders or none.
			name:   "confirmed in maintenance, still down after it: notified then",
			steps:  checks("eu", 1, "FFFFFFFFFFFFSS"),
			policy: policy(nil),
			maint:  deploy(0, 10),
			want: []string{
				"down opened #0 at=3 started=1 regions=eu suppressed=deploy",
				"down reminder #1 at=10 started=1 regions=eu to=hook",
				"down resolved #2 at=14 started=1 regions=eu to=hook",
			},
		},
		{
			name:   "confirmed in maintenance, after it with reminders: one at the end, then by interval",
			steps:  checks("eu", 1, strings.Repeat("F", 18)+"SS"),
			policy: policy(func(a *targets.Alert) { a.ReminderInterval = 5 * time.Minute }),
			maint:  deploy(0, 10),
			want: []string{
				"down opened #0 at=3 started=1 regions=eu suppressed=deploy",
				"down reminder #1 at=8 started=1 regions=eu suppressed=deploy",
				"down reminder #2 at=10 started=1 regions=eu to=hook",
				"down reminder #3 at=15 started=1 regions=eu to=hook",
				"down resolved #4 at=20 started=1 regions=eu to=hook",
			},
		},
		{
			name:   "confirmed in maintenance, no channels: no transition per check after it",
			steps:  checks("eu", 1, "FFFFFFFFFFFFSS"),
			policy: policy(func(a *targets.Alert) { a.Notify = nil }),
			maint:  deploy(0, 10),
			want: []string{
				"down opened #0 at=3 started=1 regions=eu suppressed=deploy",
				"down resolved #1 at=14 started=1 regions=eu suppressed=deploy",
			},
		},
		{
			name:   "a maintenance window during an open incident suppresses its reminders only",
			steps:  checks("eu", 1, strings.Repeat("F", 24)+"SS"),
			policy: policy(func(a *targets.Alert) { a.ReminderInterval = 10 * time.Minute }),
			maint:  deploy(10, 20),
			want: []string{
				"down opened #0 at=3 started=1 regions=eu to=hook",
				"down reminder #1 at=13 started=1 regions=eu suppressed=deploy",
				"down reminder #2 at=23 started=1 regions=eu to=hook",
				"down resolved #3 at=26 started=1 regions=eu to=hook",
			},
		},
		{
			// The receivers were told it opened: a window that began since
			// must not leave them an alert that never resolves.
			name:   "opened before a maintenance window, resolved in it: notified",
			steps:  checks("eu", 1, strings.Repeat("F", 12)+"SS"),
			policy: policy(func(a *targets.Alert) { a.ReminderInterval = 5 * time.Minute }),
			maint:  deploy(5, 20),
			want: []string{
				"down opened #0 at=3 started=1 regions=eu to=hook",
				"down reminder #1 at=8 started=1 regions=eu suppressed=deploy",
				"down reminder #2 at=13 started=1 regions=eu suppressed=deploy",
				"down resolved #3 at=14 started=1 regions=eu to=hook",
			},
		},
		{
			name:   "opened without channels, resolved in a window: no lone resolution",
			steps:  checks("eu", 1, "FFFFFSS"),
			policy: policy(func(a *targets.Alert) { a.Notify = nil }),
			maint:  deploy(5, 20),
			want: []string{
				"down opened #0 at=3 started=1 regions=eu suppressed=no channels",
				"down resolved #1 at=7 started=1 regions=eu suppressed=deploy",
			},
		},
		{
			name:   "no channels",
			steps:  checks("eu", 1, "FFF"),
			policy: policy(func(a *targets.Alert) { a.Notify = nil }),
			want:   []string{"down opened #0 at=3 started=1 regions=eu suppressed=no channels"},
		},
		{
			name: "late and repeated events are ignored",
			steps: []step{
				{region: "eu", minute: 1, outcome: 'F', id: "a"},
				{region: "eu", minute: 2, outcome: 'F', id: "b"},
				{region: "eu", minute: 1.5, outcome: 'S', id: "late"}, // older than b
				{region: "eu", minute: 2, outcome: 'F', id: "b"},      // b again
				{region: "us", minute: 0.5, outcome: 'S', id: "other region"},
				{region: "eu", minute: 3, outcome: 'F', id: "c"},
			},
			policy:  policy(nil),
			want:    []string{"down opened #0 at=3 started=1 regions=eu to=hook"},
			ignored: 2,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ignored, _ := run(c.steps, c.policy, c.maint)
			if !slices.Equal(got, c.want) {
				t.Errorf("transitions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			if ignored != c.ignored {
				t.Errorf("ignored %d events, want %d", ignored, c.ignored)
			}
		})
	}
}

// The incident's row: its fields follow from the events.
func TestIncidentFields(t *testing.T) {
	var st evaluate.State
	p := policy(func(a *targets.Alert) { a.Regions = 2 })
	evs := events(concat(checks("eu", 1, "FFFF"), checks("us", 3, "FFF"), checks("eu", 5, "FSFS"), checks("us", 7, "SS")))
	evs[0].FailureKind, evs[0].Error = "timeout", "first"
	var changed []evaluate.Incident
	for _, ev := range evs {
		changed = append(changed, st.Apply(ev, p, nil).Changed...)
	}
	if len(changed) == 0 {
		t.Fatal("no incident changed")
	}
	last := changed[len(changed)-1]
	resolved := at(8)
	want := evaluate.Incident{
		ID: evaluate.IncidentID("site", "down", "e000"), TargetID: "site", Kind: "down", URL: "http://127.0.0.1:8080/",
		StartedAt: at(1), FirstEventID: "e000", ConfirmedAt: at(5), ResolvedAt: &resolved,
		Regions: []string{"eu", "us"}, FirstFailureKind: "timeout", FirstError: "first",
		LastFailureKind: "http_status", LastError: "status 500 at eu", LastFailureAt: at(7),
		Seq: 1, LastNotice: at(5), Flaps: 1,
	}
	if g, w := fmt.Sprintf("%+v", last), fmt.Sprintf("%+v", want); g != w {
		t.Errorf("incident\n%s\nwant\n%s", g, w)
	}
	if last.TimeToDetect() != 4*time.Minute {
		t.Errorf("time to detect %s, want 4m", last.TimeToDetect())
	}
	if len(st.Open) != 0 {
		t.Errorf("still open: %v", st.Open)
	}
}

// The same events give the same incident IDs, however the state is saved
// and loaded between them; other first events give other IDs.
func TestDeterministicIDsAndSavedState(t *testing.T) {
	steps := concat(checks("eu", 1, "FFFSS"), checks("eu", 6, "FFFSS"))
	p := policy(nil)
	ids := func(save bool) []string {
		st := &evaluate.State{}
		var out []string
		for _, ev := range events(steps) {
			if save {
				b, err := json.Marshal(st)
				if err != nil {
					t.Fatal(err)
				}
				st = &evaluate.State{}
				if err := json.Unmarshal(b, st); err != nil {
					t.Fatal(err)
				}
			}
			for _, tr := range st.Apply(ev, p, nil).Transitions {
				out = append(out, tr.IncidentID+" "+tr.Transition)
			}
		}
		return out
	}
	a, b := ids(false), ids(true)
	first, second := evaluate.IncidentID("site", "down", "e000"), evaluate.IncidentID("site", "down", "e005")
	want := []string{first + " opened", first + " resolved", second + " opened", second + " resolved"}
	if !slices.Equal(a, want) || !slices.Equal(b, want) {
		t.Errorf("ids\n%v\n%v\nwant\n%v", a, b, want)
	}
	if len(first) != 32 || first == second {
		t.Errorf("ids %q and %q: want two different 32-digit IDs", first, second)
	}
	if evaluate.IncidentID("site", "tls_expiry", "e000") == first || evaluate.IncidentID("other", "down", "e000") == first {
		t.Error("the kind and the target are not part of the ID")
	}
}

func TestNotification(t *testing.T) {
	var st evaluate.State
	p := policy(func(a *targets.Alert) { a.TLSExpiryDays = 14; a.Notify = []string{"hook", "pager"} })
	ev := events([]step{{region: "eu", minute: 1, outcome: 'S', certDays: 2}})[0]
	res := st.Apply(ev, p, nil)
	if len(res.Transitions) != 1 {
		t.Fatalf("%d transitions, want 1", len(res.Transitions))
	}
	n := res.Transitions[0].Notification
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	id := evaluate.IncidentID("site", "tls_expiry", "e000")
	want := `{"incident_id":"` + id + `","transition":"opened","seq":0,"kind":"tls_expiry","target_id":"site",` +
		`"url":"http://127.0.0.1:8080/","regions":["eu"],"at":"2026-11-30T10:01:00Z","started_at":"2026-11-30T10:01:00Z",` +
		`"confirmed_at":"2026-11-30T10:01:00Z","resolved_at":null,"failure_kind":"tls_expiry",` +
		`"error":"certificate expires at 2026-12-02T10:01:00Z","cert_not_after":"2026-12-02T10:01:00Z"}`
	if string(b) != want {
		t.Errorf("notification\n%s\nwant\n%s", b, want)
	}
	if got := n.IdempotencyKey("pager"); got != id+"/0-opened/pager" {
		t.Errorf("idempotency key %q", got)
	}
	if ch := res.Transitions[0].Channels; !slices.Equal(ch, []string{"hook", "pager"}) {
		t.Errorf("channels %v", ch)
	}
}

func TestFromCheckResult(t *testing.T) {
	m := &sitewatchv1.CheckResult{
		EventId:          "0190c2b0-0000-7000-8000-000000000001",
		Target:           &sitewatchv1.Target{Id: "site", Url: "https://xxxxx@127.0.0.1/"},
		Prober:           &sitewatchv1.Prober{Instance: "p1", Region: "eu"},
		StartedAt:        timestamppb.New(at(1)),
		Outcome:          sitewatchv1.Outcome_OUTCOME_DOWN,
		FailureKind:      sitewatchv1.FailureKind_FAILURE_KIND_CONTENT_MISMATCH,
		Error:            "pattern not found",
		TlsCertExpiresAt: timestamppb.New(at(60)),
	}
	got, err := evaluate.FromCheckResult(m)
	if err != nil {
		t.Fatal(err)
	}
	want := evaluate.Event{EventID: m.EventId, TargetID: "site", URL: "https://xxxxx@127.0.0.1/", Region: "eu",
		CheckedAt: at(1), FailureKind: "content_mismatch", Error: "pattern not found", CertNotAfter: at(60)}
	if got != want {
		t.Errorf("event %+v\nwant %+v", got, want)
	}
	_, err = evaluate.FromCheckResult(&sitewatchv1.CheckResult{EventId: "x"})
	if want := `event "x": target.id is empty` + "\nstarted_at is missing\noutcome OUTCOME_UNSPECIFIED"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

// A policy reload that lowers the quorum while a region stays down from an
// incident that resolved: the region has no failure since, so nothing
// opens until it fails again (and no panic on the missing first failure).
func TestQuorumLoweredWhileARegionStaysDown(t *testing.T) {
	two := policy(func(a *targets.Alert) { a.Regions = 2 })
	one := policy(nil)
	var st evaluate.State
	var got []string
	apply := func(steps []step, p evaluate.Policy) {
		for _, ev := range events(steps) {
			ev.EventID = fmt.Sprintf("%s-%s", ev.Region, minute(ev.CheckedAt))
			for _, tr := range st.Apply(ev, p, nil).Transitions {
				got = append(got, describe(tr))
			}
		}
	}
	// eu and us down: open; us recovers at 5: resolved, eu stays down.
	apply(interleave(checks("eu", 1, "FFFFF"), checks("us", 1, "FFFSS")), two)
	// The quorum becomes 1: us up, eu's first success of two.
	apply(interleave(checks("us", 6, "S"), checks("eu", 6, "S")), one)
	// eu fails again: a new incident from that failure.
	apply(checks("eu", 7, "F"), one)
	want := []string{
		"down opened #0 at=3 started=1 regions=eu,us to=hook",
		"down resolved #1 at=5 started=1 regions=eu,us to=hook",
		"down opened #0 at=7 started=7 regions=eu to=hook",
	}
	if !slices.Equal(got, want) {
		t.Errorf("transitions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Two probers of a region that both checked one slot (a rebalance of the
// fleet) publish two events of it: one counts, as in check_results, so
// two failed slots do not confirm a threshold of three.
func TestOneResultPerSlot(t *testing.T) {
	var st evaluate.State
	p := policy(nil)
	var got []string
	ignored := 0
	for i, c := range []struct {
		slot, started float64
		outcome       byte
	}{
		{1, 1.25, 'F'},
		{1, 1.5, 'F'}, // the slot again, from another prober
		{2, 2.25, 'F'},
		{2, 2.5, 'F'},  // again
		{3, 3.25, 'F'}, // the third failed slot confirms
		{4, 4.25, 'S'},
		{4, 4.5, 'F'}, // a duplicate does not break the recovery
		{5, 5.25, 'S'},
	} {
		ev := events([]step{{region: "eu", minute: c.started, outcome: c.outcome}})[0]
		ev.EventID = fmt.Sprintf("e%d", i)
		ev.ScheduledAt = at(c.slot)
		res := st.Apply(ev, p, nil)
		if res.Ignored {
			ignored++
		}
		if res.DuplicateSlot != (c.started-c.slot == 0.5) {
			t.Errorf("event %d: DuplicateSlot %v", i, res.DuplicateSlot)
		}
		for _, tr := range res.Transitions {
			got = append(got, describe(tr))
		}
	}
	want := []string{
		"down opened #0 at=3.25 started=1.25 regions=eu to=hook",
		"down resolved #1 at=5.25 started=1.25 regions=eu to=hook",
	}
	if !slices.Equal(got, want) || ignored != 3 {
		t.Errorf("transitions:\n%s\nwant:\n%s\nignored %d, want 3", strings.Join(got, "\n"), strings.Join(want, "\n"), ignored)
	}
}

// A check evaluated too late to notify (Event.Stale: the alerter was down)
// notifies nothing, except the resolution of an incident whose opening was
// notified: receivers would keep that alert open for good.
func TestStaleChecks(t *testing.T) {
	cases := []struct {
		name  string
		stale func(minute float64) bool
		want  []string
	}{
		{
			name:  "opened in time, resolved late: the resolution is notified",
			stale: func(m float64) bool { return m > 4 },
			want: []string{
				"down opened #0 at=3 started=1 regions=eu to=hook",
				"down reminder #1 at=5 started=1 regions=eu suppressed=stale",
				"down resolved #2 at=7 started=1 regions=eu to=hook",
			},
		},
		{
			name:  "all late: nothing is notified",
			stale: func(float64) bool { return true },
			want: []string{
				"down opened #0 at=3 started=1 regions=eu suppressed=stale",
				"down reminder #1 at=5 started=1 regions=eu suppressed=stale",
				"down resolved #2 at=7 started=1 regions=eu suppressed=stale",
			},
		},
		{
			name:  "opened late, resolved in time: no lone resolution",
			stale: func(m float64) bool { return m < 6 },
			want: []string{
				"down opened #0 at=3 started=1 regions=eu suppressed=stale",
				"down reminder #1 at=5 started=1 regions=eu suppressed=stale",
				"down resolved #2 at=7 started=1 regions=eu suppressed=nothing notified before",
			},
		},
		{
			name:  "opened late, a reminder in time: it and the resolution are notified",
			stale: func(m float64) bool { return m < 5 },
			want: []string{
				"down opened #0 at=3 started=1 regions=eu suppressed=stale",
				"down reminder #1 at=5 started=1 regions=eu to=hook",
				"down resolved #2 at=7 started=1 regions=eu to=hook",
			},
		},
	}
	p := policy(func(a *targets.Alert) { a.ReminderInterval = 2 * time.Minute })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var st evaluate.State
			var got []string
			for _, ev := range events(checks("eu", 1, "FFFFFSS")) {
				ev.Stale = c.stale(ev.CheckedAt.Sub(base).Minutes())
				for _, tr := range st.Apply(ev, p, nil).Transitions {
					got = append(got, describe(tr))
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("transitions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

// A reload that lowers the quorum takes effect at the next event, which
// may be a lagging region's, earlier than the failures of the down
// region: the incident is confirmed no earlier than it started (the
// incidents table checks it; a violation would stop the partition).
func TestConfirmedNeverBeforeStarted(t *testing.T) {
	var st evaluate.State
	var got []string
	apply := func(steps []step, p evaluate.Policy) {
		for _, ev := range events(steps) {
			ev.EventID = fmt.Sprintf("%s-%s", ev.Region, minute(ev.CheckedAt))
			res := st.Apply(ev, p, nil)
			for _, tr := range res.Transitions {
				got = append(got, describe(tr))
			}
			for _, inc := range res.Changed {
				if inc.ConfirmedAt.Before(inc.StartedAt) {
					t.Errorf("confirmed at %s, before it started at %s", minute(inc.ConfirmedAt), minute(inc.StartedAt))
				}
			}
		}
	}
	apply(concat(checks("eu", 10, "FFF"), checks("us", 1, "S")), policy(func(a *targets.Alert) { a.Regions = 2 }))
	apply(checks("us", 2, "S"), policy(nil))
	want := []string{"down opened #0 at=10 started=10 regions=eu to=hook"}
	if !slices.Equal(got, want) {
		t.Errorf("transitions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Two backends (or two regions' edges) serving the old and the renewed
// certificate in turn: one incident that stays open while any check
// still sees the expiring one, resolved by success_threshold checks in a
// row that see the renewed one; not an opened/resolved pair per check.
func TestCertificateExpiryNoStorm(t *testing.T) {
	var steps []step
	for i := range 8 {
		days := 10.0 // old
		if i%2 == 1 {
			days = 90 // renewed
		}
		steps = append(steps, step{region: "eu", minute: float64(i + 1), outcome: 'S', certDays: days})
	}
	steps = append(steps, step{region: "eu", minute: 9, outcome: 'S', certDays: 90}, step{region: "eu", minute: 10, outcome: 'S', certDays: 90})
	got, _, _ := run(steps, policy(func(a *targets.Alert) { a.TLSExpiryDays = 14 }), nil)
	want := []string{
		"tls_expiry opened #0 at=1 started=1 regions=eu to=hook",
		"tls_expiry resolved #1 at=9 started=1 regions=eu to=hook",
	}
	if !slices.Equal(got, want) {
		t.Errorf("transitions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Clone copies every field: the consumer restores the clone when a batch
// is not stored.
func TestCloneCopiesAll(t *testing.T) {
	steps := []step{{region: "eu", minute: 1, outcome: 'S', certDays: 1}, {region: "eu", minute: 2, outcome: 'S', certDays: 90}}
	steps = append(steps, checks("us", 3, "FFF")...)
	_, _, st := run(steps, policy(func(a *targets.Alert) { a.TLSExpiryDays = 14 }), nil)
	want, _ := json.Marshal(st)
	got, _ := json.Marshal(st.Clone())
	if string(got) != string(want) || st.CertRenewed != 1 {
		t.Errorf("clone %s\nwant  %s", got, want)
	}
}
