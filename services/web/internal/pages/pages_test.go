package pages

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sitewatch/sitewatch/services/web/internal/query"
)

func TestParseFilter(t *testing.T) {
	tests := []struct {
		query string
		want  query.Filter
		ok    bool
	}{
		{"", query.Filter{Page: 1, PerPage: 100}, true},
		{"state=down&q=team%3Dweb&page=3", query.Filter{State: "down", Search: "team=web", Page: 3, PerPage: 100}, true},
		{"state=degraded", query.Filter{State: "degraded", Page: 1, PerPage: 100}, true},
		{"state=DOWN", query.Filter{}, false},
		{"state=%27%3B+DROP+TABLE+targets", query.Filter{}, false},
		{"page=0", query.Filter{}, false},
		{"page=-1", query.Filter{}, false},
		{"page=1e3", query.Filter{}, false},
		{"page=1000001", query.Filter{}, false},
		{"q=" + strings.Repeat("x", 201), query.Filter{}, false},
		{"q=%00", query.Filter{}, false},
		{"q=%ff%fe", query.Filter{}, false},
		{"q=caf%C3%A9", query.Filter{Search: "café", Page: 1, PerPage: 100}, true},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := ParseFilter(v, 100)
			if ok != tt.ok || (ok && got != tt.want) {
				t.Fatalf("got %+v %v, want %+v %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// Whatever a request's query holds, ParseFilter never panics, and what it
// accepts is a filter the query can run: a known state, a page from 1,
// a search of at most 200 bytes.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"", "state=up&page=2", "q=%ff%fe", "page=99999999999999999999", "state=&q=&page="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		got, ok := ParseFilter(v, 100)
		if !ok {
			return
		}
		if got.State != "" && !contains(query.States, got.State) || got.Page < 1 || got.PerPage != 100 || len(got.Search) > 200 ||
			!utf8.ValidString(got.Search) || strings.ContainsRune(got.Search, 0) {
			t.Fatalf("accepted %q as %+v", raw, got)
		}
	})
}

func TestFormatting(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	for _, c := range []struct{ got, want string }{
		{Duration(3*24*time.Hour + 4*time.Hour + 5*time.Minute), "3d 4h"},
		{Duration(2*time.Hour + 30*time.Minute), "2h 30m"},
		{Duration(5*time.Minute + 2*time.Second), "5m 2s"},
		{Duration(-time.Second), "0s"},
		{Days(now, at(40*24*time.Hour+time.Hour)), "in 40 days"},
		{Days(now, at(12*time.Hour)), "in 0 days"},
		{Days(now, at(-36*time.Hour)), "expired 2 days ago"},
		{DayClass(query.Day{}), "none"},
		{DayClass(query.Day{Checks: 10, AvailabilityPct: 100}), "ok"},
		{DayClass(query.Day{Checks: 10, AvailabilityPct: 99.9}), "ok"},
		{DayClass(query.Day{Checks: 10, AvailabilityPct: 99.5}), "minor"},
		{DayClass(query.Day{Checks: 10, AvailabilityPct: 96}), "partial"},
		{DayClass(query.Day{Checks: 10, AvailabilityPct: 0}), "bad"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestFillDays(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 30, 0, 0, time.UTC)
	days := query.FillDays([]query.Day{{Day: "2026-11-29", Checks: 5, Up: 4, AvailabilityPct: 80}, {Day: "2026-08-01", Checks: 1}}, now, 90)
	if len(days) != 90 || days[0].Day != "2026-09-02" || days[89].Day != "2026-11-30" || days[88].Checks != 5 || days[89].Checks != 0 {
		t.Fatalf("%d days, first %+v, last two %+v %+v", len(days), days[0], days[88], days[89])
	}
}

func TestRuns(t *testing.T) {
	days := []query.Day{
		{Day: "d1"}, {Day: "d2"},
		{Day: "d3", Checks: 10, Up: 10, AvailabilityPct: 100}, {Day: "d4", Checks: 20, Up: 20, AvailabilityPct: 100},
		{Day: "d5", Checks: 10, Up: 9, AvailabilityPct: 90}, {Day: "d6", Checks: 10, Up: 8, AvailabilityPct: 80},
		{Day: "d7", Checks: 10, Up: 10, AvailabilityPct: 100},
	}
	want := []Run{
		{Class: "none", Days: 2, From: "d1", To: "d2"},
		{Class: "ok", Days: 2, From: "d3", To: "d4", Checks: 30, Pct: 100},
		{Class: "bad", Days: 1, From: "d5", To: "d5", Checks: 10, Pct: 90},
		{Class: "bad", Days: 1, From: "d6", To: "d6", Checks: 10, Pct: 80},
		{Class: "ok", Days: 1, From: "d7", To: "d7", Checks: 10, Pct: 100},
	}
	got := Runs(days)
	if len(got) != len(want) {
		t.Fatalf("%+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("run %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// Hours without data inside the range break the lines: uPlot joins
// consecutive points whatever their distance, so a null row stands in the
// first missing hour of each gap (only lines with spanGaps off break on
// null); hours with data are sent as they are.
func TestChartsGaps(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 30, 0, 0, time.UTC)
	h := func(ago int, ms float64) query.Hour {
		return query.Hour{Hour: now.Truncate(time.Hour).Add(-time.Duration(ago) * time.Hour), Checks: 60,
			P50MS: &ms, P95MS: &ms, P99MS: &ms, Failures: map[string]int64{}}
	}
	ph := func(ago int, ms float64) query.Phase {
		return query.Phase{Hour: now.Truncate(time.Hour).Add(-time.Duration(ago) * time.Hour), Checks: 60, DNSMS: &ms}
	}
	rg, _ := query.ParseRange("24h")
	c := Charts([]query.Hour{h(10, 1), h(9, 2), h(5, 3), h(0, 4)}, []query.Phase{ph(3, 5), ph(1, 6)}, rg, now)
	show := func(col []*float64) string {
		var s []string
		for _, v := range col {
			if v == nil {
				s = append(s, "null")
			} else {
				s = append(s, strconv.FormatFloat(*v, 'f', -1, 64))
			}
		}
		return strings.Join(s, " ")
	}
	at := func(ago int) string { return strconv.FormatInt(now.Truncate(time.Hour).Unix()-int64(ago)*3600, 10) }
	for _, tc := range []struct{ name, got, want string }{
		{"latency x", show(c.Latency[0]), strings.Join([]string{at(10), at(9), at(8), at(5), at(4), at(0)}, " ")},
		{"p95", show(c.Latency[2]), "1 2 null 3 null 4"},
		{"checks", show(c.Checks[1]), "60 60 null 60 null 60"},
		{"phases x", show(c.Phases[0]), strings.Join([]string{at(3), at(2), at(1)}, " ")},
		{"dns", show(c.Phases[1]), "5 null 6"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, tc.got, tc.want)
		}
	}
}
