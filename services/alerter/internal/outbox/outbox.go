package outbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sitewatch/sitewatch/services/alerter/internal/notify"
	"github.com/sitewatch/sitewatch/services/internal/backoff"
)

// Channel is the PostgreSQL notification channel senders LISTEN on. The
// evaluator calls Wake in the transaction that inserts outbox rows, so a
// sender claims them as the transaction commits instead of at its next poll.
const Channel = "sitewatch_outbox"

// Wake asks the senders listening on Channel to look for due rows once the
// transaction (or connection) q belongs to commits.
func Wake(ctx context.Context, q interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}) error {
	_, err := q.Exec(ctx, "SELECT pg_notify($1, '')", Channel)
	return err
}

// Defaults of Options.
const (
	DefaultBatch      = 32
	DefaultWorkers    = 8
	DefaultLease      = 2 * time.Minute
	DefaultPoll       = time.Second
	DefaultFirstRetry = 5 * time.Second
	DefaultMaxRetry   = 15 * time.Minute
	// DefaultBudget is how long a notification is retried from its insert
	// before it is given up: a receiver down for a day is an outage of its
	// own, and a page that old would mislead.
	DefaultBudget = 24 * time.Hour
)

// Options tune a Sender; the zero value of each field takes its default.
type Options struct {
	// Instance names the sender in claimed_by: host name, process ID and a
	// random suffix by default.
	Instance string
	Logger   *slog.Logger
	// Registerer gets the sender's metrics; nil: none are registered.
	Registerer prometheus.Registerer
	// Batch is how many rows one claim takes at most; Workers how many
	// deliveries run at once.
	Batch, Workers int
	// Lease is how long a claim holds a row; it should outlast a delivery
	// attempt (the channel's timeout): an attempt still under way at 90%
	// of its lease is cut off and retried. A sender that dies holding rows
	// leaves them to the others when their lease ends.
	Lease time.Duration
	// Poll is the longest wait between two looks at the table when no
	// NOTIFY arrives (PostgreSQL's notifications are not kept while a
	// listener reconnects).
	Poll time.Duration
	// FirstRetry is the wait after a first failed attempt; the waits double
	// up to MaxRetry, each jittered by 20% (backoff.Exponential).
	FirstRetry, MaxRetry time.Duration
	// Budget: a notification still failing this long after its insert is
	// given up (failed_at set).
	Budget time.Duration
}

// Sender delivers the rows of notification_outbox through the channels.
type Sender struct {
	pool     *pgxpool.Pool
	channels map[string]notify.Sender
	o        Options
	log      *slog.Logger
	m        *metrics
	// wake is signalled by a NOTIFY on Channel and by each delivery's end
	// (the next transition of its incident may now go).
	wake chan struct{}
}

// New returns a sender of the outbox rows of pool's database through
// channels, by channel name (notify.Senders). Rows of a channel not in
// channels are retried, and given up at the end of the budget.
func New(pool *pgxpool.Pool, channels map[string]notify.Sender, o Options) *Sender {
	if o.Instance == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		o.Instance = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o.Batch = cmp(o.Batch, DefaultBatch)
	o.Workers = cmp(o.Workers, DefaultWorkers)
	o.Lease = cmp(o.Lease, DefaultLease)
	o.Poll = cmp(o.Poll, DefaultPoll)
	o.FirstRetry = cmp(o.FirstRetry, DefaultFirstRetry)
	o.MaxRetry = cmp(o.MaxRetry, DefaultMaxRetry)
	o.Budget = cmp(o.Budget, DefaultBudget)
	return &Sender{
		pool:     pool,
		channels: channels,
		o:        o,
		log:      o.Logger.With("instance", o.Instance),
		m:        newMetrics(o.Registerer),
		wake:     make(chan struct{}, 1),
	}
}

func cmp[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// row is a claimed outbox row.
type row struct {
	id        int64
	key       string
	incident  string
	seq       int
	channel   string
	payload   []byte
	attempts  int
	createdAt time.Time
}

// Run delivers until ctx ends, then waits for the deliveries under way and
// returns nil. A database that fails is retried with backoff, not returned:
// the rows wait in the table.
func (s *Sender) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	listenCtx, stopListen := context.WithCancel(ctx)
	defer stopListen()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.listen(listenCtx)
	}()

	slots := make(chan struct{}, s.o.Workers)
	dbBackoff := backoff.Exponential(100*time.Millisecond, 5*time.Second)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		claimed, want := 0, min(s.o.Workers-len(slots), s.o.Batch)
		var err error
		if want > 0 {
			var rows []row
			// The lease runs from the claim's statement, which starts
			// after this: a delivery ended by leaseEnd ends before any
			// other sender can claim the row again.
			leaseEnd := time.Now().Add(s.o.Lease - s.o.Lease/10)
			rows, err = s.claim(ctx, want)
			for _, r := range rows {
				slots <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					// A delivery under way finishes (within its channel's
					// timeout and its lease) and is marked when ctx ends.
					s.deliver(context.WithoutCancel(ctx), r, leaseEnd)
					<-slots
					s.signal()
				}()
			}
			claimed = len(rows)
		}
		var wait time.Duration
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			wait, _ = dbBackoff.Next()
			s.log.Warn("outbox: claim failed; retrying", "error", err, "wait", wait)
		case claimed > 0 && claimed == want && len(slots) < s.o.Workers:
			continue // more may be due
		case len(slots) == s.o.Workers:
			wait = s.o.Poll // until a delivery ends
		default:
			dbBackoff = backoff.Exponential(100*time.Millisecond, 5*time.Second)
			wait = s.nextDue(ctx)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-timer.C:
		}
	}
}

func (s *Sender) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// listen signals s.wake on every NOTIFY on Channel, on a connection of its
// own (a pooled one would be held for good), reconnecting after failures.
func (s *Sender) listen(ctx context.Context) {
	b := backoff.Exponential(100*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, func() { b = backoff.Exponential(100*time.Millisecond, 5*time.Second) })
		if ctx.Err() != nil {
			return
		}
		wait, _ := b.Next()
		s.log.Warn("outbox: LISTEN failed; polling until it is back", "error", err, "wait", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (s *Sender) listenOnce(ctx context.Context, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel}.Sanitize()); err != nil {
		return err
	}
	connected()
	s.signal() // what was notified while no one listened
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		s.signal()
	}
}

// pending is the condition of a row still to deliver.
const pending = `o.delivered_at IS NULL AND o.failed_at IS NULL`

// blocked is true for a row with an earlier transition of its incident
// still to deliver to its channel: that one goes first.
const blocked = `EXISTS (SELECT 1 FROM notification_outbox e
	WHERE e.incident_id = o.incident_id AND e.channel = o.channel AND e.seq < o.seq
	  AND e.delivered_at IS NULL AND e.failed_at IS NULL)`

// claim leases up to n due rows to this sender and counts the attempt.
// SKIP LOCKED lets senders claim side by side without waiting on each
// other's rows; the lease keeps a claimed row from the others after the
// claim's transaction commits.
func (s *Sender) claim(ctx context.Context, n int) ([]row, error) {
	rows, err := s.pool.Query(ctx, `
WITH due AS (
	SELECT o.id FROM notification_outbox o
	WHERE `+pending+` AND o.next_attempt_at <= now()
	  AND (o.claimed_until IS NULL OR o.claimed_until < now())
	  AND NOT `+blocked+`
	ORDER BY o.next_attempt_at, o.id
	LIMIT $1
	FOR UPDATE SKIP LOCKED)
UPDATE notification_outbox o
SET claimed_by = $2, claimed_until = now() + $3::interval, attempts = o.attempts + 1
FROM due WHERE o.id = due.id
RETURNING o.id, o.idempotency_key, o.incident_id, o.seq, o.channel, o.payload, o.attempts, o.created_at`,
		n, s.o.Instance, s.o.Lease)
	if err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", err)
	}
	claimed, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.id, &x.key, &x.incident, &x.seq, &x.channel, &x.payload, &x.attempts, &x.createdAt)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", err)
	}
	return claimed, nil
}

// nextDue counts the pending rows (the queue depth metric) and returns how
// long to wait until the first of them that is not blocked by an earlier
// transition comes due, within [10ms, Poll].
func (s *Sender) nextDue(ctx context.Context) time.Duration {
	var n int64
	var due *time.Duration
	// The first pending row of each incident and channel is the one not
	// blocked. (A NOT EXISTS in an aggregate's FILTER would run once per
	// row: 30 s over 20,000 pending rows, against 30 ms this way.)
	err := s.pool.QueryRow(ctx, `
WITH p AS (
	SELECT o.incident_id, o.channel, o.seq, greatest(o.next_attempt_at, coalesce(o.claimed_until, o.next_attempt_at)) AS due
	FROM notification_outbox o WHERE `+pending+`)
SELECT (SELECT count(*) FROM p),
       (SELECT min(due) FROM (SELECT DISTINCT ON (incident_id, channel) due FROM p ORDER BY incident_id, channel, seq) f) - now()`).Scan(&n, &due)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("outbox: count pending rows", "error", err)
		}
		return s.o.Poll
	}
	s.m.pending.Set(float64(n))
	if due == nil {
		return s.o.Poll
	}
	return min(max(*due, 10*time.Millisecond), s.o.Poll)
}

// retryWait is the wait after the attempt-th failed attempt: the
// attempt-th wait of a fresh exponential backoff, jittered.
func (s *Sender) retryWait(attempt int) time.Duration {
	b := backoff.Exponential(s.o.FirstRetry, s.o.MaxRetry)
	var wait time.Duration
	for range max(attempt, 1) {
		wait, _ = b.Next()
	}
	return wait
}

// deliver sends a claimed row through its channel and marks it. The
// attempt is cut off at leaseEnd, whatever the channel's timeout: past its
// lease another sender may deliver the row, and a request still under way
// would reach the receiver twice at once, or after the next transition.
func (s *Sender) deliver(ctx context.Context, r row, leaseEnd time.Time) {
	log := s.log.With("idempotency_key", r.key, "channel", r.channel, "attempt", r.attempts)
	sendCtx, cancelSend := context.WithDeadline(ctx, leaseEnd)
	err := s.send(sendCtx, r)
	cancelSend()
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err == nil {
		var latency time.Duration
		if err := s.pool.QueryRow(mctx, `
UPDATE notification_outbox SET delivered_at = now(), claimed_by = NULL, claimed_until = NULL
WHERE id = $1 AND delivered_at IS NULL
RETURNING now() - created_at`, r.id).Scan(&latency); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			// The lease ends and another attempt delivers it again: at
			// least once.
			log.Warn("outbox: delivered, but could not mark it", "error", err)
			return
		}
		s.m.delivered.WithLabelValues(r.channel).Inc()
		s.m.latency.WithLabelValues(r.channel).Observe(latency.Seconds())
		log.Info("outbox: delivered", "latency", latency)
		return
	}
	// A receiver's Retry-After is honoured, up to the longest wait.
	wait := max(s.retryWait(r.attempts), min(notify.RetryAfter(err), s.o.MaxRetry))
	var gaveUp bool
	if err := s.pool.QueryRow(mctx, `
UPDATE notification_outbox SET
	last_error = $2, claimed_by = NULL, claimed_until = NULL,
	next_attempt_at = now() + $3::interval,
	failed_at = CASE WHEN $4 OR created_at + $5::interval < now() + $3::interval THEN now() END
WHERE id = $1 AND claimed_by = $6 AND delivered_at IS NULL
RETURNING failed_at IS NOT NULL`, r.id, err.Error(), wait, notify.Permanent(err), s.o.Budget, s.o.Instance).Scan(&gaveUp); err != nil {
		if !errors.Is(err, pgx.ErrNoRows) { // else another sender took it over
			log.Warn("outbox: could not record a failed delivery", "error", err)
		}
		return
	}
	if gaveUp {
		s.m.failed.WithLabelValues(r.channel).Inc()
		log.Error("outbox: gave up", "error", err, "permanent", notify.Permanent(err))
		return
	}
	s.m.retries.WithLabelValues(r.channel).Inc()
	log.Warn("outbox: delivery failed; retrying", "error", err, "wait", wait)
}

func (s *Sender) send(ctx context.Context, r row) error {
	ch := s.channels[r.channel]
	if ch == nil {
		return fmt.Errorf("channel %q is not configured in this alerter", r.channel)
	}
	var n notify.Notification
	if err := json.Unmarshal(r.payload, &n); err != nil {
		return notify.PermanentError(fmt.Errorf("payload of outbox row %d: %w", r.id, err))
	}
	return ch.Send(ctx, &n, r.key)
}
