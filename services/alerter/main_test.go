package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/alerter/internal/alertertest"
	"github.com/sitewatch/sitewatch/services/testing/stackdb"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "targets.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const validFile = `targets:
  - id: a
    url: http://127.0.0.1:1/a
  - id: b
    url: http://127.0.0.1:1/b
`

func TestCommandLine(t *testing.T) {
	good := map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1:1/db"}
	bad := writeFile(t, "targets:\n  - id: a\n    url: ftp://x/\n")
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		wantOut string
		wantErr string
	}{
		{
			name: "validate a valid file", args: []string{"-config", writeFile(t, validFile), "-validate"},
			wantOut: "targets.yaml: 2 targets, valid\n",
		},
		{
			name: "validate an invalid file: the prober's message", args: []string{"-config", bad, "-validate"},
			wantErr: bad + `:3: target "a": url: "ftp://x/" is not an http:// or https:// URL`,
		},
		{
			name: "no database", args: []string{"-config", "x"}, env: map[string]string{},
			wantErr: "DATABASE_URL: not set",
		},
		{
			name: "bad flags", args: []string{"-batch", "0", "-session-timeout", "1s", "-fleet", "-targets-topic", "", "extra"}, env: good,
			wantErr: `unexpected arguments: ["extra"] (flags go before them)` + "\n-targets-topic: required with -fleet\n-batch: 0 is not between 1 and 1000000\n-session-timeout: 1s is not between 6s and 5m",
		},
		{
			name: "backtest without times", args: []string{"backtest", "-config", "x"}, env: good,
			wantErr: "-from and -to: required",
		},
		{
			name: "backtest with a bad time and the range reversed", args: []string{"backtest", "-from", "2026-11-02T00:00:00Z", "-to", "2026-11-01T00:00:00Z"},
			env:     map[string]string{},
			wantErr: "-from: must be before -to\nDATABASE_URL: not set",
		},
		{
			name: "backtest with a time not in RFC 3339", args: []string{"backtest", "-from", "yesterday", "-to", "2026-11-01T00:00:00Z"}, env: good,
			wantErr: `invalid value "yesterday" for flag -from: "yesterday" is not an RFC 3339 time such as 2026-11-01T00:00:00Z` + "\n-from and -to: required",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), c.args, env(c.env), &out, &errOut)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != c.wantErr {
				t.Errorf("error:\n%s\nwant:\n%s", got, c.wantErr)
			}
			if !strings.HasSuffix(out.String(), c.wantOut) || (c.wantOut == "" && out.Len() > 0) {
				t.Errorf("output %q, want %q", out.String(), c.wantOut)
			}
		})
	}
}

// The alerter waits for its tables, not ready meanwhile, then consumes:
// events of targets without a policy are counted and their offsets stored.
func TestRunWaitsForTheSchema(t *testing.T) {
	stacktest.KafkaConfig(t)
	dbURL := stackdb.Database(t)
	s := alertertest.New(t, 1)
	path := writeFile(t, validFile)
	logs := &stacktest.Log{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	e := map[string]string{"DATABASE_URL": dbURL, "KAFKA_BROKERS": stacktest.Getenv("KAFKA_BROKERS")}
	go func() {
		done <- run(ctx, []string{"-config", path, "-topic", s.Topic, "-group", s.Group, "-listen", "127.0.0.1:0", "-schema-poll", "100ms"},
			env(e), io.Discard, logs)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	}()
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := regexp.MustCompile(`"msg":"operational endpoints listening","addr":"([^"]+)"`).FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatal("no listening address in the logs")
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != 503 || body != "not ready: table incidents: the alerter's tables are missing (migrations 00011 and 00015): run `recorder migrate`\n" {
		t.Errorf("/readyz before the migrations: %d %q", code, body)
	}
	alertertest.Migrate(t, dbURL)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code, _ := get("/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			code, body := get("/readyz")
			t.Fatalf("/readyz after the migrations: %d %q", code, body)
		}
	}
	var evs []*sitewatchv1.CheckResult
	for i := range 3 {
		evs = append(evs, &sitewatchv1.CheckResult{
			EventId: fmt.Sprintf("00000000-0000-7000-8000-%012d", i), Target: &sitewatchv1.Target{Id: "a"},
			StartedAt: timestamppb.Now(), ResponseTime: durationpb.New(0), Outcome: sitewatchv1.Outcome_OUTCOME_DOWN,
		})
	}
	s.Produce(evs)
	waitFor(t, func() bool {
		_, body := get("/metrics")
		return strings.Contains(body, `sitewatch_alerter_events_total{result="no_policy"} 3`)
	})
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var next int64
	if err := conn.QueryRow(context.Background(), `SELECT next_offset FROM alerter_offsets WHERE topic = $1`, s.Topic).Scan(&next); err != nil || next != 3 {
		t.Errorf("stored offset %d (%v), want 3", next, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30 s")
		}
	}
}
