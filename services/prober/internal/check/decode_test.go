package check

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// page is what the encoding tests' site serves, under whatever coding.
const page = "<html><title>Welcome to the compressed site</title></html>"

// encode applies the content codings of a Content-Encoding value to b in
// the order listed, as a server does.
func encode(tb testing.TB, codings string, b []byte) []byte {
	tb.Helper()
	for _, c := range strings.Split(codings, ",") {
		var out bytes.Buffer
		var w io.WriteCloser
		switch strings.TrimSpace(c) {
		case "gzip", "x-gzip":
			w = gzip.NewWriter(&out)
		case "deflate": // as RFC 9110 defines it: zlib (RFC 1950)
			w = zlib.NewWriter(&out)
		case "raw-deflate": // what some servers send as "deflate"
			w, _ = flate.NewWriter(&out, flate.DefaultCompression)
		case "br":
			w = brotli.NewWriter(&out)
		case "zstd":
			zw, err := zstd.NewWriter(&out)
			if err != nil {
				tb.Fatal(err)
			}
			w = zw
		default:
			out.Write(b)
			b = out.Bytes()
			continue
		}
		if _, err := w.Write(b); err != nil {
			tb.Fatal(err)
		}
		if err := w.Close(); err != nil {
			tb.Fatal(err)
		}
		b = out.Bytes()
	}
	return b
}

// encodedSite serves body with Content-Encoding header, whatever the
// request asks, as a CDN serving pre-compressed objects does; it records
// the Accept-Encoding of the last request.
type encodedSite struct {
	mu             sync.Mutex
	header         []string // Content-Encoding lines
	body           []byte
	acceptEncoding []string
}

func (s *encodedSite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acceptEncoding = r.Header.Values("Accept-Encoding")
	w.Header()["Content-Encoding"] = s.header
	if r.Method != http.MethodHead {
		w.Write(s.body)
	}
}

func (s *encodedSite) serve(header []string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.header, s.body = header, body
}

func TestCheckDecodesContentEncodings(t *testing.T) {
	site := &encodedSite{}
	srv := httptest.NewServer(site)
	t.Cleanup(srv.Close)
	prober := New(Options{})

	gz := encode(t, "gzip", []byte(page))
	bomb := encode(t, "gzip", make([]byte, 16<<20)) // 16 MiB of zeros in about 16 KiB
	const otherKind = sitewatchv1.FailureKind_FAILURE_KIND_OTHER
	tests := []struct {
		name     string
		header   []string // Content-Encoding lines sent
		body     []byte
		method   string
		pattern  string // "": the page's title; "-": none
		cap      int64
		kind     sitewatchv1.FailureKind
		err      string
		wire     int64 // bytes_read; -1: len(body)
		decoded  int64
		truncate bool
	}{
		{"gzip", []string{"gzip"}, gz, "", "", 0, 0, "", -1, int64(len(page)), false},
		{"x-gzip", []string{"x-gzip"}, gz, "", "", 0, 0, "", -1, int64(len(page)), false},
		{"GZIP in upper case", []string{"GZIP"}, gz, "", "", 0, 0, "", -1, int64(len(page)), false},
		{"deflate, zlib-wrapped", []string{"deflate"}, encode(t, "deflate", []byte(page)), "", "", 0, 0, "", -1, int64(len(page)), false},
		{"deflate, raw", []string{"deflate"}, encode(t, "raw-deflate", []byte(page)), "", "", 0, 0, "", -1, int64(len(page)), false},
		{"br", []string{"br"}, encode(t, "br", []byte(page)), "", "", 0, 0, "", -1, int64(len(page)), false},
		{"zstd", []string{"zstd"}, encode(t, "zstd", []byte(page)), "", "", 0, 0, "", -1, int64(len(page)), false},
		{"identity", []string{"identity"}, []byte(page), "", "", 0, 0, "", -1, int64(len(page)), false},
		// Codings are listed in the order applied: undone from the last.
		{"two codings on one line", []string{"deflate, gzip"}, encode(t, "deflate, gzip", []byte(page)), "", "", 0, 0, "", -1, int64(len(page)), false},
		{"two codings on two lines", []string{"br", "zstd"}, encode(t, "br, zstd", []byte(page)), "", "", 0, 0, "", -1, int64(len(page)), false},
		{"identity among codings", []string{"gzip, identity"}, gz, "", "", 0, 0, "", -1, int64(len(page)), false},
		{"empty body", []string{"gzip"}, nil, "", "-", 0, 0, "", 0, 0, false},
		{"HEAD", []string{"br"}, encode(t, "br", []byte(page)), http.MethodHead, "-", 0, 0, "", 0, 0, false},
		// A coding the prober does not know leaves the body as sent, as
		// browsers do: servers label plain bodies "utf-8".
		{"unknown coding", []string{"UTF-8"}, []byte(page), "", "", 0, 0, "", -1, int64(len(page)), false},
		{"unknown coding on HEAD", []string{"compress"}, nil, http.MethodHead, "-", 0, 0, "", 0, 0, false},
		{"unknown coding after a known one", []string{"gzip, compress"}, gz, "", "", 0, sitewatchv1.FailureKind_FAILURE_KIND_CONTENT_MISMATCH,
			`pattern <title>Welcome to the compressed site</title> not found in the body (Content-Encoding "compress" is not decoded)`, 0, 0, false},
		{"too many codings", []string{"gzip, gzip, gzip, gzip, gzip"}, encode(t, "gzip, gzip, gzip, gzip, gzip", []byte(page)), "", "", 0, otherKind,
			`Content-Encoding "gzip, gzip, gzip, gzip, gzip" has 5 codings, more than 4`, 0, 0, false},
		{"truncated gzip", []string{"gzip"}, gz[:len(gz)-10], "", "", 0, otherKind, "decode gzip body: unexpected EOF", -1, -1, false},
		{"not gzip", []string{"gzip"}, []byte(page), "", "", 0, otherKind, "decode gzip body: gzip: invalid header", -1, 0, false},
		{"not brotli", []string{"br"}, []byte(page), "", "", 0, otherKind, "decode br body: brotli: ", -1, -1, false},
		{"not zstd", []string{"zstd"}, []byte(page), "", "", 0, otherKind, "decode zstd body: invalid input: magic number mismatch", -1, 0, false},
		{"inner coding broken", []string{"deflate, gzip"}, encode(t, "gzip", []byte(page)), "", "", 0, otherKind, "decode deflate body: ", -1, -1, false},
		// The cap applies to the decoded body: a bomb is read up to it.
		{"decoded body over the cap", []string{"gzip"}, gz, "", "^<html><title>Welcome$", 20, 0, "", -1, 20, true},
		{"decoded body of exactly the cap", []string{"gzip"}, gz, "", "", int64(len(page)), 0, "", -1, int64(len(page)), false},
		{"zstd body of exactly the cap", []string{"zstd"}, encode(t, "zstd", []byte(page)), "", "", int64(len(page)), 0, "", -1, int64(len(page)), false},
		{"decompression bomb", []string{"gzip"}, bomb, "", `^\x00+$`, 1 << 20, 0, "", -2, 1 << 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			site.serve(tt.header, tt.body)
			r := prober.Check(context.Background(), target(srv.URL+"/", func(t *targets.Target) {
				if tt.method != "" {
					t.Method = tt.method
				}
				switch tt.pattern {
				case "":
					t.Pattern = regexp.MustCompile(`<title>Welcome to the compressed site</title>`)
				case "-":
				default:
					t.Pattern = regexp.MustCompile(tt.pattern)
				}
				if tt.cap != 0 {
					t.MaxBodyBytes = tt.cap
				}
			}))
			if r.FailureKind != tt.kind || !strings.HasPrefix(r.Err, tt.err) || (tt.err == "") != (r.Err == "") {
				t.Fatalf("outcome %v kind %v error %q, want kind %v error starting %q", r.Outcome, r.FailureKind, r.Err, tt.kind, tt.err)
			}
			if tt.err != "" {
				return
			}
			wire := tt.wire
			if wire == -1 {
				wire = int64(len(tt.body))
			}
			if tt.wire == -2 {
				// The bomb is read only as far as the cap needs.
				if r.BytesRead <= 0 || r.BytesRead >= int64(len(tt.body)) {
					t.Errorf("bytes read %d, want some of the %d", r.BytesRead, len(tt.body))
				}
			} else if r.BytesRead != wire {
				t.Errorf("bytes read %d, want %d", r.BytesRead, wire)
			}
			if r.DecodedBytes != tt.decoded || r.BodyTruncated != tt.truncate {
				t.Errorf("decoded bytes %d truncated %t, want %d %t", r.DecodedBytes, r.BodyTruncated, tt.decoded, tt.truncate)
			}
			if e := r.Event(&sitewatchv1.Prober{}); e.GetBytesRead() != r.BytesRead || e.DecodedBytes == nil || e.GetDecodedBytes() != r.DecodedBytes {
				t.Errorf("event bytes_read %d decoded_bytes %v, want %d %d", e.GetBytesRead(), e.DecodedBytes, r.BytesRead, r.DecodedBytes)
			}
			if tt.pattern != "-" && !r.PatternMatched {
				t.Errorf("pattern not matched")
			}
		})
	}
}

// Encoded bytes that decode to nothing (here empty gzip members, one after
// the other) are read only up to the cap plus an eighth and 256 KiB, not
// until the timeout.
func TestCheckBoundsTheEncodedBody(t *testing.T) {
	site := &encodedSite{}
	srv := httptest.NewServer(site)
	t.Cleanup(srv.Close)
	empty := encode(t, "gzip", nil)
	site.serve([]string{"gzip"}, bytes.Repeat(empty, 100000))
	r := New(Options{}).Check(context.Background(), target(srv.URL+"/", func(t *targets.Target) { t.MaxBodyBytes = 1000 }))
	if want := int64(1000 + 125 + 256<<10); r.Outcome != sitewatchv1.Outcome_OUTCOME_UP || r.BytesRead != want ||
		r.DecodedBytes != 0 || !r.BodyTruncated {
		t.Errorf("outcome %v (%s) bytes read %d decoded %d truncated %t, want up, %d, 0, truncated",
			r.Outcome, r.Err, r.BytesRead, r.DecodedBytes, r.BodyTruncated, want)
	}
}

// A zstd decoder yields nothing before it has a whole block, up to 128 KiB
// on the wire when the data does not compress (RFC 8878 section
// 3.1.1.2.4): the bound on the encoded bytes leaves room for one, so a
// small cap still sees the start of such a body.
func TestCheckDecodesAWholeZstdBlock(t *testing.T) {
	site := &encodedSite{}
	srv := httptest.NewServer(site)
	t.Cleanup(srv.Close)
	data := make([]byte, 256<<10)
	rng := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // test data
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	copy(data, "<html>NEEDLE")
	body := encode(t, "zstd", data)
	if len(body) < 128<<10 {
		t.Fatalf("the zstd body is %d bytes: the data compressed, the test needs it not to", len(body))
	}
	site.serve([]string{"zstd"}, body)
	for _, limit := range []int64{0, 1024, 64 << 10} {
		r := New(Options{}).Check(context.Background(), target(srv.URL+"/", func(t *targets.Target) {
			t.MaxBodyBytes = limit
			if limit > 0 {
				t.Pattern = regexp.MustCompile(`^<html>NEEDLE`)
			}
		}))
		if r.Outcome != sitewatchv1.Outcome_OUTCOME_UP || r.DecodedBytes != limit || !r.BodyTruncated {
			t.Errorf("cap %d: outcome %v (%s) decoded %d truncated %t, want up, %d, truncated",
				limit, r.Outcome, r.Err, r.DecodedBytes, r.BodyTruncated, limit)
		}
	}
}

// A status that fails the check is the failure, whatever its body: an
// error page labelled gzip but sent plain (some proxies do) is
// HTTP_STATUS, as it was before bodies were decoded, not a decode failure.
func TestCheckStatusBeforeDecodeFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "Service Unavailable")
	}))
	t.Cleanup(srv.Close)
	for _, pattern := range []*regexp.Regexp{nil, regexp.MustCompile(`Welcome`)} {
		r := New(Options{}).Check(context.Background(), target(srv.URL+"/", func(t *targets.Target) { t.Pattern = pattern }))
		if r.FailureKind != sitewatchv1.FailureKind_FAILURE_KIND_HTTP_STATUS || r.Err != "unexpected status 503 Service Unavailable" ||
			r.StatusCode != 503 {
			t.Errorf("pattern %v: kind %v error %q status %d, want HTTP_STATUS unexpected status 503 Service Unavailable",
				pattern, r.FailureKind, r.Err, r.StatusCode)
		}
	}
}

// A decode failure after the cap was read is no failure: the rest of the
// body is not read, as a body longer than the cap is not.
func TestCheckDecodeStopsAtTheCap(t *testing.T) {
	site := &encodedSite{}
	srv := httptest.NewServer(site)
	t.Cleanup(srv.Close)
	big := []byte(strings.Repeat(page, 1000))
	gz := encode(t, "gzip", big)
	site.serve([]string{"gzip"}, gz[:len(gz)/2])
	r := New(Options{}).Check(context.Background(), target(srv.URL+"/", func(t *targets.Target) {
		t.MaxBodyBytes = int64(len(page))
		t.Pattern = regexp.MustCompile(`^<html>.*</html>$`)
	}))
	if r.Outcome != sitewatchv1.Outcome_OUTCOME_UP || r.DecodedBytes != int64(len(page)) || !r.BodyTruncated {
		t.Errorf("outcome %v (%s) decoded %d truncated %t, want up, %d, truncated", r.Outcome, r.Err, r.DecodedBytes, r.BodyTruncated, len(page))
	}
}

// No Accept-Encoding is sent unless the target's headers set one, and then
// it is sent as set and the answer decoded.
func TestCheckAcceptEncoding(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	// negotiating compresses only when asked, as most servers do.
	negotiating := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ae := r.Header.Get("Accept-Encoding")
		mu.Lock()
		seen = append(seen, ae)
		mu.Unlock()
		if strings.Contains(ae, "br") {
			w.Header().Set("Content-Encoding", "br")
			w.Write(encode(t, "br", []byte(page)))
			return
		}
		_, _ = io.WriteString(w, page)
	})
	plain := httptest.NewServer(negotiating)
	t.Cleanup(plain.Close)
	secure := httptest.NewUnstartedServer(negotiating)
	secure.EnableHTTP2 = true
	secure.StartTLS()
	t.Cleanup(secure.Close)
	prober := New(Options{RootCAs: rootsOf(secure)})
	for _, u := range []string{plain.URL, secure.URL} {
		for _, h := range []http.Header{nil, {"Accept-Encoding": {"gzip, br"}}} {
			r := prober.Check(context.Background(), target(u+"/", func(t *targets.Target) {
				t.Headers = h
				t.Pattern = regexp.MustCompile(`Welcome to the compressed site`)
			}))
			if r.Outcome != sitewatchv1.Outcome_OUTCOME_UP || r.DecodedBytes != int64(len(page)) {
				t.Errorf("%s with %v: outcome %v (%s) decoded %d", u, h, r.Outcome, r.Err, r.DecodedBytes)
			}
		}
	}
	if want := []string{"", "gzip, br", "", "gzip, br"}; strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Errorf("Accept-Encoding sent %q, want %q", seen, want)
	}
}

// A connection that stalls in the middle of an encoded body is a timeout,
// not a malformed body.
func TestCheckEncodedBodyTimeout(t *testing.T) {
	gz := encode(t, "gzip", []byte(strings.Repeat(page, 100)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", fmt.Sprint(len(gz)))
		w.Write(gz[:len(gz)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	r := New(Options{}).Check(context.Background(), target(srv.URL+"/", func(t *targets.Target) {
		t.Timeout = 200 * time.Millisecond
	}))
	if r.FailureKind != sitewatchv1.FailureKind_FAILURE_KIND_TIMEOUT || r.Err != "reading the body: context deadline exceeded" ||
		r.BytesRead != int64(len(gz)/2) {
		t.Errorf("kind %v error %q bytes read %d, want TIMEOUT reading the body after %d bytes", r.FailureKind, r.Err, r.BytesRead, len(gz)/2)
	}
}

// FuzzBody reads arbitrary bodies under arbitrary Content-Encoding values:
// never a panic, never more than the cap decoded or the bound on the wire,
// and every failure either names the coding or refuses the header.
func FuzzBody(f *testing.F) {
	f.Add("gzip", encode(f, "gzip", []byte(page)), int64(20))
	f.Add("deflate", encode(f, "deflate", []byte(page)), int64(1000))
	f.Add("deflate", encode(f, "raw-deflate", []byte(page)), int64(1000))
	f.Add("br", encode(f, "br", []byte(page)), int64(1000))
	f.Add("zstd", encode(f, "zstd", []byte(page)), int64(1000))
	f.Add("deflate, gzip", encode(f, "deflate, gzip", []byte(page)), int64(0))
	f.Add("identity", []byte(page), int64(10))
	f.Add("gzip, compress", []byte{}, int64(10))
	f.Add("utf-8", []byte(page), int64(1000))
	f.Fuzz(func(t *testing.T, header string, data []byte, limit int64) {
		if limit < 0 {
			limit = -limit
		}
		if limit < 0 {
			limit = 0
		}
		limit %= 1 << 20
		resp := &http.Response{Header: http.Header{"Content-Encoding": {header}}, Body: io.NopCloser(bytes.NewReader(data))}
		b, err := newBody(resp, limit)
		if err != nil {
			var ue *unsupportedError
			if !errors.As(err, &ue) {
				t.Fatalf("newBody: %v", err)
			}
			return
		}
		defer b.close()
		var got bytes.Buffer
		n, err := got.ReadFrom(b.content)
		err = b.readError(err)
		if n != b.content.n || n > limit || b.wire.n > wireLimit(limit) || b.wire.n > int64(len(data)) {
			t.Fatalf("decoded %d (counted %d) of cap %d, wire %d of %d", n, b.content.n, limit, b.wire.n, len(data))
		}
		// A coding the prober does not know leaves the body as sent.
		if b.undecoded != "" && (err != nil || !bytes.Equal(got.Bytes(), data[:n])) {
			t.Fatalf("under unknown coding %q: error %v, body %q of %q", b.undecoded, err, got.Bytes(), data)
		}
		var de *decodeError
		if err != nil && !errors.As(err, &de) {
			t.Fatalf("error %v names no coding", err)
		}
	})
}
