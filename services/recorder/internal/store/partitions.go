package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// check_results (by checked_at) and check_slots (by scheduled_at) are
// partitioned into UTC days: TABLE_pYYYYMMDD holds [that day 00:00 UTC, the
// next day 00:00 UTC). Both follow the same retention.
const (
	rawTable        = "check_results"
	slotTable       = "check_slots"
	partitionLayout = "20060102"
	day             = 24 * time.Hour
	// partitionLock is the advisory lock key that serialises creating and
	// dropping partitions among recorders ("sitewatch" in ASCII, truncated).
	partitionLock = 0x73697465776174
)

func dayOf(t time.Time) time.Time { return t.UTC().Truncate(day) }

// partitioned lists the partitioned tables, each with its partitions.
var partitioned = []string{rawTable, slotTable}

// part is a table's partition of one day.
type part struct {
	table string
	day   time.Time
}

func partitionName(table string, d time.Time) string { return table + "_p" + d.Format(partitionLayout) }

// loadPartitions reads the existing partitions of check_results and
// check_slots.
func (s *Store) loadPartitions(ctx context.Context) error {
	for _, table := range partitioned {
		days, err := s.partitionsOf(ctx, table)
		if err != nil {
			return err
		}
		s.mu.Lock()
		for _, d := range days {
			s.parts[part{table, d}] = true
		}
		s.mu.Unlock()
	}
	return nil
}

// Partitions lists the days that have a check_results partition, oldest
// first.
func (s *Store) Partitions(ctx context.Context) ([]time.Time, error) {
	return s.partitionsOf(ctx, rawTable)
}

// SlotPartitions lists the days that have a check_slots partition, oldest
// first.
func (s *Store) SlotPartitions(ctx context.Context) ([]time.Time, error) {
	return s.partitionsOf(ctx, slotTable)
}

func (s *Store) partitionsOf(ctx context.Context, table string) ([]time.Time, error) {
	partitionPrefix := table + "_p"
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = $1::regclass`, table)
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	var days []time.Time
	for _, n := range names {
		d, err := time.Parse(partitionLayout, strings.TrimPrefix(n, partitionPrefix))
		if err != nil || !strings.HasPrefix(n, partitionPrefix) {
			continue // not one of ours; left alone
		}
		days = append(days, d)
	}
	sort.Slice(days, func(i, j int) bool { return days[i].Before(days[j]) })
	return days, nil
}

// expiredDay tells whether the retention drops day d's partition at now:
// the partition ends at or before now minus the retention (Maintain's rule).
func (s *Store) expiredDay(d, now time.Time) bool {
	return s.retention > 0 && !d.Add(day).After(now.Add(-s.retention))
}

// unexpired returns the events whose days (of checked_at and, when set,
// scheduled_at) the retention keeps at now, and the indexes of the others.
// It returns events itself when all are kept.
func (s *Store) unexpired(events []Event, now time.Time) ([]Event, []int) {
	var expired []int
	for i := range events {
		e := &events[i]
		if s.expiredDay(dayOf(e.CheckedAt), now) || (!e.ScheduledAt.IsZero() && s.expiredDay(dayOf(e.ScheduledAt), now)) {
			expired = append(expired, i)
		}
	}
	if len(expired) == 0 {
		return events, nil
	}
	kept := make([]Event, 0, len(events)-len(expired))
	next := 0
	for i := range events {
		if next < len(expired) && expired[next] == i {
			next++
			continue
		}
		kept = append(kept, events[i])
	}
	return kept, expired
}

// ensurePartitions creates the partitions missing for the events' days, of
// check_results and, for events with a slot, check_slots (which the caller
// has checked the retention keeps).
func (s *Store) ensurePartitions(ctx context.Context, events []Event) error {
	var missing []part
	seen := map[part]bool{}
	s.mu.Lock()
	need := func(p part) {
		if !s.parts[p] && !seen[p] {
			seen[p] = true
			missing = append(missing, p)
		}
	}
	for i := range events {
		need(part{rawTable, dayOf(events[i].CheckedAt)})
		if at := events[i].ScheduledAt; !at.IsZero() {
			need(part{slotTable, dayOf(at)})
		}
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	return s.createPartitions(ctx, missing, time.Time{})
}

// createPartitions creates the given days' partitions where missing, in a
// short transaction of its own (creating a partition briefly locks the parent
// table), under an advisory lock so that two recorders never race to create
// the same one. A day the retention drops at now (time.Now() when zero),
// judged under that lock, is never created: a Write that found the day kept
// just before Maintain dropped it would otherwise bring back an empty
// check_slots partition, and a late second result of a slot whose claim was
// dropped would be counted again in the rollups. Its rows then find no
// partition, and the retried Write returns them as expired.
func (s *Store) createPartitions(ctx context.Context, parts []part, now time.Time) error {
	var created []part
	err := s.underPartitionLock(ctx, "create partitions", func(tx pgx.Tx) error {
		at := now
		if at.IsZero() {
			at = time.Now()
		}
		for _, p := range parts {
			if s.expiredDay(p.day, at) {
				continue
			}
			created = append(created, p)
			name := partitionName(p.table, p.day)
			sql := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF %s
				FOR VALUES FROM ('%s') TO ('%s')`,
				pgx.Identifier{name}.Sanitize(), pgx.Identifier{p.table}.Sanitize(),
				p.day.Format(time.RFC3339), p.day.Add(day).Format(time.RFC3339))
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("create partition %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	for _, p := range created {
		s.parts[p] = true
	}
	s.mu.Unlock()
	s.logger.Debug("partitions ensured", "partitions", len(created))
	return nil
}

// Maintain creates the partitions of check_results and check_slots from
// `behind` days before now's day to `ahead` days after it (but none the
// retention drops), and, with a
// retention, drops every partition of either that ends at or before now
// minus the retention (all its rows are expired). It returns the names of
// the partitions dropped.
func (s *Store) Maintain(ctx context.Context, now time.Time, behind, ahead int) ([]string, error) {
	today := dayOf(now)
	var want []part
	for _, table := range partitioned {
		for i := -behind; i <= ahead; i++ {
			want = append(want, part{table, today.Add(time.Duration(i) * day)})
		}
	}
	if err := s.createPartitions(ctx, want, now); err != nil {
		return nil, err
	}
	if s.retention <= 0 {
		return nil, nil
	}
	var dropped []string
	for _, table := range partitioned {
		days, err := s.partitionsOf(ctx, table)
		if err != nil {
			return dropped, err
		}
		for _, d := range days {
			if !s.expiredDay(d, now) {
				break
			}
			if err := s.dropPartition(ctx, part{table, d}); err != nil {
				return dropped, err
			}
			name := partitionName(table, d)
			dropped = append(dropped, name)
			s.logger.Info("dropped expired partition", "partition", name, "retention", s.retention.String())
		}
	}
	return dropped, nil
}

func (s *Store) dropPartition(ctx context.Context, p part) error {
	name := partitionName(p.table, p.day)
	what := "drop partition " + name
	err := s.underPartitionLock(ctx, what, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.parts, p)
	s.mu.Unlock()
	return nil
}

// underPartitionLock runs fn in a short transaction of its own (partition
// DDL briefly locks the parent table) under the advisory lock that
// serialises partition DDL among recorders. Errors outside fn name what.
func (s *Store) underPartitionLock(ctx context.Context, what string, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(partitionLock)); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
