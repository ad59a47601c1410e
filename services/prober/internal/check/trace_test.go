package check

import (
	"context"
	"net/http/httptrace"
	"testing"
	"time"
)

// The HTTP/2 transport writes a request in one goroutine and reads the
// response in another, so on a fast server the first response byte can be
// traced before the request is traced as written. Time to first byte is
// then measured from the connection's hand-over, not left out, and a late
// "written" does not become the start of the next request of the chain.
func TestTracerTimeToFirstByte(t *testing.T) {
	type step struct {
		hook string // conn, wrote, first
		at   time.Duration
	}
	tests := []struct {
		name  string
		steps []step
		want  time.Duration
	}{
		{"HTTP/1.1 order", []step{{"conn", 10}, {"wrote", 12}, {"first", 30}}, 18},
		{"first byte before written (HTTP/2)", []step{{"conn", 10}, {"first", 30}, {"wrote", 31}}, 20},
		{"redirect after a late written", []step{
			{"conn", 10}, {"first", 30}, {"wrote", 31},
			{"conn", 100}, {"first", 107}, {"wrote", 108},
		}, 20 + 7},
		{"redirect, both in order", []step{
			{"conn", 10}, {"wrote", 12}, {"first", 30},
			{"conn", 100}, {"wrote", 101}, {"first", 107},
		}, 18 + 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var clock time.Duration
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			tr := &tracer{now: func() time.Time { return start.Add(clock * time.Millisecond) }}
			hooks := httptrace.ContextClientTrace(tr.withTrace(context.Background()))
			for _, s := range tt.steps {
				clock = s.at
				switch s.hook {
				case "conn":
					if hooks.GotConn != nil {
						hooks.GotConn(httptrace.GotConnInfo{})
					}
				case "wrote":
					hooks.WroteRequest(httptrace.WroteRequestInfo{})
				case "first":
					hooks.GotFirstResponseByte()
				}
			}
			var r Result
			tr.fill(&r)
			if want := tt.want * time.Millisecond; r.TimeToFirstByte != want {
				t.Errorf("time to first byte %v, want %v", r.TimeToFirstByte, want)
			}
		})
	}
}
