package check

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/prober/internal/config"
)

// BenchmarkCheck measures one check of a ~2 KB page on a loopback server in
// the same process (its time includes the server's work; cmd/probebench
// measures the prober alone).
func BenchmarkCheck(b *testing.B) {
	page := strings.Repeat("<p>The quick brown fox jumps over the lazy dog.</p>\n", 40)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(page))
	}))
	defer srv.Close()
	for _, bc := range []struct {
		name    string
		pattern *regexp.Regexp
	}{{"plain", nil}, {"pattern", regexp.MustCompile(`lazy dog\.</p>\n$`)}} {
		b.Run(bc.name, func(b *testing.B) {
			p := New(Options{})
			tg := target(srv.URL+"/", func(t *config.Target) { t.Pattern = bc.pattern })
			b.ReportAllocs()
			for b.Loop() {
				if r := p.Check(context.Background(), tg); r.Outcome != sitewatchv1.Outcome_OUTCOME_UP {
					b.Fatalf("%v %s", r.Outcome, r.Err)
				}
			}
		})
	}
}
