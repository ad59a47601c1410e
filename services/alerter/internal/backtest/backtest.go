package backtest

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/services/alerter/internal/evaluate"
)

// Options select the stored checks: From <= checked_at < To, of Target
// only when set.
type Options struct {
	From, To time.Time
	Target   string
}

// Policies is what the backtest asks of the policies (*policy.Set is one).
type Policies interface {
	Lookup(targetID string) (evaluate.Policy, evaluate.Maintenance, bool)
}

// Querier runs the query (a *pgxpool.Pool, *pgx.Conn or pgx.Tx).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Report is what the policies would have done.
type Report struct {
	// Checks read, and those of targets with a policy evaluated.
	Checks, Evaluated int
	// Ignored counts the checks older than their region's latest.
	Ignored int
	// Incidents in the order they opened, with their state at the end of
	// the range (ResolvedAt nil: still open).
	Incidents []evaluate.Incident
	// Transitions in order, with the channels each would notify.
	Transitions []evaluate.Transition
}

const query = `SELECT c.event_id::text, c.target_id, coalesce(t.url, ''), coalesce(c.prober_region, ''), c.checked_at,
		c.outcome = 'up', coalesce(c.failure_kind, ''), coalesce(c.error, ''), c.tls_cert_expires_at, c.scheduled_at
	FROM check_results c LEFT JOIN targets t USING (target_id)
	WHERE c.checked_at >= $1 AND c.checked_at < $2 AND ($3 = '' OR c.target_id = $3)
	ORDER BY c.target_id, c.checked_at, c.event_id`

// Run evaluates the policies over the stored checks the options select.
func Run(ctx context.Context, db Querier, pol Policies, o Options) (*Report, error) {
	rows, err := db.Query(ctx, query, o.From, o.To, o.Target)
	if err != nil {
		return nil, fmt.Errorf("read check_results: %w", err)
	}
	defer rows.Close()
	rep := &Report{}
	var (
		current string
		st      *evaluate.State
		p       evaluate.Policy
		maint   evaluate.Maintenance
		ok      bool
		index   = map[string]int{}
		ev      evaluate.Event
		notAft  *time.Time
		slot    *time.Time
	)
	for rows.Next() {
		if err := rows.Scan(&ev.EventID, &ev.TargetID, &ev.URL, &ev.Region, &ev.CheckedAt, &ev.Up,
			&ev.FailureKind, &ev.Error, &notAft, &slot); err != nil {
			return nil, fmt.Errorf("read check_results: %w", err)
		}
		ev.CertNotAfter = time.Time{}
		if notAft != nil {
			ev.CertNotAfter = *notAft
		}
		ev.ScheduledAt = time.Time{}
		if slot != nil {
			ev.ScheduledAt = *slot
		}
		rep.Checks++
		if ev.TargetID != current {
			current, st = ev.TargetID, &evaluate.State{}
			p, maint, ok = pol.Lookup(current)
		}
		if !ok {
			continue
		}
		rep.Evaluated++
		res := st.Apply(ev, p, maint)
		if res.Ignored {
			rep.Ignored++
		}
		rep.Incidents = evaluate.Merge(rep.Incidents, index, res.Changed)
		rep.Transitions = append(rep.Transitions, res.Transitions...)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read check_results: %w", err)
	}
	return rep, nil
}

// Print writes the report: the incidents, then the notifications per
// channel.
func (r *Report) Print(w io.Writer, o Options) error {
	fmt.Fprintf(w, "backtest %s to %s: %d checks, %d evaluated (%d ignored as late), %d incidents\n\n",
		o.From.UTC().Format(time.RFC3339), o.To.UTC().Format(time.RFC3339), r.Checks, r.Evaluated, r.Ignored, len(r.Incidents))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INCIDENT\tTARGET\tKIND\tSTARTED\tCONFIRMED\tRESOLVED\tTIME TO DETECT\tFLAPS\tREGIONS\tMAINTENANCE")
	for _, inc := range r.Incidents {
		resolved := "open"
		if inc.ResolvedAt != nil {
			resolved = stamp(*inc.ResolvedAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", inc.ID, inc.TargetID, inc.Kind, stamp(inc.StartedAt),
			stamp(inc.ConfirmedAt), resolved, inc.TimeToDetect(), inc.Flaps, strings.Join(inc.Regions, ","), inc.Maintenance)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	byChannel := map[string][]evaluate.Transition{}
	var suppressed []evaluate.Transition
	for _, t := range r.Transitions {
		if t.Suppressed != "" {
			suppressed = append(suppressed, t)
		}
		for _, ch := range t.Channels {
			byChannel[ch] = append(byChannel[ch], t)
		}
	}
	fmt.Fprintln(w, "\nnotifications it would send (none is sent):")
	if len(byChannel) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, ch := range slices.Sorted(maps.Keys(byChannel)) {
		ts := byChannel[ch]
		fmt.Fprintf(w, "  %s: %d\n", ch, len(ts))
		for _, t := range ts {
			fmt.Fprintf(w, "    %s  %-8s %s %s (%s)\n", stamp(t.At), t.Transition, t.Notification.TargetID, t.IncidentID, t.Notification.IdempotencyKey(ch))
		}
	}
	if len(suppressed) > 0 {
		fmt.Fprintf(w, "  not notified: %d\n", len(suppressed))
		for _, t := range suppressed {
			fmt.Fprintf(w, "    %s  %-8s %s %s (%s)\n", stamp(t.At), t.Transition, t.Notification.TargetID, t.IncidentID, t.Suppressed)
		}
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
