package opshttp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "sitewatch_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	var notReady atomic.Pointer[error]
	refused := errors.New("kafka: dial refused")
	notReady.Store(&refused)
	s, err := Listen("127.0.0.1:0", reg, func(context.Context) error {
		if p := notReady.Load(); p != nil {
			return *p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Serve(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))) }()

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 503 || body != "not ready: kafka: dial refused\n" {
		t.Fatalf("/readyz while not ready: %d %q", code, body)
	}
	notReady.Store(nil)
	if code, body := get("/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz when ready: %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "sitewatch_test_total 3") {
		t.Fatalf("/metrics: %d %q", code, body)
	}
	if err := Probe(context.Background(), "http://"+s.Addr()+"/readyz"); err != nil {
		t.Fatalf("Probe of a ready service: %v", err)
	}
	notReady.Store(&refused)
	if err := Probe(context.Background(), "http://"+s.Addr()+"/readyz"); err == nil ||
		err.Error() != "healthcheck: http://"+s.Addr()+"/readyz answered 503 Service Unavailable" {
		t.Fatalf("Probe of a service not ready: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
