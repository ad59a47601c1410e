package outbox_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sitewatch/sitewatch/services/alerter/internal/outbox"
)

func TestPrune(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	pool := database(t)
	ch := map[string]string{"hook": "webhook"}
	// Seven rows, each state old and recent: seq 0..6 of incident i.
	enqueue(t, pool, "i", []int{0, 1, 2, 3, 4, 5, 6}, ch)
	set := func(seq int, sql string) {
		t.Helper()
		if _, err := pool.Exec(ctx, `UPDATE notification_outbox SET `+sql+` WHERE incident_id = 'i' AND seq = $1`, seq); err != nil {
			t.Fatal(err)
		}
	}
	set(0, `delivered_at = now() - interval '31 days'`)                                                              // old delivered: pruned
	set(1, `failed_at = now() - interval '40 days'`)                                                                 // old given up: pruned
	set(2, `delivered_at = now() - interval '29 days'`)                                                              // recent delivered: kept
	set(3, `failed_at = now() - interval '1 hour'`)                                                                  // recent given up: kept
	set(4, `created_at = now() - interval '90 days', next_attempt_at = now() - interval '90 days'`)                  // old but pending: kept
	set(5, `claimed_by = 'x', claimed_until = now() + interval '1 minute', created_at = now() - interval '90 days'`) // pending, claimed: kept
	// seq 6: pending, fresh: kept.
	if _, err := pool.Exec(ctx, `UPDATE incidents SET resolved_at = confirmed_at WHERE incident_id = 'i'`); err != nil {
		t.Fatal(err)
	}
	// An incident still open: its old delivered row is kept (the no-data
	// pass reads the channels to tell of its resolution from it).
	enqueue(t, pool, "open", []int{0}, ch)
	if _, err := pool.Exec(ctx, `UPDATE notification_outbox SET delivered_at = now() - interval '60 days' WHERE incident_id = 'open'`); err != nil {
		t.Fatal(err)
	}
	remaining := func() []int {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT seq FROM notification_outbox WHERE incident_id = 'i' ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		for rows.Next() {
			var s int
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}

	reg := prometheus.NewRegistry()
	// A batch of 1: the loop over batches deletes both.
	p := outbox.NewPruner(pool, outbox.PruneOptions{Retention: 30 * 24 * time.Hour, Batch: 1, Registerer: reg})
	n, err := p.Prune(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Prune: %d rows, %v; want 2, nil", n, err)
	}
	if got, want := remaining(), []int{2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("rows left: %v, want %v", got, want)
	}
	var open int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM notification_outbox WHERE incident_id = 'open'`).Scan(&open); err != nil || open != 1 {
		t.Errorf("rows of the open incident: %d, %v; want 1", open, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`# HELP sitewatch_alerter_outbox_pruned_total Rows of notification_outbox deleted for being delivered or given up longer ago than -outbox-retention.
# TYPE sitewatch_alerter_outbox_pruned_total counter
sitewatch_alerter_outbox_pruned_total 2
`), "sitewatch_alerter_outbox_pruned_total"); err != nil {
		t.Error(err)
	}
	// The history stays.
	var incidents, transitions int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM incidents), (SELECT count(*) FROM incident_transitions)`).Scan(&incidents, &transitions); err != nil {
		t.Fatal(err)
	}
	if incidents != 2 || transitions != 8 {
		t.Errorf("incidents %d, transitions %d; want 2, 8", incidents, transitions)
	}
	// Again: nothing more to prune.
	if n, err := p.Prune(ctx); err != nil || n != 0 {
		t.Errorf("second Prune: %d rows, %v; want 0, nil", n, err)
	}
}

func TestPruneZeroRetentionKeepsAll(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	pool := database(t)
	enqueue(t, pool, "i", []int{0, 1}, map[string]string{"hook": "webhook"})
	if _, err := pool.Exec(ctx, `UPDATE notification_outbox SET delivered_at = now() - interval '10 years' WHERE seq = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE notification_outbox SET failed_at = now() - interval '10 years' WHERE seq = 1`); err != nil {
		t.Fatal(err)
	}
	n, err := outbox.NewPruner(pool, outbox.PruneOptions{Retention: 0}).Prune(ctx)
	if err != nil || n != 0 {
		t.Fatalf("Prune with retention 0: %d rows, %v; want 0, nil", n, err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM notification_outbox`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 2 {
		t.Errorf("rows left: %d, want 2", left)
	}
}
