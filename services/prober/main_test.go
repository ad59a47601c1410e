package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "targets.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func noEnv(string) string { return "" }

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		wantErr []string // lines of the error; nil when valid
		wantOut string
	}{
		{
			name:    "valid",
			file:    "targets:\n  - id: a\n    url: https://example.com/\n  - id: b\n    url: http://example.org/\n",
			wantOut: "2 targets, valid\n",
		},
		{
			// The secrets are the alerter's: the prober accepts the file
			// with none of them set (run gets no environment).
			name: "alerting sections, secrets not set",
			file: "channels:\n  - name: ops-hook\n    type: webhook\n    url: http://127.0.0.1:9000/hook\n    secret: ${SITEWATCH_HOOK_SECRET}\n" +
				"  - name: chat\n    type: slack\n    url: ${SLACK_WEBHOOK_URL}\n" +
				"maintenance:\n  - name: weekly-deploy\n    targets: [a]\n    cron: \"0 3 * * SUN\"\n    duration: 1h\n" +
				"  - name: migration\n    labels: {team: web}\n    from: 2026-12-24T22:00:00Z\n    to: 2026-12-25T02:00:00Z\n" +
				"defaults:\n  alert:\n    failure_threshold: 3\n    regions: 1\n    reminder_interval: 1h\n    notify: [ops-hook]\n" +
				"targets:\n  - id: a\n    url: https://example.com/\n    labels: {team: web}\n  - id: b\n    url: http://example.org/\n    alert: {notify: [ops-hook, chat], regions: all}\n",
			wantOut: "2 targets, valid\n",
		},
		{
			name: "a channel that does not exist",
			file: "channels:\n  - name: ops-hook\n    type: webhook\n    url: http://127.0.0.1:9000/hook\n" +
				"targets:\n  - id: a\n    url: https://example.com/\n    alert: {notify: [ops-hoook]}\n",
			wantErr: []string{
				`:8: target "a": alert: notify: "ops-hoook" is no channel of the file (channels: ops-hook)`,
			},
		},
		{
			name: "invalid, every error reported",
			file: "targets:\n  - id: a\n    url: https://example.com/\n    timeout: 2m\n  - id: a\n    url: https://example.org/\n    pattern: \"[\"\n",
			wantErr: []string{
				`:4: target "a": timeout: 2m0s is not below the interval 1m0s`,
				`:5: target "a": id: duplicate: already used by the target at line 2`,
				":7: target \"a\": pattern: invalid regexp: error parsing regexp: missing closing ]: `[`",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.file)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"-config", path, "-validate"}, noEnv, &stdout, &stderr)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("run: %v", err)
				}
				if want := path + ": " + tt.wantOut; stdout.String() != want {
					t.Errorf("stdout %q, want %q", stdout.String(), want)
				}
				return
			}
			if err == nil {
				t.Fatalf("run succeeded on an invalid file; stdout %q", stdout.String())
			}
			var want []string
			for _, l := range tt.wantErr {
				want = append(want, path+l)
			}
			if err.Error() != strings.Join(want, "\n") {
				t.Errorf("error:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
			}
		})
	}
}

func TestValidateMissingFile(t *testing.T) {
	err := run(context.Background(), []string{"-config", "/nonexistent/targets.yaml", "-validate"}, noEnv, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/targets.yaml") {
		t.Errorf("error %v, want one naming the file", err)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-concurrency", "0"}, {"-buffer", "0"}, {"-compression", "brotli"}, {"-partitions", "0"}, {"extra"}} {
		if err := run(context.Background(), args, noEnv, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Errorf("run %v: no error", args)
		}
	}
}

// Every bad flag is reported at once, the usage printed once.
func TestBadFlagsAllAtOnce(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"-concurrency", "0", "-linger", "soon", "-log-level", "loud",
		"-compression", "brotli", "-buffer", "0", "extra"}, noEnv, &bytes.Buffer{}, &stderr)
	want := `invalid value "soon" for flag -linger: parse error
invalid value "loud" for flag -log-level: slog: level string "loud": unknown name
unexpected arguments: extra
-concurrency: at least 1
-buffer: at least 1
-compression: "brotli" is not one of zstd, lz4, snappy, gzip, none`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	if n := strings.Count(stderr.String(), "Usage of prober"); n != 1 {
		t.Errorf("usage printed %d times, want once:\n%s", n, stderr.String())
	}
}

// TestProberPublishesToTheStack runs the prober on local targets against the
// stack's Kafka and registry, reads the records back with a plain consumer
// and decodes them with the schema the registry returns for the ID in each
// record.
func TestProberPublishesToTheStack(t *testing.T) {
	stacktest.KafkaConfig(t) // skips (or fails under CI) without the stack
	registry := stacktest.Registry(t)

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "all systems operational") })
	mux.HandleFunc("/error", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusInternalServerError) })
	site := httptest.NewServer(mux)
	defer site.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()

	path := writeFile(t, fmt.Sprintf(`
defaults:
  interval: 1s
  timeout: 500ms
targets:
  - id: up
    url: %[1]s/
    pattern: operational
  - id: error
    url: %[1]s/error
  - id: mismatch
    url: %[1]s/
    pattern: "maintenance"
  - id: refused
    url: http://%[2]s/
`, site.URL, refused))
	topic := stacktest.Name("prober_test")

	ctx, cancel := context.WithCancel(context.Background())
	var logs stacktest.Log
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-config", path, "-topic", topic, "-partitions", "2", "-listen", "127.0.0.1:0",
			"-instance", "test-prober", "-region", "local", "-linger", "5ms", "-flush-timeout", "20s",
			"-spool-dir", t.TempDir()}, stacktest.Getenv, &bytes.Buffer{}, &logs)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run after cancel: %v", err)
			}
		case <-time.After(5 * time.Second):
			// Kafka is up: the flush takes milliseconds, not the timeout.
			t.Error("run did not return within 5s of cancel")
		}
		if t.Failed() {
			t.Logf("prober logs:\n%s", logs.String())
		}
	}()

	consumer := stacktest.KafkaClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AllowAutoTopicCreation()) // the prober may not have created it yet
	type want struct {
		outcome sitewatchv1.Outcome
		kind    sitewatchv1.FailureKind
		status  uint32
	}
	wants := map[string]want{
		"up":       {sitewatchv1.Outcome_OUTCOME_UP, sitewatchv1.FailureKind_FAILURE_KIND_UNSPECIFIED, 200},
		"error":    {sitewatchv1.Outcome_OUTCOME_DOWN, sitewatchv1.FailureKind_FAILURE_KIND_HTTP_STATUS, 500},
		"mismatch": {sitewatchv1.Outcome_OUTCOME_DOWN, sitewatchv1.FailureKind_FAILURE_KIND_CONTENT_MISMATCH, 200},
		"refused":  {sitewatchv1.Outcome_OUTCOME_DOWN, sitewatchv1.FailureKind_FAILURE_KIND_CONNECT, 0},
	}
	seen := map[string]int{}
	schemas := map[int]bool{} // IDs already checked
	eventIDs := map[string]bool{}
	deadline, stop := context.WithTimeout(ctx, 60*time.Second)
	defer stop()
	for len(seen) < len(wants) || minCount(seen) < 2 {
		fetches := consumer.PollFetches(deadline)
		if deadline.Err() != nil {
			t.Fatalf("records seen per target after 60s: %v", seen)
		}
		for _, fe := range fetches.Errors() {
			if fe.Err != context.DeadlineExceeded {
				t.Logf("fetch: %v", fe.Err)
			}
		}
		fetches.EachRecord(func(rec *kgo.Record) {
			var h sr.ConfluentHeader
			id, rest, err := h.DecodeID(rec.Value)
			if err != nil {
				t.Fatalf("record %s: %v", rec.Key, err)
			}
			index, payload, err := h.DecodeIndex(rest, 16)
			if err != nil || len(index) != 1 || index[0] != 0 {
				t.Fatalf("record %s: message index %v (%v), want [0]", rec.Key, index, err)
			}
			if !schemas[id] {
				s, err := registry.SchemaByID(deadline, id)
				if err != nil {
					t.Fatalf("schema %d: %v", id, err)
				}
				if s.Type != sr.TypeProtobuf || s.Schema != sitewatchv1.Schema {
					t.Fatalf("schema %d is %v:\n%s\nwant the PROTOBUF CheckResult schema", id, s.Type, s.Schema)
				}
				schemas[id] = true
			}
			var e sitewatchv1.CheckResult
			if err := proto.Unmarshal(payload, &e); err != nil {
				t.Fatalf("record %s: %v", rec.Key, err)
			}
			tid := e.GetTarget().GetId()
			if string(rec.Key) != tid {
				t.Errorf("record key %q, event target %q", rec.Key, tid)
			}
			w, ok := wants[tid]
			if !ok {
				t.Fatalf("event for unknown target %q", tid)
			}
			if e.GetOutcome() != w.outcome || e.GetFailureKind() != w.kind || e.GetStatusCode() != w.status {
				t.Errorf("%s: outcome %v kind %v status %d error %q; want %v %v %d",
					tid, e.GetOutcome(), e.GetFailureKind(), e.GetStatusCode(), e.GetError(), w.outcome, w.kind, w.status)
			}
			if e.GetProber().GetInstance() != "test-prober" || e.GetProber().GetRegion() != "local" {
				t.Errorf("%s: prober %v", tid, e.GetProber())
			}
			if eventIDs[e.GetEventId()] {
				t.Errorf("event ID %s seen twice", e.GetEventId())
			}
			eventIDs[e.GetEventId()] = true
			seen[tid]++
		})
	}
	if len(schemas) != 1 {
		t.Errorf("records carry %d schema IDs, want 1", len(schemas))
	}
	s, err := registry.SchemaByVersion(deadline, kafkaenv.Subject(topic), -1)
	if err != nil || s.Schema.Schema != sitewatchv1.Schema {
		t.Errorf("latest schema under %s-value: %v", topic, err)
	}
	compat := registry.Compatibility(deadline, kafkaenv.Subject(topic))
	if len(compat) != 1 || compat[0].Err != nil || compat[0].Level != sr.CompatBackward {
		t.Errorf("compatibility of %s-value: %+v, want BACKWARD", topic, compat)
	}
}

func minCount(m map[string]int) int {
	n := -1
	for _, c := range m {
		if n < 0 || c < n {
			n = c
		}
	}
	return n
}

// The fleet flags: -fleet takes no -config, needs -region, and every error
// comes at once.
func TestFleetFlags(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"config and fleet", []string{"-fleet", "-config", "targets.yaml", "-region", "r1"},
			"-config and -fleet: give one (-config: a targets file, one machine; -fleet: the targets topic, shared)"},
		{"all at once", []string{"-fleet", "-validate", "-targets-topic", "", "-session-timeout", "1s"},
			"-validate checks a targets file: not with -fleet (use `prober targets apply -dry-run FILE`)\n" +
				"-region: required with -fleet (the group is sitewatch-prober-REGION)\n" +
				"-targets-topic: required with -fleet\n" +
				"-session-timeout: between 6s and 30m (the broker's usual limits)"},
		// A region no target can list would check only the targets of
		// every region, in a group of its own.
		{"region no target can list", []string{"-fleet", "-region", "EU-West"},
			`-region: "EU-West" is not a region name (lowercase letters, digits and -, starting with a letter or digit, at most 63), as targets list them`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := run(context.Background(), c.args, noEnv, &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || err.Error() != c.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, c.want)
			}
		})
	}
	// A complete fleet command line parses; catch-up is on by default.
	f, err := parseFlags([]string{"-fleet", "-region", "r1", "-instance", "p1"}, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("-fleet -region r1 -instance p1: %v", err)
	}
	if got := f.catchUpWindow(); got != 10*time.Second {
		t.Errorf("fleet catch-up %v, want 10s by default", got)
	}
	if f, err = parseFlags([]string{"-fleet", "-region", "r1", "-instance", "p1", "-catch-up", "15s"}, &bytes.Buffer{}); err != nil || f.catchUpWindow() != 15*time.Second {
		t.Errorf("-catch-up 15s: %v, %v", f, err)
	}
}

// -catch-up applies in fleet mode only: in file mode a new target waits for
// its next slot.
func TestCatchUpFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want time.Duration
		err  string
	}{
		{[]string{"-fleet", "-region", "r1"}, 10 * time.Second, ""},
		{[]string{"-fleet", "-region", "r1", "-catch-up", "0"}, 0, ""},
		{[]string{"-fleet", "-region", "r1", "-catch-up", "40s"}, 40 * time.Second, ""},
		{[]string{"-config", "t.yaml"}, 0, ""},
		{[]string{"-config", "t.yaml", "-catch-up", "40s"}, 0, ""},
		{[]string{"-fleet", "-region", "r1", "-catch-up", "-1s"}, 0, "-catch-up: between 0 and 1h"},
		{[]string{"-fleet", "-region", "r1", "-catch-up", "61m"}, 0, "-catch-up: between 0 and 1h"},
	} {
		f, err := parseFlags(c.args, &bytes.Buffer{})
		switch {
		case c.err != "":
			if err == nil || err.Error() != c.err {
				t.Errorf("%v: error %v, want %s", c.args, err, c.err)
			}
		case err != nil:
			t.Errorf("%v: %v", c.args, err)
		case f.catchUpWindow() != c.want:
			t.Errorf("%v: catch-up %v, want %v", c.args, f.catchUpWindow(), c.want)
		}
	}
}
