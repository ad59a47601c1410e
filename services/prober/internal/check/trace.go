package check

import (
	"context"
	"crypto/tls"
	"net/http/httptrace"
	"sync"
	"time"
)

// tracer collects the phase timings of the requests of one check. The
// transport calls some hooks from its dialing goroutine, hence the mutex.
type tracer struct {
	now func() time.Time

	mu                     sync.Mutex
	dnsStart, connStart    time.Time
	tlsStart, gotConn      time.Time
	wrote                  time.Time
	dns, conn, tlsHS, ttfb time.Duration
	tlsErr                 bool
	// firstByte is set once the current request's response began.
	firstByte bool
}

func (tr *tracer) withTrace(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		DNSStart: func(httptrace.DNSStartInfo) {
			tr.mu.Lock()
			tr.dnsStart = tr.now()
			tr.mu.Unlock()
		},
		DNSDone: func(httptrace.DNSDoneInfo) {
			tr.mu.Lock()
			if !tr.dnsStart.IsZero() {
				tr.dns += tr.now().Sub(tr.dnsStart)
				tr.dnsStart = time.Time{}
			}
			tr.mu.Unlock()
		},
		// With several addresses (Happy Eyeballs) ConnectStart runs once
		// per attempt: the phase runs from the first start to the first
		// success.
		ConnectStart: func(string, string) {
			tr.mu.Lock()
			if tr.connStart.IsZero() {
				tr.connStart = tr.now()
			}
			tr.mu.Unlock()
		},
		ConnectDone: func(_, _ string, err error) {
			tr.mu.Lock()
			if err == nil && !tr.connStart.IsZero() {
				tr.conn += tr.now().Sub(tr.connStart)
				tr.connStart = time.Time{}
			}
			tr.mu.Unlock()
		},
		TLSHandshakeStart: func() {
			tr.mu.Lock()
			tr.tlsStart = tr.now()
			tr.mu.Unlock()
		},
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			tr.mu.Lock()
			if !tr.tlsStart.IsZero() {
				tr.tlsHS += tr.now().Sub(tr.tlsStart)
				tr.tlsStart = time.Time{}
			}
			if err != nil {
				tr.tlsErr = true
			}
			tr.mu.Unlock()
		},
		// Each request of the chain (and each HTTP/2 retry) gets its
		// connection here, before it is written.
		GotConn: func(httptrace.GotConnInfo) {
			tr.mu.Lock()
			tr.gotConn, tr.wrote, tr.firstByte = tr.now(), time.Time{}, false
			tr.mu.Unlock()
		},
		WroteRequest: func(httptrace.WroteRequestInfo) {
			tr.mu.Lock()
			if !tr.firstByte {
				tr.wrote = tr.now()
			}
			tr.mu.Unlock()
		},
		// HTTP/2 writes a request in one goroutine and reads the response
		// in another: on a fast server the first byte is traced before the
		// request is traced as written. Time to first byte then runs from
		// the connection's hand-over (blackbox_exporter's "processing"
		// phase does always), a few microseconds earlier for a GET.
		GotFirstResponseByte: func() {
			tr.mu.Lock()
			start := tr.wrote
			if start.IsZero() {
				start = tr.gotConn
			}
			if !tr.firstByte && !start.IsZero() {
				tr.ttfb += tr.now().Sub(start)
			}
			tr.firstByte, tr.wrote, tr.gotConn = true, time.Time{}, time.Time{}
			tr.mu.Unlock()
		},
	})
}

func (tr *tracer) tlsFailed() bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.tlsErr
}

// fill copies the phases into r, before the end of the check is taken, so
// that no phase can outlast the total: a dial that the transport lets finish
// in the background after a timeout is not counted. A phase cut short by a
// failure is left out: it has no end to measure to.
func (tr *tracer) fill(r *Result) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	r.DNS, r.Connect, r.TLSHandshake, r.TimeToFirstByte = tr.dns, tr.conn, tr.tlsHS, tr.ttfb
}
