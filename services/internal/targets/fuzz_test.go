package targets

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// FuzzParse feeds the parser arbitrary files. It must never panic, and a
// file it accepts must hold only targets that can be checked, and must read
// the same when written back: the targets, rendered as a targets file with
// every key explicit, parse again to the same targets, and each target
// reads the same after a trip through its record of the targets topic.
func FuzzParse(f *testing.F) {
	shipped, err := os.ReadFile(filepath.Join("..", "..", "..", "targets.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(shipped)
	for _, seed := range []string{
		"targets:\n  - id: a\n    url: https://example.com/\n",
		"defaults:\n  interval: 30s\n  timeout: 5s\n  headers:\n    User-Agent: sitewatch\ntargets:\n  - id: home\n    url: https://example.com/\n    pattern: \"Example Domain\"\n" +
			"  - id: api\n    url: http://probe:s3cret@127.0.0.1:8080/health\n    method: HEAD\n    expect_status: [200, \"204-206\", \"301,302\"]\n    follow_redirects: false\n    tls_skip_verify: true\n    max_body_bytes: 0\n    headers:\n      Authorization: Bearer secret\n      x-a: \"1\\t2\"\n",
		"targets:\n  - id: t\n    url: https://TOKEN@127.0.0.1:8443/\n    method: POST\n    body: '{\"a\": 1}'\n",
		"targets:\n  - id: a\n    url: https://example.com:0/\n",
		"targets:\n  - id: a\n    url: https://example.com/\n    method: HEAD\n    pattern: x\n",
		"targets:\n  - id: a\n    url: https://example.com/\n    headers:\n      X: \"a\\0b\"\n",
		"targets:\n  - id: caf\xe9\n    url: https://example.com/\n",
		"defaults:\n  regions: [eu-west]\n  labels: {team: web}\ntargets:\n  - id: a\n    url: https://example.com/\n    regions: [us-east, eu-west]\n    labels: {tier: \"1\"}\n",
		alertingFile,
		"channels: [{name: c, type: email, smtp: \"127.0.0.1:25\", from: a@example.com, to: b@example.com, username: u, password: \"${P}\"}]\n" +
			"defaults:\n  alert: {notify: [c], regions: all}\ntargets:\n  - id: a\n    url: https://example.com/\n    regions: [eu]\n    alert: {regions: 2}\n",
		"maintenance:\n  - {name: m, labels: {a: b}, cron: \"@weekly\", duration: 90m}\n  - {name: n, targets: [a], from: \"2026-01-01T00:00:00Z\", to: \"2026-01-01T00:00:01Z\"}\n" +
			"targets:\n  - id: a\n    url: https://example.com/\n    alert: false\n",
		"targets: [\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		if len(file.Targets) == 0 {
			t.Fatal("accepted a file without targets")
		}
		seen := map[string]bool{}
		for _, tg := range file.Targets {
			checkTarget(t, tg)
			if seen[tg.ID] {
				t.Fatalf("accepted the ID %q twice", tg.ID)
			}
			seen[tg.ID] = true
			if tg.Alert != nil {
				for _, name := range tg.Alert.Notify {
					if file.Channel(name) == nil {
						t.Fatalf("%s: accepted notify %q, no channel", tg.ID, name)
					}
				}
			}
		}
		checkAlerting(t, file, seen)
		// Every accepted target, its policy included, crosses the targets
		// topic unchanged.
		for _, tg := range file.Targets {
			m := ToProto(tg)
			back, err := FromProto("record", m)
			if err != nil {
				t.Fatalf("%s: accepted, its record is refused: %v", tg.ID, err)
			}
			if a, b := describe(&File{Targets: []*Target{tg}}), describe(&File{Targets: []*Target{back}}); a != b {
				t.Fatalf("%s: reads differently after the topic:\n%s\nthen:\n%s", tg.ID, a, b)
			}
		}

		again, err := Parse("again.yaml", render(t, file))
		if err != nil {
			t.Fatalf("the accepted targets, written back, are refused: %v\n%s", err, render(t, file))
		}
		if a, b := describe(file), describe(again); a != b {
			t.Fatalf("the targets written back parse differently:\n%s\nthen:\n%s", a, b)
		}
	})
}

// checkTarget fails t unless tg can be checked: what Parse promises.
func checkTarget(t *testing.T, tg *Target) {
	t.Helper()
	u, err := url.Parse(tg.URL)
	switch {
	case tg.ID == "" || strings.ContainsAny(tg.ID, " \t\r\n"):
		t.Fatalf("accepted the ID %q", tg.ID)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || !validPort(u.Port()):
		t.Fatalf("%s: accepted the URL %q (%v)", tg.ID, tg.URL, err)
	case tg.PublicURL != redacted(u):
		t.Fatalf("%s: public URL %q, want %q", tg.ID, tg.PublicURL, redacted(u))
	case tg.Method == "" || strings.IndexFunc(tg.Method, func(c rune) bool { return !isTokenChar(c) }) >= 0:
		t.Fatalf("%s: accepted the method %q", tg.ID, tg.Method)
	case tg.Method == http.MethodHead && tg.Pattern != nil:
		t.Fatalf("%s: accepted a pattern with HEAD", tg.ID)
	case tg.Interval <= 0 || tg.Timeout <= 0 || tg.Timeout >= tg.Interval:
		t.Fatalf("%s: accepted interval %v and timeout %v", tg.ID, tg.Interval, tg.Timeout)
	case len(tg.ExpectStatus) == 0:
		t.Fatalf("%s: no expected status", tg.ID)
	case tg.MaxBodyBytes < 0:
		t.Fatalf("%s: max_body_bytes %d", tg.ID, tg.MaxBodyBytes)
	}
	pu, err := url.Parse(tg.PublicURL)
	if err != nil {
		t.Fatalf("%s: the public URL %q does not parse: %v", tg.ID, tg.PublicURL, err)
	}
	if pw, _ := pu.User.Password(); pu.User != nil && pw != "xxxxx" && (pw != "" || pu.User.Username() != "xxxxx") {
		t.Fatalf("%s: the public URL %q shows a secret", tg.ID, tg.PublicURL)
	}
	for _, r := range tg.ExpectStatus {
		if r.Min < 100 || r.Max > 599 || r.Min > r.Max {
			t.Fatalf("%s: accepted the status range %v", tg.ID, r)
		}
	}
	if tg.Regions != nil && len(tg.Regions) == 0 {
		t.Fatalf("%s: an empty list of regions", tg.ID)
	}
	for i, r := range tg.Regions {
		if !regionName.MatchString(r) || slices.Contains(tg.Regions[:i], r) {
			t.Fatalf("%s: accepted the region %q", tg.ID, r)
		}
	}
	for k, v := range tg.Labels {
		if !labelName.MatchString(k) || strings.HasPrefix(k, "__") || len(v) > maxLabelValueLen {
			t.Fatalf("%s: accepted the label %q=%q", tg.ID, k, v)
		}
	}
	for k, vs := range tg.Headers {
		for _, v := range vs {
			if strings.IndexFunc(v, isCTL) >= 0 {
				t.Fatalf("%s: accepted a control character in the header %s", tg.ID, k)
			}
		}
	}
	checkAlert(t, tg)
}

// checkAlert fails t unless a is a policy the alerter can evaluate.
func checkAlert(t *testing.T, tg *Target) {
	t.Helper()
	a := tg.Alert
	if a == nil {
		return
	}
	switch {
	case a.FailureThreshold < 1 || a.FailureWindow < a.FailureThreshold || a.FailureWindow > maxAlertChecks:
		t.Fatalf("%s: accepted failures %d of %d", tg.ID, a.FailureThreshold, a.FailureWindow)
	case a.SuccessThreshold < 1 || a.SuccessThreshold > maxAlertChecks:
		t.Fatalf("%s: accepted success_threshold %d", tg.ID, a.SuccessThreshold)
	case a.Regions != AllRegions && (a.Regions < 1 || tg.Regions != nil && a.Regions > len(tg.Regions)):
		t.Fatalf("%s: accepted regions %d of %v", tg.ID, a.Regions, tg.Regions)
	case a.ReminderInterval < 0 || a.TLSExpiryDays < 0:
		t.Fatalf("%s: accepted reminder %v, tls days %d", tg.ID, a.ReminderInterval, a.TLSExpiryDays)
	case len(a.Notify) == 0:
		t.Fatalf("%s: a policy that notifies no one is not nil", tg.ID)
	}
}

// checkAlerting fails t unless the channels and windows of f are usable.
func checkAlerting(t *testing.T, f *File, ids map[string]bool) {
	t.Helper()
	names := map[string]bool{}
	for _, c := range f.Channels {
		if !nameRule.MatchString(c.Name) || names[c.Name] {
			t.Fatalf("accepted the channel name %q", c.Name)
		}
		names[c.Name] = true
		keys, ok := channelKeys[c.Type]
		if !ok {
			t.Fatalf("%s: accepted the type %q", c.Name, c.Type)
		}
		for _, k := range keys.required {
			if map[string]bool{"url": c.URL.IsZero(), "routing_key": c.RoutingKey.IsZero(), "smtp": c.SMTP == "", "from": c.From == "", "to": len(c.To) == 0}[k] {
				t.Fatalf("%s: accepted without %s", c.Name, k)
			}
		}
		if c.Timeout <= 0 {
			t.Fatalf("%s: timeout %v", c.Name, c.Timeout)
		}
	}
	for _, m := range f.Maintenance {
		if len(m.Targets) == 0 && len(m.Labels) == 0 {
			t.Fatalf("%s: a window that covers nothing", m.Name)
		}
		for _, id := range m.Targets {
			if !ids[id] {
				t.Fatalf("%s: accepted the unknown target %q", m.Name, id)
			}
		}
		if m.Cron != "" {
			if _, err := parseCron(m.Cron); err != nil || m.Duration <= 0 {
				t.Fatalf("%s: accepted cron %q for %v (%v)", m.Name, m.Cron, m.Duration, err)
			}
		} else if !m.To.After(m.From) {
			t.Fatalf("%s: accepted %v to %v", m.Name, m.From, m.To)
		}
	}
}

// render writes the targets of f as a targets file, every key explicit.
func render(t *testing.T, f *File) []byte {
	t.Helper()
	type target struct {
		ID              string            `yaml:"id"`
		URL             string            `yaml:"url"`
		Method          string            `yaml:"method"`
		Headers         map[string]string `yaml:"headers,omitempty"`
		Body            string            `yaml:"body"`
		Interval        string            `yaml:"interval"`
		Timeout         string            `yaml:"timeout"`
		ExpectStatus    []string          `yaml:"expect_status"`
		Pattern         *string           `yaml:"pattern,omitempty"`
		FollowRedirects bool              `yaml:"follow_redirects"`
		TLSSkipVerify   bool              `yaml:"tls_skip_verify"`
		MaxBodyBytes    int64             `yaml:"max_body_bytes"`
		Regions         []string          `yaml:"regions,omitempty"`
		Labels          map[string]string `yaml:"labels,omitempty"`
		Alert           any               `yaml:"alert"`
	}
	type alert struct {
		FailureThreshold int      `yaml:"failure_threshold"`
		FailureWindow    int      `yaml:"failure_window"`
		SuccessThreshold int      `yaml:"success_threshold"`
		Regions          string   `yaml:"regions"`
		ReminderInterval string   `yaml:"reminder_interval"`
		TLSExpiryDays    int      `yaml:"tls_expiry_days"`
		NoData           bool     `yaml:"no_data"`
		Notify           []string `yaml:"notify"`
	}
	var doc struct {
		Channels    []map[string]any `yaml:"channels,omitempty"`
		Maintenance []map[string]any `yaml:"maintenance,omitempty"`
		Targets     []target         `yaml:"targets"`
	}
	for _, c := range f.Channels {
		m := map[string]any{"name": c.Name, "type": c.Type, "timeout": c.Timeout.String()}
		for k, s := range map[string]Secret{"url": c.URL, "secret": c.Secret, "routing_key": c.RoutingKey, "password": c.Password} {
			if s.v != nil {
				m[k] = s.v.text
			}
		}
		for k, s := range map[string]string{"smtp": c.SMTP, "from": c.From, "username": c.Username, "starttls": c.StartTLS} {
			if s != "" {
				m[k] = s
			}
		}
		if c.To != nil {
			m["to"] = c.To
		}
		doc.Channels = append(doc.Channels, m)
	}
	for _, w := range f.Maintenance {
		m := map[string]any{"name": w.Name}
		if w.Targets != nil {
			m["targets"] = w.Targets
		}
		if w.Labels != nil {
			m["labels"] = w.Labels
		}
		if w.Cron != "" {
			m["cron"], m["duration"] = w.Cron, w.Duration.String()
		} else {
			m["from"], m["to"] = w.From.Format(time.RFC3339Nano), w.To.Format(time.RFC3339Nano)
		}
		doc.Maintenance = append(doc.Maintenance, m)
	}
	for _, tg := range f.Targets {
		out := target{
			ID: tg.ID, URL: tg.URL, Method: tg.Method, Body: tg.Body,
			Interval: tg.Interval.String(), Timeout: tg.Timeout.String(),
			FollowRedirects: tg.FollowRedirects, TLSSkipVerify: tg.TLSSkipVerify, MaxBodyBytes: tg.MaxBodyBytes,
			Regions: tg.Regions, Labels: tg.Labels, Alert: false,
		}
		if a := tg.Alert; a != nil {
			regions := strconv.Itoa(a.Regions)
			if a.Regions == AllRegions {
				regions = "all"
			}
			out.Alert = alert{a.FailureThreshold, a.FailureWindow, a.SuccessThreshold, regions, a.ReminderInterval.String(),
				a.TLSExpiryDays, a.NoData, a.Notify}
		}
		for k, vs := range tg.Headers {
			if len(vs) == 1 { // names differing only in case: see describe
				if out.Headers == nil {
					out.Headers = map[string]string{}
				}
				out.Headers[k] = vs[0]
			}
		}
		for _, r := range tg.ExpectStatus {
			out.ExpectStatus = append(out.ExpectStatus, fmt.Sprintf("%d-%d", r.Min, r.Max))
		}
		if tg.Pattern != nil {
			s := tg.Pattern.String()
			out.Pattern = &s
		}
		doc.Targets = append(doc.Targets, out)
	}
	data, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// describe prints what matters of the targets of f, to compare two parses.
func describe(f *File) string {
	var b strings.Builder
	for _, tg := range f.Targets {
		pattern := "<none>"
		if tg.Pattern != nil {
			pattern = tg.Pattern.String()
		}
		var headers []string
		for k, vs := range tg.Headers {
			if len(vs) == 1 {
				headers = append(headers, k+"="+vs[0])
			}
		}
		slices.Sort(headers)
		// %q of a map prints it sorted by key.
		fmt.Fprintf(&b, "%q %q %q %q %q %v %v %v %q %t %t %d %q %q %q\n", tg.ID, tg.URL, tg.PublicURL, tg.Method, tg.Body,
			tg.Interval, tg.Timeout, tg.ExpectStatus, pattern, tg.FollowRedirects, tg.TLSSkipVerify, tg.MaxBodyBytes, headers,
			tg.Regions, tg.Labels)
		if tg.Alert != nil {
			fmt.Fprintf(&b, "  alert %+v\n", *tg.Alert)
		}
	}
	for _, c := range f.Channels {
		fmt.Fprintf(&b, "channel %+v", *c)
		for _, s := range []Secret{c.URL, c.Secret, c.RoutingKey, c.Password} {
			fmt.Fprintf(&b, " %q", s.Value())
			if s.v != nil {
				fmt.Fprintf(&b, "/%q", s.v.text)
			}
		}
		b.WriteString("\n")
	}
	for _, m := range f.Maintenance {
		fmt.Fprintf(&b, "maintenance %q %q %q %q %v %v %v\n", m.Name, m.Targets, m.Labels, m.Cron, m.Duration, m.From, m.To)
	}
	return b.String()
}
