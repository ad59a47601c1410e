package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/targets"
)

func rootsOf(srv *httptest.Server) *x509.CertPool {
	roots := x509.NewCertPool()
	if c := srv.Certificate(); c != nil {
		roots.AddCert(c)
	}
	return roots
}

// protoSite answers with the protocol and TLS server name of the request.
var protoSite = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	sni := "-"
	if r.TLS != nil {
		sni = r.TLS.ServerName
	}
	fmt.Fprintf(w, "%s host=%s sni=%s", r.Proto, r.Host, sni)
})

// newProtoServer starts a TLS server speaking only the given protocols, as
// an API gateway or gRPC endpoint offering only h2 does.
func newProtoServer(t *testing.T, h1, h2 bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(protoSite)
	var ps http.Protocols
	ps.SetHTTP1(h1)
	ps.SetHTTP2(h2)
	srv.Config.Protocols = &ps
	srv.TLS = &tls.Config{}
	if h2 {
		srv.TLS.NextProtos = append(srv.TLS.NextProtos, "h2")
	}
	if h1 {
		srv.TLS.NextProtos = append(srv.TLS.NextProtos, "http/1.1")
	}
	srv.EnableHTTP2 = h2
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestCheckNegotiatesHTTP2(t *testing.T) {
	h2only := newProtoServer(t, false, true)
	h1only := newProtoServer(t, true, false)
	both := newProtoServer(t, true, true)
	plain := httptest.NewServer(protoSite)
	t.Cleanup(plain.Close)

	tests := []struct {
		name    string
		srv     *httptest.Server
		headers http.Header
		proto   string
		body    string
	}{
		{"h2 only", h2only, nil, "HTTP/2.0", `^HTTP/2.0 host=127.0.0.1:\d+ sni=$`},
		{"HTTP/1.1 only", h1only, nil, "HTTP/1.1", `^HTTP/1.1 host=127.0.0.1:\d+ sni=$`},
		{"both: h2 preferred", both, nil, "HTTP/2.0", `^HTTP/2.0 `},
		{"plain HTTP stays HTTP/1.1", plain, nil, "HTTP/1.1", `^HTTP/1.1 `},
		{"h2 with a Host header as the server name", h2only, http.Header{"Host": {"shop.example.com"}}, "HTTP/2.0",
			`^HTTP/2.0 host=shop.example.com sni=shop.example.com$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(Options{RootCAs: rootsOf(tt.srv)}).Check(context.Background(), target(tt.srv.URL+"/", func(t *targets.Target) {
				t.Headers = tt.headers
				t.Pattern = regexp.MustCompile(tt.body)
			}))
			if r.Outcome != sitewatchv1.Outcome_OUTCOME_UP || r.Protocol != tt.proto {
				t.Errorf("outcome %v (%s) protocol %q, want up over %q", r.Outcome, r.Err, r.Protocol, tt.proto)
			}
			if e := r.Event(&sitewatchv1.Prober{}); e.GetProtocol() != tt.proto {
				t.Errorf("event protocol %q, want %q", e.GetProtocol(), tt.proto)
			}
			// The certificate's expiry is seen over either protocol.
			if c := tt.srv.Certificate(); c != nil && !r.CertNotAfter.Equal(c.NotAfter) {
				t.Errorf("certificate expiry %v, want %v", r.CertNotAfter, c.NotAfter)
			}
		})
	}

	t.Run("no response, no protocol", func(t *testing.T) {
		r := New(Options{}).Check(context.Background(), target("http://"+closedPort(t)+"/"))
		if r.Protocol != "" || r.Event(&sitewatchv1.Prober{}).GetProtocol() != "" {
			t.Errorf("protocol %q without a response", r.Protocol)
		}
	})
}

// Over HTTP/2 too, every check opens its own connection.
func TestCheckUsesAFreshHTTP2ConnectionEachTime(t *testing.T) {
	var conns int
	srv := httptest.NewUnstartedServer(protoSite)
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns++
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	prober := New(Options{RootCAs: rootsOf(srv)})
	for range 3 {
		r := prober.Check(context.Background(), target(srv.URL+"/"))
		if r.Outcome != sitewatchv1.Outcome_OUTCOME_UP || r.Protocol != "HTTP/2.0" || r.Connect <= 0 || r.TLSHandshake <= 0 || r.TimeToFirstByte <= 0 {
			t.Fatalf("outcome %v protocol %q connect %v TLS %v TTFB %v: %s", r.Outcome, r.Protocol, r.Connect, r.TLSHandshake, r.TimeToFirstByte, r.Err)
		}
	}
	srv.Close()
	if conns != 3 {
		t.Errorf("3 checks opened %d connections, want 3", conns)
	}
}

// refusingH2Server starts a TLS server speaking just enough HTTP/2 to turn
// every request away, as an overloaded or stopping server does: with a
// GOAWAY as soon as the connection opens, or a RST_STREAM REFUSED_STREAM
// for each request. It counts the connections.
func refusingH2Server(t *testing.T, goaway bool) (url string, roots *x509.CertPool, conns *atomic.Int32) {
	t.Helper()
	cert := httptest.NewUnstartedServer(nil) // for its certificate
	cert.StartTLS()
	t.Cleanup(cert.Close)
	cfg := cert.TLS.Clone()
	cfg.NextProtos = []string{"h2"}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int32)
	frame := func(typ byte, stream uint32, payload ...byte) []byte {
		f := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), typ, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(f[5:], stream)
		return append(f, payload...)
	}
	const (
		settings, rstStream, goAway = 4, 3, 7
		headers                     = 1
		refusedStream               = 7
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
					return
				}
				if _, err := io.ReadFull(c, make([]byte, 24)); err != nil { // the client preface
					return
				}
				if _, err := c.Write(frame(settings, 0)); err != nil {
					return
				}
				if goaway {
					if _, err := c.Write(frame(goAway, 0, 0, 0, 0, 0, 0, 0, 0, 0)); err != nil { // last stream 0, NO_ERROR
						return
					}
				}
				head := make([]byte, 9)
				for {
					if _, err := io.ReadFull(c, head); err != nil {
						return
					}
					n := int(head[0])<<16 | int(head[1])<<8 | int(head[2])
					if _, err := io.ReadFull(c, make([]byte, n)); err != nil {
						return
					}
					if head[3] != headers {
						continue
					}
					if _, err := c.Write(frame(rstStream, binary.BigEndian.Uint32(head[5:])&0x7fffffff, 0, 0, 0, refusedStream)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "https://" + ln.Addr().String() + "/", rootsOf(cert), conns
}

// A server that turns every HTTP/2 request away is a failure after a few
// connections, not a loop of new connections (hundreds a second) until the
// timeout: net/http's Transport dials again at once each time its
// single-use HTTP/2 connection is refused.
func TestCheckHTTP2RefusedIsNotALoop(t *testing.T) {
	for _, goaway := range []bool{false, true} {
		url, roots, conns := refusingH2Server(t, goaway)
		r := New(Options{RootCAs: roots}).Check(context.Background(), target(url, func(t *targets.Target) {
			t.Timeout = 10 * time.Second // only a bound: the loop ran until it
		}))
		want := fmt.Sprintf("Get %q: %v", url, errRefused)
		if r.FailureKind != sitewatchv1.FailureKind_FAILURE_KIND_OTHER || r.Err != want || conns.Load() != maxConnsPerRequest {
			t.Errorf("GOAWAY %t: kind %v error %q after %d connections, want OTHER %q after %d",
				goaway, r.FailureKind, r.Err, conns.Load(), want, maxConnsPerRequest)
		}
	}
}
