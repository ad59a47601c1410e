package consume

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

// flakyRegistry puts a proxy in front of the registry at upstream that
// answers 503 while down is set, as a registry restarting or unreachable
// would.
func flakyRegistry(t *testing.T, upstream string) (*sr.Client, *atomic.Bool) {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "registry unavailable", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cl, err := sr.NewClient(sr.URLs(srv.URL + target.Path))
	if err != nil {
		t.Fatal(err)
	}
	return cl, &down
}

// An unreachable registry is a transient error, never a dead letter; once
// it answers, the record decodes, and the verdict is cached from then on.
func TestDecodeRegistryUnavailable(t *testing.T) {
	eachBackend(t, testDecodeRegistryUnavailable)
}

func testDecodeRegistryUnavailable(t *testing.T, b backend) {
	ctx := context.Background()
	cl, down := flakyRegistry(t, b.open(t, 0).regURL)
	ss, err := cl.CreateSchema(ctx, kafkaenv.Subject(stacktest.Name("decode")), sr.Schema{Schema: sitewatchv1.Schema, Type: sr.TypeProtobuf})
	if err != nil {
		t.Fatal(err)
	}
	var serde sr.Serde
	serde.Register(ss.ID, &sitewatchv1.CheckResult{}, sr.Index(0),
		sr.EncodeFn(func(v any) ([]byte, error) { return proto.Marshal(v.(*sitewatchv1.CheckResult)) }))
	value, err := serde.Encode(validEvent())
	if err != nil {
		t.Fatal(err)
	}

	dec := NewDecoder(cl)
	down.Store(true)
	_, err = dec.Decode(ctx, value)
	var dl *deadLetter
	if err == nil || errors.As(err, &dl) {
		t.Fatalf("registry down: got %v, want a transient (non dead-letter) error", err)
	}
	if !strings.Contains(err.Error(), "look up schema ID") {
		t.Errorf("error %q does not say what failed", err)
	}
	down.Store(false)
	ev, err := dec.Decode(ctx, value)
	if err != nil {
		t.Fatalf("registry back: %v", err)
	}
	if ev.TargetID != "alpha" || !ev.Up || ev.ResponseTime != 12*time.Millisecond || ev.StatusCode != 200 {
		t.Errorf("decoded %+v", ev)
	}
	down.Store(true) // cached: no registry needed any more
	if _, err := dec.Decode(ctx, value); err != nil {
		t.Errorf("cached schema: %v", err)
	}
}

// A schema that declares sitewatch.v1.CheckResult with a field of another
// type is refused: its bytes would not decode field for field.
func TestDecodeIncompatibleCheckResult(t *testing.T) {
	eachBackend(t, testDecodeIncompatibleCheckResult)
}

func testDecodeIncompatibleCheckResult(t *testing.T, b backend) {
	ctx := context.Background()
	cl := b.open(t, 0).reg
	text := strings.Replace(sitewatchv1.Schema, "uint32 status_code = 7;", "string status_code = 7;", 1)
	ss, err := cl.CreateSchema(ctx, kafkaenv.Subject(stacktest.Name("incompatible")), sr.Schema{Schema: text, Type: sr.TypeProtobuf})
	if err != nil {
		t.Fatal(err)
	}
	value := []byte{0, 0, 0, 0, 0, 0}
	value[1], value[2], value[3], value[4] = byte(ss.ID>>24), byte(ss.ID>>16), byte(ss.ID>>8), byte(ss.ID)
	_, err = NewDecoder(cl).Decode(ctx, value)
	var dl *deadLetter
	if !errors.As(err, &dl) || dl.reason != ReasonWrongSchema ||
		!strings.Contains(dl.detail, "field 7 of sitewatch.v1.CheckResult is optional string, this recorder expects optional uint32") {
		t.Fatalf("got %v, want a wrong_schema dead letter naming field 7", err)
	}
}

// Strings longer than anything a prober sends are invalid events: a 3 KB
// target id would otherwise be refused by PostgreSQL's btree index forever.
func TestToEventBoundsStrings(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(m *sitewatchv1.CheckResult)
		want   string // the dead letter's detail; "" when valid
	}{
		{"target id at the prober's limit", func(m *sitewatchv1.CheckResult) { m.Target.Id = strings.Repeat("a", 200) }, ""},
		{"3 KB target id", func(m *sitewatchv1.CheckResult) { m.Target.Id = strings.Repeat("a", 3000) },
			"target.id is 3000 bytes long (at most 200)"},
		{"8 KiB URL", func(m *sitewatchv1.CheckResult) { m.Target.Url = "https://a.test/" + strings.Repeat("x", 8192-15) }, ""},
		{"URL over 8 KiB", func(m *sitewatchv1.CheckResult) { m.Target.Url = "https://a.test/" + strings.Repeat("x", 9000) },
			"target.url is 9015 bytes long (at most 8192)"},
		{"protocol", func(m *sitewatchv1.CheckResult) { m.Protocol = "HTTP/2.0" }, ""},
		{"protocol over 32 bytes", func(m *sitewatchv1.CheckResult) { m.Protocol = strings.Repeat("H", 33) },
			"protocol is 33 bytes long (at most 32)"},
		{"negative decoded bytes", func(m *sitewatchv1.CheckResult) { m.DecodedBytes = proto.Int64(-1) },
			"decoded_bytes -1 is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := validEvent()
			tc.change(m)
			_, err := toEvent(m)
			var dl *deadLetter
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want a valid event", err)
			case tc.want != "" && (!errors.As(err, &dl) || dl.reason != ReasonInvalidEvent || dl.detail != tc.want):
				t.Fatalf("got %v, want %s: %s", err, ReasonInvalidEvent, tc.want)
			}
		})
	}
}

// protocol and decoded_bytes pass through; an event of an older prober,
// without them, has no protocol and no decoded bytes (NULL), not zero.
func TestToEventProtocolAndDecodedBytes(t *testing.T) {
	m := validEvent()
	m.BytesRead = 300
	old, err := toEvent(m)
	if err != nil {
		t.Fatal(err)
	}
	if old.Protocol != "" || old.DecodedBytes != nil {
		t.Errorf("old event: protocol %q decoded bytes %v, want none", old.Protocol, old.DecodedBytes)
	}
	m.Protocol, m.DecodedBytes = "HTTP/2.0", proto.Int64(1200)
	e, err := toEvent(m)
	if err != nil {
		t.Fatal(err)
	}
	if e.Protocol != "HTTP/2.0" || e.DecodedBytes == nil || *e.DecodedBytes != 1200 || e.BytesRead != 300 {
		t.Errorf("protocol %q decoded bytes %v bytes read %d, want HTTP/2.0 1200 300", e.Protocol, e.DecodedBytes, e.BytesRead)
	}
}

// scheduled_at passes through as the event's slot; an event of an older
// prober has none (zero: no claim, NULL); an invalid one is an invalid event.
func TestToEventScheduledAt(t *testing.T) {
	m := validEvent()
	old, err := toEvent(m)
	if err != nil {
		t.Fatal(err)
	}
	if !old.ScheduledAt.IsZero() {
		t.Errorf("old event: scheduled at %s, want none", old.ScheduledAt)
	}
	slot := time.Date(2026, 11, 30, 23, 59, 59, 990_000_000, time.UTC)
	m.ScheduledAt = timestamppb.New(slot)
	e, err := toEvent(m)
	if err != nil {
		t.Fatal(err)
	}
	if !e.ScheduledAt.Equal(slot) {
		t.Errorf("scheduled at %s, want %s", e.ScheduledAt, slot)
	}
	for _, tc := range []struct {
		ts   *timestamppb.Timestamp
		want string
	}{
		{&timestamppb.Timestamp{Seconds: 1, Nanos: -1}, "scheduled_at is not a valid timestamp"},
		{timestamppb.New(time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)), "scheduled_at 1999-01-01T00:00:00Z is before 2000"},
	} {
		m.ScheduledAt = tc.ts
		_, err := toEvent(m)
		var dl *deadLetter
		if !errors.As(err, &dl) || dl.reason != ReasonInvalidEvent || dl.detail != tc.want {
			t.Errorf("scheduled_at %v: got %v, want %s: %s", tc.ts, err, ReasonInvalidEvent, tc.want)
		}
	}
}

// The target's interval passes through; absent (an older prober), zero,
// negative or invalid it is unknown (0), never a reason to refuse the event.
func TestToEventInterval(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval *durationpb.Duration
		want     time.Duration
	}{
		{"carried", durationpb.New(30 * time.Second), 30 * time.Second},
		{"older prober", nil, 0},
		{"zero", durationpb.New(0), 0},
		{"negative", durationpb.New(-time.Second), 0},
		{"invalid", &durationpb.Duration{Seconds: 1, Nanos: -1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := validEvent()
			m.Target.Interval = tc.interval
			e, err := toEvent(m)
			if err != nil {
				t.Fatal(err)
			}
			if e.Interval != tc.want {
				t.Errorf("interval %s, want %s", e.Interval, tc.want)
			}
		})
	}
}

// validEvent is a CheckResult that decodes, for a test to change.
func validEvent() *sitewatchv1.CheckResult {
	return &sitewatchv1.CheckResult{
		EventId:      uuid.Must(uuid.NewV7()).String(),
		Target:       &sitewatchv1.Target{Id: "alpha", Url: "https://alpha.test/", Method: "GET"},
		StartedAt:    timestamppb.Now(),
		ResponseTime: durationpb.New(12 * time.Millisecond),
		StatusCode:   200,
		Outcome:      sitewatchv1.Outcome_OUTCOME_UP,
	}
}
