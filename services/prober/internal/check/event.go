package check

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
)

// Event returns the CheckResult event of r, as checked by prober.
func (r *Result) Event(prober *sitewatchv1.Prober) *sitewatchv1.CheckResult {
	e := &sitewatchv1.CheckResult{}
	r.FillEvent(e, prober)
	return e
}

// FillEvent overwrites every field of e with r, reusing e's nested messages
// so that a publisher encoding one event after another allocates little.
func (r *Result) FillEvent(e *sitewatchv1.CheckResult, prober *sitewatchv1.Prober) {
	t := r.Target
	e.EventId = r.EventID.String()
	if e.Target == nil {
		e.Target = &sitewatchv1.Target{}
	}
	// The event carries the check's part of the definition, not the secrets
	// (headers, body) of the topic's full Target: the interval and timeout
	// tell a reader when the next result is due.
	e.Target.Id, e.Target.Url, e.Target.Method = t.ID, t.PublicURL, t.Method
	e.Target.Interval = duration(e.Target.Interval, t.Interval, true)
	e.Target.Timeout = duration(e.Target.Timeout, t.Timeout, true)
	e.Prober = prober
	if r.ScheduledAt.IsZero() {
		e.ScheduledAt = nil
	} else {
		e.ScheduledAt = timestamp(e.ScheduledAt, r.ScheduledAt)
	}
	e.StartedAt = timestamp(e.StartedAt, r.StartedAt)
	e.ResponseTime = duration(e.ResponseTime, r.ResponseTime, true)
	if e.Timings == nil {
		e.Timings = &sitewatchv1.PhaseTimings{}
	}
	// A phase that did not happen is absent, not zero (check_result.proto).
	e.Timings.Dns = duration(e.Timings.Dns, r.DNS, false)
	e.Timings.Connect = duration(e.Timings.Connect, r.Connect, false)
	e.Timings.TlsHandshake = duration(e.Timings.TlsHandshake, r.TLSHandshake, false)
	e.Timings.TimeToFirstByte = duration(e.Timings.TimeToFirstByte, r.TimeToFirstByte, false)
	e.StatusCode = uint32(r.StatusCode)
	e.BytesRead = r.BytesRead
	if e.DecodedBytes == nil {
		e.DecodedBytes = new(int64)
	}
	*e.DecodedBytes = r.DecodedBytes
	e.Protocol = r.Protocol
	e.BodyTruncated = r.BodyTruncated
	if t.Pattern != nil {
		if e.ContentCheck == nil {
			e.ContentCheck = &sitewatchv1.ContentCheck{}
		}
		e.ContentCheck.Pattern, e.ContentCheck.Matched = t.Pattern.String(), r.PatternMatched
	} else {
		e.ContentCheck = nil
	}
	if r.CertNotAfter.IsZero() {
		e.TlsCertExpiresAt = nil
	} else {
		e.TlsCertExpiresAt = timestamp(e.TlsCertExpiresAt, r.CertNotAfter)
	}
	e.Outcome = r.Outcome
	e.FailureKind = r.FailureKind
	e.Error = r.Err
	e.Redirects = uint32(r.Redirects)
}

func timestamp(m *timestamppb.Timestamp, t time.Time) *timestamppb.Timestamp {
	if m == nil {
		m = &timestamppb.Timestamp{}
	}
	m.Seconds, m.Nanos = t.Unix(), int32(t.Nanosecond())
	return m
}

// duration sets m to d; a zero d is nil unless keepZero.
func duration(m *durationpb.Duration, d time.Duration, keepZero bool) *durationpb.Duration {
	if d == 0 && !keepZero {
		return nil
	}
	if m == nil {
		m = &durationpb.Duration{}
	}
	m.Seconds, m.Nanos = int64(d/time.Second), int32(d%time.Second)
	return m
}
