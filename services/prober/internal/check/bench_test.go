package check

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// BenchmarkCheck measures one check of a ~2 KB page on a loopback server in
// the same process (its time includes the server's work; cmd/probebench
// measures the prober alone).
func BenchmarkCheck(b *testing.B) {
	page := strings.Repeat("<p>The quick brown fox jumps over the lazy dog.</p>\n", 40)
	bodies := map[string][]byte{"": []byte(page)}
	for _, c := range []string{"gzip", "br", "zstd"} {
		bodies[c] = encode(b, c, []byte(page))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := r.URL.Query().Get("encoding")
		if c != "" {
			w.Header().Set("Content-Encoding", c)
		}
		_, _ = w.Write(bodies[c])
	}))
	defer srv.Close()
	for _, bc := range []struct {
		name, encoding string
		pattern        *regexp.Regexp
	}{
		{"plain", "", nil},
		{"pattern", "", regexp.MustCompile(`lazy dog\.</p>\n$`)},
		{"gzip_pattern", "gzip", regexp.MustCompile(`lazy dog\.</p>\n$`)},
		{"br_pattern", "br", regexp.MustCompile(`lazy dog\.</p>\n$`)},
		{"zstd_pattern", "zstd", regexp.MustCompile(`lazy dog\.</p>\n$`)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := New(Options{})
			tg := target(srv.URL+"/?encoding="+bc.encoding, func(t *targets.Target) { t.Pattern = bc.pattern })
			b.ReportAllocs()
			for b.Loop() {
				if r := p.Check(context.Background(), tg); r.Outcome != sitewatchv1.Outcome_OUTCOME_UP {
					b.Fatalf("%v %s", r.Outcome, r.Err)
				}
			}
		})
	}
}
