package badge

import (
	"encoding/xml"
	"strings"
	"testing"
)

func TestBadges(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name string
		b    Badge
		want Badge
	}{
		{"up", ForState("up"), Badge{"status", "up", BrightGreen}},
		{"down", ForState("down"), Badge{"status", "down", Red}},
		{"degraded", ForState("degraded"), Badge{"status", "degraded", Orange}},
		{"stale", ForState("stale"), Badge{"status", "stale", LightGrey}},
		{"no state", ForState(""), Badge{"status", "unknown", LightGrey}},
		{"uptime cut, not rounded", ForUptime("7d", f(99.999)), Badge{"uptime 7d", "99.99%", BrightGreen}},
		{"uptime 99.5", ForUptime("30d", f(99.5)), Badge{"uptime 30d", "99.50%", Green}},
		{"uptime 96", ForUptime("24h", f(96)), Badge{"uptime 24h", "96.00%", Orange}},
		{"uptime 50", ForUptime("90d", f(50)), Badge{"uptime 90d", "50.00%", Red}},
		{"uptime none", ForUptime("7d", nil), Badge{"uptime 7d", "no data", LightGrey}},
		{"response fast", ForResponse("24h", f(123.4)), Badge{"response 24h", "123 ms", BrightGreen}},
		{"response slow", ForResponse("24h", f(2500)), Badge{"response 24h", "2500 ms", Red}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.b != tt.want {
				t.Fatalf("got %+v, want %+v", tt.b, tt.want)
			}
		})
	}
}

// A label with markup stays text: the SVG parses and holds no element the
// label tried to inject.
func TestSVGEscapes(t *testing.T) {
	svg := Badge{Label: `<script>alert(1)</script>`, Message: `a&b"c`, Color: Red}.SVG()
	if strings.Contains(string(svg), "<script") {
		t.Fatalf("unescaped label in %s", svg)
	}
	var doc struct {
		Title string `xml:"title"`
	}
	if err := xml.Unmarshal(svg, &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, svg)
	}
	if want := `<script>alert(1)</script>: a&b"c`; doc.Title != want {
		t.Fatalf("title %q, want %q", doc.Title, want)
	}
}

func TestSVGLayout(t *testing.T) {
	svg := string(Badge{"status", "up", BrightGreen}.SVG())
	// "status": s t a t u s = 6.6+4.6+6.6+4.6+6.6+6.6 = 35.6 -> 36 +10;
	// "up": 13.2 -> 14 + 10.
	for _, want := range []string{`width="70"`, `<rect width="46" height="20" fill="#555"/>`,
		`<rect x="46" width="24" height="20" fill="#4c1"/>`, `x="230" y="140" transform="scale(.1)" fill="#fff" textLength="360">status</text>`,
		`x="580" y="140" transform="scale(.1)" fill="#fff" textLength="140">up</text>`} {
		if !strings.Contains(svg, want) {
			t.Errorf("badge lacks %s:\n%s", want, svg)
		}
	}
}
