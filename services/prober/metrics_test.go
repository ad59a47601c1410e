package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sitewatch/sitewatch/services/internal/opshttp"
	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/prober/internal/check"
	"github.com/sitewatch/sitewatch/services/prober/internal/schedule"
)

func TestCertificateExpiryMetric(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	secure := httptest.NewTLSServer(ok)
	defer secure.Close()
	plain := httptest.NewServer(ok)
	defer plain.Close()
	roots := x509.NewCertPool()
	roots.AddCert(secure.Certificate())
	prober := check.New(check.Options{RootCAs: roots})
	defer prober.Close()

	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	ops, err := opshttp.Listen("127.0.0.1:0", reg, func(context.Context) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ops.Serve(ctx, slog.New(slog.DiscardHandler)) }()
	defer func() { cancel(); <-served }()

	path := writeFile(t, "")
	w := &worker{probe: prober.Check, publish: func(check.Result) {}, metrics: m, logger: slog.New(slog.DiscardHandler)}
	sched := schedule.New(w.check, schedule.Options{Concurrency: 1})
	rl := &reloader{path: path, sched: sched, metrics: m, worker: w, logger: slog.New(slog.DiscardHandler)}
	// load applies a targets file and returns its targets by ID.
	load := func(pairs ...string) map[string]*targets.Target {
		t.Helper()
		content := "targets:\n"
		for i := 0; i < len(pairs); i += 2 {
			content += fmt.Sprintf("  - id: %s\n    url: %s/\n", pairs[i], pairs[i+1])
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		rl.reload("test")
		f, err := targets.Parse(path, []byte(content))
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]*targets.Target{}
		for _, t := range f.Targets {
			byID[t.ID] = t
		}
		return byID
	}
	// scrape returns the lines of /metrics of the metrics named.
	scrape := func(names ...string) []string {
		t.Helper()
		resp, err := http.Get("http://" + ops.Addr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range strings.Split(string(body), "\n") {
			name, _, _ := strings.Cut(l, "{")
			if slices.Contains(names, name) {
				out = append(out, l)
			}
		}
		return out
	}
	const expiry = "sitewatch_prober_tls_earliest_cert_expiry_seconds"
	notAfter := strconv.FormatFloat(float64(secure.Certificate().NotAfter.Unix()), 'g', -1, 64)

	ts := load("a", secure.URL, "b", secure.URL, "plain", plain.URL)
	for _, id := range []string{"a", "b", "plain"} {
		w.check(context.Background(), ts[id])
	}
	want := []string{
		expiry + `{target="a"} ` + notAfter,
		expiry + `{target="b"} ` + notAfter,
	}
	if got := scrape(expiry); !slices.Equal(got, want) {
		t.Errorf("after the checks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// b goes; its check that was running ends after the reload.
	load("a", secure.URL, "plain", plain.URL)
	w.check(context.Background(), ts["b"])
	want = []string{
		`sitewatch_prober_checks_total{failure_kind="none",outcome="up",target="a"} 1`,
		`sitewatch_prober_checks_total{failure_kind="none",outcome="up",target="plain"} 1`,
		expiry + `{target="a"} ` + notAfter,
	}
	if got := scrape(expiry, "sitewatch_prober_checks_total"); !slices.Equal(got, want) {
		t.Errorf("after b was removed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// a moves to plain HTTP: it has a certificate no more.
	ts = load("a", plain.URL, "plain", plain.URL)
	w.check(context.Background(), ts["a"])
	if got := scrape(expiry); len(got) != 0 {
		t.Errorf("after a moved to http://: %s, want no series", strings.Join(got, "\n"))
	}
}

// The scheduler may skip a run of a target after the reload forgot its
// series and before the scheduler's Set: between reloader.forget and
// schedule.Set, the scheduler still has it.
func TestSkipOfARemovedTargetLeavesNoSeries(t *testing.T) {
	f, err := targets.Parse("t.yaml", []byte("targets:\n  - id: a\n    url: http://127.0.0.1:1/\n  - id: b\n    url: http://127.0.0.1:2/\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := f.Targets[0], f.Targets[1]
	m := newMetrics(prometheus.NewRegistry())
	m.setTargets(f.Targets)
	m.skip(b, schedule.SkipOverlap, 1)
	m.setTargets(f.Targets[:1])
	m.skip(a, schedule.SkipBehind, 2)
	m.skip(b, schedule.SkipOverlap, 1) // b was removed meanwhile
	want := `
# HELP sitewatch_prober_checks_skipped_total Checks not made when due, by target and reason: overlap (the previous check of the target still running) or behind (the prober fell more than an interval behind).
# TYPE sitewatch_prober_checks_skipped_total counter
sitewatch_prober_checks_skipped_total{reason="behind",target="a"} 2
`
	if err := testutil.CollectAndCompare(m.skipped, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
