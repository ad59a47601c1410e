package targets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// alertingFile has the three alerting sections, as docs/design.md shows
// them, with a channel of each type.
const alertingFile = `
channels:
  - name: ops-hook
    type: webhook
    url: http://127.0.0.1:9000/hook
    secret: ${SITEWATCH_HOOK_SECRET}
  - name: chat
    type: slack
    url: ${SLACK_WEBHOOK_URL}
    timeout: 5s
  - name: pager
    type: pagerduty
    routing_key: ${PD_ROUTING_KEY}
    url: http://127.0.0.1:9001/v2/enqueue
  - name: am
    type: alertmanager
    url: http://127.0.0.1:9093/
  - name: mail
    type: email
    smtp: 127.0.0.1:2525
    from: sitewatch <sitewatch@example.com>
    to: [ops@example.com, "On Call <oncall@example.com>"]
    username: sitewatch
    password: pw-${SMTP_PASSWORD}
    starttls: never
maintenance:
  - name: weekly-deploy
    targets: [home]
    cron: "0 3 * * SUN"
    duration: 1h
  - name: migration
    labels: {team: web}
    from: 2026-12-24T22:00:00Z
    to: 2026-12-25T02:00:00+01:00
defaults:
  alert:
    failure_threshold: 3
    failure_window: 5
    reminder_interval: 1h
    notify: [ops-hook]
targets:
  - id: home
    url: https://example.com/
    regions: [eu-west, us-east]
    labels: {team: web}
    alert:
      regions: all
      notify: [ops-hook, pager, mail]
  - id: api
    url: https://example.org/
    alert:
      failure_threshold: 2
      success_threshold: 1
      regions: 2
      tls_expiry_days: 0
      no_data: false
  - id: quiet
    url: https://example.net/
    alert: false
  - id: muted
    url: https://example.net/muted
    alert: {notify: []}
`

func TestParseAlert(t *testing.T) {
	f, err := Parse("t.yaml", []byte(alertingFile))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		// Key by key: the target's regions and notify, the defaults' threshold, window and reminder.
		`home: {FailureThreshold:3 FailureWindow:5 SuccessThreshold:2 Regions:-1 ReminderInterval:1h0m0s TLSExpiryDays:14 NoData:true Notify:[ops-hook pager mail]}`,
		// The window stays the defaults' 5, the target's threshold 2.
		`api: {FailureThreshold:2 FailureWindow:5 SuccessThreshold:1 Regions:2 ReminderInterval:1h0m0s TLSExpiryDays:0 NoData:false Notify:[ops-hook]}`,
		`quiet: <nil>`,
		`muted: <nil>`,
	}
	for i, tg := range f.Targets {
		got := tg.ID + ": <nil>"
		if tg.Alert != nil {
			got = fmt.Sprintf("%s: %+v", tg.ID, *tg.Alert)
		}
		if got != want[i] {
			t.Errorf("got  %s\nwant %s", got, want[i])
		}
	}
}

// designFile is docs/design.md's targets file with its alerting sections,
// as a user would copy them, and targets that override the defaults.
const designFile = `
channels:
  - name: ops-hook
    type: webhook            # webhook | slack | pagerduty | alertmanager | email
    url: http://127.0.0.1:9000/hook
    secret: ${SITEWATCH_HOOK_SECRET}   # ${VAR} is read from the environment; never logged
maintenance:
  - name: weekly-deploy
    targets: [example-home]  # or labels: {team: web}
    cron: "0 3 * * SUN"      # recurring start (UTC); or from/to for a one-off window
    duration: 1h
defaults:            # optional; any per-target key below
  interval: 30s      # Go duration strings
  timeout: 10s
  alert:
    failure_threshold: 3     # failed checks in a region that confirm "down"
    failure_window: 3        # ... out of the last N checks (equal to the threshold = consecutive)
    success_threshold: 2     # successful checks that resolve
    regions: 1               # regions that must agree (a count, or all)
    reminder_interval: 1h    # 0 = no reminders
    tls_expiry_days: 14      # certificate-expiry incident this many days before NotAfter; 0 = off
    notify: [ops-hook]
targets:
  - id: example-home # stable, unique; the Kafka key and the database key
    url: https://example.com/
    pattern: "Example Domain"
  - id: slow
    url: https://example.org/
    alert: {failure_threshold: 5}
  - id: sparse
    url: https://example.org/sparse
    alert: {failure_threshold: 5, failure_window: 8}
  - id: silenced
    url: https://example.net/
    alert: {notify: []}
  - id: off
    url: https://example.net/off
    alert: false
`

// TestParseDesignExample parses the file of docs/design.md. A target that
// raises only the threshold above the defaults' window gets a window as
// large (consecutive failures) instead of an error about a key it did not
// write.
func TestParseDesignExample(t *testing.T) {
	f, err := Parse("targets.yaml", []byte(designFile))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`example-home: {FailureThreshold:3 FailureWindow:3 SuccessThreshold:2 Regions:1 ReminderInterval:1h0m0s TLSExpiryDays:14 NoData:true Notify:[ops-hook]}`,
		`slow: {FailureThreshold:5 FailureWindow:5 SuccessThreshold:2 Regions:1 ReminderInterval:1h0m0s TLSExpiryDays:14 NoData:true Notify:[ops-hook]}`,
		`sparse: {FailureThreshold:5 FailureWindow:8 SuccessThreshold:2 Regions:1 ReminderInterval:1h0m0s TLSExpiryDays:14 NoData:true Notify:[ops-hook]}`,
		`silenced: <nil>`,
		`off: <nil>`,
	}
	if len(f.Targets) != len(want) {
		t.Fatalf("%d targets, want %d", len(f.Targets), len(want))
	}
	for i, tg := range f.Targets {
		got := tg.ID + ": <nil>"
		if tg.Alert != nil {
			got = fmt.Sprintf("%s: %+v", tg.ID, *tg.Alert)
		}
		if got != want[i] {
			t.Errorf("got  %s\nwant %s", got, want[i])
		}
	}
	if got := fmt.Sprintf("%d channel(s), %s, window %s %q %v", len(f.Channels), f.Channels[0].Secret, f.Maintenance[0].Name, f.Maintenance[0].Cron, f.Maintenance[0].Duration); got != `1 channel(s), ${SITEWATCH_HOOK_SECRET}, window weekly-deploy "0 3 * * SUN" 1h0m0s` {
		t.Errorf("got %s", got)
	}
}

func TestParseAlertDefaults(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"no alert anywhere", "targets:\n  - id: a\n    url: https://example.com/\n", "<nil>"},
		{"built-in defaults", "channels: [{name: c, type: alertmanager, url: \"http://127.0.0.1:9093\"}]\ntargets:\n  - id: a\n    url: https://example.com/\n    alert: {notify: [c]}\n",
			"{FailureThreshold:3 FailureWindow:3 SuccessThreshold:2 Regions:1 ReminderInterval:0s TLSExpiryDays:14 NoData:true Notify:[c]}"},
		{"window follows the target's threshold", "channels: [{name: c, type: alertmanager, url: \"http://127.0.0.1:9093\"}]\ndefaults:\n  alert: {notify: [c]}\ntargets:\n  - id: a\n    url: https://example.com/\n    alert: {failure_threshold: 5}\n",
			"{FailureThreshold:5 FailureWindow:5 SuccessThreshold:2 Regions:1 ReminderInterval:0s TLSExpiryDays:14 NoData:true Notify:[c]}"},
		{"defaults off, the target opts in", "channels: [{name: c, type: alertmanager, url: \"http://127.0.0.1:9093\"}]\ndefaults:\n  alert: false\ntargets:\n  - id: a\n    url: https://example.com/\n    alert: {notify: [c], reminder_interval: 30m}\n",
			"{FailureThreshold:3 FailureWindow:3 SuccessThreshold:2 Regions:1 ReminderInterval:30m0s TLSExpiryDays:14 NoData:true Notify:[c]}"},
		{"defaults off", "defaults:\n  alert: false\ntargets:\n  - id: a\n    url: https://example.com/\n", "<nil>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("t.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got := "<nil>"
			if a := f.Targets[0].Alert; a != nil {
				got = fmt.Sprintf("%+v", *a)
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestParseChannels(t *testing.T) {
	f, err := Parse("t.yaml", []byte(alertingFile))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range f.Channels {
		got = append(got, fmt.Sprintf("%+v", *c))
	}
	want := []string{
		`{Name:ops-hook Type:webhook URL:xxxxx Secret:${SITEWATCH_HOOK_SECRET} RoutingKey: SMTP: From: To:[] Username: Password: StartTLS: Timeout:10s}`,
		`{Name:chat Type:slack URL:${SLACK_WEBHOOK_URL} Secret: RoutingKey: SMTP: From: To:[] Username: Password: StartTLS: Timeout:5s}`,
		`{Name:pager Type:pagerduty URL:xxxxx Secret: RoutingKey:${PD_ROUTING_KEY} SMTP: From: To:[] Username: Password: StartTLS: Timeout:10s}`,
		`{Name:am Type:alertmanager URL:xxxxx Secret: RoutingKey: SMTP: From: To:[] Username: Password: StartTLS: Timeout:10s}`,
		`{Name:mail Type:email URL: Secret: RoutingKey: SMTP:127.0.0.1:2525 From:"sitewatch" <sitewatch@example.com> To:[<ops@example.com> "On Call" <oncall@example.com>] Username:sitewatch Password:${SMTP_PASSWORD} StartTLS:never Timeout:10s}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("channels:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Unresolved, a reference has no value; a value written in the file has.
	if v := f.Channel("ops-hook").Secret.Value(); v != "" {
		t.Errorf("an unresolved secret has the value %q", v)
	}
	if v := f.Channel("ops-hook").URL.Value(); v != "http://127.0.0.1:9000/hook" {
		t.Errorf("url %q", v)
	}
	if f.Channel("nope") != nil {
		t.Error("Channel of an unknown name is not nil")
	}
}

func TestResolveSecrets(t *testing.T) {
	f, err := Parse("t.yaml", []byte(alertingFile))
	if err != nil {
		t.Fatal(err)
	}
	// Unset: each variable named where it is used, nothing else.
	err = f.ResolveSecrets(func(string) string { return "" })
	want := []string{
		`t.yaml:6: channel "ops-hook": secret: ${SITEWATCH_HOOK_SECRET} is not set`,
		`t.yaml:9: channel "chat": url: ${SLACK_WEBHOOK_URL} is not set`,
		`t.yaml:13: channel "pager": routing_key: ${PD_ROUTING_KEY} is not set`,
		`t.yaml:24: channel "mail": password: ${SMTP_PASSWORD} is not set`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("errors:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}

	env := map[string]string{
		"SITEWATCH_HOOK_SECRET": "hook-s3cret",
		"SLACK_WEBHOOK_URL":     "ftp://hooks.example/T000/B000/XXXX",
		"PD_ROUTING_KEY":        "R0UTING",
		"SMTP_PASSWORD":         "smtp-s3cret",
	}
	err = f.ResolveSecrets(func(k string) string { return env[k] })
	if want := `t.yaml:9: channel "chat": url: with ${SLACK_WEBHOOK_URL} set: not an http:// or https:// URL`; err == nil || err.Error() != want {
		t.Fatalf("errors:\n%v\nwant:\n%s", err, want)
	}
	env["SLACK_WEBHOOK_URL"] = "http://127.0.0.1:9002/services/T000/B000/XXXX"
	if err := f.ResolveSecrets(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ got, want string }{
		{f.Channel("ops-hook").Secret.Value(), "hook-s3cret"},
		{f.Channel("chat").URL.Value(), "http://127.0.0.1:9002/services/T000/B000/XXXX"},
		{f.Channel("pager").RoutingKey.Value(), "R0UTING"},
		{f.Channel("mail").Password.Value(), "pw-smtp-s3cret"},
	} {
		if c.got != c.want {
			t.Errorf("resolved %q, want %q", c.got, c.want)
		}
	}
}

// TestSecretsNeverShown formats every error and structure that can hold a
// secret, in every way a log line or an error could, and looks for the
// secret values in the output.
func TestSecretsNeverShown(t *testing.T) {
	const (
		literal = "LITERAL-s3cret"
		fromEnv = "ENV-s3cret"
		slack   = "SLACKPATHs3cret"
	)
	file := strings.NewReplacer("${SITEWATCH_HOOK_SECRET}", literal, "${SLACK_WEBHOOK_URL}", "https://hooks.slack.com/services/"+slack).
		Replace(alertingFile)
	f, err := Parse("t.yaml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ResolveSecrets(func(string) string { return fromEnv }); err != nil {
		t.Fatal(err)
	}
	if f.Channel("ops-hook").Secret.Value() != literal || f.Channel("pager").RoutingKey.Value() != fromEnv ||
		!strings.Contains(f.Channel("chat").URL.Value(), slack) {
		t.Fatal("the secrets were not read, so this test would prove nothing")
	}
	var things []any
	things = append(things, f, *f)
	for _, c := range f.Channels {
		things = append(things, c, *c, c.URL, c.Secret, c.RoutingKey, c.Password)
	}

	// Errors of files with secrets in the wrong places.
	for _, bad := range []string{
		"channels:\n  - name: c\n    type: slack\n    url: ftp://hooks.slack.com/" + slack + "\n",
		"channels:\n  - name: c\n    type: slack\n    url: https://hooks.slack.com:99999/" + slack + "\n",
		"channels:\n  - name: c\n    type: slack\n    url: \"https://hooks.slack.com/ " + slack + "\"\n",
		"channels:\n  - name: c\n    type: slack\n    url: https://hooks.slack.com/" + slack + "\n    secret: " + literal + "\n",
		"channels:\n  - name: c\n    type: webhook\n    url: http://127.0.0.1/\n    secret: ${" + literal + "}\n",
		"channels:\n  - name: c\n    type: webhook\n    url: http://127.0.0.1/\n    secret: " + literal + "${X\n",
		"channels:\n  - name: c\n    type: webhook\n    url: http://127.0.0.1/\n    secret: ${A}" + literal + "${B}\n",
		"channels:\n  - name: c\n    type: email\n    smtp: 127.0.0.1:25\n    from: a@example.com\n    to: [b@example.com]\n    password: " + literal + "\n",
	} {
		_, err := Parse("bad.yaml", []byte(bad+"targets:\n  - id: a\n    url: https://example.com/\n"))
		if err == nil {
			t.Fatalf("accepted:\n%s", bad)
		}
		things = append(things, err)
	}
	g, err := Parse("t.yaml", []byte(strings.ReplaceAll(alertingFile, "${SLACK_WEBHOOK_URL}", "https://${SLACK_HOST}/x")))
	if err != nil {
		t.Fatal(err)
	}
	things = append(things, g.ResolveSecrets(func(string) string { return "bad host " + fromEnv }))

	var out bytes.Buffer
	jsonLog := slog.New(slog.NewJSONHandler(&out, nil))
	textLog := slog.New(slog.NewTextHandler(&out, nil))
	for _, x := range things {
		fmt.Fprintf(&out, "%v\n%+v\n%#v\n%s\n", x, x, x, x)
		jsonLog.Info("x", "x", x)
		textLog.Info("x", "x", x)
		if b, err := json.Marshal(x); err == nil {
			out.Write(b)
		}
	}
	for _, secret := range []string{literal, fromEnv, slack} {
		if i := strings.Index(out.String(), secret); i >= 0 {
			t.Errorf("%q shown: ...%s...", secret, out.String()[max(0, i-200):min(out.Len(), i+100)])
		}
	}
	if !strings.Contains(out.String(), "${PD_ROUTING_KEY}") {
		t.Error("the output names no reference; did the formatting run?")
	}
}

func TestParseAlertingBadFiles(t *testing.T) {
	const target = "targets:\n  - id: a\n    url: https://example.com/\n"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "bad alert values",
			yaml: "channels: [{name: c, type: alertmanager, url: \"http://127.0.0.1:9093\"}]\n" +
				"defaults:\n  alert:\n    failure_threshold: 0\n    notify: [c]\n    failure_treshold: 2\n" +
				"targets:\n  - id: a\n    url: https://example.com/\n" +
				"  - id: b\n    url: https://example.org/\n    regions: [eu-west, us-east]\n    alert:\n      failure_threshold: 4\n      failure_window: 3\n      success_threshold: many\n      regions: 3\n      reminder_interval: -1m\n      tls_expiry_days: 5000\n      no_data: \"no\"\n      notify: [c, c, nope, \"bad name\"]\n" +
				"  - id: c\n    url: https://example.net/\n    alert: true\n" +
				"  - id: d\n    url: https://example.net/d\n    alert:\n      notify: c\n      regions: none\n",
			want: []string{
				`bad.yaml:6: defaults: alert: failure_treshold: unknown key (known: failure_threshold, failure_window, success_threshold, regions, reminder_interval, tls_expiry_days, no_data, notify)`,
				`bad.yaml:4: target "a": alert: failure_threshold: "0" is not a whole number from 1 to 100`,
				`bad.yaml:15: target "b": alert: failure_window: 3 is below failure_threshold 4: the window holds the failures that confirm`,
				`bad.yaml:16: target "b": alert: success_threshold: "many" is not a whole number from 1 to 100`,
				`bad.yaml:17: target "b": alert: regions: 3 is more than the 2 regions the target lists: no incident could open (all says every region)`,
				`bad.yaml:18: target "b": alert: reminder_interval: -1m is negative (0 for none)`,
				`bad.yaml:19: target "b": alert: tls_expiry_days: "5000" is not a whole number from 0 to 3650`,
				`bad.yaml:20: target "b": alert: no_data: "no" is not true or false`,
				`bad.yaml:21: target "b": alert: notify: "c" given twice`,
				`bad.yaml:21: target "b": alert: notify: "nope" is no channel of the file (channels: c)`,
				`bad.yaml:21: target "b": alert: notify: "bad name" is not a channel name (letters, digits, _ and -, starting with a letter, at most 63)`,
				`bad.yaml:24: target "c": alert: must be a mapping of alert settings, or false`,
				`bad.yaml:4: target "d": alert: failure_threshold: "0" is not a whole number from 1 to 100`,
				`bad.yaml:29: target "d": alert: regions: "none" is not a count from 1 to 64, or all`,
				`bad.yaml:28: target "d": alert: notify: must be a list of channel names such as [ops-hook]`,
			},
		},
		{
			// Each error names the line of the empty block the target has or inherits.
			name: "empty alert blocks",
			yaml: "defaults:\n  alert: {}\ntargets:\n  - id: a\n    url: https://example.com/\n" +
				"  - id: b\n    url: https://example.org/\n    alert: {}\n",
			want: []string{
				`bad.yaml:2: target "a": alert: notify: missing: list the channels to notify, or [] to switch the target's alerts off`,
				`bad.yaml:8: target "b": alert: notify: missing: list the channels to notify, or [] to switch the target's alerts off`,
			},
		},
		{
			name: "no notify, no channels",
			yaml: "defaults:\n  alert:\n    failure_threshold: 2\ntargets:\n  - id: a\n    url: https://example.com/\n" +
				"  - id: b\n    url: https://example.org/\n    alert: {notify: [hook]}\n",
			want: []string{
				`bad.yaml:3: target "a": alert: notify: missing: list the channels to notify, or [] to switch the target's alerts off`,
				`bad.yaml:9: target "b": alert: notify: "hook" is no channel of the file (channels: none)`,
			},
		},
		{
			name: "bad channels",
			yaml: "channels:\n" +
				"  - name: hook\n    type: webhook\n" +
				"  - name: hook\n    type: sms\n" +
				"  - type: slack\n    url: http://127.0.0.1/x\n    routing_key: k\n    color: red\n" +
				"  - name: 1pd\n    type: pagerduty\n    routing_key: \"\"\n    timeout: 0s\n" +
				"  - name: am\n    type: alertmanager\n    url: 127.0.0.1:9093\n" +
				"  - name: mail\n    type: email\n    smtp: localhost\n    from: \"not an address\"\n    to: []\n    username: u\n    starttls: maybe\n" +
				"  - name: mail2\n    type: email\n    smtp: ${SMTP}\n    from: a@example.com\n    to: b@example.com\n" +
				"  - name: hook2\n    type: webhook\n    url: http://127.0.0.1/${A}${B}\n    secret: ${1X}\n" +
				"  - just a string\n" + target,
			want: []string{
				`bad.yaml:2: channel "hook": url: missing: a webhook channel needs it`,
				`bad.yaml:4: channel "hook": name: duplicate: already used by the channel at line 2`,
				`bad.yaml:5: channel "hook": type: "sms" is not a channel type (webhook, slack, pagerduty, alertmanager or email)`,
				`bad.yaml:9: channel #3: color: unknown key (known: name, type, timeout, url, secret, routing_key, smtp, from, to, username, password, starttls)`,
				`bad.yaml:6: channel #3: name: missing`,
				`bad.yaml:8: channel #3: routing_key: not used by a slack channel (it takes url)`,
				`bad.yaml:10: channel "1pd": name: "1pd" is not a channel name (letters, digits, _ and -, starting with a letter, at most 63)`,
				`bad.yaml:13: channel "1pd": timeout: 0s is not positive`,
				`bad.yaml:12: channel "1pd": routing_key: empty`,
				`bad.yaml:16: channel "am": url: not an http:// or https:// URL`,
				`bad.yaml:19: channel "mail": smtp: "localhost" is not host:port of an SMTP server, such as 127.0.0.1:587`,
				`bad.yaml:20: channel "mail": from: "not an address" is not an e-mail address: mail: no angle-addr`,
				`bad.yaml:21: channel "mail": to: empty: list at least one address`,
				`bad.yaml:23: channel "mail": starttls: "maybe" is not always, opportunistic or never`,
				`bad.yaml:26: channel "mail2": smtp: ${...} is not read here: only url, secret, routing_key and password reference the environment`,
				`bad.yaml:31: channel "hook2": url: more than one ${...} reference; put the whole value in one variable`,
				`bad.yaml:32: channel "hook2": secret: the ${...} does not hold a variable name (letters, digits and _, not starting with a digit)`,
				`bad.yaml:33: channel #9: must be a mapping with at least name and type`,
			},
		},
		{
			name: "channels not a list",
			yaml: "channels: {hook: {type: webhook}}\n" + target,
			want: []string{`bad.yaml:1: channels: must be a list of channels, each with name and type`},
		},
		{
			name: "bad maintenance",
			yaml: target + "  - id: b\n    url: https://example.org/\nmaintenance:\n" +
				"  - name: w1\n    targets: [a, a, zz]\n    cron: \"0 3 * * SUN\"\n" +
				"  - name: w1\n    labels: {}\n    cron: \"61 * * * *\"\n    duration: 1h\n" +
				"  - name: w3\n    targets: [b]\n    cron: \"0 0 30 2 *\"\n    duration: 1h\n    from: 2026-01-01T00:00:00Z\n" +
				"  - name: w4\n    targets: [b]\n    from: 2026-01-02T00:00:00Z\n    to: \"2026-01-01T00:00:00Z\"\n    duration: 1h\n" +
				"  - name: w5\n    cron: \"TZ=Europe/Berlin 0 3 * * *\"\n    duration: 1h\n    targets: [b]\n" +
				"  - name: w6\n    targets: [b]\n    cron: \"@every 1h\"\n    duration: 1h\n" +
				"  - name: w7\n    targets: [b]\n    from: tomorrow\n" +
				"  - name: w8\n    targets: [b]\n    cron: \"0 0 30 2 *\"\n    duration: 1h\n" +
				"  - name: w9\n    labels: {team: web}\n    window: 1h\n",
			want: []string{
				`bad.yaml:8: maintenance "w1": targets: "a" given twice`,
				`bad.yaml:8: maintenance "w1": targets: "zz" is no target of the file`,
				`bad.yaml:9: maintenance "w1": duration: missing: how long each window lasts, such as 1h`,
				`bad.yaml:10: maintenance "w1": name: duplicate: already used by the window at line 7`,
				`bad.yaml:11: maintenance "w1": labels: empty: it would match every target; list the targets or labels it covers`,
				`bad.yaml:12: maintenance "w1": cron: "61 * * * *": end of range (61) above maximum (59): 61`,
				`bad.yaml:18: maintenance "w3": cron and from/to exclude each other: a window recurs (cron, duration) or happens once (from, to)`,
				`bad.yaml:23: maintenance "w4": duration: only with cron: a one-off window ends at to`,
				`bad.yaml:22: maintenance "w4": to: 2026-01-01T00:00:00Z is not after from 2026-01-02T00:00:00Z`,
				`bad.yaml:25: maintenance "w5": cron: "TZ=Europe/Berlin 0 3 * * *": a time zone is not taken: the times are UTC`,
				`bad.yaml:30: maintenance "w6": cron: "@every 1h": @every is not taken: give the start times, such as 0 3 * * SUN`,
				`bad.yaml:34: maintenance "w7": from and to go together`,
				`bad.yaml:37: maintenance "w8": cron: "0 0 30 2 *": never starts (no such day)`,
				`bad.yaml:41: maintenance "w9": window: unknown key (known: name, targets, labels, cron, duration, from, to)`,
				`bad.yaml:39: maintenance "w9": no time: a window needs cron and duration (recurring) or from and to (once)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("bad.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error; %+v", f)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestMaintenanceActive(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	weekly := &Maintenance{Cron: "0 23 * * SAT", Duration: 3 * time.Hour} // Saturday 23:00 to Sunday 02:00
	nightly := &Maintenance{Cron: "30 22 * * *", Duration: 2 * time.Hour}
	monthly := &Maintenance{Cron: "0 0 1 * *", Duration: 26 * time.Hour}
	once := &Maintenance{From: at("2026-12-24T22:00:00Z"), To: at("2026-12-25T01:00:00Z")}
	tests := []struct {
		name string
		m    *Maintenance
		at   string
		want bool
	}{
		// 2026-11-28 is a Saturday.
		{"weekly, just before", weekly, "2026-11-28T22:59:59.999Z", false},
		{"weekly, at the start", weekly, "2026-11-28T23:00:00Z", true},
		{"weekly, across midnight into Sunday", weekly, "2026-11-29T01:59:59.999999999Z", true},
		{"weekly, at the end", weekly, "2026-11-29T02:00:00Z", false},
		{"weekly, a weekday", weekly, "2026-11-25T23:30:00Z", false},
		{"weekly, other zone, same instant", weekly, "2026-11-29T00:30:00+01:00", true},
		{"nightly, before midnight", nightly, "2026-11-30T23:59:00Z", true},
		{"nightly, after midnight", nightly, "2026-12-01T00:29:59Z", true},
		{"nightly, ended", nightly, "2026-12-01T00:30:00Z", false},
		{"nightly, afternoon", nightly, "2026-12-01T15:00:00Z", false},
		{"monthly, across month and year", monthly, "2027-01-02T01:59:00Z", true},
		{"monthly, ended", monthly, "2027-01-02T02:00:00Z", false},
		{"monthly, last day of the year", monthly, "2026-12-31T23:00:00Z", false},
		{"once, before", once, "2026-12-24T21:59:59Z", false},
		{"once, from", once, "2026-12-24T22:00:00Z", true},
		{"once, across midnight", once, "2026-12-25T00:59:59Z", true},
		{"once, to", once, "2026-12-25T01:00:00Z", false},
		{"unparsable cron", &Maintenance{Cron: "nope", Duration: time.Hour}, "2026-12-25T01:00:00Z", false},
		// Windows as long as their period or longer overlap: always open.
		{"hourly for 1h, at a start", &Maintenance{Cron: "0 * * * *", Duration: time.Hour}, "2026-12-25T01:00:00Z", true},
		{"hourly for 1h, just before a start", &Maintenance{Cron: "0 * * * *", Duration: time.Hour}, "2026-12-25T00:59:59.999Z", true},
		{"hourly for 90m", &Maintenance{Cron: "0 * * * *", Duration: 90 * time.Minute}, "2026-12-25T00:59:59Z", true},
		{"weekly for 8 days, a weekday", &Maintenance{Cron: "0 23 * * SAT", Duration: 8 * 24 * time.Hour}, "2026-11-25T12:00:00Z", true},
		{"hourly for 59m, the last minute", &Maintenance{Cron: "0 * * * *", Duration: 59 * time.Minute}, "2026-12-25T00:59:00Z", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.Active(at(tt.at)); got != tt.want {
				t.Errorf("Active(%s) = %t, want %t", tt.at, got, tt.want)
			}
		})
	}
}

func TestMaintenanceAt(t *testing.T) {
	f, err := Parse("t.yaml", []byte(alertingFile))
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*Target{}
	for _, tg := range f.Targets {
		byID[tg.ID] = tg
	}
	name := func(m *Maintenance) string {
		if m == nil {
			return "<none>"
		}
		return m.Name
	}
	tests := []struct{ target, at, want string }{
		{"home", "2026-11-29T03:30:00Z", "weekly-deploy"}, // Sunday
		{"home", "2026-11-29T04:00:00Z", "<none>"},
		{"api", "2026-11-29T03:30:00Z", "<none>"},     // not listed, no labels
		{"home", "2026-12-25T00:00:00Z", "migration"}, // by its label team=web; to is 01:00Z
		{"home", "2026-12-25T01:00:00Z", "<none>"},
		{"api", "2026-12-25T00:00:00Z", "<none>"},
	}
	for _, tt := range tests {
		at, _ := time.Parse(time.RFC3339, tt.at)
		if got := name(f.MaintenanceAt(byID[tt.target], at)); got != tt.want {
			t.Errorf("MaintenanceAt(%s, %s) = %s, want %s", tt.target, tt.at, got, tt.want)
		}
	}
	both := &Maintenance{Targets: []string{"x"}, Labels: map[string]string{"team": "web", "tier": "1"}}
	for _, tt := range []struct {
		t    *Target
		want bool
	}{
		{&Target{ID: "x"}, true},
		{&Target{ID: "y", Labels: map[string]string{"team": "web", "tier": "1", "more": "2"}}, true},
		{&Target{ID: "y", Labels: map[string]string{"team": "web"}}, false},
		{&Target{ID: "y", Labels: map[string]string{"team": "web", "tier": "2"}}, false},
	} {
		if got := both.Matches(tt.t); got != tt.want {
			t.Errorf("Matches(%s %v) = %t, want %t", tt.t.ID, tt.t.Labels, got, tt.want)
		}
	}
}

// TestSecretURLReferences: a reference may stand for any part of a URL,
// its port included; the URL is checked in full once resolved.
func TestSecretURLReferences(t *testing.T) {
	const file = `
channels:
  - {name: port, type: alertmanager, url: "http://127.0.0.1:${AM_PORT}/"}
  - {name: host, type: webhook, url: "http://${HOOK_HOST}:9000/hook"}
  - {name: path, type: slack, url: "https://hooks.slack.com/services/${SLACK_PATH}"}
targets:
  - id: a
    url: https://example.com/
`
	f, err := Parse("t.yaml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"AM_PORT": "9093", "HOOK_HOST": "127.0.0.2", "SLACK_PATH": "T0/B0/X"}
	if err := f.ResolveSecrets(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range f.Channels {
		got = append(got, c.URL.Value())
	}
	if want := "http://127.0.0.1:9093/ http://127.0.0.2:9000/hook https://hooks.slack.com/services/T0/B0/X"; strings.Join(got, " ") != want {
		t.Errorf("urls %s, want %s", strings.Join(got, " "), want)
	}
	env["AM_PORT"] = "99999"
	if err := f.ResolveSecrets(func(k string) string { return env[k] }); err == nil ||
		err.Error() != `t.yaml:3: channel "port": url: with ${AM_PORT} set: the URL's port is outside 1-65535` {
		t.Errorf("err %v", err)
	}
}

// The file of an alerter in fleet mode: channels and windows only, a
// window naming a target of the topic. Parse refuses it; ParseAlerting
// takes it, and still validates what it holds.
func TestParseAlertingOnly(t *testing.T) {
	const file = `channels:
  - name: hook
    type: webhook
    url: http://127.0.0.1:9000/hook
maintenance:
  - name: deploy
    targets: [from-the-topic]
    cron: "0 3 * * SUN"
    duration: 1h
`
	if _, err := Parse("f.yaml", []byte(file)); err == nil || err.Error() != "f.yaml: targets: missing: no targets\n"+
		`f.yaml:7: maintenance "deploy": targets: "from-the-topic" is no target of the file` {
		t.Errorf("Parse: %v", err)
	}
	f, err := ParseAlerting("f.yaml", []byte(file))
	if err != nil {
		t.Fatalf("ParseAlerting: %v", err)
	}
	if len(f.Targets) != 0 || len(f.Channels) != 1 || f.Channels[0].Name != "hook" ||
		len(f.Maintenance) != 1 || fmt.Sprint(f.Maintenance[0].Targets) != "[from-the-topic]" {
		t.Errorf("ParseAlerting: %d targets, channels %v, maintenance %v", len(f.Targets), f.Channels, f.Maintenance)
	}
	for _, c := range []struct{ name, file, want string }{
		{"empty", "", "f.yaml: empty file: no channels"},
		{"bad channel", "channels:\n  - name: hook\n    type: fax\n", `f.yaml:3: channel "hook": type: "fax" is not a channel type (webhook, slack, pagerduty, alertmanager or email)`},
		{"bad target", "targets:\n  - id: a\n", `f.yaml:2: target "a": url: missing`},
	} {
		if _, err := ParseAlerting("f.yaml", []byte(c.file)); err == nil || err.Error() != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
}
