package check

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// Result is what one check saw.
type Result struct {
	EventID uuid.UUID // UUIDv7: unique and time-ordered
	Target  *targets.Target
	// ScheduledAt is the slot the check was due at (schedule.Due); zero
	// when it ran off any schedule. The caller sets it: Check does not.
	ScheduledAt time.Time
	StartedAt   time.Time
	// ResponseTime runs from the start until the body was read or the check
	// failed.
	ResponseTime time.Duration
	// Phase durations, summed over the requests of a redirect chain; zero
	// means the phase did not happen (no DNS for an IP address, no TLS for
	// http://).
	DNS, Connect, TLSHandshake, TimeToFirstByte time.Duration

	StatusCode int // of the last response; 0 when none arrived
	// Protocol is the HTTP version of the last response ("HTTP/1.1",
	// "HTTP/2.0"); empty when none arrived.
	Protocol string
	// BytesRead counts the body's bytes as sent, before its
	// Content-Encoding is undone; DecodedBytes those after, which the cap
	// applies to and the pattern is matched against.
	BytesRead, DecodedBytes int64
	BodyTruncated           bool
	Redirects               int
	// PatternMatched is meaningful only when the target has a pattern.
	PatternMatched bool
	// CertNotAfter is the earliest NotAfter of the certificate chain the
	// server presented; zero for http:// or when no certificate was seen.
	CertNotAfter time.Time

	Outcome     sitewatchv1.Outcome
	FailureKind sitewatchv1.FailureKind
	Err         string
}

// Func is a probe: it checks t once and never fails to return a Result.
type Func func(ctx context.Context, t *targets.Target) Result

// Prober checks targets. Its transports are shared by all checks (they hold
// no connections: keep-alives are off), one per TLS verification setting.
type Prober struct {
	verify, skipVerify *http.Transport
	bufs               sync.Pool // *bytes.Buffer for bodies matched against a pattern
	now                func() time.Time
}

// Options tune a Prober; the zero value is fine.
type Options struct {
	// RootCAs replaces the system roots (tests trust their httptest server).
	RootCAs *x509.CertPool
	// DialContext replaces the dialer (nil: net.Dialer).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// New returns a Prober.
func New(o Options) *Prober {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	newTransport := func(skip bool) *http.Transport {
		dial := o.DialContext
		if dial == nil {
			// No TCP keep-alive probes on a connection that lives for one
			// request: it would only cost setsockopt calls per check.
			dial = (&net.Dialer{KeepAlive: -1}).DialContext
		}
		return &http.Transport{
			Proxy: nil, // a monitor measures the site, not a proxy
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if b, ok := ctx.Value(connsKey{}).(*atomic.Int32); ok && b.Add(1) > maxConnsPerRequest {
					return nil, errRefused
				}
				return dial(ctx, network, addr)
			},
			// Every check opens a new connection, so its timings are those
			// of a new visitor, and no connection outlives its check.
			DisableKeepAlives: true,
			// No Accept-Encoding unless the target's headers send one, so
			// a check measures what it always did; whatever coding comes
			// back is decoded in Check (decode.go), which net/http does
			// only for gzip that it asked for itself.
			DisableCompression: true,
			TLSClientConfig: &tls.Config{
				RootCAs:            o.RootCAs,
				InsecureSkipVerify: skip, // per target: the targets file's tls_skip_verify
			},
			TLSHandshakeTimeout: 0, // the check's deadline bounds it
			// HTTP/2 over TLS when the server offers it in ALPN, else
			// HTTP/1.1, as browsers do: a custom DialContext or
			// TLSClientConfig alone turns HTTP/2 off (net/http docs of
			// Transport.Protocols). Plain http:// stays HTTP/1.1, as in
			// browsers. Without keep-alives an HTTP/2 connection serves
			// one check too.
			Protocols: protocols,
		}
	}
	return &Prober{
		verify:     newTransport(false),
		skipVerify: newTransport(true),
		bufs:       sync.Pool{New: func() any { return new(bytes.Buffer) }},
		now:        time.Now,
	}
}

// Close releases the transports' resources.
func (p *Prober) Close() {
	p.verify.CloseIdleConnections()
	p.skipVerify.CloseIdleConnections()
}

// errTooManyRedirects ends a redirect chain longer than targets.MaxRedirects.
var errTooManyRedirects = fmt.Errorf("stopped after %d redirects", targets.MaxRedirects)

// maxConnsPerRequest bounds the connections that one request of a check
// opens. Keep-alives are off, so one is the rule; but net/http's Transport
// dials again, at once and without end, each time its single-use HTTP/2
// connection turns the request away (GOAWAY, RST_STREAM REFUSED_STREAM):
// an overloaded server would get hundreds of connections a second until
// the timeout. The two more are retries, as a browser makes.
const maxConnsPerRequest = 3

// errRefused ends a request turned away on maxConnsPerRequest connections.
var errRefused = fmt.Errorf("the server turned the request away on %d new connections (HTTP/2 GOAWAY or REFUSED_STREAM)", maxConnsPerRequest)

// connsKey holds in a check's context the *atomic.Int32 count of the
// connections its current request opened, for the transports' dialer.
type connsKey struct{}

// Check checks t once, within t.Timeout. It does not return before the
// check has ended, whatever ctx does: the deadline is the only stop.
func (p *Prober) Check(ctx context.Context, t *targets.Target) Result {
	r := Result{Target: t}
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when the system's random source does.
		id = uuid.New()
	}
	r.EventID = id

	// Started before the deadline is armed: a check that times out took
	// at least its timeout (TestCheckTimeoutIsTheDeadline).
	r.StartedAt = p.now()
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()

	tr := &tracer{now: p.now}
	ctx = tr.withTrace(ctx)
	conns := new(atomic.Int32)
	ctx = context.WithValue(ctx, connsKey{}, conns)

	var body io.Reader
	if t.Body != "" {
		body = strings.NewReader(t.Body)
	}
	req, err := http.NewRequestWithContext(ctx, t.Method, t.URL, body)
	if err != nil {
		p.fail(&r, sitewatchv1.FailureKind_FAILURE_KIND_OTHER, err, tr)
		return r
	}
	for k, vs := range t.Headers {
		// net/http sends the Host header from req.Host (else the URL's
		// host) and ignores one in req.Header (see the net/http docs of
		// Request.Host), so a target's Host header is moved there, as
		// prometheus/blackbox_exporter prober/http.go does.
		if textproto.CanonicalMIMEHeaderKey(k) == "Host" {
			if len(vs) > 0 {
				req.Host = vs[0]
			}
			continue
		}
		req.Header[k] = vs
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "sitewatch-prober/1")
	}

	transport := p.verify
	if t.TLSSkipVerify {
		transport = p.skipVerify
	}
	var rt http.RoundTripper = transport
	if req.Host != "" && req.URL.Scheme == "https" {
		rt = newVhostTransport(transport, req.Host)
	}
	client := http.Client{
		Transport: rt,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if !t.FollowRedirects {
				return http.ErrUseLastResponse
			}
			if len(via) > targets.MaxRedirects {
				return errTooManyRedirects
			}
			r.Redirects = len(via)
			conns.Store(0) // a new request of the chain
			return nil
		},
	}

	resp, err := client.Do(req)
	if err != nil {
		if resp != nil {
			r.StatusCode, r.Protocol = resp.StatusCode, resp.Proto
		}
		p.fail(&r, classify(ctx, err, tr), err, tr)
		return r
	}
	defer resp.Body.Close()
	r.StatusCode, r.Protocol = resp.StatusCode, resp.Proto
	if resp.TLS != nil {
		r.CertNotAfter = earliestNotAfter(resp.TLS.PeerCertificates)
	}

	b, err := newBody(resp, t.MaxBodyBytes)
	if err != nil {
		p.fail(&r, sitewatchv1.FailureKind_FAILURE_KIND_OTHER, err, tr)
		return r
	}
	defer b.close()
	var buf *bytes.Buffer
	if t.Pattern != nil {
		buf = p.getBuffer()
		defer p.putBuffer(buf)
		_, err = buf.ReadFrom(b.content)
	} else {
		_, err = io.Copy(io.Discard, b.content)
	}
	r.BytesRead, r.DecodedBytes, r.BodyTruncated = b.wire.n, b.content.n, b.truncated()
	var de *decodeError
	switch err = b.readError(err); {
	case err == nil:
	case errors.As(err, &de) && !t.Expects(resp.StatusCode):
		// The status fails the check whatever the body says: an error
		// page labelled with a coding it does not have (some proxies send
		// one) is the status's failure, as before bodies were decoded.
	case errors.As(err, &de):
		p.fail(&r, sitewatchv1.FailureKind_FAILURE_KIND_OTHER, err, tr)
		return r
	default:
		p.fail(&r, classify(ctx, err, tr), fmt.Errorf("reading the body: %w", err), tr)
		return r
	}
	tr.fill(&r)
	r.ResponseTime = p.now().Sub(r.StartedAt)
	if buf != nil {
		r.PatternMatched = t.Pattern.Match(buf.Bytes())
	}

	switch {
	case !t.Expects(resp.StatusCode):
		r.Outcome = sitewatchv1.Outcome_OUTCOME_DOWN
		r.FailureKind = sitewatchv1.FailureKind_FAILURE_KIND_HTTP_STATUS
		r.Err = "unexpected status " + resp.Status
	case t.Pattern != nil && !r.PatternMatched:
		r.Outcome = sitewatchv1.Outcome_OUTCOME_DOWN
		r.FailureKind = sitewatchv1.FailureKind_FAILURE_KIND_CONTENT_MISMATCH
		r.Err = "pattern " + t.Pattern.String() + " not found in the body"
		if r.BodyTruncated {
			r.Err += fmt.Sprintf(" (read up to max_body_bytes %d)", t.MaxBodyBytes)
		}
		if b.undecoded != "" {
			r.Err += fmt.Sprintf(" (Content-Encoding %q is not decoded)", b.undecoded)
		}
	default:
		r.Outcome = sitewatchv1.Outcome_OUTCOME_UP
	}
	return r
}

// vhostTransport makes the TLS handshake of a request with a Host header
// for that host: it sends it as the server name (SNI) and verifies the
// certificate against it. So a check of https://10.0.0.5/ with Host:
// shop.example.com gets and verifies the certificate that the visitors of
// shop.example.com get, as prometheus/blackbox_exporter prober/http.go does
// when its tls_config names no server_name. Only the requests that carry
// the Host header use it: the first, and those of relative redirects, which
// net/http sends with the same Host (golang/go#22233); an absolute redirect
// drops the Host header, and its handshake is for its URL's host again.
type vhostTransport struct {
	base, named *http.Transport
	host        string
}

// newVhostTransport clones base for host. A clone per check is cheap
// enough for the few targets with a Host header, and holds no connections
// after its check: keep-alives are off.
func newVhostTransport(base *http.Transport, host string) *vhostTransport {
	named := base.Clone()
	// The server name is the host without a port ("[::1]:8443" -> "::1");
	// crypto/tls sends no SNI for an IP address but still verifies it.
	named.TLSClientConfig.ServerName = (&url.URL{Host: host}).Hostname()
	return &vhostTransport{base: base, named: named, host: host}
}

func (v *vhostTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Host == v.host {
		return v.named.RoundTrip(req)
	}
	return v.base.RoundTrip(req)
}

func (p *Prober) fail(r *Result, kind sitewatchv1.FailureKind, err error, tr *tracer) {
	tr.fill(r)
	r.ResponseTime = p.now().Sub(r.StartedAt)
	if r.CertNotAfter.IsZero() {
		// A refused certificate (expired, say) is still worth its date.
		var cve *tls.CertificateVerificationError
		if errors.As(err, &cve) {
			r.CertNotAfter = earliestNotAfter(cve.UnverifiedCertificates)
		}
	}
	r.Outcome = sitewatchv1.Outcome_OUTCOME_DOWN
	r.FailureKind = kind
	r.Err = err.Error()
}

// classify maps an error of a request or of reading its body to a kind.
// The order matters: the check's own deadline wins over what it
// interrupted, and a resolver error is DNS even when it wraps a dial.
func classify(ctx context.Context, err error, tr *tracer) sitewatchv1.FailureKind {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return sitewatchv1.FailureKind_FAILURE_KIND_TIMEOUT
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return sitewatchv1.FailureKind_FAILURE_KIND_DNS
	}
	if tr.tlsFailed() {
		return sitewatchv1.FailureKind_FAILURE_KIND_TLS
	}
	var (
		cve   *tls.CertificateVerificationError
		alert tls.AlertError
		rhe   tls.RecordHeaderError
		uae   x509.UnknownAuthorityError
		hne   x509.HostnameError
		cie   x509.CertificateInvalidError
	)
	if errors.As(err, &cve) || errors.As(err, &alert) || errors.As(err, &rhe) ||
		errors.As(err, &uae) || errors.As(err, &hne) || errors.As(err, &cie) {
		return sitewatchv1.FailureKind_FAILURE_KIND_TLS
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return sitewatchv1.FailureKind_FAILURE_KIND_CONNECT
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return sitewatchv1.FailureKind_FAILURE_KIND_TIMEOUT
	}
	return sitewatchv1.FailureKind_FAILURE_KIND_OTHER
}

func earliestNotAfter(certs []*x509.Certificate) time.Time {
	var min time.Time
	for _, c := range certs {
		if min.IsZero() || c.NotAfter.Before(min) {
			min = c.NotAfter
		}
	}
	return min
}

// maxPooledBuffer bounds the body buffers kept for later checks: one that
// grew for a large max_body_bytes is left to the garbage collector, so the
// pool holds what the common caps need, not what the largest once did. The
// default cap's buffers (up to twice 1 MiB as bytes.Buffer grows) stay.
const maxPooledBuffer = 4 << 20

func (p *Prober) getBuffer() *bytes.Buffer {
	b := p.bufs.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func (p *Prober) putBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuffer {
		p.bufs.Put(b)
	}
}
