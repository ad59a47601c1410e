package policy_test

import (
	"slices"
	"testing"
	"time"

	"github.com/sitewatch/sitewatch/services/alerter/internal/policy"
	"github.com/sitewatch/sitewatch/services/internal/targets"
)

func TestLookup(t *testing.T) {
	day := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	alert := &targets.Alert{FailureThreshold: 1, FailureWindow: 1, SuccessThreshold: 1, Regions: 1, Notify: []string{"hook"}}
	set := policy.FromFile(&targets.File{
		Targets: []*targets.Target{
			{ID: "web", Regions: []string{"eu"}, Labels: map[string]string{"team": "web", "tier": "1"}, Alert: alert},
			{ID: "api", Labels: map[string]string{"team": "api"}, Alert: alert},
			{ID: "quiet"},
		},
		Channels: []*targets.Channel{{Name: "hook", Type: targets.ChannelWebhook}},
		Maintenance: []*targets.Maintenance{
			{Name: "web-team", Labels: map[string]string{"team": "web"}, From: day.Add(2 * time.Hour), To: day.Add(3 * time.Hour)},
			{Name: "api-by-id", Targets: []string{"api"}, From: day.Add(time.Hour), To: day.Add(2 * time.Hour)},
			{Name: "both", Targets: []string{"api"}, Labels: map[string]string{"tier": "1"}, From: day, To: day.Add(4 * time.Hour)},
		},
	})
	if _, _, ok := set.Lookup("quiet"); ok {
		t.Error("a target whose alerts are off has a policy")
	}
	if _, _, ok := set.Lookup("unknown"); ok {
		t.Error("an unknown target has a policy")
	}
	p, maint, ok := set.Lookup("web")
	if !ok || p.Alert != alert || !slices.Equal(p.Regions, []string{"eu"}) {
		t.Fatalf("web: %+v %v", p, ok)
	}
	for _, c := range []struct {
		target string
		hour   float64
		want   string
	}{
		{"web", 0.5, "both"},     // by label tier
		{"web", 2.5, "web-team"}, // the first window of the file that is open
		{"web", 4, ""},           // a window ends at To
		{"api", 1, "api-by-id"},  // starts at From
		{"api", 0.5, "both"},     // by ID
		{"api", 2.5, "both"},     // web-team's label does not match
		{"api", -0.5, ""},        // before every window
	} {
		_, maint, _ := set.Lookup(c.target)
		if got := maint(day.Add(time.Duration(c.hour * float64(time.Hour)))); got != c.want {
			t.Errorf("%s at %gh: window %q, want %q", c.target, c.hour, got, c.want)
		}
	}
	_ = maint
	if typ, ok := set.ChannelType("hook"); !ok || typ != "webhook" {
		t.Errorf("channel type %q %v", typ, ok)
	}
	if _, ok := set.ChannelType("pager"); ok {
		t.Error("an unknown channel has a type")
	}
	fleet := set.WithTargets(map[string]*targets.Target{"other": {ID: "other", Alert: alert}})
	if _, _, ok := fleet.Lookup("web"); ok {
		t.Error("WithTargets keeps the file's targets")
	}
	if _, _, ok := fleet.Lookup("other"); !ok {
		t.Error("WithTargets lacks its targets")
	}
	if _, ok := fleet.ChannelType("hook"); !ok {
		t.Error("WithTargets lacks the file's channels")
	}
	changed := fleet.WithFile(&targets.File{Targets: []*targets.Target{{ID: "web", Alert: alert}},
		Channels: []*targets.Channel{{Name: "pager", Type: targets.ChannelPagerDuty}}})
	if _, _, ok := changed.Lookup("web"); ok {
		t.Error("WithFile takes the file's targets")
	}
	if _, _, ok := changed.Lookup("other"); !ok {
		t.Error("WithFile lacks the topic's targets")
	}
	if _, ok := changed.ChannelType("hook"); ok {
		t.Error("WithFile keeps the old channels")
	}
	if typ, _ := changed.ChannelType("pager"); typ != targets.ChannelPagerDuty {
		t.Error("WithFile lacks the file's channels")
	}
}
