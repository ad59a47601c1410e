package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/prober/internal/check"
)

func TestTokenInTheURLIsRedactedInLogsAndEvents(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	addr := closed.Listener.Addr().String()
	closed.Close() // connection refused: net/http's error quotes the URL
	f, err := targets.Parse("t.yaml", []byte("targets:\n  - id: api\n    url: http://TOKEN@"+addr+"/health\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics(prometheus.NewRegistry())
	m.setTargets(f.Targets)
	var logs strings.Builder
	var published []check.Result
	prober := check.New(check.Options{})
	defer prober.Close()
	w := &worker{probe: prober.Check, publish: func(r check.Result) { published = append(published, r) }, metrics: m,
		logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	w.check(context.Background(), f.Targets[0])
	if len(published) != 1 {
		t.Fatalf("%d results published, want 1", len(published))
	}
	e := published[0].Event(nil)
	wantErr := `Get "http://xxxxx@` + addr + `/health": dial tcp ` + addr + `: connect: connection refused`
	if e.GetError() != wantErr || e.GetTarget().GetUrl() != "http://xxxxx@"+addr+"/health" {
		t.Errorf("event error %q, url %q; want %q, http://xxxxx@%s/health", e.GetError(), e.GetTarget().GetUrl(), wantErr, addr)
	}
	if !strings.Contains(logs.String(), `"err":"`+strings.ReplaceAll(wantErr, `"`, `\"`)+`"`) || strings.Contains(logs.String(), "TOKEN") {
		t.Errorf("logs: %s\nwant the error %q and no TOKEN", logs.String(), wantErr)
	}
}
