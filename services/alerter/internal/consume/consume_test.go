package consume_test

import (
	"context"
	"fmt"
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
	"github.com/sitewatch/sitewatch/services/alerter/internal/evaluate"
	"github.com/sitewatch/sitewatch/services/alerter/internal/policy"
	"github.com/sitewatch/sitewatch/services/alerter/internal/store"
	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// fixture is one test's stack and the start of its schedule.
type fixture struct {
	*alertertest.Stack
	t    *testing.T
	set  *policy.Set
	base time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	// Recent checks: older ones would be recorded as stale, not notified.
	return &fixture{Stack: alertertest.New(t, 2), t: t, set: Policies(),
		base: time.Now().UTC().Truncate(time.Minute).Add(-30 * time.Minute)}
}

func (f *fixture) start() *alertertest.Alerter { return f.Start(f.set) }

// Policies are those of the schedule: "quorum" must be down in both its
// regions; "single" in its one, with a reminder every 2 minutes; "off"
// has its alerts off.
func Policies() *policy.Set {
	return policy.FromFile(&targets.File{
		Targets: []*targets.Target{
			{ID: "quorum", Regions: []string{"eu", "us"}, Alert: &targets.Alert{FailureThreshold: 3, FailureWindow: 3,
				SuccessThreshold: 2, Regions: 2, Notify: []string{"hook", "pager"}}},
			{ID: "single", Alert: &targets.Alert{FailureThreshold: 3, FailureWindow: 3, SuccessThreshold: 2, Regions: 1,
				ReminderInterval: 2 * time.Minute, Notify: []string{"hook"}}},
			{ID: "off"},
		},
		Channels: []*targets.Channel{{Name: "hook", Type: targets.ChannelWebhook}, {Name: "pager", Type: targets.ChannelPagerDuty}},
	})
}

// Schedule returns the check results of the outages, minute by minute
// from base, ten minutes long, in the order probers would publish them:
//   - quorum: eu fails at minutes 1-5 (down at 3, up at 7), us at 2-4 (down
//     at 4, up at 6): one incident, opened at 4 (us) from 1 (eu), resolved
//     at 6;
//   - single: fails at 0-5: opened at 2, reminders at 4 and 6, resolved
//     at 7;
//   - off: fails throughout, never evaluated.
func Schedule(base time.Time) []*sitewatchv1.CheckResult {
	outcomes := []struct{ target, region, pattern string }{
		{"quorum", "eu", "SFFFFFSSSS"},
		{"quorum", "us", "SSFFFSSSSS"},
		{"single", "eu", "FFFFFFSSSS"},
		{"off", "eu", "FFFFFFFFFF"},
	}
	var out []*sitewatchv1.CheckResult
	n := 0
	for m := range 10 {
		for _, o := range outcomes {
			n++
			ev := &sitewatchv1.CheckResult{
				EventId:      EventID(n),
				Target:       &sitewatchv1.Target{Id: o.target, Url: "http://127.0.0.1:1/" + o.target},
				Prober:       &sitewatchv1.Prober{Instance: "p-" + o.region, Region: o.region},
				StartedAt:    timestamppb.New(base.Add(time.Duration(m) * time.Minute)),
				ResponseTime: durationpb.New(time.Millisecond),
				Outcome:      sitewatchv1.Outcome_OUTCOME_UP,
			}
			if o.pattern[m] == 'F' {
				ev.Outcome, ev.FailureKind = sitewatchv1.Outcome_OUTCOME_DOWN, sitewatchv1.FailureKind_FAILURE_KIND_HTTP_STATUS
				ev.StatusCode, ev.Error = 503, fmt.Sprintf("status 503 in %s at minute %d", o.region, m)
			}
			out = append(out, ev)
		}
	}
	return out
}

// EventID is the n-th event's ID, a UUID.
func EventID(n int) string { return fmt.Sprintf("00000000-0000-7000-8000-%012d", n) }

func minute(base, t time.Time) string { return fmt.Sprintf("%g", t.Sub(base).Minutes()) }

func incidentRow(base time.Time, inc evaluate.Incident) string {
	r := "open"
	if inc.ResolvedAt != nil {
		r = minute(base, *inc.ResolvedAt)
	}
	return fmt.Sprintf("%s %s %s started=%s first=%s confirmed=%s resolved=%s regions=%s first_failure=%s/%q last=%q",
		inc.ID, inc.TargetID, inc.Kind, minute(base, inc.StartedAt), inc.FirstEventID, minute(base, inc.ConfirmedAt), r,
		strings.Join(inc.Regions, ","), inc.FirstFailureKind, inc.FirstError, inc.LastError)
}

func transitionRow(base time.Time, id string, seq int, transition string, at time.Time, suppressed string) string {
	return fmt.Sprintf("%s #%d %s at=%s %s", id, seq, transition, minute(base, at), suppressed)
}

func outboxRow(key, channelType, transition, target string) string {
	return fmt.Sprintf("%s %s %s %s", key, channelType, transition, target)
}

// rows returns the incidents, transitions and outbox rows, rendered.
func (f *fixture) rows() (incidents, transitions, outbox []string) {
	f.t.Helper()
	ctx := context.Background()
	rows, err := f.DB.Query(ctx, `SELECT incident_id, target_id, kind, started_at, first_event_id, confirmed_at, resolved_at,
		regions, first_failure_kind, first_error, last_error FROM incidents ORDER BY target_id, started_at`)
	if err != nil {
		f.t.Fatal(err)
	}
	var id, target, kind, firstEvent, firstKind, firstErr, lastErr string
	var started, confirmed time.Time
	var resolved *time.Time
	var regions []string
	_, err = pgx.ForEachRow(rows, []any{&id, &target, &kind, &started, &firstEvent, &confirmed, &resolved, &regions, &firstKind, &firstErr, &lastErr}, func() error {
		incidents = append(incidents, incidentRow(f.base, evaluate.Incident{ID: id, TargetID: target, Kind: kind, StartedAt: started,
			FirstEventID: firstEvent, ConfirmedAt: confirmed, ResolvedAt: resolved, Regions: regions, FirstFailureKind: firstKind,
			FirstError: firstErr, LastError: lastErr}))
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	rows, err = f.DB.Query(ctx, `SELECT incident_id, seq, transition, at, coalesce(suppressed, '') FROM incident_transitions ORDER BY incident_id, seq`)
	if err != nil {
		f.t.Fatal(err)
	}
	var seq int
	var transition, suppressed string
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &seq, &transition, &at, &suppressed}, func() error {
		transitions = append(transitions, transitionRow(f.base, id, seq, transition, at, suppressed))
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	rows, err = f.DB.Query(ctx, `SELECT idempotency_key, channel_type, payload->>'transition', payload->>'target_id' FROM notification_outbox ORDER BY idempotency_key`)
	if err != nil {
		f.t.Fatal(err)
	}
	var key, typ, ptrans, ptarget string
	_, err = pgx.ForEachRow(rows, []any{&key, &typ, &ptrans, &ptarget}, func() error {
		outbox = append(outbox, outboxRow(key, typ, ptrans, ptarget))
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	// Sorted here: the database's collation may order punctuation apart.
	slices.Sort(transitions)
	slices.Sort(outbox)
	return incidents, transitions, outbox
}

// want are the rows of the schedule.
func wantRows() (incidents, transitions, outbox []string) {
	q := evaluate.IncidentID("quorum", "down", EventID(5)) // minute 1, quorum eu
	s := evaluate.IncidentID("single", "down", EventID(3)) // minute 0, single
	incidents = []string{
		q + ` quorum down started=1 first=` + EventID(5) + ` confirmed=4 resolved=6 regions=eu,us first_failure=http_status/"status 503 in eu at minute 1" last="status 503 in eu at minute 5"`,
		s + ` single down started=0 first=` + EventID(3) + ` confirmed=2 resolved=7 regions=eu first_failure=http_status/"status 503 in eu at minute 0" last="status 503 in eu at minute 5"`,
	}
	transitions = []string{
		q + " #0 opened at=4 ", q + " #1 resolved at=6 ",
		s + " #0 opened at=2 ", s + " #1 reminder at=4 ", s + " #2 reminder at=6 ", s + " #3 resolved at=7 ",
	}
	slices.Sort(transitions)
	outbox = []string{
		q + "/0-opened/hook webhook opened quorum", q + "/0-opened/pager pagerduty opened quorum",
		q + "/1-resolved/hook webhook resolved quorum", q + "/1-resolved/pager pagerduty resolved quorum",
		s + "/0-opened/hook webhook opened single", s + "/1-reminder/hook webhook reminder single",
		s + "/2-reminder/hook webhook reminder single", s + "/3-resolved/hook webhook resolved single",
	}
	slices.Sort(outbox)
	return incidents, transitions, outbox
}

func (f *fixture) check() {
	f.t.Helper()
	gi, gt, go_ := f.rows()
	compareRows(f.t, gi, gt, go_)
}

// compareRows compares rows with those of the schedule.
func compareRows(t *testing.T, gi, gt, go_ []string) {
	t.Helper()
	wi, wt, wo := wantRows()
	for _, c := range []struct {
		what      string
		got, want []string
	}{{"incidents", gi, wi}, {"transitions", gt, wt}, {"outbox", go_, wo}} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s:\n%s\nwant:\n%s", c.what, strings.Join(c.got, "\n"), strings.Join(c.want, "\n"))
		}
	}
}

// The schedule's events give exactly its incidents, transitions and
// outbox rows; the states of the evaluated targets are stored. An event
// from a prober whose clock is two hours ahead changes nothing (it would
// make its region ignore every later event as late).
func TestScheduleGivesItsIncidents(t *testing.T) {
	f := newFixture(t)
	evs := Schedule(f.base)
	future := proto.Clone(evs[2]).(*sitewatchv1.CheckResult) // single, eu
	future.EventId, future.StartedAt = EventID(999), timestamppb.New(time.Now().Add(2*time.Hour))
	evs = append([]*sitewatchv1.CheckResult{future}, evs...)
	f.Produce(evs)
	a := f.start()
	f.WaitEvaluated(int64(len(evs)))
	a.Stop(t)
	f.check()
	var states []string
	rows, _ := f.DB.Query(context.Background(), `SELECT target_id FROM alerter_state ORDER BY target_id`)
	var id string
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { states = append(states, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"quorum", "single"}; !slices.Equal(states, want) {
		t.Errorf("states of %v, want %v (none for a target without a policy)", states, want)
	}
}

// A consumer stopped half-way and a new client in the same group (as after
// a crash or a deploy), with Kafka redelivering what the first had
// evaluated, store every incident, transition and outbox row once.
func TestRestartAndRedeliveryStoreEachOnce(t *testing.T) {
	f := newFixture(t)
	evs := Schedule(f.base)
	half := len(evs) / 2
	f.Produce(evs[:half])
	a := f.start()
	f.WaitEvaluated(int64(half))
	a.Stop(t)
	// Redelivered: the first half again (a producer retrying), then the
	// rest.
	f.Produce(evs[:half])
	f.Produce(evs[half:])
	b := f.start()
	f.WaitEvaluated(int64(len(evs) + half))
	b.Stop(t)
	f.check()
}

// Two alerters in the group share the partitions and store each row once.
func TestTwoAlertersShareTheWork(t *testing.T) {
	f := newFixture(t)
	evs := Schedule(f.base)
	a, b := f.start(), f.start()
	f.Produce(evs)
	f.WaitEvaluated(int64(len(evs)))
	a.Stop(t)
	b.Stop(t)
	f.check()
}

// A batch that starts from an offset another alerter has moved on from is
// rolled back whole.
func TestFencedBatchStoresNothing(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, alertertest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	write := func(expected, next int64, id string) error {
		_, err := st.Write(ctx, &store.Batch{Topic: "t", Offsets: map[int32]store.Offset{0: {Expected: expected, Next: next}},
			States: map[string]*evaluate.State{id: {}}})
		return err
	}
	if err := write(store.NoOffset, 10, "a"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		expected int64
		want     string
	}{
		{store.NoOffset, "t partition 0: the stored offset is no longer -1: another alerter has evaluated it meanwhile"},
		{5, "t partition 0: the stored offset is no longer 5: another alerter has evaluated it meanwhile"},
	} {
		if err := write(c.expected, 20, "b"); err == nil || err.Error() != c.want {
			t.Errorf("from %d: %v, want %s", c.expected, err, c.want)
		}
	}
	states, err := st.States(ctx, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	offsets, err := st.Offsets(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 || states["a"] == nil || offsets[0] != 10 {
		t.Errorf("states %v, offsets %v: want only a's state and offset 10", states, offsets)
	}
}
