package pages

import (
	"net/url"
	"strings"
	"testing"
	"time"

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
		if got.State != "" && !contains(query.States, got.State) || got.Page < 1 || got.PerPage != 100 || len(got.Search) > 200 {
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
