package targets

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
)

const roundTripFile = `
channels:
  - {name: hook, type: webhook, url: "http://127.0.0.1:9000/", secret: "${HOOK_SECRET}"}
  - {name: am, type: alertmanager, url: "http://127.0.0.1:9093/"}
defaults:
  interval: 30s
  timeout: 5s
  headers:
    User-Agent: sitewatch
  labels: {team: web}
targets:
  - id: home
    url: https://example.com/
    pattern: "Example Domain"
    regions: [eu-west, us-east]
    alert:
      failure_window: 5
      regions: all
      reminder_interval: 90m
      no_data: false
      notify: [hook, am]
  - id: api
    url: http://probe:s3cret@127.0.0.1:8080/health
    method: POST
    body: '{"a": 1}'
    interval: 1m
    timeout: 2s
    expect_status: [200, "204-206"]
    follow_redirects: false
    tls_skip_verify: true
    max_body_bytes: 0
    labels: {}
    headers:
      Authorization: Bearer secret
      X-A: "1"
      x-a: "2"
`

func TestProtoRoundTrip(t *testing.T) {
	f, err := Parse("t.yaml", []byte(roundTripFile))
	if err != nil {
		t.Fatal(err)
	}
	// The record holds the whole definition, secrets included: probers
	// check with it.
	want := []string{
		`id:"home" url:"https://example.com/" method:"GET" interval:{seconds:30} timeout:{seconds:5} headers:{name:"User-Agent" values:"sitewatch"} expect_status:{min:200 max:399} pattern:"Example Domain" follow_redirects:true max_body_bytes:1048576 regions:"eu-west" regions:"us-east" labels:{key:"team" value:"web"} alert:{failure_threshold:3 failure_window:5 success_threshold:2 all_regions:true reminder_interval:{seconds:5400} tls_expiry_days:14 notify:"hook" notify:"am"}`,
		`id:"api" url:"http://probe:s3cret@127.0.0.1:8080/health" method:"POST" interval:{seconds:60} timeout:{seconds:2} headers:{name:"Authorization" values:"Bearer secret"} headers:{name:"X-A" values:"1" values:"2"} body:"{\"a\": 1}" expect_status:{min:200 max:200} expect_status:{min:204 max:206} tls_skip_verify:true alert:{off:true}`,
	}
	for i, tg := range f.Targets {
		m := ToProto(tg)
		var w sitewatchv1.Target
		if err := prototext.Unmarshal([]byte(want[i]), &w); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(m, &w) {
			t.Errorf("ToProto(%s):\n%v\nwant:\n%v", tg.ID, m, &w)
		}
		back, err := FromProto("record", m)
		if err != nil {
			t.Fatalf("FromProto(ToProto(%s)): %v", tg.ID, err)
		}
		if a, b := describe(&File{Targets: []*Target{tg}}), describe(&File{Targets: []*Target{back}}); a != b {
			t.Errorf("round trip of %s:\n%s\nthen:\n%s", tg.ID, a, b)
		}
		if again := ToProto(back); !proto.Equal(again, m) {
			t.Errorf("ToProto(FromProto(m)) differs from m:\n%v\n%v", again, m)
		}
	}
}

// Records of producers older than the policy have none: their alerts are
// off, as with a policy that says off, and a record names channels the
// topic does not carry.
func TestFromProtoAlertPolicy(t *testing.T) {
	m := &sitewatchv1.Target{Id: "a", Url: "https://example.com/", Method: "GET", Interval: durationpb.New(60e9), Timeout: durationpb.New(10e9),
		ExpectStatus: []*sitewatchv1.StatusRange{{Min: 200, Max: 399}}}
	for _, p := range []*sitewatchv1.AlertPolicy{nil, {Off: true}} {
		m.Alert = p
		tg, err := FromProto("r", m)
		if err != nil || tg.Alert != nil {
			t.Errorf("policy %v: alert %+v, err %v; want nil (off)", p, tg.Alert, err)
		}
	}
	m.Alert = &sitewatchv1.AlertPolicy{FailureThreshold: 2, FailureWindow: 4, SuccessThreshold: 3, Regions: 1, TlsExpiryDays: 7, Notify: []string{"elsewhere"}}
	tg, err := FromProto("r", m)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprintf("%+v", *tg.Alert), "{FailureThreshold:2 FailureWindow:4 SuccessThreshold:3 Regions:1 ReminderInterval:0s TLSExpiryDays:7 NoData:false Notify:[elsewhere]}"; got != want {
		t.Errorf("alert %s, want %s", got, want)
	}
}

func TestFromProtoRefusesBadRecords(t *testing.T) {
	good := func() *sitewatchv1.Target {
		f, err := Parse("t.yaml", []byte("targets:\n  - id: a\n    url: https://example.com/\n"))
		if err != nil {
			t.Fatal(err)
		}
		return ToProto(f.Targets[0])
	}
	tests := []struct {
		name   string
		change func(m *sitewatchv1.Target)
		want   []string
	}{
		{"no interval", func(m *sitewatchv1.Target) { m.Interval = nil }, []string{
			`p0@7: target "a": interval: missing`}},
		{"invalid duration", func(m *sitewatchv1.Target) { m.Timeout = &durationpb.Duration{Seconds: 1, Nanos: -1} }, []string{
			`p0@7: target "a": timeout: not a valid duration (seconds 1, nanos -1)`}},
		{"bad everything", func(m *sitewatchv1.Target) {
			m.Id = "a b"
			m.Url = "ftp://x/"
			m.Method = ""
			m.Interval = durationpb.New(0)
			m.ExpectStatus = []*sitewatchv1.StatusRange{{Min: 700, Max: 4294967295}}
			m.MaxBodyBytes = -5
			m.Pattern = "(x"
			m.Regions = []string{"EU", "eu", "eu"}
			m.Labels = map[string]string{"__x": "1", "ok": "a\x00"}
			m.Headers = []*sitewatchv1.Header{{Name: "X A", Values: []string{"1", "2"}}, {Name: "X-B", Values: []string{"ok", "a\r\nInjected: 1"}}}
		}, []string{
			`p0@7: target "a b": headers: "X A" is not a header name`,
			`p0@7: target "a b": headers: X-B: the value contains a line break`,
			`p0@7: target "a b": id: "a b" contains a space or an unprintable character`,
			`p0@7: target "a b": url: "ftp://x/" is not an http:// or https:// URL`,
			`p0@7: target "a b": method: "" is not an HTTP method`,
			`p0@7: target "a b": interval: 0s is not positive`,
			`p0@7: target "a b": expect_status: "700-4294967295" is not a status code (100-599) or range such as 200-299`,
			"p0@7: target \"a b\": pattern: invalid regexp: error parsing regexp: missing closing ): `(x`",
			`p0@7: target "a b": max_body_bytes: "-5" is not a number of bytes (0 or more)`,
			`p0@7: target "a b": regions: "EU" is not a region name (lowercase letters, digits and -, starting with a letter or digit, at most 63)`,
			`p0@7: target "a b": regions: "eu" given twice`,
			`p0@7: target "a b": labels: "__x" is not a label name (letters, digits and _, not starting with a digit or __, at most 63)`,
			`p0@7: target "a b": labels: ok: the value contains a control character`,
		}},
		{"empty", func(m *sitewatchv1.Target) { proto.Reset(m) }, []string{
			`p0@7: target "": interval: missing`,
			`p0@7: target "": timeout: missing`,
			`p0@7: target "": id: empty`,
			`p0@7: target "": url: "" is not an http:// or https:// URL`,
			`p0@7: target "": method: "" is not an HTTP method`,
			`p0@7: target "": expect_status: empty: no status would count as up`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good()
			tt.change(m)
			tg, err := FromProto("p0@7", m)
			if err == nil {
				t.Fatalf("accepted: %+v", tg)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, want)
			}
		})
	}
	for _, tt := range []struct {
		name   string
		policy *sitewatchv1.AlertPolicy
		want   []string
	}{
		{"bad policy", &sitewatchv1.AlertPolicy{FailureThreshold: 4, FailureWindow: 2, SuccessThreshold: 0, Regions: 2, AllRegions: true,
			ReminderInterval: &durationpb.Duration{Seconds: -1}, TlsExpiryDays: 9999, Notify: []string{"a b", "x", "x"}}, []string{
			`p0@7: target "a": alert: regions: 2 and all_regions both set`,
			`p0@7: target "a": alert: failure_window: 2 is below failure_threshold 4: the window holds the failures that confirm`,
			`p0@7: target "a": alert: success_threshold: "0" is not a whole number from 1 to 100`,
			`p0@7: target "a": alert: reminder_interval: -1s is negative (0 for none)`,
			`p0@7: target "a": alert: tls_expiry_days: "9999" is not a whole number from 0 to 3650`,
			`p0@7: target "a": alert: notify: "a b" is not a channel name (letters, digits, _ and -, starting with a letter, at most 63)`,
			`p0@7: target "a": alert: notify: "x" given twice`,
		}},
		{"regions beyond the target's", &sitewatchv1.AlertPolicy{FailureThreshold: 1, FailureWindow: 1, SuccessThreshold: 1, Regions: 2, Notify: []string{"x"}}, []string{
			`p0@7: target "a": alert: regions: 2 is more than the 1 regions the target lists: no incident could open (all says every region)`,
		}},
		{"no notify, not off", &sitewatchv1.AlertPolicy{FailureThreshold: 1, FailureWindow: 1, SuccessThreshold: 1, Regions: 1}, []string{
			`p0@7: target "a": alert: notify: empty while off is not set`,
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := good()
			m.Regions = []string{"eu"}
			m.Alert = tt.policy
			tg, err := FromProto("p0@7", m)
			if err == nil {
				t.Fatalf("accepted: %+v", tg)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, want)
			}
		})
	}
	if _, err := FromProto("p0@7", nil); err == nil || err.Error() != "p0@7: no target" {
		t.Errorf("FromProto(nil) = %v", err)
	}
}

// FuzzFromProto feeds FromProto arbitrary records, as a hostile or corrupt
// topic would. It must never panic; a record it accepts holds a target that
// can be checked, and reads the same after another trip.
func FuzzFromProto(f *testing.F) {
	file, err := Parse("t.yaml", []byte(roundTripFile))
	if err != nil {
		f.Fatal(err)
	}
	for _, tg := range file.Targets {
		b, err := proto.Marshal(ToProto(tg))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m sitewatchv1.Target
		if proto.Unmarshal(data, &m) != nil {
			return
		}
		tg, err := FromProto("fuzz", &m)
		if err != nil {
			return
		}
		checkTarget(t, tg)
		back, err := FromProto("again", ToProto(tg))
		if err != nil {
			t.Fatalf("an accepted record, converted back, is refused: %v", err)
		}
		if a, b := describe(&File{Targets: []*Target{tg}}), describe(&File{Targets: []*Target{back}}); a != b {
			t.Fatalf("an accepted record reads differently after a trip:\n%s\nthen:\n%s", a, b)
		}
		if !proto.Equal(ToProto(tg), ToProto(back)) {
			t.Fatal("ToProto differs after a trip")
		}
	})
}

// TestProtoAlertRoundTripProperty sends random valid policies, limits
// included, through ToProto and FromProto: every field comes back as it
// went.
func TestProtoAlertRoundTripProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 1))
	base := &sitewatchv1.Target{Id: "a", Url: "https://example.com/", Method: "GET", Interval: durationpb.New(60e9), Timeout: durationpb.New(10e9),
		ExpectStatus: []*sitewatchv1.StatusRange{{Min: 200, Max: 399}}}
	for i := range 2000 {
		tg, err := FromProto("r", base)
		if err != nil {
			t.Fatal(err)
		}
		if rng.IntN(2) == 0 {
			for r := range 1 + rng.IntN(maxRegions) {
				tg.Regions = append(tg.Regions, fmt.Sprintf("r%d", r))
			}
		}
		a := &Alert{FailureThreshold: 1 + rng.IntN(maxAlertChecks), SuccessThreshold: 1 + rng.IntN(maxAlertChecks),
			TLSExpiryDays: rng.IntN(maxTLSExpiryDays + 1), NoData: rng.IntN(2) == 0, Regions: AllRegions}
		a.FailureWindow = a.FailureThreshold + rng.IntN(maxAlertChecks-a.FailureThreshold+1)
		if i%3 != 0 {
			a.Regions = 1 + rng.IntN(maxRegions)
			if tg.Regions != nil {
				a.Regions = 1 + rng.IntN(len(tg.Regions))
			}
		}
		switch i % 4 {
		case 1:
			a.ReminderInterval = time.Duration(1 + rng.Int64N(int64(1000*time.Hour)))
		case 2:
			a.ReminderInterval = time.Duration(1+rng.IntN(48)) * time.Hour
		}
		for n := range 1 + rng.IntN(maxNotify) {
			a.Notify = append(a.Notify, fmt.Sprintf("c%d-x_%d", rng.IntN(100), n))
		}
		tg.Alert = a
		back, err := FromProto("r", ToProto(tg))
		if err != nil {
			t.Fatalf("%+v: %v", *a, err)
		}
		if back.Alert == nil || !reflect.DeepEqual(*back.Alert, *a) {
			t.Fatalf("sent %+v\ngot  %+v", *a, back.Alert)
		}
	}
}
