package backtest_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/alerter/internal/alertertest"
	"github.com/sitewatch/sitewatch/services/alerter/internal/backtest"
	"github.com/sitewatch/sitewatch/services/alerter/internal/evaluate"
	"github.com/sitewatch/sitewatch/services/alerter/internal/notify"
	"github.com/sitewatch/sitewatch/services/alerter/internal/policy"
	"github.com/sitewatch/sitewatch/services/internal/targets"
)

func policies() *policy.Set {
	alert := func(threshold, window, success, regions int, reminder time.Duration, tlsDays int) *targets.Alert {
		return &targets.Alert{FailureThreshold: threshold, FailureWindow: window, SuccessThreshold: success, Regions: regions,
			ReminderInterval: reminder, TLSExpiryDays: tlsDays, Notify: []string{"hook"}}
	}
	return policy.FromFile(&targets.File{
		Targets: []*targets.Target{
			{ID: "consecutive", Alert: alert(3, 3, 2, 1, 10*time.Minute, 0)},
			{ID: "m-of-n", Alert: alert(3, 5, 3, 1, 0, 0)},
			{ID: "quorum", Regions: []string{"eu", "us"}, Alert: alert(2, 3, 2, 2, 15*time.Minute, 0)},
			{ID: "all", Alert: alert(2, 2, 1, targets.AllRegions, 0, 14)},
			{ID: "off"},
		},
		Channels: []*targets.Channel{{Name: "hook", Type: targets.ChannelWebhook}},
	})
}

// schedule returns two hours of checks, one a minute per target and
// region, whose outcomes follow a seeded random walk: outages of a few
// minutes, and flapping. The certificate of "all" is renewed after an hour.
func schedule(base time.Time) []*sitewatchv1.CheckResult {
	rng := rand.New(rand.NewPCG(11, 42))
	// Of its own: the walk stays the same.
	dups := rand.New(rand.NewPCG(7, 7))
	ids := []string{"all", "consecutive", "m-of-n", "off", "quorum"}
	down := map[string]bool{}
	var out []*sitewatchv1.CheckResult
	n := 0
	for m := range 120 {
		for _, id := range ids {
			for _, region := range []string{"eu", "us"} {
				key := id + "/" + region
				// 1 in 8 to fail when up, 1 in 3 to recover when down.
				if down[key] {
					down[key] = rng.IntN(3) != 0
				} else {
					down[key] = rng.IntN(8) == 0
				}
				n++
				at := base.Add(time.Duration(m) * time.Minute)
				ev := &sitewatchv1.CheckResult{
					EventId:      fmt.Sprintf("00000000-0000-7000-8000-%012d", n),
					Target:       &sitewatchv1.Target{Id: id, Url: "http://127.0.0.1:1/" + id},
					Prober:       &sitewatchv1.Prober{Instance: "p-" + region, Region: region},
					StartedAt:    timestamppb.New(at),
					ResponseTime: durationpb.New(time.Millisecond),
					Outcome:      sitewatchv1.Outcome_OUTCOME_UP,
				}
				if down[key] {
					ev.Outcome, ev.FailureKind = sitewatchv1.Outcome_OUTCOME_DOWN, sitewatchv1.FailureKind_FAILURE_KIND_CONNECT
					ev.Error = fmt.Sprintf("connection refused (%s, minute %d)", region, m)
				} else if id == "all" {
					expires := at.Add(10 * 24 * time.Hour)
					if m >= 60 {
						expires = at.Add(90 * 24 * time.Hour)
					}
					ev.TlsCertExpiresAt = timestamppb.New(expires)
				}
				ev.ScheduledAt = timestamppb.New(at)
				out = append(out, ev)
				if dups.IntN(10) == 0 {
					// A second prober of the region checked the slot too
					// (a fleet rebalance) and saw the other outcome: the
					// recorder stores the first, the live alerter must
					// count it once too.
					dup := proto.Clone(ev).(*sitewatchv1.CheckResult)
					dup.EventId = fmt.Sprintf("00000000-0000-7000-9000-%012d", n)
					dup.Prober.Instance += "-b"
					dup.StartedAt = timestamppb.New(at.Add(20 * time.Second))
					if dup.Outcome == sitewatchv1.Outcome_OUTCOME_UP {
						dup.Outcome, dup.FailureKind, dup.Error = sitewatchv1.Outcome_OUTCOME_DOWN, sitewatchv1.FailureKind_FAILURE_KIND_CONNECT, "refused (duplicate)"
					} else {
						dup.Outcome, dup.FailureKind, dup.Error = sitewatchv1.Outcome_OUTCOME_UP, sitewatchv1.FailureKind_FAILURE_KIND_UNSPECIFIED, ""
					}
					out = append(out, dup)
				}
			}
		}
	}
	return out
}

// The backtest over the stored checks reaches the same incidents and
// transitions as the live alerter over the same events on the topic.
func TestBacktestAgreesWithTheLiveAlerter(t *testing.T) {
	s := alertertest.New(t, 3)
	base := time.Now().UTC().Truncate(time.Minute).Add(-3 * time.Hour)
	evs := schedule(base)
	set := policies()
	s.Produce(evs)
	a := s.Start(set)
	s.WaitEvaluated(int64(len(evs)))
	a.Stop(t)
	stored := s.InsertChecks(evs)

	ctx := context.Background()
	rep, err := backtest.Run(ctx, s.DB, set, backtest.Options{From: base, To: base.Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) == len(evs) {
		t.Fatal("the schedule has no two events of one slot")
	}
	evaluated := 0
	for _, ev := range stored {
		if ev.GetTarget().GetId() != "off" {
			evaluated++
		}
	}
	if rep.Checks != len(stored) || rep.Evaluated != evaluated || rep.Ignored != 0 {
		t.Errorf("%d checks, %d evaluated, %d ignored; want %d, %d, 0", rep.Checks, rep.Evaluated, rep.Ignored, len(stored), evaluated)
	}
	var want []string
	kinds := map[string]int{}
	for _, inc := range rep.Incidents {
		want = append(want, incidentRow(inc.ID, inc.TargetID, inc.Kind, inc.StartedAt, inc.ConfirmedAt, inc.ResolvedAt, inc.Regions, inc.FirstError, inc.LastError))
		kinds[inc.Kind]++
	}
	slices.Sort(want)
	// The schedule must exercise the policies, or the agreement says little.
	if kinds[evaluate.KindDown] < 8 || kinds[evaluate.KindTLSExpiry] != 1 {
		t.Errorf("the schedule gives %v incidents: want at least 8 down and 1 tls_expiry", kinds)
	}
	rows, err := s.DB.Query(ctx, `SELECT incident_id, target_id, kind, started_at, confirmed_at, resolved_at, regions, first_error, last_error FROM incidents`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var id, target, kind, firstErr, lastErr string
	var started, confirmed time.Time
	var resolved *time.Time
	var regions []string
	if _, err := pgx.ForEachRow(rows, []any{&id, &target, &kind, &started, &confirmed, &resolved, &regions, &firstErr, &lastErr}, func() error {
		got = append(got, incidentRow(id, target, kind, started, confirmed, resolved, regions, firstErr, lastErr))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("live incidents:\n%s\nbacktest:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	want = want[:0]
	for _, tr := range rep.Transitions {
		want = append(want, fmt.Sprintf("%s #%d %s %s", tr.IncidentID, tr.Seq, tr.Transition, tr.At.UTC().Format(time.RFC3339)))
	}
	slices.Sort(want)
	rows, err = s.DB.Query(ctx, `SELECT incident_id, seq, transition, at FROM incident_transitions`)
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	var seq int
	var transition string
	var at time.Time
	if _, err := pgx.ForEachRow(rows, []any{&id, &seq, &transition, &at}, func() error {
		got = append(got, fmt.Sprintf("%s #%d %s %s", id, seq, transition, at.UTC().Format(time.RFC3339)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("live transitions:\n%s\nbacktest:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// -target selects one target's checks.
	one, err := backtest.Run(ctx, s.DB, set, backtest.Options{From: base, To: base.Add(2 * time.Hour), Target: "quorum"})
	if err != nil {
		t.Fatal(err)
	}
	if one.Checks != 240 {
		t.Errorf("-target quorum read %d checks, want 240", one.Checks)
	}
	for _, inc := range one.Incidents {
		if inc.TargetID != "quorum" {
			t.Errorf("-target quorum reports an incident of %s", inc.TargetID)
		}
	}
}

func incidentRow(id, target, kind string, started, confirmed time.Time, resolved *time.Time, regions []string, firstErr, lastErr string) string {
	r := "open"
	if resolved != nil {
		r = resolved.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%s %s %s started=%s confirmed=%s resolved=%s regions=%s first=%q last=%q", id, target, kind,
		started.UTC().Format(time.RFC3339), confirmed.UTC().Format(time.RFC3339), r, strings.Join(regions, ","), firstErr, lastErr)
}

func TestPrint(t *testing.T) {
	at := func(m int) time.Time { return time.Date(2026, 11, 1, 10, m, 0, 0, time.UTC) }
	resolved := at(9)
	inc := evaluate.Incident{ID: "abc", TargetID: "site", Kind: "down", StartedAt: at(1), ConfirmedAt: at(3),
		ResolvedAt: &resolved, Regions: []string{"eu", "us"}, Flaps: 2}
	open := evaluate.Incident{ID: "def", TargetID: "other", Kind: "tls_expiry", StartedAt: at(5), ConfirmedAt: at(5),
		Regions: []string{"eu"}, Maintenance: "deploy"}
	tr := func(inc evaluate.Incident, seq int, kind string, m int, channels []string, suppressed string) evaluate.Transition {
		return evaluate.Transition{IncidentID: inc.ID, Seq: seq, Transition: kind, At: at(m), Channels: channels, Suppressed: suppressed,
			Notification: notify.Notification{IncidentID: inc.ID, Seq: seq, Transition: kind, TargetID: inc.TargetID}}
	}
	rep := &backtest.Report{Checks: 100, Evaluated: 80, Ignored: 1, Incidents: []evaluate.Incident{inc, open},
		Transitions: []evaluate.Transition{
			tr(inc, 0, notify.Opened, 3, []string{"hook", "pager"}, ""),
			tr(open, 0, notify.Opened, 5, nil, "deploy"),
			tr(inc, 1, notify.Resolved, 9, []string{"hook", "pager"}, ""),
		}}
	var b bytes.Buffer
	if err := rep.Print(&b, backtest.Options{From: at(0), To: at(30)}); err != nil {
		t.Fatal(err)
	}
	want := `backtest 2026-11-01T10:00:00Z to 2026-11-01T10:30:00Z: 100 checks, 80 evaluated (1 ignored as late), 2 incidents

INCIDENT  TARGET  KIND        STARTED               CONFIRMED             RESOLVED              TIME TO DETECT  FLAPS  REGIONS  MAINTENANCE
abc       site    down        2026-11-01T10:01:00Z  2026-11-01T10:03:00Z  2026-11-01T10:09:00Z  2m0s            2      eu,us    
def       other   tls_expiry  2026-11-01T10:05:00Z  2026-11-01T10:05:00Z  open                  0s              0      eu       deploy

notifications it would send (none is sent):
  hook: 2
    2026-11-01T10:03:00Z  opened   site abc (abc/0-opened/hook)
    2026-11-01T10:09:00Z  resolved site abc (abc/1-resolved/hook)
  pager: 2
    2026-11-01T10:03:00Z  opened   site abc (abc/0-opened/pager)
    2026-11-01T10:09:00Z  resolved site abc (abc/1-resolved/pager)
  not notified: 1
    2026-11-01T10:05:00Z  opened   other def (deploy)
`
	if b.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", b.String(), want)
	}
}
