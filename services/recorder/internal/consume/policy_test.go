package consume

import (
	"testing"
	"time"

	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
)

// The time window: started_at within the retention and not too far ahead,
// and a slot (scheduled_at) not too far ahead either, which would otherwise
// create a check_slots partition that the retention never drops.
func TestPolicy(t *testing.T) {
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	c := &Consumer{cfg: Config{Retention: 30 * 24 * time.Hour, MaxFuture: time.Hour}}
	for _, tc := range []struct {
		name               string
		checked, scheduled time.Time
		reason, detail     string
	}{
		{"now", now, now, "", ""},
		{"no slot", now, time.Time{}, "", ""},
		{"slot before the check", now, now.Add(-time.Minute), "", ""},
		{"slot within the skew", now, now.Add(59 * time.Minute), "", ""},
		{"expired", now.Add(-31 * 24 * time.Hour), time.Time{}, ReasonExpired,
			"started_at 2026-10-30T09:00:00Z is older than the retention 720h0m0s"},
		{"started in the future", now.Add(2 * time.Hour), time.Time{}, ReasonFuture,
			"started_at 2026-11-30T11:00:00Z is more than 1h0m0s ahead of this recorder's clock"},
		{"slot in the future", now, time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), ReasonFuture,
			"scheduled_at 9999-12-31T00:00:00Z is more than 1h0m0s ahead of this recorder's clock"},
	} {
		dl := c.policy(store.Event{CheckedAt: tc.checked, ScheduledAt: tc.scheduled}, now)
		var reason, detail string
		if dl != nil {
			reason, detail = dl.reason, dl.detail
		}
		if reason != tc.reason || detail != tc.detail {
			t.Errorf("%s: policy = %q %q, want %q %q", tc.name, reason, detail, tc.reason, tc.detail)
		}
	}
}
