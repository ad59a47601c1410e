package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/alerter/internal/alertertest"
	"github.com/sitewatch/sitewatch/services/alerter/internal/evaluate"
	"github.com/sitewatch/sitewatch/services/internal/targets"
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
			name: "a negative no-data interval", args: []string{"-nodata-interval", "-1s"}, env: good,
			wantErr: "-shutdown-grace, -notify-max-age, -max-future, -nodata-interval: must not be negative",
		},
		{
			name: "a no-data interval that is no duration", args: []string{"-nodata-interval", "5"}, env: good,
			wantErr: `invalid value "5" for flag -nodata-interval: parse error`,
		},
		{
			name: "bad outbox lease and retries", args: []string{"-outbox-lease", "500ms", "-retry-first", "2s", "-retry-max", "1s"}, env: good,
			wantErr: "-outbox-lease: 500ms is under 1s\n-retry-first, -retry-max: must be positive, -retry-max at least -retry-first",
		},
		{
			name: "a negative outbox retention", args: []string{"-outbox-retention", "-24h"}, env: good,
			wantErr: "-outbox-retention: -24h0m0s is negative (0 keeps the rows for good)",
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
	if err := run(context.Background(), []string{"healthcheck", "http://" + addr + "/readyz"}, env(nil), io.Discard, io.Discard); err == nil ||
		err.Error() != "healthcheck: http://"+addr+"/readyz answered 503 Service Unavailable" {
		t.Errorf("healthcheck before the migrations: %v", err)
	}
	stackdb.Migrate(t, dbURL)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code, _ := get("/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			code, body := get("/readyz")
			t.Fatalf("/readyz after the migrations: %d %q", code, body)
		}
	}
	if err := run(context.Background(), []string{"healthcheck", "http://" + addr + "/readyz"}, env(nil), io.Discard, io.Discard); err != nil {
		t.Errorf("healthcheck once ready: %v", err)
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
	// Named as the recorder's lag, so that one query covers both.
	if _, body := get("/metrics"); !regexp.MustCompile(`(?m)^sitewatch_alerter_consumer_lag\{partition="[01]",topic="` + regexp.QuoteMeta(s.Topic) + `"\} 0$`).MatchString(body) {
		t.Errorf("no sitewatch_alerter_consumer_lag of the topic in /metrics")
	}
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

// alertingFile returns a targets file with a webhook channel whose secret
// comes from the environment, a maintenance window over the "ops" team's
// targets from base for 10 minutes, and three targets: web and maint
// confirm after 2 failures and recover after a success; silent's alerts
// are off.
func alertingFile(base time.Time, hook string) string {
	return fmt.Sprintf(`channels:
  - name: hook
    type: webhook
    url: %s
    secret: ${HOOK_SECRET}
maintenance:
  - name: ops-window
    labels: {team: ops}
    from: %s
    to: %s
defaults:
  alert:
    failure_threshold: 2
    success_threshold: 1
    notify: [hook]
targets:
  - id: web
    url: http://127.0.0.1:1/web
  - id: maint
    url: http://127.0.0.1:1/maint
    labels: {team: ops}
  - id: silent
    url: http://127.0.0.1:1/silent
    alert: false
`, hook, base.Format(time.RFC3339), base.Add(10*time.Minute).Format(time.RFC3339))
}

// The alerter run as a command: policies, channels and maintenance from
// the file, its secrets from the environment; -validate accepts the file
// without them, a run refuses to start without them.
func TestRunWithTheFilesPolicies(t *testing.T) { runScenario(t, false) }

// In fleet mode the policies come from the targets topic, the channels and
// maintenance windows from the file.
func TestRunWithTheTopicsPolicies(t *testing.T) { runScenario(t, true) }

func runScenario(t *testing.T, fleet bool) {
	s := alertertest.New(t, 2)
	base := time.Now().UTC().Truncate(time.Minute).Add(-30 * time.Minute)
	var mu sync.Mutex
	var delivered []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte("s3cret"))
		mac.Write(body)
		mu.Lock()
		defer mu.Unlock()
		delivered = append(delivered, fmt.Sprintf("%s signed=%v", r.Header.Get("Idempotency-Key"),
			r.Header.Get("X-Sitewatch-Signature") == "sha256="+hex.EncodeToString(mac.Sum(nil))))
	}))
	defer hook.Close()
	path := writeFile(t, alertingFile(base, hook.URL+"/hook"))
	e := map[string]string{"DATABASE_URL": s.DBURL, "KAFKA_BROKERS": stacktest.Getenv("KAFKA_BROKERS")}
	validate, wantValid := []string{"-config", path, "-validate"}, path+": 3 targets, valid\n"
	args := []string{"-topic", s.Topic, "-group", s.Group, "-listen", "127.0.0.1:0"}
	if fleet {
		args = append(args, "-fleet", "-targets-topic", publishTargets(t, path))
		// The fleet's file: its channels and windows, no targets (they
		// are the topic's).
		full := alertingFile(base, hook.URL+"/hook")
		path = writeFile(t, full[:strings.Index(full, "defaults:")])
		validate, wantValid = []string{"-fleet", "-config", path, "-validate"}, path+": 1 channels, 1 maintenance windows, valid\n"
		// Without -fleet the file needs targets.
		if err := run(context.Background(), []string{"-config", path, "-validate"}, env(nil), io.Discard, io.Discard); err == nil ||
			err.Error() != path+": targets: missing: no targets" {
			t.Errorf("-validate of the fleet's file without -fleet: %v", err)
		}
	}
	args = append(args, "-config", path)

	var out bytes.Buffer
	if err := run(context.Background(), validate, env(nil), &out, io.Discard); err != nil || out.String() != wantValid {
		t.Errorf("-validate without the secret: %v %q", err, out.String())
	}
	if err := run(context.Background(), args, env(e), io.Discard, io.Discard); err == nil ||
		err.Error() != path+`:5: channel "hook": secret: ${HOOK_SECRET} is not set` {
		t.Errorf("run without the secret: %v", err)
	}

	var evs []*sitewatchv1.CheckResult
	for m, outcome := range []sitewatchv1.Outcome{sitewatchv1.Outcome_OUTCOME_DOWN, sitewatchv1.Outcome_OUTCOME_DOWN, sitewatchv1.Outcome_OUTCOME_UP} {
		for _, id := range []string{"web", "maint", "silent"} {
			ev := &sitewatchv1.CheckResult{
				EventId: fmt.Sprintf("00000000-0000-7000-8000-%012d", len(evs)), Target: &sitewatchv1.Target{Id: id, Url: "http://127.0.0.1:1/" + id},
				StartedAt: timestamppb.New(base.Add(time.Duration(m) * time.Minute)), ResponseTime: durationpb.New(0), Outcome: outcome,
			}
			if outcome == sitewatchv1.Outcome_OUTCOME_DOWN {
				ev.FailureKind, ev.Error = sitewatchv1.FailureKind_FAILURE_KIND_CONNECT, "connection refused"
			}
			evs = append(evs, ev)
		}
	}
	s.Produce(evs)
	e["HOOK_SECRET"] = "s3cret"
	logs := &stacktest.Log{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, env(e), io.Discard, logs) }()
	s.WaitEvaluated(int64(len(evs)))
	web := evaluate.IncidentID("web", "down", evs[0].GetEventId())
	// The sender in the alerter delivers each notification, in order.
	wantDelivered := []string{web + "/0-opened/hook signed=true", web + "/1-resolved/hook signed=true"}
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(delivered) >= len(wantDelivered)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Error("the secret is in the logs")
	}

	rows, err := s.DB.Query(context.Background(), `SELECT i.target_id, coalesce(i.maintenance, ''), t.transition, coalesce(t.suppressed, ''),
			coalesce(o.idempotency_key, ''), coalesce(o.channel_type, '')
		FROM incidents i JOIN incident_transitions t USING (incident_id)
		LEFT JOIN notification_outbox o ON o.incident_id = t.incident_id AND o.seq = t.seq
		ORDER BY i.target_id, t.seq`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var target, maint, transition, suppressed, key, typ string
	if _, err := pgx.ForEachRow(rows, []any{&target, &maint, &transition, &suppressed, &key, &typ}, func() error {
		got = append(got, strings.Join([]string{target, maint, transition, suppressed, key, typ}, " | "))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if !slices.Equal(delivered, wantDelivered) {
		t.Errorf("delivered %q, want %q", delivered, wantDelivered)
	}
	mu.Unlock()
	want := []string{
		"maint | ops-window | opened | ops-window |  | ",
		"maint | ops-window | resolved | ops-window |  | ",
		"web |  | opened |  | " + web + "/0-opened/hook | webhook",
		"web |  | resolved |  | " + web + "/1-resolved/hook | webhook",
	}
	if !slices.Equal(got, want) {
		t.Errorf("incidents, transitions and outbox rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// publishTargets writes the targets of the file to a new targets topic, as
// `prober targets apply` does, and returns the topic.
func publishTargets(t *testing.T, path string) string {
	t.Helper()
	file, err := targets.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tt := alertertest.NewTargetsTopic(t)
	tt.Set(t, file.Targets)
	return tt.Name
}

// The alerter run as a command makes no-data passes every
// -nodata-interval: a region whose prober went quiet an hour ago gets one
// incident, delivered to the channel of its target's policy.
func TestRunOpensNoDataIncidents(t *testing.T) {
	s := alertertest.New(t, 1)
	var mu sync.Mutex
	var delivered []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		delivered = append(delivered, r.Header.Get("Idempotency-Key"))
	}))
	defer hook.Close()
	path := writeFile(t, `channels:
  - name: hook
    type: webhook
    url: `+hook.URL+`/hook
targets:
  - id: web
    url: http://127.0.0.1:1/web
    regions: [b]
    alert: {notify: [hook]}
`)
	last := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	for _, sql := range []string{
		`INSERT INTO target_config (target_id, url, method, interval_us, timeout_us, header_names, has_body, expect_status,
			follow_redirects, tls_skip_verify, max_body_bytes, regions, labels, configured_at, updated_at)
		VALUES ('web', 'http://127.0.0.1:1/web', 'GET', 60000000, 10000000, '{}', false, '{200-399}', true, false, 1048576,
			'{b}', '{}', $1::timestamptz - interval '1 hour', $1::timestamptz - interval '1 hour')`,
		`INSERT INTO targets (target_id, url, method, first_seen, last_seen, last_event_id, last_outcome, last_response_time_us)
		VALUES ('web', 'http://127.0.0.1:1/web', 'GET', $1, $1, gen_random_uuid(), 'up', 1000)`,
		`INSERT INTO target_regions (target_id, region, first_seen, last_seen, last_event_id, last_outcome, last_response_time_us)
		VALUES ('web', 'b', $1, $1, gen_random_uuid(), 'up', 1000)`,
		`INSERT INTO probers (region, instance, first_seen, last_seen) VALUES ('b', 'p1', $1, $1)`,
	} {
		if _, err := s.DB.Exec(context.Background(), sql, last); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	logs := &stacktest.Log{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	e := map[string]string{"DATABASE_URL": s.DBURL, "KAFKA_BROKERS": stacktest.Getenv("KAFKA_BROKERS")}
	go func() {
		done <- run(ctx, []string{"-config", path, "-topic", s.Topic, "-group", s.Group, "-listen", "127.0.0.1:0",
			"-nodata-interval", "200ms"}, env(e), io.Discard, logs)
	}()
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(delivered) >= 1
	})
	// Several passes more: still the one incident.
	time.Sleep(time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	rows, err := s.DB.Query(context.Background(), `SELECT i.incident_id, coalesce(i.target_id, '-'), i.kind, i.region, t.seq, t.transition
		FROM incidents i JOIN incident_transitions t USING (incident_id) ORDER BY t.seq`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var id, target, kind, region, transition string
	var seq int
	if _, err := pgx.ForEachRow(rows, []any{&id, &target, &kind, &region, &seq, &transition}, func() error {
		got = append(got, fmt.Sprintf("%s | %s | %s | %d | %s", target, kind, region, seq, transition))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"- | no_data | b | 0 | opened"}; !slices.Equal(got, want) {
		t.Errorf("incidents and transitions:\n%s\nwant:\n%s\nlogs:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), logs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{id + "/0-opened/hook"}; !slices.Equal(delivered, want) {
		t.Errorf("delivered %q, want %q", delivered, want)
	}
}

func TestOutboxRetentionFlag(t *testing.T) {
	cases := []struct {
		args []string
		want time.Duration
	}{
		{nil, 30 * 24 * time.Hour},
		{[]string{"-outbox-retention", "0"}, 0},
		{[]string{"-outbox-retention", "168h"}, 7 * 24 * time.Hour},
	}
	for _, c := range cases {
		cfg, err := parseConfig(c.args, env(map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1:1/db"}), io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		if cfg.outboxRetention != c.want {
			t.Errorf("%q: retention %s, want %s", c.args, cfg.outboxRetention, c.want)
		}
	}
}
