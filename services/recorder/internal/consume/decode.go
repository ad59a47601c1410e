package consume

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bufbuild/protocompile"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/sr"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/checkevent"
	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
)

// Dead-letter reasons, the value of the dlq.reason header and of the reason
// label of sitewatch_recorder_dead_lettered_total.
const (
	// ReasonNoMagicByte: empty, or the first byte is not the wire format's 0.
	ReasonNoMagicByte = "no_magic_byte"
	// ReasonBadHeader: too short for a schema ID, or bad message indexes.
	ReasonBadHeader = "bad_header"
	// ReasonUnknownSchemaID: the registry does not know the schema ID.
	ReasonUnknownSchemaID = "unknown_schema_id"
	// ReasonWrongSchema: the schema is not Protobuf, does not compile, its
	// message at the record's index is not sitewatch.v1.CheckResult, or a
	// field's type differs from this recorder's CheckResult.
	ReasonWrongSchema = "wrong_schema"
	// ReasonNotCheckResult: the payload is not valid Protobuf for CheckResult.
	ReasonNotCheckResult = "not_a_check_result"
	// ReasonInvalidEvent: a required field is missing or invalid (the
	// dlq.detail header names it).
	ReasonInvalidEvent = "invalid_event"
	// ReasonExpired: the check started before now minus the retention.
	ReasonExpired = "expired"
	// ReasonFuture: the check started further in the future than allowed.
	ReasonFuture = "future"
	// ReasonRejectedByDatabase: PostgreSQL refuses the event itself for good
	// (a data exception, a program limit exceeded, a constraint other than
	// the unique key); dlq.detail holds the SQLSTATE and message.
	ReasonRejectedByDatabase = "rejected_by_database"
)

// Bounds of an event's strings, beyond which it is an invalid event.
const (
	maxURL = 8 << 10
	// maxProtocol is far above any HTTP version's name ("HTTP/2.0").
	maxProtocol = 32
)

const checkResultName protoreflect.FullName = "sitewatch.v1.CheckResult"

// SchemaSource looks schemas up by ID; *sr.Client is one.
type SchemaSource interface {
	SchemaByID(ctx context.Context, id int) (sr.Schema, error)
	SchemaByVersion(ctx context.Context, subject string, version int) (sr.SubjectSchema, error)
}

// deadLetter is why a record cannot be stored.
type deadLetter struct {
	reason, detail string
}

func (d *deadLetter) Error() string { return d.reason + ": " + d.detail }

// schemaVerdict is what one schema ID is, cached.
type schemaVerdict struct {
	file    protoreflect.FileDescriptor // nil when dead
	dead    *deadLetter                 // why records with this ID are dead letters
	expires time.Time                   // for unknown IDs only: look again after this
	seq     uint64                      // order of caching, to evict the oldest
}

// Decoder turns Confluent wire-format records into store events. Each schema
// ID is looked up once and its verdict cached; an unknown ID is looked up
// again after a minute (a registry restored from a backup may learn it).
//
// Garbage records carry arbitrary schema IDs: the cache holds at most
// maxVerdicts IDs (evicting expired, then dead, then the oldest verdicts),
// and IDs not cached are looked up at most lookupRate a second, beyond a
// burst of lookupBurst. Past that, Decode waits: a valid record must never
// be dead-lettered for the limit.
type Decoder struct {
	schemas SchemaSource
	now     func() time.Time
	sleep   func(context.Context, time.Duration) error

	lookups *rate.Limiter

	mu       sync.Mutex
	verdicts map[int]schemaVerdict
	seq      uint64
}

// NewDecoder returns a decoder looking schemas up in src.
func NewDecoder(src SchemaSource) *Decoder {
	return &Decoder{schemas: src, now: time.Now, sleep: sleep, verdicts: map[int]schemaVerdict{},
		lookups: rate.NewLimiter(lookupRate, lookupBurst)}
}

const (
	unknownIDRetry = time.Minute
	maxVerdicts    = 1000
	lookupRate     = 10 // per second
	lookupBurst    = 20
)

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Decode returns the event in value, or a *deadLetter error saying why the
// record cannot be stored, or another error when the registry cannot be
// asked (transient: retry later, never dead-letter for it).
func (d *Decoder) Decode(ctx context.Context, value []byte) (store.Event, error) {
	if len(value) == 0 || value[0] != 0 {
		return store.Event{}, &deadLetter{ReasonNoMagicByte, "the value does not start with the wire format's magic byte 0"}
	}
	var h sr.ConfluentHeader
	id, rest, err := h.DecodeID(value)
	if err != nil {
		return store.Event{}, &deadLetter{ReasonBadHeader, "no 4-byte schema ID after the magic byte"}
	}
	index, payload, err := h.DecodeIndex(rest, 16)
	if err != nil {
		return store.Event{}, &deadLetter{ReasonBadHeader, "bad message indexes: " + err.Error()}
	}
	v, err := d.verdict(ctx, id)
	if err != nil {
		return store.Event{}, err
	}
	if v.dead != nil {
		return store.Event{}, v.dead
	}
	if md := messageAt(v.file, index); md == nil || md.FullName() != checkResultName {
		name := "nothing"
		if md != nil {
			name = string(md.FullName())
		}
		return store.Event{}, &deadLetter{ReasonWrongSchema, fmt.Sprintf("message index %v of schema %d names %s, not %s", index, id, name, checkResultName)}
	}
	var m sitewatchv1.CheckResult
	if err := proto.Unmarshal(payload, &m); err != nil {
		return store.Event{}, &deadLetter{ReasonNotCheckResult, err.Error()}
	}
	return toEvent(&m)
}

// messageAt follows Confluent message indexes: the first names a top-level
// message of the file, each next one a message nested in the previous.
func messageAt(fd protoreflect.FileDescriptor, index []int) protoreflect.MessageDescriptor {
	if len(index) == 0 {
		index = []int{0}
	}
	msgs := fd.Messages()
	var md protoreflect.MessageDescriptor
	for _, i := range index {
		if i < 0 || i >= msgs.Len() {
			return nil
		}
		md = msgs.Get(i)
		msgs = md.Messages()
	}
	return md
}

func (d *Decoder) verdict(ctx context.Context, id int) (schemaVerdict, error) {
	d.mu.Lock()
	v, ok := d.verdicts[id]
	d.mu.Unlock()
	if ok && (v.expires.IsZero() || d.now().Before(v.expires)) {
		return v, nil
	}
	if err := d.waitLookup(ctx); err != nil {
		return schemaVerdict{}, fmt.Errorf("look up schema ID %d: %w", id, err)
	}
	v, err := d.lookup(ctx, id)
	if err != nil {
		return v, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.verdicts[id]; !ok && len(d.verdicts) >= maxVerdicts {
		d.evictLocked()
	}
	d.seq++
	v.seq = d.seq
	d.verdicts[id] = v
	return v, nil
}

// waitLookup takes a lookup from the rate limit, waiting its turn when
// there is none. Reserving on d.now and sleeping with d.sleep (rather than
// rate.Limiter.Wait) lets a test run the limit on a fake clock.
func (d *Decoder) waitLookup(ctx context.Context) error {
	now := d.now()
	r := d.lookups.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	if wait <= 0 {
		return nil
	}
	if err := d.sleep(ctx, wait); err != nil {
		r.CancelAt(d.now()) // give the reservation back
		return err
	}
	return nil
}

// evictLocked makes room for one verdict: it drops the expired ones, or else
// the oldest dead one (garbage IDs), or else the oldest.
func (d *Decoder) evictLocked() {
	now := d.now()
	var oldest, oldestDead int
	var oldestSeq, oldestDeadSeq uint64 = math.MaxUint64, math.MaxUint64
	for id, v := range d.verdicts {
		if !v.expires.IsZero() && !now.Before(v.expires) {
			delete(d.verdicts, id)
			continue
		}
		if v.seq < oldestSeq {
			oldest, oldestSeq = id, v.seq
		}
		if v.dead != nil && v.seq < oldestDeadSeq {
			oldestDead, oldestDeadSeq = id, v.seq
		}
	}
	switch {
	case len(d.verdicts) < maxVerdicts:
	case oldestDeadSeq != math.MaxUint64:
		delete(d.verdicts, oldestDead)
	default:
		delete(d.verdicts, oldest)
	}
}

// lookup asks the registry for schema id and judges it.
func (d *Decoder) lookup(ctx context.Context, id int) (schemaVerdict, error) {
	s, err := d.schemas.SchemaByID(ctx, id)
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && (re.StatusCode == http.StatusNotFound || re.SchemaError() == sr.ErrSchemaNotFound) {
			return schemaVerdict{
				dead:    &deadLetter{ReasonUnknownSchemaID, fmt.Sprintf("schema ID %d is not in the registry", id)},
				expires: d.now().Add(unknownIDRetry),
			}, nil
		}
		return schemaVerdict{}, fmt.Errorf("look up schema ID %d: %w", id, err)
	}
	if s.Type != sr.TypeProtobuf {
		return schemaVerdict{dead: &deadLetter{ReasonWrongSchema, fmt.Sprintf("schema %d is %s, not PROTOBUF", id, s.Type)}}, nil
	}
	sources := map[string]string{"schema.proto": s.Schema}
	for _, ref := range s.References {
		rs, err := d.schemas.SchemaByVersion(ctx, ref.Subject, ref.Version)
		if err != nil {
			return schemaVerdict{}, fmt.Errorf("look up reference %s of schema ID %d: %w", ref.Name, id, err)
		}
		sources[ref.Name] = rs.Schema.Schema
	}
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(sources),
	})}
	files, err := c.Compile(ctx, "schema.proto")
	if err != nil {
		if ctx.Err() != nil {
			return schemaVerdict{}, ctx.Err()
		}
		return schemaVerdict{dead: &deadLetter{ReasonWrongSchema, fmt.Sprintf("schema %d does not compile: %v", id, err)}}, nil
	}
	fd := files[0]
	if md := fd.Messages().ByName(checkResultName.Name()); md != nil && fd.Package() == checkResultName.Parent() {
		ours := (&sitewatchv1.CheckResult{}).ProtoReflect().Descriptor()
		if err := compatible(md, ours, map[protoreflect.FullName]bool{}); err != nil {
			return schemaVerdict{dead: &deadLetter{ReasonWrongSchema, fmt.Sprintf("schema %d: %v", id, err)}}, nil
		}
	}
	return schemaVerdict{file: fd}, nil
}

// compatible checks that every field the writer's message shares (by number)
// with ours has the same type, recursively through message fields: such a
// writer's bytes decode into our type field for field. Fields only the writer
// has are ignored (a newer schema); fields only we have stay empty (an older
// one). Names may differ: renaming a field does not change the wire format.
func compatible(writer, ours protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) error {
	if seen[ours.FullName()] {
		return nil
	}
	seen[ours.FullName()] = true
	wf := writer.Fields()
	for i := range wf.Len() {
		w := wf.Get(i)
		o := ours.Fields().ByNumber(w.Number())
		if o == nil {
			continue
		}
		if w.Kind() != o.Kind() || w.Cardinality() != o.Cardinality() || w.IsMap() != o.IsMap() {
			return fmt.Errorf("field %d of %s is %s %s, this recorder expects %s %s",
				w.Number(), writer.FullName(), w.Cardinality(), w.Kind(), o.Cardinality(), o.Kind())
		}
		switch w.Kind() {
		case protoreflect.MessageKind, protoreflect.GroupKind:
			if w.Message().FullName() != o.Message().FullName() {
				return fmt.Errorf("field %d of %s is a %s, this recorder expects %s",
					w.Number(), writer.FullName(), w.Message().FullName(), o.Message().FullName())
			}
			if err := compatible(w.Message(), o.Message(), seen); err != nil {
				return err
			}
		case protoreflect.EnumKind:
			if w.Enum().FullName() != o.Enum().FullName() {
				return fmt.Errorf("field %d of %s is a %s, this recorder expects %s",
					w.Number(), writer.FullName(), w.Enum().FullName(), o.Enum().FullName())
			}
		}
	}
	return nil
}

// oldest is the earliest started_at accepted: anything before is a broken
// clock or a zero value, and would make partitions nobody wants.
var oldest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// toEvent validates a decoded CheckResult and converts it.
func toEvent(m *sitewatchv1.CheckResult) (store.Event, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	var e store.Event
	if id, err := uuid.Parse(m.GetEventId()); err != nil || len(m.GetEventId()) != 36 {
		bad("event_id %q is not a UUID in canonical form", m.GetEventId())
	} else {
		e.EventID = id
	}
	e.TargetID, e.URL, e.Method = m.GetTarget().GetId(), m.GetTarget().GetUrl(), m.GetTarget().GetMethod()
	// An interval that is absent or not positive is unknown, not an error:
	// events of older probers have none, and staleness then falls back.
	if iv := m.GetTarget().GetInterval(); iv != nil && iv.CheckValid() == nil && iv.AsDuration() > 0 {
		e.Interval = iv.AsDuration()
	}
	if e.TargetID == "" {
		bad("target.id is empty")
	} else if len(e.TargetID) > checkevent.MaxTargetID {
		bad("target.id is %d bytes long (at most %d)", len(e.TargetID), checkevent.MaxTargetID)
	}
	if len(e.URL) > maxURL {
		bad("target.url is %d bytes long (at most %d)", len(e.URL), maxURL)
	}
	if m.StartedAt == nil {
		bad("started_at is missing")
	} else if err := m.StartedAt.CheckValid(); err != nil {
		bad("started_at: %v", err)
	} else if e.CheckedAt = m.StartedAt.AsTime(); e.CheckedAt.Before(oldest) {
		bad("started_at %s is before %s", e.CheckedAt.Format(time.RFC3339), oldest.Format("2006"))
	}
	if m.ResponseTime == nil {
		bad("response_time is missing")
	} else if err := m.ResponseTime.CheckValid(); err != nil || m.ResponseTime.AsDuration() < 0 {
		bad("response_time is not a non-negative duration")
	} else {
		e.ResponseTime = m.ResponseTime.AsDuration()
	}
	switch m.GetOutcome() {
	case sitewatchv1.Outcome_OUTCOME_UP:
		e.Up = true
		if m.GetFailureKind() != sitewatchv1.FailureKind_FAILURE_KIND_UNSPECIFIED {
			bad("failure_kind %s with outcome UP", m.GetFailureKind())
		}
	case sitewatchv1.Outcome_OUTCOME_DOWN:
		k := m.GetFailureKind()
		if _, known := sitewatchv1.FailureKind_name[int32(k)]; !known || k == sitewatchv1.FailureKind_FAILURE_KIND_UNSPECIFIED {
			bad("failure_kind %s with outcome DOWN (want a known kind)", k)
		} else {
			e.FailureKind = checkevent.KindName(k)
		}
	default:
		bad("outcome %s", m.GetOutcome())
	}
	t := m.GetTimings()
	for _, p := range []struct {
		name string
		d    interface {
			CheckValid() error
			AsDuration() time.Duration
		}
		present bool
		into    **time.Duration
	}{
		{"timings.dns", t.GetDns(), t.GetDns() != nil, &e.DNS},
		{"timings.connect", t.GetConnect(), t.GetConnect() != nil, &e.Connect},
		{"timings.tls_handshake", t.GetTlsHandshake(), t.GetTlsHandshake() != nil, &e.TLSHandshake},
		{"timings.time_to_first_byte", t.GetTimeToFirstByte(), t.GetTimeToFirstByte() != nil, &e.TimeToFirstByte},
	} {
		if !p.present {
			continue
		}
		if p.d.CheckValid() != nil || p.d.AsDuration() < 0 {
			bad("%s is not a non-negative duration", p.name)
			continue
		}
		d := p.d.AsDuration()
		*p.into = &d
	}
	if m.GetStatusCode() > 999 {
		bad("status_code %d", m.GetStatusCode())
	}
	e.StatusCode = int32(m.GetStatusCode())
	e.BytesRead, e.BodyTruncated = m.GetBytesRead(), m.GetBodyTruncated()
	if m.DecodedBytes != nil {
		if *m.DecodedBytes < 0 {
			bad("decoded_bytes %d is negative", *m.DecodedBytes)
		}
		e.DecodedBytes = m.DecodedBytes
	}
	if len(m.GetProtocol()) > maxProtocol {
		bad("protocol is %d bytes long (at most %d)", len(m.GetProtocol()), maxProtocol)
	}
	e.Protocol = m.GetProtocol()
	if cc := m.GetContentCheck(); cc != nil {
		e.HasContentCheck, e.ContentPattern, e.ContentMatched = true, cc.GetPattern(), cc.GetMatched()
	}
	if ts := m.GetTlsCertExpiresAt(); ts != nil {
		if ts.CheckValid() != nil {
			bad("tls_cert_expires_at is not a valid timestamp")
		} else {
			e.TLSCertExpiresAt = ts.AsTime()
		}
	}
	if m.GetRedirects() > 1<<20 {
		bad("redirects %d", m.GetRedirects())
	}
	e.Redirects = int32(m.GetRedirects())
	e.Error = m.GetError()
	e.ProberInstance, e.ProberRegion = m.GetProber().GetInstance(), m.GetProber().GetRegion()
	if ts := m.GetScheduledAt(); ts != nil {
		if ts.CheckValid() != nil {
			bad("scheduled_at is not a valid timestamp")
		} else if e.ScheduledAt = ts.AsTime(); e.ScheduledAt.Before(oldest) {
			bad("scheduled_at %s is before %s", e.ScheduledAt.Format(time.RFC3339), oldest.Format("2006"))
		}
	}
	if len(problems) > 0 {
		return store.Event{}, &deadLetter{ReasonInvalidEvent, strings.Join(problems, "; ")}
	}
	return e, nil
}
