// Package publish sends check results to Kafka as CheckResult events in the
// Confluent wire format, with the schema registered in the Schema Registry
// (twmb/franz-go examples/schema_registry).
//
// Checks never wait for Kafka: Publish puts a result in a bounded buffer and
// returns. When the buffer is full (Kafka down for long), the oldest result
// is dropped and counted, so memory stays bounded. A single pump moves the
// results, encoded, into the franz-go producer (idempotent, acks=all), whose
// own buffer is bounded too and retries until Kafka is back.
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
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/prober/internal/check"
)

// ErrIncompatibleSchema is returned by Run when the registry refuses the
// CheckResult schema as incompatible with the versions registered under the
// subject (HTTP 409): this build must not write events that consumers of
// the registered schema could not read.
var ErrIncompatibleSchema = errors.New("schema registry refused the CheckResult schema as incompatible (409)")

// producerBuffer bounds the records handed to franz-go and not yet
// acknowledged; results beyond wait in the dropping buffer.
const producerBuffer = 4096

// Options configure a Publisher.
type Options struct {
	Topic string
	// Partitions and ReplicationFactor are used when the topic is created;
	// -1 takes the broker's default.
	Partitions        int32
	ReplicationFactor int16
	// Buffer bounds the results waiting to be produced (at least 1).
	Buffer      int
	Compression kgo.CompressionCodec
	Linger      time.Duration
	// FlushTimeout bounds the wait for Kafka at shutdown.
	FlushTimeout time.Duration
	// Prober identifies this prober in every event.
	Prober *sitewatchv1.Prober

	Logger     *slog.Logger
	Registerer prometheus.Registerer
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

	ready    atomic.Bool
	setupErr atomic.Pointer[error]

	mu      sync.Mutex
	ring    []check.Result
	head, n int
	notify  chan struct{}

	dropped       prometheus.Counter
	produceErrors prometheus.Counter
	produced      prometheus.Counter
	lastErrLog    atomic.Int64 // unix nanos of the last produce error logged
}

// New builds the Kafka and registry clients; it does not connect yet.
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
	p := &Publisher{
		o:       o,
		subject: kafkaenv.Subject(o.Topic),
		log:     o.Logger,
		ring:    make([]check.Result, o.Buffer),
		notify:  make(chan struct{}, 1),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_prober_results_dropped_total",
			Help: "Check results dropped, oldest first, because the buffer in front of Kafka was full.",
		}),
		produceErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_prober_produce_errors_total",
			Help: "Check results that Kafka did not accept (after the client's retries).",
		}),
		produced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_prober_results_produced_total",
			Help: "Check results acknowledged by Kafka.",
		}),
	}
	buffered := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sitewatch_prober_results_buffered",
		Help: "Check results waiting: in the dropping buffer plus in the Kafka producer, not yet acknowledged.",
	}, func() float64 { return float64(p.Buffered()) })
	for _, c := range []prometheus.Collector{p.dropped, p.produceErrors, p.produced, buffered} {
		if err := o.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("publish metrics: %w", err)
		}
	}

	opts, err := kcfg.ClientOpts()
	if err != nil {
		return nil, err
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
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	p.registry, err = kcfg.Registry()
	if err != nil {
		p.cl.Close()
		return nil, err
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
		p.dropped.Inc()
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

// Buffered returns the results waiting: queued plus in the producer.
func (p *Publisher) Buffered() int {
	p.mu.Lock()
	n := p.n
	p.mu.Unlock()
	return n + int(p.cl.BufferedProduceRecords())
}

// Ready reports whether results flow: the schema is registered and a broker
// answers.
func (p *Publisher) Ready(ctx context.Context) error {
	if !p.ready.Load() {
		if err := p.setupErr.Load(); err != nil {
			return fmt.Errorf("not set up: %w", *err)
		}
		return errors.New("not set up yet")
	}
	if err := p.cl.Ping(ctx); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	return nil
}

// Close releases the clients; call it after Run returned.
func (p *Publisher) Close() { p.cl.Close() }

// Run sets up the topic and the schema, then sends queued results until
// ctx ends; then it sends what is queued and flushes, waiting at most
// FlushTimeout for Kafka. Cancel ctx only once nothing more is published.
//
// When the registry or Kafka does not answer at start, Run retries with
// backoff, logging each failure, until they answer or ctx ends: checks go
// on meanwhile, their results wait in the buffer, and Ready says why
// nothing flows. It returns an error only for what retrying cannot fix:
// ErrIncompatibleSchema, or a registry refusing the request (401, 403, 422).
func (p *Publisher) Run(ctx context.Context) error {
	if err := p.setupWithRetry(ctx); err != nil {
		return err
	}
	if !p.ready.Load() {
		p.mu.Lock()
		lost := p.n
		p.mu.Unlock()
		if lost > 0 {
			p.log.Error("stopping before Kafka and the registry were set up: results not sent", "results", lost)
		}
		return nil
	}
	// Produce with a context that outlives ctx by FlushTimeout: the results
	// already taken and those still queued at stop are sent, but with
	// Kafka down, shutdown still ends.
	produceCtx, cancelProduce := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelProduce()
	stopTimer := context.AfterFunc(ctx, func() { time.AfterFunc(p.o.FlushTimeout, cancelProduce) })
	defer stopTimer()

	p.pump(ctx, produceCtx, false)
	p.pump(ctx, produceCtx, true)
	if err := p.cl.Flush(produceCtx); err != nil {
		lost := p.Buffered()
		p.log.Error("flush at shutdown incomplete: results not sent", "results", lost, "timeout", p.o.FlushTimeout, "err", err)
		return nil
	}
	p.log.Info("flushed at shutdown")
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

func (p *Publisher) record(r *check.Result, event *sitewatchv1.CheckResult) (*kgo.Record, error) {
	r.FillEvent(event, p.o.Prober)
	value, err := p.serde.AppendEncode(make([]byte, 0, 64+proto.Size(event)), event)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", r.Target.ID, err)
	}
	return &kgo.Record{Key: []byte(r.Target.ID), Value: value}, nil
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

func (p *Publisher) setupWithRetry(ctx context.Context) error {
	backoff := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := p.setup(ctx)
		if err == nil {
			p.ready.Store(true)
			p.setupErr.Store(nil)
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return err
		}
		p.setupErr.Store(&err)
		p.log.Warn("kafka or schema registry not ready; checks go on, results wait in the buffer",
			"attempt", attempt, "retry_in", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// permanentError marks a set-up error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func (p *Publisher) setup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
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

	ss, err := p.registry.CreateSchema(ctx, p.subject, sr.Schema{Schema: sitewatchv1.Schema, Type: sr.TypeProtobuf})
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) {
			switch re.StatusCode {
			case http.StatusConflict:
				return permanentError{fmt.Errorf("%w: subject %s: %s; evolve check_result.proto compatibly (buf breaking) or register the change deliberately",
					ErrIncompatibleSchema, p.subject, re.Message)}
			case http.StatusUnauthorized, http.StatusForbidden, http.StatusUnprocessableEntity:
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

// ensureBackward sets the subject's compatibility to BACKWARD (design.md)
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
