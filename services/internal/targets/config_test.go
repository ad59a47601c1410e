package targets

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseMergesDefaults(t *testing.T) {
	f, err := Parse("t.yaml", []byte(`
defaults:
  interval: 30s
  timeout: 5s
  headers:
    User-Agent: sitewatch
targets:
  - id: home
    url: https://example.com/
    pattern: "Example Domain"
  - id: api
    url: http://probe:s3cret@127.0.0.1:8080/health
    method: HEAD
    interval: 1m
    timeout: 2s
    expect_status: [200, "204-206", "301,302"]
    follow_redirects: false
    tls_skip_verify: true
    max_body_bytes: 0
    headers:
      Authorization: Bearer secret
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Targets) != 2 {
		t.Fatalf("got %d targets, want 2", len(f.Targets))
	}
	home, api := f.Targets[0], f.Targets[1]

	if home.ID != "home" || home.URL != "https://example.com/" || home.Method != "GET" ||
		home.Interval != 30*time.Second || home.Timeout != 5*time.Second ||
		!home.FollowRedirects || home.TLSSkipVerify || home.MaxBodyBytes != 1<<20 ||
		home.Pattern == nil || home.Pattern.String() != "Example Domain" ||
		home.Headers.Get("User-Agent") != "sitewatch" {
		t.Errorf("home = %+v", home)
	}
	for code, want := range map[int]bool{199: false, 200: true, 302: true, 399: true, 400: false} {
		if home.Expects(code) != want {
			t.Errorf("home.Expects(%d) = %t, want %t", code, !want, want)
		}
	}

	if api.URL != "http://probe:s3cret@127.0.0.1:8080/health" || api.PublicURL != "http://probe:xxxxx@127.0.0.1:8080/health" ||
		home.PublicURL != home.URL {
		t.Errorf("URLs %q %q %q", api.URL, api.PublicURL, home.PublicURL)
	}
	if api.Method != "HEAD" || api.Interval != time.Minute || api.Timeout != 2*time.Second ||
		api.FollowRedirects || !api.TLSSkipVerify || api.MaxBodyBytes != 0 || api.Pattern != nil {
		t.Errorf("api = %+v", api)
	}
	// A target's headers replace the defaults' as a whole, like every key.
	if want := (http.Header{"Authorization": {"Bearer secret"}}); len(api.Headers) != 1 || api.Headers.Get("Authorization") != want.Get("Authorization") {
		t.Errorf("api.Headers = %v, want %v", api.Headers, want)
	}
	want := []StatusRange{{200, 200}, {204, 206}, {301, 301}, {302, 302}}
	if len(api.ExpectStatus) != len(want) {
		t.Fatalf("api.ExpectStatus = %v, want %v", api.ExpectStatus, want)
	}
	for i := range want {
		if api.ExpectStatus[i] != want[i] {
			t.Errorf("api.ExpectStatus = %v, want %v", api.ExpectStatus, want)
		}
	}
}

// Bad files, each checked by its exact message (the way blackbox_exporter's
// config/config_test.go TestLoadBadConfigs does).
func TestParseMaxBodyBytesAtTheLimit(t *testing.T) {
	f, err := Parse("t.yaml", []byte("targets:\n  - id: a\n    url: https://example.com/\n    max_body_bytes: 67108864\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Targets[0].MaxBodyBytes; got != 64<<20 {
		t.Errorf("max_body_bytes %d, want the limit %d", got, 64<<20)
	}
}

func TestParseBadFiles(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // one line per error, in order
	}{
		{
			name: "invalid URL",
			yaml: "targets:\n  - id: a\n    url: ftp://example.com/\n  - id: b\n    url: \"http://exa mple.com\"\n  - id: c\n    url: https:///path\n",
			want: []string{
				`bad.yaml:3: target "a": url: "ftp://example.com/" is not an http:// or https:// URL`,
				`bad.yaml:5: target "b": url: invalid: invalid character " " in host name`,
				`bad.yaml:7: target "c": url: "https:///path" has no host`,
			},
		},
		{
			name: "invalid regexp",
			yaml: "targets:\n  - id: a\n    url: https://example.com/\n    pattern: \"(unclosed\"\n",
			want: []string{
				"bad.yaml:4: target \"a\": pattern: invalid regexp: error parsing regexp: missing closing ): `(unclosed`",
			},
		},
		{
			name: "unknown keys",
			yaml: "version: 2\ndefaults:\n  intervall: 30s\ntargets:\n  - id: a\n    url: https://example.com/\n    patern: x\n  - url: https://example.org/\n    tls_verify: false\n",
			want: []string{
				"bad.yaml:1: version: unknown key (expected defaults, targets, channels or maintenance)",
				"bad.yaml:3: defaults: intervall: unknown key (known: id, url, method, headers, body, interval, timeout, expect_status, pattern, follow_redirects, tls_skip_verify, max_body_bytes, regions, labels, alert)",
				"bad.yaml:7: target \"a\": patern: unknown key (known: id, url, method, headers, body, interval, timeout, expect_status, pattern, follow_redirects, tls_skip_verify, max_body_bytes, regions, labels, alert)",
				"bad.yaml:9: target #2: tls_verify: unknown key (known: id, url, method, headers, body, interval, timeout, expect_status, pattern, follow_redirects, tls_skip_verify, max_body_bytes, regions, labels, alert)",
				"bad.yaml:8: target #2: id: missing",
			},
		},
		{
			name: "duplicate ID",
			yaml: "targets:\n  - id: a\n    url: https://example.com/\n  - id: a\n    url: https://example.org/\n",
			want: []string{
				`bad.yaml:4: target "a": id: duplicate: already used by the target at line 2`,
			},
		},
		{
			name: "timeout not below interval",
			yaml: "defaults:\n  timeout: 30s\ntargets:\n  - id: a\n    url: https://example.com/\n    interval: 30s\n  - id: b\n    url: https://example.org/\n    interval: 1m\n    timeout: 90s\n",
			want: []string{
				`bad.yaml:2: target "a": timeout: 30s is not below the interval 30s`,
				`bad.yaml:10: target "b": timeout: 1m30s is not below the interval 1m0s`,
			},
		},
		{
			name: "bad durations",
			yaml: "targets:\n  - id: a\n    url: https://example.com/\n    interval: 30\n    timeout: -1s\n",
			want: []string{
				`bad.yaml:4: target "a": interval: "30" is not a duration such as 30s or 1m30s`,
				`bad.yaml:5: target "a": timeout: -1s is not positive`,
			},
		},
		{
			// 9223372036854775807 passed and made every check read
			// nothing (the cap plus one overflowed).
			name: "max_body_bytes above the limit",
			yaml: "defaults:\n  max_body_bytes: 9223372036854775807\ntargets:\n  - id: a\n    url: https://example.com/\n  - id: b\n    url: https://example.org/\n    max_body_bytes: 67108865\n  - id: c\n    url: https://example.net/\n    max_body_bytes: 99999999999999999999\n  - id: d\n    url: https://example.net/\n    max_body_bytes: -1\n",
			want: []string{
				`bad.yaml:2: target "a": max_body_bytes: 9223372036854775807 is above the limit of 67108864 (64 MiB)`,
				`bad.yaml:8: target "b": max_body_bytes: 67108865 is above the limit of 67108864 (64 MiB)`,
				`bad.yaml:11: target "c": max_body_bytes: 99999999999999999999 is above the limit of 67108864 (64 MiB)`,
				`bad.yaml:14: target "d": max_body_bytes: "-1" is not a number of bytes (0 or more)`,
			},
		},
		{
			name: "bad status ranges",
			yaml: "targets:\n  - id: a\n    url: https://example.com/\n    expect_status: [\"299-200\", 700, ok]\n  - id: b\n    url: https://example.org/\n    expect_status: []\n",
			want: []string{
				`bad.yaml:4: target "a": expect_status: "299-200" is an empty range: 299 is above 200`,
				`bad.yaml:4: target "a": expect_status: "700" is not a status code (100-599) or range such as 200-299`,
				`bad.yaml:4: target "a": expect_status: "ok" is not a status code (100-599) or range such as 200-299`,
				`bad.yaml:7: target "b": expect_status: empty: no status would count as up`,
			},
		},
		{
			name: "missing fields and wrong types",
			yaml: "targets:\n  - {}\n  - id: \"has space\"\n    url: [https://example.com/]\n    follow_redirects: \"yes\"\n    max_body_bytes: lots\n    method: \"GE T\"\n    headers:\n      X-Token: \"a\\nb\"\n",
			want: []string{
				"bad.yaml:2: target #1: id: missing",
				"bad.yaml:2: target #1: url: missing",
				`bad.yaml:3: target "has space": id: "has space" contains a space or an unprintable character`,
				`bad.yaml:4: target "has space": url: must be a single value, not a list or mapping`,
				`bad.yaml:7: target "has space": method: "GE T" is not an HTTP method`,
				`bad.yaml:9: target "has space": headers: X-Token: the value contains a line break`,
				`bad.yaml:5: target "has space": follow_redirects: "yes" is not true or false`,
				`bad.yaml:6: target "has space": max_body_bytes: "lots" is not a number of bytes (0 or more)`,
			},
		},
		{
			name: "not UTF-8",
			yaml: "targets:\n  - id: a\n    url: https://example.com/\n    pattern: caf\xe9\n",
			want: []string{"bad.yaml:4: not UTF-8: byte 0xe9 at column 17; save the file as UTF-8"},
		},
		{
			name: "port outside 1-65535",
			yaml: "targets:\n  - id: a\n    url: https://example.com:0/\n  - id: b\n    url: http://127.0.0.1:65536/health\n" +
				"  - id: c\n    url: https://TOKEN@example.com:99999/\n  - id: d\n    url: https://user:pass@example.com:100000/\n",
			want: []string{
				`bad.yaml:3: target "a": url: "https://example.com:0/": port 0 is outside 1-65535`,
				`bad.yaml:5: target "b": url: "http://127.0.0.1:65536/health": port 65536 is outside 1-65535`,
				`bad.yaml:7: target "c": url: "https://xxxxx@example.com:99999/": port 99999 is outside 1-65535`,
				`bad.yaml:9: target "d": url: "https://user:xxxxx@example.com:100000/": port 100000 is outside 1-65535`,
			},
		},
		{
			name: "control characters in header values",
			yaml: "defaults:\n  headers:\n    X-Nul: \"a\\0b\"\ntargets:\n  - id: a\n    url: https://example.com/\n" +
				"  - id: b\n    url: https://example.org/\n    headers:\n      X-Tab: \"a\\tb\"\n      X-Bell: \"\\a\"\n      X-Esc: \"\\e[0m\"\n      X-Del: \"\\x7f\"\n      X-Cr: \"a\\rb\"\n",
			want: []string{
				`bad.yaml:3: target "a": headers: X-Nul: the value contains the control character 0x00 (of those, only tab is allowed)`,
				`bad.yaml:11: target "b": headers: X-Bell: the value contains the control character 0x07 (of those, only tab is allowed)`,
				`bad.yaml:12: target "b": headers: X-Esc: the value contains the control character 0x1b (of those, only tab is allowed)`,
				`bad.yaml:13: target "b": headers: X-Del: the value contains the control character 0x7f (of those, only tab is allowed)`,
				`bad.yaml:14: target "b": headers: X-Cr: the value contains a line break`,
			},
		},
		{
			name: "HEAD with a pattern",
			yaml: "defaults:\n  pattern: ok\ntargets:\n  - id: a\n    url: https://example.com/\n    method: HEAD\n    pattern: Welcome\n" +
				"  - id: b\n    url: https://example.org/\n    method: HEAD\n  - id: c\n    url: https://example.net/\n    method: head\n",
			want: []string{
				`bad.yaml:7: target "a": pattern: not allowed with method HEAD: a response to HEAD has no body to match`,
				`bad.yaml:10: target "b": pattern: not allowed with method HEAD: a response to HEAD has no body to match (the pattern comes from defaults; pattern: "" on the target sets none)`,
			},
		},
		{
			name: "bad regions",
			yaml: "defaults:\n  regions: eu-west\ntargets:\n  - id: a\n    url: https://example.com/\n" +
				"  - id: b\n    url: https://example.org/\n    regions: []\n" +
				"  - id: c\n    url: https://example.net/\n    regions: [eu-west, EU-West, -x, eu-west, [x], \"" + strings.Repeat("a", 64) + "\"]\n",
			want: []string{
				`bad.yaml:2: target "a": regions: must be a list of region names such as [eu-west, us-east]`,
				`bad.yaml:8: target "b": regions: empty: list at least one region, or leave regions out for every region`,
				`bad.yaml:11: target "c": regions: "EU-West" is not a region name (lowercase letters, digits and -, starting with a letter or digit, at most 63)`,
				`bad.yaml:11: target "c": regions: "-x" is not a region name (lowercase letters, digits and -, starting with a letter or digit, at most 63)`,
				`bad.yaml:11: target "c": regions: "eu-west" given twice`,
				`bad.yaml:11: target "c": regions: must be a single value, not a list or mapping`,
				`bad.yaml:11: target "c": regions: "` + strings.Repeat("a", 64) + `" is not a region name (lowercase letters, digits and -, starting with a letter or digit, at most 63)`,
			},
		},
		{
			name: "bad labels",
			yaml: "defaults:\n  labels: [team]\ntargets:\n  - id: a\n    url: https://example.com/\n" +
				"  - id: b\n    url: https://example.org/\n    labels:\n      1team: x\n      __name__: x\n      te-am: x\n      team: [x]\n      tier: \"a\\x01b\"\n      long: \"" + strings.Repeat("é", 129) + "\"\n      team: y\n      ok: \"\"\n",
			want: []string{
				`bad.yaml:2: target "a": labels: must be a mapping of label names to values`,
				`bad.yaml:9: target "b": labels: "1team" is not a label name (letters, digits and _, not starting with a digit or __, at most 63)`,
				`bad.yaml:10: target "b": labels: "__name__" is not a label name (letters, digits and _, not starting with a digit or __, at most 63)`,
				`bad.yaml:11: target "b": labels: "te-am" is not a label name (letters, digits and _, not starting with a digit or __, at most 63)`,
				`bad.yaml:12: target "b": labels: team: must be a single value, not a list or mapping`,
				`bad.yaml:13: target "b": labels: tier: the value contains a control character`,
				`bad.yaml:14: target "b": labels: long: the value is longer than 256 bytes`,
				`bad.yaml:15: target "b": labels: team: key given twice`,
			},
		},
		{
			name: "no targets",
			yaml: "targets: []\n",
			want: []string{"bad.yaml:1: targets: empty: no targets"},
		},
		{
			name: "empty file",
			yaml: "",
			want: []string{"bad.yaml: empty file: no targets"},
		},
		{
			name: "not YAML",
			yaml: "targets: [\n",
			want: []string{"bad.yaml: yaml: line 1: did not find expected node content"},
		},
		{
			name: "id and url in defaults",
			yaml: "defaults:\n  id: x\n  url: https://example.com/\ntargets:\n  - id: a\n    url: https://example.com/\n",
			want: []string{
				"bad.yaml:2: defaults: id: not allowed in defaults: each target needs its own",
				"bad.yaml:3: defaults: url: not allowed in defaults: each target needs its own",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("bad.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error; targets %+v", f.Targets)
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseRegionsAndLabels(t *testing.T) {
	f, err := Parse("t.yaml", []byte(`
defaults:
  regions: [eu-west]
  labels: {team: web}
targets:
  - id: a
    url: https://example.com/
  - id: b
    url: https://example.org/
    regions: [us-east, eu-west, ap-1]
    labels: {tier: "1", owner: "Zoë Ü"}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := f.Targets[0], f.Targets[1]
	if got := fmt.Sprint(a.Regions, a.Labels); got != "[eu-west] map[team:web]" {
		t.Errorf("a: %s", got)
	}
	// Like every key, a target's regions and labels replace the defaults'.
	if got := fmt.Sprint(b.Regions, b.Labels); got != "[us-east eu-west ap-1] map[owner:Zoë Ü tier:1]" {
		t.Errorf("b: %s", got)
	}
	f, err = Parse("t.yaml", []byte("targets:\n  - id: a\n    url: https://example.com/\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a := f.Targets[0]; a.Regions != nil || a.Labels != nil {
		t.Errorf("without regions and labels: %v %v, want nil (every region, no labels)", a.Regions, a.Labels)
	}
}

func TestShippedTargetsFileIsValid(t *testing.T) {
	// The example for users lives at the repository root.
	path := filepath.Join("..", "..", "..", "targets.yaml")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the shipped targets file: %v", err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Targets) < 3 {
		t.Errorf("the shipped file has %d targets; it should show a few", len(f.Targets))
	}
}

// TestShippedAlertExampleUncommented parses the shipped file's alerting
// as it is (the policy in defaults, the local sink's channel), then with its
// commented maintenance example uncommented, as a user would (the run of
// "# " lines that starts with "maintenance:").
func TestShippedAlertExampleUncommented(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "targets.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const policy = "{FailureThreshold:3 FailureWindow:3 SuccessThreshold:2 Regions:1 ReminderInterval:1h0m0s TLSExpiryDays:14 NoData:true Notify:[local-log]}"
	f, err := Parse("targets.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%+v %s %s %d", *f.Targets[0].Alert, f.Channels[0].Name, f.Channels[0].Type, len(f.Maintenance)); got != policy+" local-log webhook 0" {
		t.Errorf("shipped: got %s", got)
	}

	start := regexp.MustCompile(`^# maintenance:`)
	commented := regexp.MustCompile(`^#( |$)`)
	lines := strings.Split(string(data), "\n")
	runs := 0
	for i := 0; i < len(lines); i++ {
		if !start.MatchString(lines[i]) {
			continue
		}
		runs++
		for ; i < len(lines) && commented.MatchString(lines[i]); i++ {
			lines[i] = commented.ReplaceAllString(lines[i], "")
		}
	}
	if runs != 1 {
		t.Fatalf("%d runs to uncomment, want 1 (maintenance)", runs)
	}
	f, err = Parse("targets.yaml", []byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(lines, "\n"))
	}
	if got := fmt.Sprintf("%+v %d %s", *f.Targets[0].Alert, len(f.Maintenance), f.Maintenance[0].Name); got != policy+" 1 weekly-deploy" {
		t.Errorf("uncommented: got %s", got)
	}
}

func TestPublicURLHidesTheSecret(t *testing.T) {
	tests := []struct {
		url, public string
		// err is an error of net/http about the URL, as Redact gets it
		err, redacted string
	}{
		{"https://example.com/", "https://example.com/", `Get "https://example.com/": EOF`, `Get "https://example.com/": EOF`},
		{"https://user:s3cret@example.com/", "https://user:xxxxx@example.com/", `Get "https://user:***@example.com/": EOF`, `Get "https://user:***@example.com/": EOF`},
		{"https://TOKEN@example.com/", "https://xxxxx@example.com/", `Get "https://TOKEN@example.com/": EOF`, `Get "https://xxxxx@example.com/": EOF`},
		{"https://sk_test_4eC3:@127.0.0.1/", "https://xxxxx:@127.0.0.1/", `Get "https://sk_test_4eC3:***@127.0.0.1/": EOF`, `Get "https://xxxxx:***@127.0.0.1/": EOF`},
		{"http://t%40k@127.0.0.1:8080/", "http://xxxxx@127.0.0.1:8080/", `Get "http://t%40k@127.0.0.1:8080/": EOF`, `Get "http://xxxxx@127.0.0.1:8080/": EOF`},
		// Only the user name is replaced, not a host that starts alike.
		{"http://api@127.0.0.1/", "http://xxxxx@127.0.0.1/", `Get "http://api.example.com/v2": dial tcp: lookup api.example.com: no such host`, `Get "http://api.example.com/v2": dial tcp: lookup api.example.com: no such host`},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			f, err := Parse("t.yaml", []byte("targets:\n  - id: a\n    url: \""+tt.url+"\"\n"))
			if err != nil {
				t.Fatal(err)
			}
			tg := f.Targets[0]
			if tg.URL != tt.url || tg.PublicURL != tt.public {
				t.Errorf("URL %q, PublicURL %q; want %q, %q", tg.URL, tg.PublicURL, tt.url, tt.public)
			}
			if got := tg.Redact(tt.err); got != tt.redacted {
				t.Errorf("Redact(%q) = %q, want %q", tt.err, got, tt.redacted)
			}
		})
	}
}

func TestEmptyPatternSwitchesOffTheDefault(t *testing.T) {
	f, err := Parse("t.yaml", []byte("defaults:\n  pattern: ok\ntargets:\n"+
		"  - id: a\n    url: https://example.com/\n    method: HEAD\n    pattern: \"\"\n"+
		"  - id: b\n    url: https://example.org/\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Targets[0].Pattern; got != nil {
		t.Errorf("target a: pattern %q, want none", got)
	}
	if got := f.Targets[1].Pattern; got == nil || got.String() != "ok" {
		t.Errorf("target b: pattern %v, want the default ok", got)
	}
}
