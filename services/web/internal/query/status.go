package query

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// StatusTarget is one target of the public status page.
type StatusTarget struct {
	ID    string
	URL   string
	State string
	// The value of the status page's group label ("" without it).
	Group string
	// Last checked, for "details" mode only.
	LastError *string
	// Uptime over the days of Days.
	UptimePct *float64
	// The last StatusDays UTC days, oldest first; Checks 0 where none.
	Days []Day
}

// StatusDays is the length of the status page's uptime bars.
const StatusDays = 90

// Status returns every target not removed with its state, the value of
// the label groupLabel, and its uptime per UTC day over the last
// StatusDays days (today included), by group then ID.
func (db *DB) Status(ctx context.Context, groupLabel string, now time.Time) ([]StatusTarget, error) {
	rows, err := db.pool.Query(ctx, `WITH s AS (`+statusSQL+`)
SELECT target_id, url, state, coalesce(labels ->> $1, ''), last_error FROM s ORDER BY 4, 1`, groupLabel)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	targets, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StatusTarget, error) {
		var t StatusTarget
		err := row.Scan(&t.ID, &t.URL, &t.State, &t.Group, &t.LastError)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	today := now.UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -(StatusDays - 1))
	byID := make(map[string]*StatusTarget, len(targets))
	for i := range targets {
		t := &targets[i]
		t.Days = make([]Day, StatusDays)
		for d := range t.Days {
			t.Days[d].Day = first.AddDate(0, 0, d).Format(time.DateOnly)
		}
		byID[t.ID] = t
	}
	// Plain sums per day: no histogram, so no PL/pgSQL call per row.
	rows, err = db.pool.Query(ctx, `
SELECT target_id, (hour AT TIME ZONE 'UTC')::date - $1::date AS d, sum(checks)::int8, sum(up)::int8
FROM check_results_hourly
WHERE hour >= $1::date AT TIME ZONE 'UTC'
GROUP BY 1, 2`, first)
	if err != nil {
		return nil, fmt.Errorf("status days: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var d int
		var checks, up int64
		if err := rows.Scan(&id, &d, &checks, &up); err != nil {
			return nil, fmt.Errorf("status days: %w", err)
		}
		t, ok := byID[id]
		if !ok || d < 0 || d >= StatusDays {
			continue
		}
		t.Days[d].Checks, t.Days[d].Up = checks, up
		t.Days[d].AvailabilityPct = pct(up, checks)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("status days: %w", err)
	}
	for i := range targets {
		var checks, up int64
		for _, d := range targets[i].Days {
			checks, up = checks+d.Checks, up+d.Up
		}
		if checks > 0 {
			p := pct(up, checks)
			targets[i].UptimePct = &p
		}
	}
	return targets, nil
}

// pct is 100*up/checks rounded to 3 decimals, as the views round.
func pct(up, checks int64) float64 {
	if checks == 0 {
		return 0
	}
	// Integer arithmetic to the thousandth, half up, so the page agrees
	// with round(100.0 * up / checks, 3) in SQL.
	return float64((up*200000/checks+1)/2) / 1000
}
