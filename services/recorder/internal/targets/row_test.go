package targets_test

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/recorder/internal/targets"
)

// wire encodes m as a record value of the targets topic (schema ID 1).
func wire(t testing.TB, m *sitewatchv1.Target) []byte {
	t.Helper()
	var h sr.ConfluentHeader
	b, err := h.AppendEncode(nil, 1, []int{(&sitewatchv1.Target{}).ProtoReflect().Descriptor().Index()})
	if err != nil {
		t.Fatal(err)
	}
	v, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(b, m)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestFromRecord(t *testing.T) {
	at := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	secret := target("s", time.Minute)
	secret.Url = "https://TOKEN@s.test/"
	secret.Headers = []*sitewatchv1.Header{{Name: "x-api-key", Values: []string{"k"}}}
	noTimeout := target("n", time.Minute)
	noTimeout.Timeout = nil
	for _, tc := range []struct {
		name  string
		key   string
		value func(t testing.TB) []byte
		want  string // the row's URL and header names, "removed", or the error
	}{
		{"tombstone", "gone", func(testing.TB) []byte { return nil }, "removed"},
		{"secret redacted, header names only", "s", func(t testing.TB) []byte { return wire(t, secret) }, "https://xxxxx@s.test/ [X-Api-Key]"},
		{"no key", "", func(testing.TB) []byte { return nil }, "targets partition 2 offset 7: no key (the target ID)"},
		{"not the wire format", "x", func(testing.TB) []byte { return []byte("{}") }, "targets partition 2 offset 7: not in the Confluent wire format"},
		{"key is not the ID", "x", func(t testing.TB) []byte { return wire(t, secret) }, `targets partition 2 offset 7: the key "x" differs from the target's id "s"`},
		{"refused by the file's rules", "n", func(t testing.TB) []byte { return wire(t, noTimeout) }, `targets partition 2 offset 7: target "n": timeout: missing`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := targets.FromRecord(&kgo.Record{Topic: "targets", Partition: 2, Offset: 7, Key: []byte(tc.key), Value: tc.value(t), Timestamp: at})
			var got string
			switch {
			case err != nil:
				got = err.Error()
			case c.Row == nil:
				got = "removed"
			default:
				got = c.Row.URL + " " + "[" + strings.Join(c.Row.HeaderNames, " ") + "]"
			}
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if err == nil && (c.TargetID != tc.key || !c.At.Equal(at)) {
				t.Errorf("change of %q at %s, want %q at %s", c.TargetID, c.At, tc.key, at)
			}
		})
	}
}

// Whatever a record holds, FromRecord does not panic, and what it accepts
// is the target of the key, with no secret of its URL or headers kept.
func FuzzFromRecord(f *testing.F) {
	s := target("s", time.Minute)
	s.Url = "https://user:pw@s.test/"
	s.Headers = []*sitewatchv1.Header{{Name: "Authorization", Values: []string{"Bearer x"}}}
	s.Labels = map[string]string{"team": "web"}
	f.Add("s", wire(f, s))
	f.Add("t", wire(f, target("t", 30*time.Second, "eu")))
	withAlert := target("a", time.Minute, "eu", "us")
	withAlert.Alert = &sitewatchv1.AlertPolicy{FailureThreshold: 2, FailureWindow: 3, SuccessThreshold: 1, AllRegions: true, Notify: []string{"hook"}}
	f.Add("a", wire(f, withAlert))
	f.Add("u", []byte("\x00\x00\x00\x00\x01\x02\x0a\x01u"))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		c, err := targets.FromRecord(&kgo.Record{Topic: "targets", Key: []byte(key), Value: value})
		if err != nil || c.Row == nil {
			return
		}
		if c.Row.TargetID != key || c.TargetID != key {
			t.Fatalf("accepted target %q under key %q", c.Row.TargetID, key)
		}
		if c.Row.Interval <= 0 {
			t.Fatalf("accepted interval %s", c.Row.Interval)
		}
		if strings.Contains(c.Row.URL, ":pw@") {
			t.Fatalf("URL keeps its password: %s", c.Row.URL)
		}
	})
}
