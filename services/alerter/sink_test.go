package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is written by the sink's handlers and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The sink writes each notification as one line, marks a key seen before
// as a duplicate, refuses a body that is not JSON, and answers /readyz.
func TestSink(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, logs lockedBuffer
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	clock := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	go func() {
		done <- runSink(ctx, []string{"-listen", "127.0.0.1:0"}, &out, &logs, func() time.Time { return clock },
			func(addr string) { addrc <- addr })
	}()
	addr := <-addrc
	post := func(key, signature, body string) int {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/hook", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Idempotency-Key", key)
		if signature != "" {
			req.Header.Set("X-Sitewatch-Signature", signature)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	codes := []int{
		post("i1/0-opened/hook", "", `{"incident_id":"i1","transition":"opened"}`),
		post("i1/0-opened/hook", "sha256=ab", `{"incident_id":"i1","transition":"opened"}`),
		post("i1/1-resolved/hook", "", `not json`),
	}
	if want := []int{200, 200, 400}; !slices.Equal(codes, want) {
		t.Errorf("status codes %v, want %v", codes, want)
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("/readyz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	want := `{"time":"2026-11-30T12:00:00Z","path":"/hook","idempotency_key":"i1/0-opened/hook","duplicate":false,"signed":false,"notification":{"incident_id":"i1","transition":"opened"}}
{"time":"2026-11-30T12:00:00Z","path":"/hook","idempotency_key":"i1/0-opened/hook","duplicate":true,"signed":true,"notification":{"incident_id":"i1","transition":"opened"}}
`
	if got := out.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("sink after its context ended: %v", err)
	}
	// task up writes stderr to the same file as the notifications: JSON
	// lines too.
	var banner struct{ Msg, URL string }
	if err := json.Unmarshal([]byte(logs.String()), &banner); err != nil || strings.Count(logs.String(), "\n") != 1 ||
		banner.Msg != "alerter sink: receiving notifications" || banner.URL != "http://"+addr+"/" {
		t.Errorf("stderr %q (%v): want one JSON line with the sink's URL", logs.String(), err)
	}
}
