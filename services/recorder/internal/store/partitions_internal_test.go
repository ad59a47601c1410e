package store

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/sitewatch/sitewatch/services/testing/stackdb"
)

// A Write judges its days kept, then Maintain drops one of them before the
// Write creates its partitions: the Write must not bring the day back, of
// check_results nor of check_slots, where a late second result of a slot
// whose claim was dropped would claim it again and be counted twice in the
// rollups. The later days are created as usual.
func TestEnsurePartitionsSkipsDayDroppedMeanwhile(t *testing.T) {
	ctx := context.Background()
	url := stackdb.Database(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := Migrate(ctx, url, logger); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, url, Config{Retention: 48 * time.Hour}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	today := time.Now().UTC().Truncate(day)
	gone := today.Add(-3 * day)
	kept := today.Add(-day)
	// What unexpired let through a moment before the day expired.
	events := []Event{
		{CheckedAt: gone.Add(day - time.Millisecond), ScheduledAt: gone.Add(day - 2*time.Millisecond)},
		{CheckedAt: kept.Add(time.Hour), ScheduledAt: kept.Add(time.Hour)},
	}
	if err := s.ensurePartitions(ctx, events); err != nil {
		t.Fatal(err)
	}
	for _, table := range partitioned {
		days, err := s.partitionsOf(ctx, table)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(days, func(d time.Time) bool { return d.Equal(gone) }) {
			t.Errorf("%s: the expired day %s has a partition again", table, gone.Format(time.DateOnly))
		}
		if !slices.ContainsFunc(days, func(d time.Time) bool { return d.Equal(kept) }) {
			t.Errorf("%s: no partition for %s, which the retention keeps (days %v)", table, kept.Format(time.DateOnly), days)
		}
		if s.parts[part{table, gone}] {
			t.Errorf("%s: the store believes in a partition of %s", table, gone.Format(time.DateOnly))
		}
	}
}
