package check

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// target returns a target with the defaults of the targets file, changed by
// the options.
func target(rawURL string, opts ...func(*targets.Target)) *targets.Target {
	u, _ := url.Parse(rawURL)
	t := &targets.Target{
		ID:              "t",
		URL:             rawURL,
		PublicURL:       u.Redacted(),
		Method:          http.MethodGet,
		Interval:        time.Minute,
		Timeout:         5 * time.Second,
		ExpectStatus:    []targets.StatusRange{{Min: 200, Max: 399}},
		FollowRedirects: true,
		MaxBodyBytes:    1 << 20,
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

// site serves a small page at /, a 500 at /error, a redirect loop at
// /loop, a 3-hop redirect chain at /hop/N, a slow page at /slow, a large
// body at /big, and echoes the method and a header at /echo.
func site() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<html><title>Welcome to the test site</title></html>")
	})
	mux.HandleFunc("/error", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	mux.HandleFunc("/hop/", func(w http.ResponseWriter, r *http.Request) {
		var n int
		if _, err := fmt.Sscanf(strings.TrimPrefix(r.URL.Path, "/hop/"), "%d", &n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if n == 0 {
			fmt.Fprint(w, "arrived")
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/hop/%d", n-1), http.StatusMovedPermanently)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	mux.HandleFunc("/slowbody", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		fmt.Fprint(w, "start")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("x", 5000)+"NEEDLE")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.Header.Get("X-Probe"), b)
	})
	return mux
}

func newServers(t *testing.T) (plain, secure *httptest.Server, prober *Prober) {
	t.Helper()
	plain = httptest.NewServer(site())
	t.Cleanup(plain.Close)
	secure = httptest.NewTLSServer(site())
	t.Cleanup(secure.Close)
	roots := x509.NewCertPool()
	roots.AddCert(secure.Certificate())
	return plain, secure, New(Options{RootCAs: roots})
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestCheckOutcomes(t *testing.T) {
	plain, secure, prober := newServers(t)
	untrusted := New(Options{}) // system roots: the httptest certificate is unknown
	type want struct {
		outcome   sitewatchv1.Outcome
		kind      sitewatchv1.FailureKind
		status    int
		errHas    string
		redirects int
	}
	up := sitewatchv1.Outcome_OUTCOME_UP
	down := sitewatchv1.Outcome_OUTCOME_DOWN
	tests := []struct {
		name   string
		prober *Prober
		target *targets.Target
		want   want
	}{
		{"plain up", prober, target(plain.URL + "/"), want{up, 0, 200, "", 0}},
		{"TLS up", prober, target(secure.URL + "/"), want{up, 0, 200, "", 0}},
		{"DNS", prober, target("http://no-such-host.invalid/"),
			want{down, sitewatchv1.FailureKind_FAILURE_KIND_DNS, 0, "no such host", 0}},
		{"CONNECT refused", prober, target("http://" + closedPort(t) + "/"),
			want{down, sitewatchv1.FailureKind_FAILURE_KIND_CONNECT, 0, "connection refused", 0}},
		{"TLS untrusted certificate", untrusted, target(secure.URL + "/"),
			want{down, sitewatchv1.FailureKind_FAILURE_KIND_TLS, 0, "certificate signed by unknown authority", 0}},
		{"TLS untrusted certificate skipped", untrusted, target(secure.URL+"/", func(t *targets.Target) { t.TLSSkipVerify = true }),
			want{up, 0, 200, "", 0}},
		{"TLS spoken to a plain server", prober, target(strings.Replace(plain.URL, "http:", "https:", 1) + "/"),
			want{down, sitewatchv1.FailureKind_FAILURE_KIND_TLS, 0, "server gave HTTP response to HTTPS client", 0}},
		{"TIMEOUT waiting for headers", prober, target(plain.URL+"/slow", func(t *targets.Target) { t.Timeout = 200 * time.Millisecond }),
			want{down, sitewatchv1.FailureKind_FAILURE_KIND_TIMEOUT, 0, "context deadline exceeded", 0}},
		{"TIMEOUT reading the body", prober, target(plain.URL+"/slowbody", func(t *targets.Target) { t.Timeout = 200 * time.Millisecond }),
			want{down, sitewatchv1.FailureKind_FAILURE_KIND_TIMEOUT, 200, "reading the body", 0}},
		{"HTTP_STATUS 500", prober, target(plain.URL + "/error"),
			want{down, sitewatchv1.FailureKind_FAILURE_KIND_HTTP_STATUS, 500, "unexpected status 500 Internal Server Error", 0}},
		{"HTTP_STATUS outside a custom range", prober, target(plain.URL+"/", func(t *targets.Target) { t.ExpectStatus = []targets.StatusRange{{Min: 201, Max: 299}} }),
			want{down, sitewatchv1.FailureKind_FAILURE_KIND_HTTP_STATUS, 200, "unexpected status 200 OK", 0}},
		{"custom range accepts 500", prober, target(plain.URL+"/error", func(t *targets.Target) { t.ExpectStatus = []targets.StatusRange{{Min: 500, Max: 500}} }),
			want{up, 0, 500, "", 0}},
		{"pattern hit", prober, target(plain.URL+"/", func(t *targets.Target) { t.Pattern = regexp.MustCompile(`Welcome to .* site`) }),
			want{up, 0, 200, "", 0}},
		{"CONTENT_MISMATCH", prober, target(plain.URL+"/", func(t *targets.Target) { t.Pattern = regexp.MustCompile(`Goodbye`) }),
			want{down, sitewatchv1.FailureKind_FAILURE_KIND_CONTENT_MISMATCH, 200, "pattern Goodbye not found in the body", 0}},
		{"OTHER redirect loop", prober, target(plain.URL + "/loop"),
			want{down, sitewatchv1.FailureKind_FAILURE_KIND_OTHER, 302, "stopped after 10 redirects", 10}},
		{"redirects followed", prober, target(plain.URL + "/hop/3"), want{up, 0, 200, "", 3}},
		{"redirects not followed", prober, target(plain.URL+"/hop/3", func(t *targets.Target) { t.FollowRedirects = false }),
			want{up, 0, 301, "", 0}},
		{"not followed redirect outside the range", prober, target(plain.URL+"/hop/3", func(t *targets.Target) {
			t.FollowRedirects = false
			t.ExpectStatus = []targets.StatusRange{{Min: 200, Max: 299}}
		}), want{down, sitewatchv1.FailureKind_FAILURE_KIND_HTTP_STATUS, 301, "unexpected status 301 Moved Permanently", 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.prober.Check(context.Background(), tt.target)
			got := want{r.Outcome, r.FailureKind, r.StatusCode, r.Err, r.Redirects}
			if got.outcome != tt.want.outcome || got.kind != tt.want.kind || got.status != tt.want.status ||
				got.redirects != tt.want.redirects || !strings.Contains(r.Err, tt.want.errHas) ||
				(tt.want.errHas == "") != (r.Err == "") {
				t.Errorf("got outcome %v kind %v status %d redirects %d error %q\nwant outcome %v kind %v status %d redirects %d error containing %q",
					got.outcome, got.kind, got.status, got.redirects, r.Err,
					tt.want.outcome, tt.want.kind, tt.want.status, tt.want.redirects, tt.want.errHas)
			}
			if r.EventID.Version() != 7 {
				t.Errorf("event ID %s is version %d, want a UUIDv7", r.EventID, r.EventID.Version())
			}
			if r.ResponseTime <= 0 || r.ResponseTime > tt.target.Timeout+time.Second {
				t.Errorf("response time %v", r.ResponseTime)
			}
		})
	}
}

func TestCheckTimeoutIsTheDeadline(t *testing.T) {
	plain, _, prober := newServers(t)
	start := time.Now()
	r := prober.Check(context.Background(), target(plain.URL+"/slow", func(t *targets.Target) { t.Timeout = 300 * time.Millisecond }))
	took := time.Since(start)
	if r.FailureKind != sitewatchv1.FailureKind_FAILURE_KIND_TIMEOUT {
		t.Fatalf("kind %v, want TIMEOUT", r.FailureKind)
	}
	if took < 300*time.Millisecond || took > 2*time.Second {
		t.Errorf("the check took %v, want about its 300ms timeout", took)
	}
	if r.ResponseTime < 300*time.Millisecond || r.ResponseTime > took {
		t.Errorf("response time %v, want between the timeout and %v", r.ResponseTime, took)
	}
}

func TestCheckPhases(t *testing.T) {
	plain, secure, prober := newServers(t)
	tests := []struct {
		name         string
		url          string
		dns, tlsSeen bool
	}{
		// httptest listens on 127.0.0.1: no name to resolve.
		{"plain IP", plain.URL + "/", false, false},
		{"TLS IP", secure.URL + "/", false, true},
		{"plain by name", strings.Replace(plain.URL, "127.0.0.1", "localhost", 1) + "/", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := prober.Check(context.Background(), target(tt.url))
			if r.Outcome != sitewatchv1.Outcome_OUTCOME_UP {
				t.Fatalf("outcome %v: %s", r.Outcome, r.Err)
			}
			if (r.DNS > 0) != tt.dns {
				t.Errorf("DNS %v, want present=%t", r.DNS, tt.dns)
			}
			if r.Connect <= 0 {
				t.Errorf("connect %v, want present", r.Connect)
			}
			if (r.TLSHandshake > 0) != tt.tlsSeen {
				t.Errorf("TLS handshake %v, want present=%t", r.TLSHandshake, tt.tlsSeen)
			}
			if r.TimeToFirstByte <= 0 {
				t.Errorf("time to first byte %v, want present", r.TimeToFirstByte)
			}
			for name, d := range map[string]time.Duration{"dns": r.DNS, "connect": r.Connect, "tls": r.TLSHandshake, "ttfb": r.TimeToFirstByte} {
				if d > r.ResponseTime {
					t.Errorf("%s %v is longer than the total %v", name, d, r.ResponseTime)
				}
			}
			if sum := r.DNS + r.Connect + r.TLSHandshake + r.TimeToFirstByte; sum > r.ResponseTime {
				t.Errorf("the phases add up to %v, more than the total %v", sum, r.ResponseTime)
			}
			if tt.tlsSeen {
				if want := secure.Certificate().NotAfter; !r.CertNotAfter.Equal(want) {
					t.Errorf("certificate expiry %v, want %v", r.CertNotAfter, want)
				}
			} else if !r.CertNotAfter.IsZero() {
				t.Errorf("certificate expiry %v on plain HTTP", r.CertNotAfter)
			}
		})
	}
}

func TestCheckUntrustedCertificateStillReportsExpiry(t *testing.T) {
	_, secure, _ := newServers(t)
	r := New(Options{}).Check(context.Background(), target(secure.URL+"/"))
	if r.FailureKind != sitewatchv1.FailureKind_FAILURE_KIND_TLS {
		t.Fatalf("kind %v, want TLS", r.FailureKind)
	}
	if want := secure.Certificate().NotAfter; !r.CertNotAfter.Equal(want) {
		t.Errorf("certificate expiry %v, want %v", r.CertNotAfter, want)
	}
}

func TestCheckBodyCap(t *testing.T) {
	plain, _, prober := newServers(t)
	const size = 5006 // "x"*5000 + "NEEDLE"
	tests := []struct {
		name      string
		cap       int64
		pattern   string
		bytes     int64
		truncated bool
		outcome   sitewatchv1.Outcome
		kind      sitewatchv1.FailureKind
	}{
		{"under the cap", 10000, "", size, false, sitewatchv1.Outcome_OUTCOME_UP, 0},
		{"exactly the cap", size, "NEEDLE$", size, false, sitewatchv1.Outcome_OUTCOME_UP, 0},
		{"over the cap", 1000, "", 1000, true, sitewatchv1.Outcome_OUTCOME_UP, 0},
		{"pattern beyond the cap", 5000, "NEEDLE", 5000, true, sitewatchv1.Outcome_OUTCOME_DOWN, sitewatchv1.FailureKind_FAILURE_KIND_CONTENT_MISMATCH},
		{"pattern within the cap", 5000, "^x+$", 5000, true, sitewatchv1.Outcome_OUTCOME_UP, 0},
		{"no body read", 0, "", 0, true, sitewatchv1.Outcome_OUTCOME_UP, 0},
		// cap+1 overflowed to a negative limit: nothing was read.
		{"cap at the int64 maximum", math.MaxInt64, "NEEDLE$", size, false, sitewatchv1.Outcome_OUTCOME_UP, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := prober.Check(context.Background(), target(plain.URL+"/big", func(t *targets.Target) {
				t.MaxBodyBytes = tt.cap
				if tt.pattern != "" {
					t.Pattern = regexp.MustCompile(tt.pattern)
				}
			}))
			if r.BytesRead != tt.bytes || r.BodyTruncated != tt.truncated || r.Outcome != tt.outcome || r.FailureKind != tt.kind {
				t.Errorf("bytes %d truncated %t outcome %v kind %v (%s); want bytes %d truncated %t outcome %v kind %v",
					r.BytesRead, r.BodyTruncated, r.Outcome, r.FailureKind, r.Err, tt.bytes, tt.truncated, tt.outcome, tt.kind)
			}
		})
	}
}

// A body buffer that grew large for a large cap is dropped after its check,
// not kept in the pool for every later check.
func TestCheckDropsLargeBuffers(t *testing.T) {
	prober := New(Options{})
	big := bytes.NewBuffer(make([]byte, 0, 2*maxPooledBuffer))
	prober.putBuffer(big)
	if got := prober.getBuffer(); got == big || got.Cap() > maxPooledBuffer {
		t.Errorf("the pool gave back a buffer of %d bytes, more than %d", got.Cap(), maxPooledBuffer)
	}
}

func TestCheckSendsMethodHeadersBody(t *testing.T) {
	plain, _, prober := newServers(t)
	r := prober.Check(context.Background(), target(plain.URL+"/echo", func(t *targets.Target) {
		t.Method = http.MethodPost
		t.Headers = http.Header{"X-Probe": {"yes"}}
		t.Body = "payload"
		t.Pattern = regexp.MustCompile(`^POST yes payload$`)
	}))
	if r.Outcome != sitewatchv1.Outcome_OUTCOME_UP || !r.PatternMatched {
		t.Errorf("outcome %v matched %t: %s", r.Outcome, r.PatternMatched, r.Err)
	}
}

func TestCheckUsesAFreshConnectionEachTime(t *testing.T) {
	var conns int
	srv := httptest.NewUnstartedServer(site())
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns++
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	prober := New(Options{})
	for range 3 {
		if r := prober.Check(context.Background(), target(srv.URL+"/")); r.Outcome != sitewatchv1.Outcome_OUTCOME_UP || r.Connect <= 0 {
			t.Fatalf("outcome %v connect %v: %s", r.Outcome, r.Connect, r.Err)
		}
	}
	srv.Close() // waits for the connection states to settle
	if conns != 3 {
		t.Errorf("3 checks opened %d connections, want 3", conns)
	}
}

func TestEvent(t *testing.T) {
	_, secure, prober := newServers(t)
	// A password in the URL is sent, but not published.
	withPassword := strings.Replace(secure.URL, "https://", "https://user:secret@", 1) + "/"
	tg := target(withPassword, func(t *targets.Target) {
		t.ID = "home"
		t.Pattern = regexp.MustCompile("Welcome")
		t.Headers = http.Header{"Authorization": {"Bearer secret"}} // not in the event either
	})
	r := prober.Check(context.Background(), tg)
	e := r.Event(&sitewatchv1.Prober{Instance: "p1", Region: "eu"})
	if e.GetEventId() != r.EventID.String() || e.GetTarget().GetId() != "home" || e.GetTarget().GetUrl() != strings.Replace(withPassword, "secret", "xxxxx", 1) ||
		e.GetTarget().GetMethod() != "GET" || e.GetTarget().GetInterval().AsDuration() != time.Minute || e.GetTarget().GetTimeout().AsDuration() != 5*time.Second ||
		len(e.GetTarget().GetHeaders()) != 0 || e.GetTarget().GetBody() != "" || e.GetProber().GetInstance() != "p1" || e.GetProber().GetRegion() != "eu" ||
		!e.GetStartedAt().AsTime().Equal(r.StartedAt) || e.GetResponseTime().AsDuration() != r.ResponseTime ||
		e.GetStatusCode() != 200 || e.GetBytesRead() != r.BytesRead || e.GetOutcome() != sitewatchv1.Outcome_OUTCOME_UP ||
		e.GetFailureKind() != sitewatchv1.FailureKind_FAILURE_KIND_UNSPECIFIED || e.GetError() != "" ||
		e.GetContentCheck().GetPattern() != "Welcome" || !e.GetContentCheck().GetMatched() ||
		!e.GetTlsCertExpiresAt().AsTime().Equal(secure.Certificate().NotAfter) {
		t.Errorf("event %v\nfrom result %+v", e, r)
	}
	tm := e.GetTimings()
	if tm.GetDns() != nil {
		t.Errorf("DNS timing %v for an IP address, want absent", tm.GetDns())
	}
	if tm.GetConnect().AsDuration() != r.Connect || tm.GetTlsHandshake().AsDuration() != r.TLSHandshake ||
		tm.GetTimeToFirstByte().AsDuration() != r.TimeToFirstByte {
		t.Errorf("timings %v, want %v %v %v", tm, r.Connect, r.TLSHandshake, r.TimeToFirstByte)
	}
}

func TestEventScheduledAt(t *testing.T) {
	slot := time.Date(2026, 1, 1, 0, 0, 20, 555_641_996, time.UTC)
	tg := target("http://127.0.0.1:1/")
	tests := []struct {
		name string
		slot time.Time
		want *timestamppb.Timestamp
	}{
		{"the exact slot", slot, &timestamppb.Timestamp{Seconds: 1767225620, Nanos: 555_641_996}},
		{"the slot in another zone", slot.In(time.FixedZone("X", -5*3600)), &timestamppb.Timestamp{Seconds: 1767225620, Nanos: 555_641_996}},
		// Also when the event is reused after one with a slot.
		{"absent off any schedule", time.Time{}, nil},
	}
	e := &sitewatchv1.CheckResult{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Result{Target: tg, ScheduledAt: tt.slot, StartedAt: slot.Add(time.Millisecond)}
			r.FillEvent(e, &sitewatchv1.Prober{Instance: "p1"})
			if !proto.Equal(e.GetScheduledAt(), tt.want) || (tt.want == nil) != (e.ScheduledAt == nil) {
				t.Errorf("scheduled_at %v, want %v", e.GetScheduledAt(), tt.want)
			}
			if got := r.Event(nil).GetScheduledAt(); !proto.Equal(got, tt.want) {
				t.Errorf("Event: scheduled_at %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckHostHeader(t *testing.T) {
	// vhosts records, per request, the path, the Host it came with and
	// the TLS server name (SNI) of its connection.
	var (
		mu   sync.Mutex
		seen []string
	)
	vhosts := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sni := "-"
		if r.TLS != nil {
			sni = r.TLS.ServerName
		}
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s host=%s sni=%s", r.URL.Path, r.Host, sni))
		mu.Unlock()
		switch r.URL.Path {
		case "/relative":
			http.Redirect(w, r, "/page", http.StatusFound)
		case "/absolute":
			addr := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
			http.Redirect(w, r, "https://"+addr.String()+"/page", http.StatusFound)
		}
	})
	plain := httptest.NewServer(vhosts)
	t.Cleanup(plain.Close)
	// httptest's certificate is for 127.0.0.1, ::1, example.com and
	// *.example.com.
	secure := httptest.NewTLSServer(vhosts)
	t.Cleanup(secure.Close)
	roots := x509.NewCertPool()
	roots.AddCert(secure.Certificate())
	prober := New(Options{RootCAs: roots})
	plainHost := strings.TrimPrefix(plain.URL, "http://")
	secureHost := strings.TrimPrefix(secure.URL, "https://")

	tests := []struct {
		name    string
		url     string
		headers http.Header
		skip    bool
		kind    sitewatchv1.FailureKind
		errHas  string
		want    []string
	}{
		{"plain without a Host header", plain.URL + "/page", nil, false, 0, "",
			[]string{"/page host=" + plainHost + " sni=-"}},
		{"plain Host header", plain.URL + "/page", http.Header{"Host": {"shop.example.com"}}, false, 0, "",
			[]string{"/page host=shop.example.com sni=-"}},
		{"plain Host header in lower case", plain.URL + "/page", http.Header{"host": {"shop.example.com"}}, false, 0, "",
			[]string{"/page host=shop.example.com sni=-"}},
		// crypto/tls sends no server name for an IP address.
		{"TLS without a Host header", secure.URL + "/page", nil, false, 0, "",
			[]string{"/page host=" + secureHost + " sni="}},
		{"TLS Host header is the server name", secure.URL + "/page", http.Header{"Host": {"shop.example.com"}}, false, 0, "",
			[]string{"/page host=shop.example.com sni=shop.example.com"}},
		{"TLS Host header with a port", secure.URL + "/page", http.Header{"HOST": {"shop.example.com:8443"}}, false, 0, "",
			[]string{"/page host=shop.example.com:8443 sni=shop.example.com"}},
		{"TLS certificate verified for the Host header", secure.URL + "/page", http.Header{"Host": {"shop.example.org"}}, false,
			sitewatchv1.FailureKind_FAILURE_KIND_TLS, "not shop.example.org", nil},
		{"TLS certificate not verified, server name still sent", secure.URL + "/page", http.Header{"Host": {"shop.example.org"}}, true, 0, "",
			[]string{"/page host=shop.example.org sni=shop.example.org"}},
		// net/http keeps the Host header through a relative redirect
		// only (golang/go#22233); the server name follows it.
		{"TLS relative redirect keeps both", secure.URL + "/relative", http.Header{"Host": {"shop.example.com"}}, false, 0, "",
			[]string{"/relative host=shop.example.com sni=shop.example.com", "/page host=shop.example.com sni=shop.example.com"}},
		{"TLS absolute redirect drops both", secure.URL + "/absolute", http.Header{"Host": {"shop.example.com"}}, false, 0, "",
			[]string{"/absolute host=shop.example.com sni=shop.example.com", "/page host=" + secureHost + " sni="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			r := prober.Check(context.Background(), target(tt.url, func(t *targets.Target) {
				t.Headers = tt.headers
				t.TLSSkipVerify = tt.skip
			}))
			if r.FailureKind != tt.kind || !strings.Contains(r.Err, tt.errHas) || (tt.errHas == "") != (r.Err == "") {
				t.Errorf("outcome %v kind %v error %q, want kind %v error containing %q", r.Outcome, r.FailureKind, r.Err, tt.kind, tt.errHas)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(seen, tt.want) {
				t.Errorf("the server saw %q, want %q", seen, tt.want)
			}
		})
	}
}
