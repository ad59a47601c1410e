package notify_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sitewatch/sitewatch/services/alerter/internal/notify"
	"github.com/sitewatch/sitewatch/services/internal/targets"
)

var (
	started   = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	confirmed = started.Add(2 * time.Minute)
	resolved  = started.Add(10 * time.Minute)
)

func opened() *notify.Notification {
	return &notify.Notification{
		IncidentID: "inc-7f3a", Transition: notify.Opened, Seq: 0, Kind: "down",
		TargetID: "example-home", URL: "https://example.com/", Regions: []string{"eu", "us"},
		At: confirmed, StartedAt: started, ConfirmedAt: confirmed,
		FailureKind: "connect", Error: "connection refused",
	}
}

func resolvedOf(n *notify.Notification) *notify.Notification {
	r := *n
	r.Transition, r.Seq, r.At, r.ResolvedAt = notify.Resolved, 1, resolved, &resolved
	return &r
}

// request is what a receiver got.
type request struct {
	method, path string
	header       http.Header
	body         []byte
}

// receiver records requests and answers each with the next status of
// statuses (the last one once they run out) and body.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []request
}

func newReceiver(t *testing.T, body string, statuses ...int) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests = append(r.requests, request{req.Method, req.URL.Path, req.Header.Clone(), b})
		status := statuses[min(len(r.requests), len(statuses))-1]
		r.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got(t *testing.T) []request {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.requests...)
}

func newSender(t *testing.T, ch targets.Channel) notify.Sender {
	t.Helper()
	s, err := notify.New(ch, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// decode turns a JSON body into plain values, to compare whole.
func decode(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	return v
}

func same(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func TestWebhook(t *testing.T) {
	rcv := newReceiver(t, "", http.StatusNoContent)
	secret := "hook-secret-0123"
	s := newSender(t, targets.Channel{Name: "ops-hook", Type: targets.ChannelWebhook,
		URL: targets.NewSecret("", rcv.URL+"/hook"), Secret: targets.NewSecret("HOOK_SECRET", secret)})
	n := opened()
	key := n.IdempotencyKey("ops-hook")
	if err := s.Send(context.Background(), n, key); err != nil {
		t.Fatal(err)
	}
	reqs := rcv.got(t)
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(r.body)
	for name, want := range map[string]string{
		"Content-Type":          "application/json",
		"Idempotency-Key":       "inc-7f3a/0-opened/ops-hook",
		"X-Sitewatch-Signature": "sha256=" + hex.EncodeToString(mac.Sum(nil)),
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if r.method != http.MethodPost || r.path != "/hook" {
		t.Errorf("%s %s, want POST /hook", r.method, r.path)
	}
	same(t, "body", decode(t, r.body), map[string]any{
		"incident_id": "inc-7f3a", "transition": "opened", "seq": 0.0, "kind": "down",
		"target_id": "example-home", "url": "https://example.com/", "regions": []any{"eu", "us"},
		"at": "2026-11-30T09:02:00Z", "started_at": "2026-11-30T09:00:00Z",
		"confirmed_at": "2026-11-30T09:02:00Z", "resolved_at": nil,
		"failure_kind": "connect", "error": "connection refused",
	})

	t.Run("no secret, no signature", func(t *testing.T) {
		rcv := newReceiver(t, "", http.StatusOK)
		s := newSender(t, targets.Channel{Name: "plain", Type: targets.ChannelWebhook, URL: targets.NewSecret("", rcv.URL)})
		if err := s.Send(context.Background(), resolvedOf(n), "k"); err != nil {
			t.Fatal(err)
		}
		r := rcv.got(t)[0]
		if _, ok := r.header["X-Sitewatch-Signature"]; ok {
			t.Errorf("signature header without a secret: %q", r.header.Get("X-Sitewatch-Signature"))
		}
		if got := decode(t, r.body).(map[string]any)["resolved_at"]; got != "2026-11-30T09:10:00Z" {
			t.Errorf("resolved_at %v", got)
		}
	})
}

func TestSlack(t *testing.T) {
	rcv := newReceiver(t, "ok", http.StatusOK)
	s := newSender(t, targets.Channel{Name: "team", Type: targets.ChannelSlack,
		URL: targets.NewSecret("SLACK_URL", rcv.URL+"/services/T000/B000/XXXX")})
	n := opened()
	n.Error = "status 503 <!channel> <https://evil.example|log in> &"
	if err := s.Send(context.Background(), n, n.IdempotencyKey("team")); err != nil {
		t.Fatal(err)
	}
	r := rcv.got(t)[0]
	if r.path != "/services/T000/B000/XXXX" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("%s %s %q", r.method, r.path, r.header.Get("Content-Type"))
	}
	field := func(name, value string) any {
		return map[string]any{"type": "mrkdwn", "text": "*" + name + "*\n" + value}
	}
	same(t, "body", decode(t, r.body), map[string]any{
		"text": "example-home is down: status 503 &lt;!channel&gt; &lt;https://evil.example|log in&gt; &amp;",
		"blocks": []any{
			map[string]any{
				"type": "section",
				"text": map[string]any{"type": "mrkdwn", "text": "*example-home is down: status 503 &lt;!channel&gt; &lt;https://evil.example|log in&gt; &amp;*"},
				"fields": []any{
					field("Transition", "opened"), field("Kind", "down"), field("Target", "example-home"),
					field("URL", "https://example.com/"), field("Regions", "eu, us"),
					field("Started", "2026-11-30T09:00:00Z"), field("Confirmed", "2026-11-30T09:02:00Z"),
					field("Failure", "connect"),
				},
			},
			map[string]any{
				"type":     "context",
				"elements": []any{map[string]any{"type": "mrkdwn", "text": "incident `inc-7f3a` · inc-7f3a/0-opened/team"}},
			},
		},
		"replace_original": false, "delete_original": false,
	})
}

func TestPagerDuty(t *testing.T) {
	rcv := newReceiver(t, `{"status":"success","message":"Event processed","dedup_key":"inc-7f3a"}`, http.StatusAccepted)
	s := newSender(t, targets.Channel{Name: "pd", Type: targets.ChannelPagerDuty,
		URL: targets.NewSecret("", rcv.URL+"/v2/enqueue"), RoutingKey: targets.NewSecret("PD_KEY", "R0UT1NGKEY")})
	n := opened()
	for _, x := range []*notify.Notification{n, resolvedOf(n)} {
		if err := s.Send(context.Background(), x, x.IdempotencyKey("pd")); err != nil {
			t.Fatal(err)
		}
	}
	reqs := rcv.got(t)
	if len(reqs) != 2 || reqs[0].path != "/v2/enqueue" || reqs[0].header.Get("Content-Type") != "application/json" {
		t.Fatalf("requests %+v", reqs)
	}
	details := decode(t, mustJSON(t, n))
	same(t, "trigger", decode(t, reqs[0].body), map[string]any{
		"routing_key": "R0UT1NGKEY", "event_action": "trigger", "dedup_key": "inc-7f3a", "client": "sitewatch",
		"payload": map[string]any{
			"summary": "example-home is down: connection refused", "source": "https://example.com/",
			"severity": "critical", "timestamp": "2026-11-30T09:02:00Z", "component": "example-home",
			"class": "down", "custom_details": details,
		},
	})
	same(t, "resolve", decode(t, reqs[1].body), map[string]any{
		"routing_key": "R0UT1NGKEY", "event_action": "resolve", "dedup_key": "inc-7f3a", "client": "sitewatch",
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAlertmanagerBody(t *testing.T) {
	rcv := newReceiver(t, "", http.StatusOK)
	s := newSender(t, targets.Channel{Name: "am", Type: targets.ChannelAlertmanager, URL: targets.NewSecret("", rcv.URL+"/")})
	n := opened()
	for _, x := range []*notify.Notification{n, resolvedOf(n)} {
		if err := s.Send(context.Background(), x, x.IdempotencyKey("am")); err != nil {
			t.Fatal(err)
		}
	}
	reqs := rcv.got(t)
	if len(reqs) != 2 || reqs[0].path != "/api/v2/alerts" {
		t.Fatalf("requests %+v", reqs)
	}
	alert := func(transition, key, endsAt string) any {
		return []any{map[string]any{
			"labels": map[string]any{"alertname": "SitewatchDown", "incident_id": "inc-7f3a", "kind": "down",
				"severity": "critical", "target_id": "example-home"},
			"annotations": map[string]any{"summary": map[string]string{
				"opened": "example-home is down: connection refused", "resolved": "example-home is up again"}[transition],
				"transition": transition, "idempotency_key": key, "regions": "eu,us",
				"url": "https://example.com/", "failure_kind": "connect", "error": "connection refused"},
			"startsAt": "2026-11-30T09:00:00Z", "endsAt": endsAt,
		}}
	}
	same(t, "opened", decode(t, reqs[0].body), alert("opened", "inc-7f3a/0-opened/am", "2026-12-01T09:02:00Z"))
	same(t, "resolved", decode(t, reqs[1].body), alert("resolved", "inc-7f3a/1-resolved/am", "2026-11-30T09:10:00Z"))
}

// An HTTP 4xx other than 408 and 429 refuses for good; other failures are
// worth a retry.
func TestHTTPErrorsSayWhetherToRetry(t *testing.T) {
	for _, typ := range []string{targets.ChannelWebhook, targets.ChannelSlack, targets.ChannelPagerDuty, targets.ChannelAlertmanager} {
		for status, permanent := range map[int]bool{400: true, 401: true, 403: true, 404: true, 410: true,
			408: false, 429: false, 500: false, 502: false, 503: false} {
			rcv := newReceiver(t, `{"status":"invalid event","message":"Event object is invalid"}`, status)
			s := newSender(t, targets.Channel{Name: "c", Type: typ, URL: targets.NewSecret("", rcv.URL),
				RoutingKey: targets.NewSecret("", "key")})
			err := s.Send(context.Background(), opened(), "k")
			if err == nil || notify.Permanent(err) != permanent {
				t.Errorf("%s answered %d: err %v, permanent %v; want permanent %v", typ, status, err, notify.Permanent(err), permanent)
			}
		}
	}
	t.Run("nothing listens", func(t *testing.T) {
		rcv := newReceiver(t, "", 200)
		rcv.Close()
		s := newSender(t, targets.Channel{Name: "hook", Type: targets.ChannelWebhook, URL: targets.NewSecret("", rcv.URL+"/x")})
		err := s.Send(context.Background(), opened(), "k")
		if err == nil || notify.Permanent(err) {
			t.Errorf("err %v, permanent %v", err, notify.Permanent(err))
		}
	})
	t.Run("the webhook's error names status and body", func(t *testing.T) {
		rcv := newReceiver(t, "try later\n", 503)
		s := newSender(t, targets.Channel{Name: "hook", Type: targets.ChannelWebhook, URL: targets.NewSecret("", rcv.URL)})
		err := s.Send(context.Background(), opened(), "k")
		if want := "webhook channel hook: 503 Service Unavailable: try later"; err == nil || err.Error() != want {
			t.Errorf("err %v, want %q", err, want)
		}
	})
}

// A channel's secrets never reach an error or a log line, even when the
// receiver echoes them or cannot be reached at a secret URL.
func TestSecretsNeverInErrorsOrLogs(t *testing.T) {
	const (
		hookToken  = "s3cr3t-hook-token"
		hmacSecret = "s3cr3t-hmac"
		slackToken = "T0001/B0001/s3cr3tSlackToken"
		routingKey = "s3cr3tR0utingKey"
	)
	secrets := []string{hookToken, hmacSecret, slackToken, routingKey}
	// The receiver answers 500 with everything it was sent.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": r.URL.String() + " " + r.Header.Get("X-Sitewatch-Signature") + " " + string(b)})
	}))
	defer echo.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()

	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	for _, base := range []string{echo.URL, down.URL} {
		for _, ch := range []targets.Channel{
			{Name: "hook", Type: targets.ChannelWebhook, URL: targets.NewSecret("HOOK_URL", base+"/hook/"+hookToken),
				Secret: targets.NewSecret("HOOK_SECRET", hmacSecret)},
			{Name: "hook-query", Type: targets.ChannelWebhook, URL: targets.NewSecret("", base+"/hook?token="+hookToken)},
			{Name: "slack", Type: targets.ChannelSlack, URL: targets.NewSecret("SLACK_URL", base+"/services/"+slackToken)},
			{Name: "pd", Type: targets.ChannelPagerDuty, URL: targets.NewSecret("", base),
				RoutingKey: targets.NewSecret("PD_KEY", routingKey)},
		} {
			err := newSender(t, ch).Send(context.Background(), opened(), "k")
			if err == nil {
				t.Fatalf("%s at %s: no error", ch.Name, base)
			}
			log.Error("delivery failed", "channel", ch.Name, "error", err, "url", ch.URL, "secret", ch.Secret)
			for _, s := range secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("%s: error shows a secret: %v", ch.Name, err)
				}
			}
		}
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("log shows secret %q:\n%s", s, logs.String())
		}
	}
	if !strings.Contains(logs.String(), `webhook channel hook: Post http://127.0.0.1:`) ||
		!strings.Contains(logs.String(), `/${HOOK_URL}: dial tcp`) {
		t.Errorf("the unreachable webhook's error does not name its host and variable:\n%s", logs.String())
	}
}

func TestMessageID(t *testing.T) {
	for key, want := range map[string]string{
		"inc-7f3a/0-opened/ops mail": "inc-7f3a/0-opened/ops%20mail@example.org",
		"a.b<c>@d%e":                 "a%2Eb%3Cc%3E%40d%25e@example.org",
	} {
		if got := notify.MessageID(key, "example.org"); got != want {
			t.Errorf("MessageID(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestNewRefusesUnusableChannels(t *testing.T) {
	for _, tt := range []struct {
		ch   targets.Channel
		want string
	}{
		{targets.Channel{Name: "x", Type: "sms"}, `channel x: unknown type "sms"`},
		{targets.Channel{Name: "h", Type: targets.ChannelWebhook}, "webhook channel h: no url"},
		{targets.Channel{Name: "p", Type: targets.ChannelPagerDuty}, "pagerduty channel p: no routing_key"},
		{targets.Channel{Name: "m", Type: targets.ChannelEmail, SMTP: "mail", From: "a@b", To: []string{"c@d"}},
			`email channel m: smtp "mail": want host:port`},
		{targets.Channel{Name: "m", Type: targets.ChannelEmail, SMTP: "mail:25", From: "a@b", To: []string{"c@d"}, StartTLS: "sometimes"},
			`email channel m: starttls "sometimes": want always, opportunistic or never`},
	} {
		_, err := notify.New(tt.ch, notify.Options{})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%+v: err %v, want %q", tt.ch.Name, err, tt.want)
		}
	}
}

// A 429 or 503 answer's Retry-After reaches the sender's error.
func TestRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		typ       string
		status    int
		header    string
		want      time.Duration
		permanent bool
	}{
		{targets.ChannelWebhook, 429, "7", 7 * time.Second, false},
		{targets.ChannelWebhook, 503, "2", 2 * time.Second, false},
		{targets.ChannelWebhook, 500, "2", 0, false},
		{targets.ChannelWebhook, 429, "", 0, false},
		{targets.ChannelAlertmanager, 503, "3", 3 * time.Second, false},
		{targets.ChannelSlack, 429, "3", 3 * time.Second, false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tt.header != "" {
				w.Header().Set("Retry-After", tt.header)
			}
			w.WriteHeader(tt.status)
		}))
		err := newSender(t, targets.Channel{Name: "c", Type: tt.typ, URL: targets.NewSecret("", srv.URL)}).
			Send(context.Background(), opened(), "k")
		srv.Close()
		if got := notify.RetryAfter(err); got != tt.want || notify.Permanent(err) != tt.permanent {
			t.Errorf("%s %d Retry-After %q: RetryAfter %s, permanent %v (%v); want %s", tt.typ, tt.status, tt.header,
				got, notify.Permanent(err), err, tt.want)
		}
	}
}

func TestSenders(t *testing.T) {
	got, err := notify.Senders([]*targets.Channel{
		{Name: "hook", Type: targets.ChannelWebhook, URL: targets.NewSecret("", "http://127.0.0.1:9/")},
		{Name: "pd", Type: targets.ChannelPagerDuty, RoutingKey: targets.NewSecret("PD_KEY", "k")},
	}, notify.Options{})
	if err != nil || len(got) != 2 {
		t.Fatalf("senders %v, err %v", got, err)
	}
	if _, ok := got["hook"].(*notify.Webhook); !ok {
		t.Errorf("hook: %T", got["hook"])
	}
	if _, ok := got["pd"].(*notify.PagerDuty); !ok {
		t.Errorf("pd: %T", got["pd"])
	}
	_, err = notify.Senders([]*targets.Channel{{Name: "bad", Type: targets.ChannelSlack}}, notify.Options{})
	if err == nil || err.Error() != "slack channel bad: no url" {
		t.Errorf("err %v", err)
	}
}

// The summary is one line whatever the error holds: an e-mail subject, a
// PagerDuty summary and Slack's notification text have no room for more.
func TestSummaryIsOneLine(t *testing.T) {
	rcv := newReceiver(t, `{"status":"success"}`, http.StatusAccepted)
	s := newSender(t, targets.Channel{Name: "pd", Type: targets.ChannelPagerDuty,
		URL: targets.NewSecret("", rcv.URL), RoutingKey: targets.NewSecret("", "R0UT1NGKEY")})
	n := opened()
	n.Error = "body does not match:\r\n<h1>Down</h1>\n\tfor\x00maintenance\x1b[0m "
	if err := s.Send(context.Background(), n, n.IdempotencyKey("pd")); err != nil {
		t.Fatal(err)
	}
	var event struct {
		Payload struct {
			Summary string `json:"summary"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(rcv.got(t)[0].body, &event); err != nil {
		t.Fatal(err)
	}
	if want := "example-home is down: body does not match: <h1>Down</h1> for maintenance [0m"; event.Payload.Summary != want {
		t.Errorf("summary %q, want %q", event.Payload.Summary, want)
	}
}

// A receiver that redirects (an http:// URL answered with 301 to https://)
// is not followed: net/http would resend the POST as a bodiless GET, and
// the GET's 200 would count as delivered. The redirect is refused for good,
// with where it points.
func TestRedirectsAreNotFollowed(t *testing.T) {
	for _, typ := range []string{targets.ChannelWebhook, targets.ChannelSlack, targets.ChannelPagerDuty, targets.ChannelAlertmanager} {
		var mu sync.Mutex
		var got []string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got = append(got, r.Method+" "+r.URL.Path)
			mu.Unlock()
			if !strings.HasPrefix(r.URL.Path, "/moved") {
				http.Redirect(w, r, "/moved"+r.URL.Path, http.StatusMovedPermanently)
			}
		}))
		s := newSender(t, targets.Channel{Name: "c", Type: typ, URL: targets.NewSecret("", srv.URL+"/hook"),
			RoutingKey: targets.NewSecret("", "key")})
		err := s.Send(context.Background(), opened(), "k")
		srv.Close()
		if err == nil || !notify.Permanent(err) || !strings.Contains(err.Error(), "301") || len(got) != 1 {
			t.Errorf("%s: err %v, permanent %v; requests %q; want one request, refused for good", typ, err, notify.Permanent(err), got)
		}
	}
}
