package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kslog"
	"google.golang.org/protobuf/proto"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/backoff"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/internal/shutdown"
	"github.com/sitewatch/sitewatch/services/prober/internal/check"
	"github.com/sitewatch/sitewatch/services/prober/internal/spool"
)

// ErrIncompatibleSchema is returned by Run when the registry refuses the
// CheckResult schema as incompatible with the versions registered under the
// subject (HTTP 409): this build must not write events that consumers of
// the registered schema could not read.
var ErrIncompatibleSchema = errors.New("schema registry refused the CheckResult schema as incompatible (409)")

// producerBuffer bounds the records handed to franz-go and not yet
// acknowledged; results beyond wait in the spool or the dropping buffer.
const producerBuffer = 4096

// Drop reasons, the values of the reason label of the dropped counter.
const (
	// DropBufferFull: the memory buffer was full (the spool not keeping up,
	// no spool, or the registry not answering yet).
	DropBufferFull = "buffer_full"
	// DropSpoolFull: beyond -spool-max-bytes, the oldest spooled results.
	DropSpoolFull = "spool_full"
	// DropSpoolError: the memory buffer or the producer was full while the
	// spool could not write (a full disk).
	DropSpoolError = "spool_error"
	// DropCorrupt: spooled results in a segment found damaged while read.
	DropCorrupt = "corrupt"
)

// Options configure a Publisher.
type Options struct {
	Topic string
	// Partitions and ReplicationFactor are used when the topic is created;
	// -1 takes the broker's default.
	Partitions        int32
	ReplicationFactor int16
	// Buffer bounds the results waiting in memory (at least 1).
	Buffer      int
	Compression kgo.CompressionCodec
	Linger      time.Duration
	// FlushTimeout bounds the wait for Kafka at shutdown.
	FlushTimeout time.Duration
	// Prober identifies this prober in every event.
	Prober *sitewatchv1.Prober

	// SpoolDir is the spool's directory; empty: no spool, results wait in
	// memory only.
	SpoolDir string
	// SpoolMaxBytes caps the spool's files.
	SpoolMaxBytes int64
	// SpoolSync is how often the spool is fsynced (at least 1ms).
	SpoolSync time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// spooler is what the publisher needs of a *spool.Spool.
type spooler interface {
	Append(entries []spool.Entry) (dropped int, err error)
	Next() (spool.Record, int, bool)
	Ack(ticket uint64)
	Notify() <-chan struct{}
	Sync() error
	Stats() spool.Stats
	Close() error
}

// Publisher publishes check results. Create it with New, start Run, call
// Publish from any goroutine.
type Publisher struct {
	o        Options
	subject  string
	cl       *kgo.Client
	registry *sr.Client
	serde    sr.Serde
	log      *slog.Logger
	spool    spooler // nil without a spool

	ready     atomic.Bool
	setupErr  atomic.Pointer[error]
	spoolDown atomic.Bool // the spool refused the last append

	mu      sync.Mutex
	ring    []check.Result
	head, n int
	notify  chan struct{}

	dropped       *prometheus.CounterVec
	produceErrors prometheus.Counter
	produced      prometheus.Counter
	drained       prometheus.Counter
	spoolErrors   prometheus.Counter
	lastErrLog    atomic.Int64 // unix nanos of the last produce error logged
}

// New builds the Kafka and registry clients and opens the spool; it does
// not connect yet.
func New(kcfg kafkaenv.Config, o Options) (*Publisher, error) {
	if o.Buffer < 1 {
		o.Buffer = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	o.SpoolSync = max(o.SpoolSync, time.Millisecond)
	p := &Publisher{
		o:       o,
		subject: kafkaenv.Subject(o.Topic),
		log:     o.Logger,
		ring:    make([]check.Result, o.Buffer),
		notify:  make(chan struct{}, 1),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sitewatch_prober_results_dropped_total",
			Help: "Check results dropped, oldest first, by reason: buffer_full (memory buffer full), spool_full (beyond -spool-max-bytes), spool_error (memory buffer or producer full while the spool could not write), corrupt (in a spool segment found damaged).",
		}, []string{"reason"}),
		produceErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_prober_produce_errors_total",
			Help: "Check results that Kafka did not accept (after the client's retries).",
		}),
		produced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_prober_results_produced_total",
			Help: "Check results acknowledged by Kafka.",
		}),
		drained: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_prober_spool_drained_total",
			Help: "Spooled check results acknowledged by Kafka and removed from the spool.",
		}),
		spoolErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_prober_spool_errors_total",
			Help: "Times the spool stopped taking writes (a full disk) or an fsync failed; while it is stopped, results go from memory straight to Kafka.",
		}),
	}
	for _, reason := range []string{DropBufferFull, DropSpoolFull, DropSpoolError, DropCorrupt} {
		p.dropped.WithLabelValues(reason)
	}
	buffered := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sitewatch_prober_results_buffered",
		Help: "Check results waiting in memory: in the buffer plus in the Kafka producer, not yet acknowledged.",
	}, func() float64 { return float64(p.Buffered()) })
	collectors := []prometheus.Collector{p.dropped, p.produceErrors, p.produced, buffered}

	if o.SpoolDir != "" {
		sp, err := spool.Open(spool.Options{Dir: o.SpoolDir, Topic: o.Topic, MaxBytes: o.SpoolMaxBytes,
			Window: 2 * producerBuffer, Logger: o.Logger})
		if err != nil {
			return nil, err
		}
		p.spool = sp
		collectors = append(collectors, p.drained, p.spoolErrors,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "sitewatch_prober_spool_bytes",
				Help: "Bytes of the spool's segment files.",
			}, func() float64 { return float64(sp.Stats().Bytes) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "sitewatch_prober_spool_records",
				Help: "Check results in the spool not yet acknowledged by Kafka.",
			}, func() float64 { return float64(sp.Stats().Records) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "sitewatch_prober_spool_oldest_age_seconds",
				Help: "Age of the oldest check result in the spool not yet acknowledged (0 when none).",
			}, func() float64 {
				if o := sp.Stats().Oldest; !o.IsZero() {
					return time.Since(o).Seconds()
				}
				return 0
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "sitewatch_prober_spool_available",
				Help: "1 while the spool takes writes, 0 while it pauses after a write error (a full disk).",
			}, func() float64 {
				if p.spoolDown.Load() {
					return 0
				}
				return 1
			}),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "sitewatch_prober_spool_corrupt_segments_total",
				Help: "Spool segments found damaged (torn tail, CRC mismatch) and skipped from the damage on.",
			}, func() float64 { return float64(sp.Stats().CorruptSegments) }),
		)
	}
	fail := func(err error) (*Publisher, error) {
		if p.spool != nil {
			p.spool.Close()
		}
		return nil, err
	}
	for _, c := range collectors {
		if err := o.Registerer.Register(c); err != nil {
			return fail(fmt.Errorf("publish metrics: %w", err))
		}
	}

	opts, err := kcfg.ClientOpts()
	if err != nil {
		return fail(err)
	}
	kmetrics := kprom.NewMetrics("sitewatch_prober_kafka", kprom.Registerer(o.Registerer))
	opts = append(opts,
		kgo.DefaultProduceTopic(o.Topic),
		// Idempotent writes are franz-go's default; they need acks=all.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(o.Compression),
		kgo.ProducerLinger(o.Linger),
		kgo.MaxBufferedRecords(producerBuffer),
		kgo.WithHooks(kmetrics),
		kgo.WithLogger(kslog.New(o.Logger.With("component", "kafka"))),
	)
	p.cl, err = kgo.NewClient(opts...)
	if err != nil {
		return fail(fmt.Errorf("kafka client: %w", err))
	}
	p.registry, err = kcfg.Registry()
	if err != nil {
		p.cl.Close()
		return fail(err)
	}
	return p, nil
}

// Publish queues r to be sent; it never blocks. When the buffer is full the
// oldest queued result is dropped.
func (p *Publisher) Publish(r check.Result) {
	p.mu.Lock()
	if p.n == len(p.ring) {
		p.ring[p.head] = check.Result{}
		p.head = (p.head + 1) % len(p.ring)
		p.n--
		if p.spoolDown.Load() {
			p.dropped.WithLabelValues(DropSpoolError).Inc()
		} else {
			p.dropped.WithLabelValues(DropBufferFull).Inc()
		}
	}
	p.ring[(p.head+p.n)%len(p.ring)] = r
	p.n++
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// take moves up to len(out) queued results into out.
func (p *Publisher) take(out []check.Result) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := min(len(out), p.n)
	for i := range k {
		out[i] = p.ring[p.head]
		p.ring[p.head] = check.Result{}
		p.head = (p.head + 1) % len(p.ring)
	}
	p.n -= k
	return k
}

// Buffered returns the results waiting in memory: queued plus in the
// producer.
func (p *Publisher) Buffered() int {
	p.mu.Lock()
	n := p.n
	p.mu.Unlock()
	return n + int(p.cl.BufferedProduceRecords())
}

// Ready reports whether results are kept: the schema is registered and
// either the spool takes them or a broker answers. A Kafka outage with a
// working spool is ready: checks go on and nothing is lost.
func (p *Publisher) Ready(ctx context.Context) error {
	if !p.ready.Load() {
		if err := p.setupErr.Load(); err != nil {
			return fmt.Errorf("not set up: %w", *err)
		}
		return errors.New("not set up yet")
	}
	if p.spool != nil && !p.spoolDown.Load() {
		return nil
	}
	if err := p.cl.Ping(ctx); err != nil {
		if p.spool != nil {
			return fmt.Errorf("spool not writing (%v) and kafka: %w", p.spool.Stats().Err, err)
		}
		return fmt.Errorf("kafka: %w", err)
	}
	return nil
}

// Close releases the clients and the spool; call it after Run returned.
// Results the spool holds unacknowledged stay for the next start.
func (p *Publisher) Close() {
	p.cl.Close()
	if p.spool != nil {
		if err := p.spool.Close(); err != nil {
			p.log.Error("closing the spool", "err", err)
		}
	}
}

// Run sets up the topic and the schema, then sends queued results until
// ctx ends; then it sends what is queued and flushes, waiting at most
// FlushTimeout for Kafka. Cancel ctx only once nothing more is published.
// With a spool, what Kafka did not take by then stays spooled.
//
// When the registry or Kafka does not answer at start, Run retries with
// backoff, logging each failure, until they answer or ctx ends: checks go
// on meanwhile, their results wait in the buffer (with a spool, on disk
// once the schema is registered), and Ready says why nothing flows. It
// returns an error only for what retrying cannot fix:
// ErrIncompatibleSchema, or a registry refusing the request (401, 403, 422).
func (p *Publisher) Run(ctx context.Context) error {
	// Produce with a context that outlives ctx by FlushTimeout: the results
	// already taken and those still queued at stop are sent, but with
	// Kafka down, shutdown still ends.
	produceCtx, cancelProduce := shutdown.WithGrace(ctx, p.o.FlushTimeout)
	defer cancelProduce()

	if p.spool == nil {
		return p.runMemory(ctx, produceCtx)
	}
	// The spool may hold results of a previous run: deliver them while the
	// registry is set up.
	writerDone := make(chan struct{})
	pumpDone := make(chan struct{})
	go func() {
		defer close(pumpDone)
		p.pumpSpool(produceCtx, writerDone)
	}()
	defer func() {
		<-pumpDone
		p.flush(produceCtx)
	}()
	// Closed on every return: the pump then stops once the spool is empty
	// (or FlushTimeout after ctx ended).
	defer close(writerDone)

	if err := p.setupWithRetry(ctx, false); err != nil {
		cancelProduce() // a fatal error: do not wait for Kafka
		return err
	}
	if !p.ready.Load() {
		p.lostBeforeSetUp()
		return nil
	}
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		p.syncSpool(ctx)
	}()
	p.writeSpool(ctx, produceCtx)
	<-syncDone
	if err := p.spool.Sync(); err != nil {
		p.log.Error("spool: sync at shutdown", "err", err)
	}
	return nil
}

func (p *Publisher) lostBeforeSetUp() {
	p.mu.Lock()
	lost := p.n
	p.mu.Unlock()
	if lost > 0 {
		p.log.Error("stopping before the schema registry was set up: results not sent", "results", lost)
	}
}

func (p *Publisher) flush(produceCtx context.Context) {
	err := p.cl.Flush(produceCtx)
	kept := int64(0)
	if p.spool != nil {
		kept = p.spool.Stats().Records
	}
	switch {
	case err != nil && p.spool != nil:
		p.log.Warn("flush at shutdown incomplete: results stay in the spool for the next start",
			"spooled", kept, "timeout", p.o.FlushTimeout, "err", err)
	case err != nil:
		p.log.Error("flush at shutdown incomplete: results not sent", "results", p.Buffered(), "timeout", p.o.FlushTimeout, "err", err)
	case kept > 0:
		p.log.Info("flushed at shutdown; results stay in the spool for the next start", "spooled", kept)
	default:
		p.log.Info("flushed at shutdown")
	}
}

// runMemory is Run without a spool.
func (p *Publisher) runMemory(ctx, produceCtx context.Context) error {
	if err := p.setupWithRetry(ctx, true); err != nil {
		return err
	}
	if !p.ready.Load() {
		p.lostBeforeSetUp()
		return nil
	}
	p.pump(ctx, produceCtx, false)
	p.pump(ctx, produceCtx, true)
	p.flush(produceCtx)
	return nil
}

// pump produces queued results until ctx ends or, when draining, until the
// queue is empty. Produce uses produceCtx.
func (p *Publisher) pump(ctx, produceCtx context.Context, draining bool) {
	batch := make([]check.Result, 256)
	event := &sitewatchv1.CheckResult{}
	for {
		k := p.take(batch)
		for i := range k {
			rec, err := p.record(&batch[i], event)
			batch[i] = check.Result{}
			if err != nil {
				p.produceError(err)
				continue
			}
			// Blocks while the producer buffer is full (Kafka down): the
			// results then wait in the dropping buffer.
			p.cl.Produce(produceCtx, rec, p.promise)
		}
		if k > 0 {
			continue
		}
		if draining {
			return
		}
		select {
		case <-p.notify:
		case <-ctx.Done():
			return
		}
	}
}

// writeSpool encodes queued results and appends them to the spool until
// ctx ends, then once more for what is queued. When the spool refuses
// (a full disk), results go straight to the producer.
func (p *Publisher) writeSpool(ctx, produceCtx context.Context) {
	batch := make([]check.Result, 256)
	entries := make([]spool.Entry, 0, len(batch))
	event := &sitewatchv1.CheckResult{}
	for {
		k := p.take(batch)
		entries = entries[:0]
		for i := range k {
			rec, err := p.record(&batch[i], event)
			batch[i] = check.Result{}
			if err != nil {
				p.produceError(err)
				continue
			}
			entries = append(entries, spool.Entry{Key: rec.Key, Value: rec.Value})
		}
		if len(entries) > 0 {
			dropped, err := p.spool.Append(entries)
			if dropped > 0 {
				p.dropped.WithLabelValues(DropSpoolFull).Add(float64(dropped))
			}
			if err != nil {
				if !p.spoolDown.Swap(true) {
					p.spoolErrors.Inc()
				}
				for _, e := range entries {
					// Never waits for room in the producer: with Kafka away
					// too, a blocked writer would never try the disk again.
					// What does not fit is dropped (the oldest in memory).
					p.cl.TryProduce(produceCtx, &kgo.Record{Key: e.Key, Value: e.Value}, p.fallbackPromise)
				}
			} else {
				p.spoolDown.Store(false)
			}
		}
		if k > 0 {
			continue
		}
		select {
		case <-p.notify:
			// Gather a few milliseconds of results into one write: at
			// thousands of checks a second, a write per result would cost
			// more CPU than the checks save by not waiting.
			if p.queued() < len(batch) {
				t := time.NewTimer(writeCoalesce)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			}
		case <-ctx.Done():
			if p.queued() == 0 {
				return
			}
		}
	}
}

// writeCoalesce is the longest a result waits in memory for others to be
// written with it.
const writeCoalesce = 5 * time.Millisecond

func (p *Publisher) queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// syncSpool fsyncs the spool every SpoolSync until ctx ends.
func (p *Publisher) syncSpool(ctx context.Context) {
	t := time.NewTicker(p.o.SpoolSync)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := p.spool.Sync(); err != nil {
				p.spoolErrors.Inc()
				p.log.Error("spool: sync", "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

// pumpSpool creates the topic, then hands spooled records to the producer,
// oldest first, until the writer is done and the spool is empty, or
// produceCtx ends.
func (p *Publisher) pumpSpool(produceCtx context.Context, writerDone <-chan struct{}) {
	if !p.ensureTopic(produceCtx) {
		return
	}
	for {
		rec, skipped, ok := p.spool.Next()
		if skipped > 0 {
			p.dropped.WithLabelValues(DropCorrupt).Add(float64(skipped))
		}
		if ok {
			ticket := rec.Ticket
			p.cl.Produce(produceCtx, &kgo.Record{Key: rec.Key, Value: rec.Value}, func(_ *kgo.Record, err error) {
				p.spooledProduced(ticket, err)
			})
			continue
		}
		select {
		case <-writerDone:
			if p.spool.Stats().Records == 0 {
				return
			}
		default:
		}
		select {
		case <-p.spool.Notify():
		case <-writerDone:
			// Re-check emptiness; then wait for acknowledgements.
			select {
			case <-p.spool.Notify():
			case <-produceCtx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		case <-produceCtx.Done():
			return
		}
	}
}

func (p *Publisher) spooledProduced(ticket uint64, err error) {
	switch {
	case err == nil:
		p.spool.Ack(ticket)
		p.produced.Inc()
		p.drained.Inc()
	case errors.Is(err, kgo.ErrClientClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// Shutting down: the record stays spooled for the next start.
	default:
		// Retrying will not help (the client retries what can succeed);
		// removing it keeps the spool moving.
		p.spool.Ack(ticket)
		p.produceError(err)
	}
}

// ensureTopic creates the topic when missing, retrying with backoff until
// Kafka answers or ctx ends (false).
func (p *Publisher) ensureTopic(ctx context.Context) bool {
	// At most 5 s: the spool drains only once the topic is known, and one
	// request every 5 s costs Kafka nothing.
	_, err := backoff.Do(ctx, backoff.Exponential(500*time.Millisecond, 5*time.Second), p.createTopic, nil,
		func(attempt int, wait time.Duration, err error) {
			p.log.Warn("kafka not ready; checks go on, results wait in the spool", "attempt", attempt, "retry_in", wait, "err", err)
		})
	return err == nil
}

func (p *Publisher) record(r *check.Result, event *sitewatchv1.CheckResult) (*kgo.Record, error) {
	r.FillEvent(event, p.o.Prober)
	value, err := p.serde.AppendEncode(make([]byte, 0, 64+proto.Size(event)), event)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", r.Target.ID, err)
	}
	return &kgo.Record{Key: []byte(r.Target.ID), Value: value}, nil
}

// fallbackPromise is promise for results sent past a spool that cannot
// write: the producer being full drops them.
func (p *Publisher) fallbackPromise(r *kgo.Record, err error) {
	if errors.Is(err, kgo.ErrMaxBuffered) {
		p.dropped.WithLabelValues(DropSpoolError).Inc()
		return
	}
	p.promise(r, err)
}

func (p *Publisher) promise(_ *kgo.Record, err error) {
	if err == nil {
		p.produced.Inc()
		return
	}
	p.produceError(err)
}

// produceError counts err and logs it, at most once a second: an outage
// would otherwise log once per result.
func (p *Publisher) produceError(err error) {
	p.produceErrors.Inc()
	now := time.Now().UnixNano()
	last := p.lastErrLog.Load()
	if now-last > int64(time.Second) && p.lastErrLog.CompareAndSwap(last, now) {
		p.log.Error("result not produced", "topic", p.o.Topic, "err", err)
	}
}

// setupWithRetry registers the schema (and, with withTopic, creates the
// topic first) until it works, ctx ends, or a permanent error.
func (p *Publisher) setupWithRetry(ctx context.Context, withTopic bool) error {
	_, err := backoff.Do(ctx, backoff.Exponential(500*time.Millisecond, 30*time.Second),
		func(ctx context.Context) error { return p.setup(ctx, withTopic) },
		func(err error) bool {
			var perm permanentError
			return !errors.As(err, &perm)
		},
		func(attempt int, wait time.Duration, err error) {
			p.setupErr.Store(&err)
			p.log.Warn("kafka or schema registry not ready; checks go on, results wait in the buffer",
				"attempt", attempt, "retry_in", wait, "err", err)
		})
	switch {
	case err == nil:
		p.ready.Store(true)
		p.setupErr.Store(nil)
		return nil
	case ctx.Err() != nil:
		return nil
	}
	return err
}

// permanentError marks a set-up error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func (p *Publisher) setup(ctx context.Context, withTopic bool) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if withTopic {
		if err := p.createTopic(ctx); err != nil {
			return err
		}
	}
	return p.registerSchema(ctx)
}

func (p *Publisher) createTopic(ctx context.Context) error {
	// Short: while Kafka is away, a long attempt delays the drain after it
	// is back.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(p.cl)
	resp, err := adm.CreateTopic(ctx, p.o.Partitions, p.o.ReplicationFactor, nil, p.o.Topic)
	if err == nil {
		err = resp.Err
	}
	switch {
	case err == nil:
		p.log.Info("created topic", "topic", p.o.Topic, "partitions", resp.NumPartitions, "replication_factor", resp.ReplicationFactor)
	case errors.Is(err, kerr.TopicAlreadyExists):
	default:
		return fmt.Errorf("create topic %s: %w", p.o.Topic, err)
	}
	return nil
}

func (p *Publisher) registerSchema(ctx context.Context) error {
	ss, err := p.registry.CreateSchema(ctx, p.subject, sr.Schema{Schema: sitewatchv1.Schema, Type: sr.TypeProtobuf})
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) {
			switch {
			// By the registry's error code; by the HTTP status for a
			// registry that sends another code (or none) with its 409.
			case re.SchemaError() == sr.ErrIncompatibleSchema, re.StatusCode == http.StatusConflict:
				return permanentError{fmt.Errorf("%w: subject %s: %s; evolve check_result.proto compatibly (buf breaking) or register the change deliberately",
					ErrIncompatibleSchema, p.subject, re.Message)}
			case re.StatusCode == http.StatusUnauthorized, re.StatusCode == http.StatusForbidden,
				re.StatusCode == http.StatusUnprocessableEntity:
				return permanentError{fmt.Errorf("register schema under %s: %w", p.subject, err)}
			}
		}
		return fmt.Errorf("register schema under %s: %w", p.subject, err)
	}
	// After registering: a registry that does not answer fails above, once.
	p.ensureBackward(ctx)
	// Index 0: CheckResult is the first message of check_result.proto.
	p.serde.Register(ss.ID, &sitewatchv1.CheckResult{},
		sr.AppendEncodeFn(func(b []byte, v any) ([]byte, error) {
			return proto.MarshalOptions{}.MarshalAppend(b, v.(*sitewatchv1.CheckResult))
		}),
		sr.Index(0))
	p.log.Info("schema registered", "subject", p.subject, "id", ss.ID, "version", ss.Version, "topic", p.o.Topic)
	return nil
}

// ensureBackward sets the subject's compatibility to BACKWARD (docs/design.md)
// when it has none stricter; a registry whose default is NONE (Apicurio's)
// would otherwise accept any change. A failure is only logged: the
// operator may manage compatibility, and registering still works.
func (p *Publisher) ensureBackward(ctx context.Context) {
	res := p.registry.Compatibility(ctx, p.subject)
	if len(res) == 1 && res[0].Err == nil && res[0].Level != sr.CompatNone {
		return
	}
	set := p.registry.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatBackward}, p.subject)
	if len(set) == 1 && set[0].Err != nil {
		p.log.Warn("could not set the subject's compatibility to BACKWARD", "subject", p.subject, "err", set[0].Err)
	}
}
