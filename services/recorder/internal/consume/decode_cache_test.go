package consume

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
)

// countingSource knows one schema, the CheckResult one, under validID, and
// counts the lookups it answers. It stands in for the registry to count
// requests; the registry's own answers are tested in decode_test.go.
type countingSource struct {
	calls atomic.Int64
}

const validID = 7

func (s *countingSource) SchemaByID(_ context.Context, id int) (sr.Schema, error) {
	s.calls.Add(1)
	if id == validID {
		return sr.Schema{Schema: sitewatchv1.Schema, Type: sr.TypeProtobuf}, nil
	}
	return sr.Schema{}, &sr.ResponseError{StatusCode: 404, ErrorCode: sr.ErrSchemaNotFound.Code, Message: "Schema not found"}
}

func (s *countingSource) SchemaByVersion(context.Context, string, int) (sr.SubjectSchema, error) {
	return sr.SubjectSchema{}, errors.New("no references expected")
}

// fakeTime is a clock that only moves when told or when slept on.
type fakeTime struct {
	now   time.Time
	slept time.Duration
}

func (f *fakeTime) sleep(_ context.Context, d time.Duration) error {
	f.slept += d
	f.now = f.now.Add(d)
	return nil
}

func wire(t *testing.T, id int, m proto.Message) []byte {
	t.Helper()
	b, err := (&sr.ConfluentHeader{}).AppendEncode(nil, id, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, payload...)
}

// Records with ever new schema IDs (garbage) neither grow the verdict cache
// past its bound nor evict the valid schema's verdict, are looked up at most
// lookupRate a second past a burst (waiting, not dead-lettering, beyond),
// and a known-unknown ID is asked again only after a minute.
func TestDecoderBoundsSchemaLookups(t *testing.T) {
	ctx := context.Background()
	src := &countingSource{}
	clock := &fakeTime{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	d := NewDecoder(src)
	d.now, d.sleep = func() time.Time { return clock.now }, clock.sleep

	valid := wire(t, validID, &sitewatchv1.CheckResult{
		EventId:      uuid.Must(uuid.NewV7()).String(),
		Target:       &sitewatchv1.Target{Id: "alpha", Url: "https://alpha.test/", Method: "GET"},
		StartedAt:    timestamppb.New(clock.now),
		ResponseTime: durationpb.New(12 * time.Millisecond),
		Outcome:      sitewatchv1.Outcome_OUTCOME_UP,
	})
	decodeValid := func(stage string) {
		t.Helper()
		if ev, err := d.Decode(ctx, valid); err != nil || ev.TargetID != "alpha" {
			t.Fatalf("%s: valid record: %+v, %v", stage, ev, err)
		}
	}
	garbage := func(id int) {
		t.Helper()
		_, err := d.Decode(ctx, wire(t, id, &sitewatchv1.CheckResult{}))
		var dl *deadLetter
		if !errors.As(err, &dl) || dl.reason != ReasonUnknownSchemaID {
			t.Fatalf("schema ID %d: %v, want %s", id, err, ReasonUnknownSchemaID)
		}
	}

	decodeValid("first")
	for range 100 {
		garbage(1000)
	}
	if got := src.calls.Load(); got != 2 {
		t.Errorf("one valid and one unknown ID, each decoded many times: %d lookups, want 2", got)
	}
	clock.now = clock.now.Add(unknownIDRetry)
	garbage(1000)
	if got := src.calls.Load(); got != 3 {
		t.Errorf("the unknown ID after %s: %d lookups in all, want 3 (asked again)", unknownIDRetry, got)
	}

	const n = 3000
	start, slept := clock.now, clock.slept
	for id := 10_000; id < 10_000+n; id++ {
		garbage(id)
	}
	if got := src.calls.Load(); got != 3+n {
		t.Errorf("%d new IDs: %d lookups in all, want %d", n, got, 3+n)
	}
	if got := len(d.verdicts); got > maxVerdicts {
		t.Errorf("%d IDs cached, want at most %d", got, maxVerdicts)
	}
	// The bucket held at most its burst of lookups (19: one went to the
	// unknown ID asked again); the others waited their turn.
	if got, want := clock.slept-slept, time.Duration(n-lookupBurst)*time.Second/lookupRate; got < want || got > want+time.Second {
		t.Errorf("%d new IDs waited %s for the lookup limit, want about %s", n, got, want)
	}
	if took := clock.now.Sub(start); took < time.Duration(n-lookupBurst)*time.Second/lookupRate-time.Second {
		t.Errorf("%d lookups within %s: faster than %d a second", n, took, lookupRate)
	}
	decodeValid("after the garbage")
	if got := src.calls.Load(); got != 3+n {
		t.Errorf("the valid schema was looked up again (%d lookups): its verdict was evicted", got)
	}

	// A valid record with a new ID while the limit is exhausted waits for a
	// lookup and decodes; it is never a dead letter for the limit.
	for id := 50_000; id < 50_000+lookupBurst; id++ {
		garbage(id)
	}
	delete(d.verdicts, validID)
	slept = clock.slept
	decodeValid("rate-limited")
	if clock.slept == slept {
		t.Errorf("a lookup beyond the limit did not wait")
	}
}
