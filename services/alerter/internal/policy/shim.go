package policy

import (
	"slices"
	"time"

	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// TODO(alerter): Maintenance.Matches and Maintenance.Active come with the
// targets parser of `maintenance:` (branch policy); use them once merged.

func matches(m *targets.Maintenance, t *targets.Target) bool {
	if slices.Contains(m.Targets, t.ID) {
		return true
	}
	if len(m.Labels) == 0 {
		return false
	}
	for k, v := range m.Labels {
		if got, ok := t.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func active(m *targets.Maintenance, at time.Time) bool {
	return m.Cron == "" && !at.Before(m.From) && at.Before(m.To)
}
