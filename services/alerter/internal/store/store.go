package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitewatch/sitewatch/services/alerter/internal/evaluate"
	"github.com/sitewatch/sitewatch/services/alerter/internal/outbox"
)

// Store is the alerter's database.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the database at url (pgx syntax). It does not wait for
// the schema: see SchemaReady.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message can quote the URL, password included.
		return nil, errors.New("DATABASE_URL: not a valid PostgreSQL connection string")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the database: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes the connections.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// ErrNoSchema is returned by SchemaReady while a table the alerter needs is
// missing: the recorder applies the migrations (`recorder migrate`).
var ErrNoSchema = errors.New("the alerter's tables are missing (migrations 00011 and 00015): run `recorder migrate`")

// SchemaReady returns nil when the tables the alerter writes exist,
// ErrNoSchema (wrapped, naming the first missing table) when one does not.
func (s *Store) SchemaReady(ctx context.Context) error {
	for _, table := range []string{"incidents", "incident_transitions", "notification_outbox", "alerter_state", "alerter_offsets"} {
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
			return fmt.Errorf("look for table %s: %w", table, err)
		}
		if !exists {
			return fmt.Errorf("table %s: %w", table, ErrNoSchema)
		}
	}
	return nil
}

// Offsets returns the stored next offset of each partition of topic that
// has one.
func (s *Store) Offsets(ctx context.Context, topic string) (map[int32]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT partition, next_offset FROM alerter_offsets WHERE topic = $1`, topic)
	if err != nil {
		return nil, fmt.Errorf("read alerter_offsets: %w", err)
	}
	next := map[int32]int64{}
	var part int32
	var off int64
	if _, err := pgx.ForEachRow(rows, []any{&part, &off}, func() error { next[part] = off; return nil }); err != nil {
		return nil, fmt.Errorf("read alerter_offsets: %w", err)
	}
	return next, nil
}

// States returns the stored state of each of the targets that has one.
func (s *Store) States(ctx context.Context, targetIDs []string) (map[string]*evaluate.State, error) {
	out := map[string]*evaluate.State{}
	if len(targetIDs) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT target_id, state FROM alerter_state WHERE target_id = ANY($1)`, targetIDs)
	if err != nil {
		return nil, fmt.Errorf("read alerter_state: %w", err)
	}
	var id string
	var raw []byte
	_, err = pgx.ForEachRow(rows, []any{&id, &raw}, func() error {
		st := &evaluate.State{}
		if err := json.Unmarshal(raw, st); err != nil {
			return fmt.Errorf("state of target %q: %w", id, err)
		}
		out[id] = st
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read alerter_state: %w", err)
	}
	return out, nil
}

// Offset is a partition's move in one batch: from the offset its alerter
// loaded or last wrote (NoOffset when there was no row) to Next.
type Offset struct {
	Expected, Next int64
}

// NoOffset as Offset.Expected: the partition had no stored offset.
const NoOffset = -1

// OutboxRow is one notification to one channel.
type OutboxRow struct {
	IdempotencyKey string
	IncidentID     string
	Seq            int
	Channel        string
	ChannelType    string
	Payload        []byte // the notify.Notification as JSON
}

// Batch is what one batch of events did.
type Batch struct {
	Topic   string
	Offsets map[int32]Offset
	// Incidents changed by the batch, each once with its latest row, in
	// the order they first changed (a resolved incident before the one
	// that replaces it).
	Incidents   []evaluate.Incident
	Transitions []evaluate.Transition
	Outbox      []OutboxRow
	// States of the targets the batch changed.
	States map[string]*evaluate.State
}

// Fenced is the error of a batch whose partition's stored offset is no
// longer the one its alerter expected: another alerter owns the partition
// now, or did meanwhile. Nothing of the batch is stored.
type Fenced struct {
	Topic     string
	Partition int32
	Expected  int64
}

func (f *Fenced) Error() string {
	return fmt.Sprintf("%s partition %d: the stored offset is no longer %d: another alerter has evaluated it meanwhile", f.Topic, f.Partition, f.Expected)
}

// Written counts what a batch stored; what was there already (a guard that
// fired) is not counted.
type Written struct {
	Incidents, Transitions, Outbox int
}

const upsertIncident = `INSERT INTO incidents AS i (incident_id, target_id, kind, started_at, first_event_id,
		confirmed_at, resolved_at, regions, first_failure_kind, first_error, last_failure_kind, last_error,
		last_failure_at, maintenance)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
	ON CONFLICT (incident_id) DO UPDATE SET
		resolved_at = coalesce(i.resolved_at, excluded.resolved_at),
		regions = excluded.regions,
		last_failure_kind = excluded.last_failure_kind,
		last_error = excluded.last_error,
		last_failure_at = excluded.last_failure_at
	RETURNING (xmax = 0)`

const insertTransition = `INSERT INTO incident_transitions (incident_id, seq, transition, at, event_id, regions, suppressed)
	VALUES ($1, $2, $3, $4, $5, $6, $7)
	ON CONFLICT (incident_id, seq) DO NOTHING`

const insertOutbox = `INSERT INTO notification_outbox (idempotency_key, incident_id, seq, channel, channel_type, payload)
	VALUES ($1, $2, $3, $4, $5, $6)
	ON CONFLICT (idempotency_key) DO NOTHING`

const upsertStates = `INSERT INTO alerter_state (target_id, state, updated_at)
	SELECT id, st, now() FROM unnest($1::text[], $2::jsonb[]) AS u (id, st)
	ON CONFLICT (target_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`

// Write stores the batch in one transaction: the partitions' offsets
// first (fenced: *Fenced when one moved meanwhile), then the incidents,
// transitions, outbox rows and states. An incident, transition or outbox
// row stored before is left as it is (ON CONFLICT), a last guard should
// a batch ever be evaluated twice.
func (s *Store) Write(ctx context.Context, b *Batch) (Written, error) {
	var w Written
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return w, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	for part, o := range b.Offsets {
		var tag pgconn.CommandTag
		if o.Expected == NoOffset {
			tag, err = tx.Exec(ctx, `INSERT INTO alerter_offsets (topic, partition, next_offset) VALUES ($1, $2, $3)
				ON CONFLICT (topic, partition) DO NOTHING`, b.Topic, part, o.Next)
		} else {
			tag, err = tx.Exec(ctx, `UPDATE alerter_offsets SET next_offset = $4, updated_at = now()
				WHERE topic = $1 AND partition = $2 AND next_offset = $3`, b.Topic, part, o.Expected, o.Next)
		}
		if err != nil {
			return w, fmt.Errorf("store the offset of %s partition %d: %w", b.Topic, part, err)
		}
		if tag.RowsAffected() != 1 {
			return w, &Fenced{Topic: b.Topic, Partition: part, Expected: o.Expected}
		}
	}
	var batch pgx.Batch
	for _, inc := range b.Incidents {
		var maint any
		if inc.Maintenance != "" {
			maint = inc.Maintenance
		}
		batch.Queue(upsertIncident, inc.ID, inc.TargetID, inc.Kind, inc.StartedAt, inc.FirstEventID, inc.ConfirmedAt,
			inc.ResolvedAt, inc.Regions, inc.FirstFailureKind, inc.FirstError, inc.LastFailureKind, inc.LastError,
			inc.LastFailureAt, maint).QueryRow(func(row pgx.Row) error {
			var inserted bool
			if err := row.Scan(&inserted); err != nil {
				return fmt.Errorf("incident %s: %w", inc.ID, err)
			}
			if inserted {
				w.Incidents++
			}
			return nil
		})
	}
	for _, t := range b.Transitions {
		var suppressed, eventID any
		if t.Suppressed != "" {
			suppressed = t.Suppressed
		}
		if t.EventID != "" {
			eventID = t.EventID
		}
		batch.Queue(insertTransition, t.IncidentID, t.Seq, t.Transition, t.At, eventID, t.Regions, suppressed).
			Exec(func(tag pgconn.CommandTag) error { w.Transitions += int(tag.RowsAffected()); return nil })
	}
	for _, o := range b.Outbox {
		batch.Queue(insertOutbox, o.IdempotencyKey, o.IncidentID, o.Seq, o.Channel, o.ChannelType, o.Payload).
			Exec(func(tag pgconn.CommandTag) error { w.Outbox += int(tag.RowsAffected()); return nil })
	}
	if len(b.States) > 0 {
		ids := make([]string, 0, len(b.States))
		states := make([][]byte, 0, len(b.States))
		for id, st := range b.States {
			raw, err := json.Marshal(st)
			if err != nil {
				return w, fmt.Errorf("state of target %q: %w", id, err)
			}
			ids, states = append(ids, id), append(states, raw)
		}
		batch.Queue(upsertStates, ids, states)
	}
	if batch.Len() > 0 {
		if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
			return Written{}, fmt.Errorf("store the batch: %w", err)
		}
	}
	if w.Outbox > 0 {
		// The senders claim the rows as the transaction commits.
		if err := outbox.Wake(ctx, tx); err != nil {
			return Written{}, fmt.Errorf("wake the outbox senders: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return Written{}, fmt.Errorf("commit: %w", err)
	}
	return w, nil
}
