package targets

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
)

const roundTripFile = `
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
		`id:"home" url:"https://example.com/" method:"GET" interval:{seconds:30} timeout:{seconds:5} headers:{name:"User-Agent" values:"sitewatch"} expect_status:{min:200 max:399} pattern:"Example Domain" follow_redirects:true max_body_bytes:1048576 regions:"eu-west" regions:"us-east" labels:{key:"team" value:"web"}`,
		`id:"api" url:"http://probe:s3cret@127.0.0.1:8080/health" method:"POST" interval:{seconds:60} timeout:{seconds:2} headers:{name:"Authorization" values:"Bearer secret"} headers:{name:"X-A" values:"1" values:"2"} body:"{\"a\": 1}" expect_status:{min:200 max:200} expect_status:{min:204 max:206} tls_skip_verify:true`,
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
