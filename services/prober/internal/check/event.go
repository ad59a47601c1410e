package check

import (
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
)

// Event returns the CheckResult event of r, as checked by prober.
func (r *Result) Event(prober *sitewatchv1.Prober) *sitewatchv1.CheckResult {
	t := r.Target
	e := &sitewatchv1.CheckResult{
		EventId:       r.EventID.String(),
		Target:        &sitewatchv1.Target{Id: t.ID, Url: t.URL, Method: t.Method},
		Prober:        prober,
		StartedAt:     timestamppb.New(r.StartedAt),
		ResponseTime:  durationpb.New(r.ResponseTime),
		Timings:       &sitewatchv1.PhaseTimings{},
		StatusCode:    uint32(r.StatusCode),
		BytesRead:     r.BytesRead,
		BodyTruncated: r.BodyTruncated,
		Outcome:       r.Outcome,
		FailureKind:   r.FailureKind,
		Error:         r.Err,
		Redirects:     uint32(r.Redirects),
	}
	// A phase that did not happen is absent, not zero (check_result.proto).
	phase := func(d int64) *durationpb.Duration {
		if d == 0 {
			return nil
		}
		return &durationpb.Duration{Seconds: d / 1e9, Nanos: int32(d % 1e9)}
	}
	e.Timings.Dns = phase(int64(r.DNS))
	e.Timings.Connect = phase(int64(r.Connect))
	e.Timings.TlsHandshake = phase(int64(r.TLSHandshake))
	e.Timings.TimeToFirstByte = phase(int64(r.TimeToFirstByte))
	if t.Pattern != nil {
		e.ContentCheck = &sitewatchv1.ContentCheck{Pattern: t.Pattern.String(), Matched: r.PatternMatched}
	}
	if !r.CertNotAfter.IsZero() {
		e.TlsCertExpiresAt = timestamppb.New(r.CertNotAfter)
	}
	return e
}
