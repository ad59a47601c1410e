package targets

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	targetdef "github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/internal/targetstopic"
)

// Row is what target_config keeps of a definition: nothing secret.
type Row struct {
	TargetID        string
	URL             string // the secret replaced by "xxxxx"
	Method          string
	Interval        time.Duration
	Timeout         time.Duration
	HeaderNames     []string // sorted; the values may be secrets
	HasBody         bool
	ExpectStatus    []string // "200-399", "404-404"
	Pattern         string   // "" for none (NULL)
	FollowRedirects bool
	TLSSkipVerify   bool
	MaxBodyBytes    int64
	Regions         []string // empty for every region
	Labels          map[string]string
	// Alert is the alert policy; nil when the target's alerts are off (the
	// column is NULL).
	Alert *targetdef.Alert
}

// Change is one record of the topic as the projection applies it: a target
// set (Row) or removed (Row nil), at the record's time.
type Change struct {
	TargetID string
	Row      *Row
	At       time.Time
}

// FromRecord turns a record of the targets topic into a Change; the error
// names the record (topic, partition, offset) and what is wrong with it.
func FromRecord(r *kgo.Record) (Change, error) {
	id := string(r.Key)
	c := Change{TargetID: id, At: r.Timestamp.UTC()}
	where := fmt.Sprintf("%s partition %d offset %d", r.Topic, r.Partition, r.Offset)
	if id == "" {
		return c, fmt.Errorf("%s: no key (the target ID)", where)
	}
	if r.Value == nil {
		return c, nil
	}
	m, err := targetstopic.Decode(r.Value)
	if err != nil {
		return c, fmt.Errorf("%s: %w", where, err)
	}
	if m.GetId() != id {
		return c, fmt.Errorf("%s: the key %q differs from the target's id %q", where, id, m.GetId())
	}
	t, err := targetdef.FromProto(where, m)
	if err != nil {
		return c, err
	}
	c.Row = rowOf(t)
	return c, nil
}

func rowOf(t *targetdef.Target) *Row {
	row := &Row{
		TargetID:        t.ID,
		URL:             t.PublicURL,
		Method:          t.Method,
		Interval:        t.Interval,
		Timeout:         t.Timeout,
		HeaderNames:     slices.Sorted(maps.Keys(t.Headers)),
		HasBody:         t.Body != "",
		FollowRedirects: t.FollowRedirects,
		TLSSkipVerify:   t.TLSSkipVerify,
		MaxBodyBytes:    t.MaxBodyBytes,
		Regions:         slices.Clone(t.Regions),
		Labels:          maps.Clone(t.Labels),
		Alert:           t.Alert,
	}
	if row.HeaderNames == nil {
		row.HeaderNames = []string{}
	}
	if row.Regions == nil {
		row.Regions = []string{}
	}
	if row.Labels == nil {
		row.Labels = map[string]string{}
	}
	for _, s := range t.ExpectStatus {
		row.ExpectStatus = append(row.ExpectStatus, fmt.Sprintf("%d-%d", s.Min, s.Max))
	}
	if row.ExpectStatus == nil {
		row.ExpectStatus = []string{}
	}
	if t.Pattern != nil {
		row.Pattern = t.Pattern.String()
	}
	return row
}

// alertJSON is the policy as a JSON object with the keys of the targets
// file (migrations/00014_target_config_alert.sql); nil (NULL) when off.
func (r *Row) alertJSON() any {
	a := r.Alert
	if a == nil {
		return nil
	}
	var regions any = a.Regions
	if a.Regions == targetdef.AllRegions {
		regions = "all"
	}
	b, _ := json.Marshal(map[string]any{ // numbers, strings and bools always marshal
		"failure_threshold":         a.FailureThreshold,
		"failure_window":            a.FailureWindow,
		"success_threshold":         a.SuccessThreshold,
		"regions":                   regions,
		"reminder_interval_seconds": a.ReminderInterval.Seconds(),
		"tls_expiry_days":           a.TLSExpiryDays,
		"no_data":                   a.NoData,
		"notify":                    a.Notify,
	})
	return string(b)
}

// labelsJSON is the labels as a JSON object (jsonb sorts the keys).
func (r *Row) labelsJSON() string {
	b, _ := json.Marshal(r.Labels) // a map of strings always marshals
	return string(b)
}
