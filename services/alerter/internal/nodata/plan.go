package nodata

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sitewatch/sitewatch/services/alerter/internal/evaluate"
	"github.com/sitewatch/sitewatch/services/alerter/internal/notify"
)

// Kind is incidents.kind of the incidents of this package.
const Kind = "no_data"

// RegionLookback is how long after its resolution a region-wide incident
// still covers the targets that went quiet with the region (see covered).
const RegionLookback = 24 * time.Hour

// Policies is what a pass needs of the alerter's policies (policy.Set).
type Policies interface {
	// Lookup returns the target's policy and maintenance windows; false
	// when the target is unknown or its alerts are off.
	Lookup(targetID string) (evaluate.Policy, evaluate.Maintenance, bool)
	ChannelType(name string) (string, bool)
}

// freshness is a row of target_region_freshness.
type freshness struct {
	TargetID, Region string
	URL              string
	LastChecked      *time.Time
	Interval         time.Duration
	StaleSince       time.Time
}

// incident is a stored no_data incident: every open one, and the
// region-wide ones resolved within RegionLookback.
type incident struct {
	ID                     string
	TargetID               string // "" for a region-wide incident
	Region                 string
	StartedAt, ConfirmedAt time.Time
	ResolvedAt             *time.Time
	Maintenance            string
	Error                  string
	URL                    string
	// The last transition.
	LastSeq int
	LastAt  time.Time
	// The channels notified of it so far, by name, with their types.
	Notified map[string]string
}

// snapshot is what a pass reads, in its transaction.
type snapshot struct {
	StaleAfter int
	Rows       []freshness
	// The latest check of any prober of each region ever seen.
	Probers   map[string]time.Time
	Incidents []incident
}

// step is one transition to store: of a new incident (Open set), or of a
// stored one (resolved when Transition is Resolved).
type step struct {
	Open       *incident
	IncidentID string
	Transition string
	Seq        int
	At         time.Time
	Region     string
	Suppressed string
	// Channels with their types; none when Suppressed.
	Channels     []channel
	Notification notify.Notification
}

type channel struct{ Name, Type string }

// unknownChannel is a channel a policy names that the channels lack: not
// notified, reported.
type unknownChannel struct{ Channel, IncidentID string }

// incidentID is hex of SHA-256 over the kind, target ("" for a region),
// region, the time the data stopped and the extra parts, "|"-separated,
// truncated to 128 bits.
func incidentID(target, region string, staleSince time.Time, extra ...string) string {
	key := Kind + "|" + target + "|" + region + "|" + staleSince.UTC().Format(time.RFC3339Nano)
	for _, x := range extra {
		key += "|" + x
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}

// plan decides the transitions of a pass at now: a pure function of the
// snapshot and the policies.
//
// A region is quiet when (1) at least one target applies in it and every
// such target is stale there, and (2) no prober of it has checked anything
// for StaleAfter times the shortest interval of those targets (or no
// prober was ever seen in it). A quiet region with at least one target
// whose policy keeps no_data on gets one region-wide incident; its
// targets get none of their own while it is quiet, nor after it resolved
// while they are still in the spell that began with it (stale since before
// its confirmation), for StaleAfter of their intervals: the returning
// probers get that long to check them again.
func plan(now time.Time, snap snapshot, pol Policies) ([]step, []unknownChannel) {
	p := planner{now: now, pol: pol}
	byRegion := map[string][]freshness{}
	for _, r := range snap.Rows {
		byRegion[r.Region] = append(byRegion[r.Region], r)
	}
	openRegion := map[string]*incident{}
	latestRegion := map[string]*incident{}
	openTarget := map[pair]*incident{}
	for i := range snap.Incidents {
		inc := &snap.Incidents[i]
		switch {
		case inc.TargetID != "" && inc.ResolvedAt == nil:
			openTarget[pair{inc.TargetID, inc.Region}] = inc
		case inc.TargetID == "":
			if inc.ResolvedAt == nil {
				openRegion[inc.Region] = inc
			}
			if l := latestRegion[inc.Region]; l == nil || inc.ConfirmedAt.After(l.ConfirmedAt) {
				latestRegion[inc.Region] = inc
			}
		}
	}

	// Regions, in name order so that a pass's steps have one order.
	quiet := map[string]bool{}
	for _, region := range slices.Sorted(maps.Keys(byRegion)) {
		rows := byRegion[region]
		allStale := true
		minInterval := rows[0].Interval
		var latestStale time.Time
		for _, r := range rows {
			allStale = allStale && r.StaleSince.Before(now)
			minInterval = min(minInterval, r.Interval)
			latestStale = maxTime(latestStale, r.StaleSince)
		}
		last, seen := snap.Probers[region]
		silentSince := last.Add(time.Duration(snap.StaleAfter) * minInterval)
		quiet[region] = allStale && (!seen || silentSince.Before(now))
		if !quiet[region] {
			continue
		}
		if inc := openRegion[region]; inc != nil {
			p.remind(inc, p.regionPolicies(rows))
			continue
		}
		pols := p.regionPolicies(rows)
		if len(pols) == 0 {
			continue
		}
		started := latestStale
		msg := fmt.Sprintf("no prober was ever seen in region %q; targets without data: %d", region, len(rows))
		if seen {
			started = maxTime(started, silentSince)
			msg = fmt.Sprintf("no prober of region %q has checked anything since %s; targets without data: %d",
				region, last.UTC().Format(time.RFC3339), len(rows))
		}
		inc := &incident{ID: incidentID("", region, started), Region: region, StartedAt: started, ConfirmedAt: now,
			Error: msg, Maintenance: pols.maintenance(now)}
		latestRegion[region] = inc
		p.add(inc, notify.Opened, 0, pols.channels(), inc.Maintenance)
	}
	for _, region := range slices.Sorted(maps.Keys(openRegion)) {
		if inc := openRegion[region]; !quiet[region] {
			p.resolve(inc, p.regionPolicies(byRegion[inc.Region]))
		}
	}

	// Targets.
	stale := map[pair]freshness{}
	for _, r := range snap.Rows {
		if r.StaleSince.Before(now) {
			stale[pair{r.TargetID, r.Region}] = r
		}
	}
	for _, key := range sortedPairs(stale) {
		r := stale[key]
		if inc := openTarget[key]; inc != nil {
			p.remind(inc, p.targetPolicies(r.TargetID))
			continue
		}
		pols := p.targetPolicies(r.TargetID)
		if len(pols) == 0 || quiet[r.Region] {
			continue
		}
		if reg := latestRegion[r.Region]; reg != nil && !r.StaleSince.After(reg.ConfirmedAt) &&
			(reg.ResolvedAt == nil || now.Before(reg.ResolvedAt.Add(time.Duration(snap.StaleAfter)*r.Interval))) {
			continue
		}
		since := "it was configured"
		if r.LastChecked != nil {
			since = r.LastChecked.UTC().Format(time.RFC3339)
		}
		inc := &incident{ID: incidentID(r.TargetID, r.Region, r.StaleSince), TargetID: r.TargetID, Region: r.Region,
			StartedAt: r.StaleSince, ConfirmedAt: now, URL: r.URL, Maintenance: pols.maintenance(now),
			Error: fmt.Sprintf("no check in region %q since %s (stale after %d intervals of %s)", r.Region, since, snap.StaleAfter, r.Interval)}
		p.add(inc, notify.Opened, 0, pols.channels(), inc.Maintenance)
	}
	for _, key := range sortedPairs(openTarget) {
		if _, ok := stale[key]; !ok {
			inc := openTarget[key]
			p.resolve(inc, p.targetPolicies(inc.TargetID))
		}
	}
	return p.steps, p.unknown
}

type planner struct {
	now     time.Time
	pol     Policies
	steps   []step
	unknown []unknownChannel
}

// policies are those with no_data on of an incident's targets.
type policies []targetPolicy

type targetPolicy struct {
	evaluate.Policy
	maint evaluate.Maintenance
}

func (p *planner) targetPolicies(id string) policies {
	pol, maint, ok := p.pol.Lookup(id)
	if !ok || pol.Alert == nil || !pol.Alert.NoData {
		return nil
	}
	return policies{{pol, maint}}
}

func (p *planner) regionPolicies(rows []freshness) policies {
	var out policies
	seen := map[string]bool{}
	for _, r := range rows {
		if !seen[r.TargetID] {
			seen[r.TargetID] = true
			out = append(out, p.targetPolicies(r.TargetID)...)
		}
	}
	return out
}

// channels is the union of the policies' channels, sorted.
func (ps policies) channels() []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Alert.Notify...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// reminder is the shortest positive reminder interval; 0 for none.
func (ps policies) reminder() time.Duration {
	var d time.Duration
	for _, p := range ps {
		if r := p.Alert.ReminderInterval; r > 0 && (d == 0 || r < d) {
			d = r
		}
	}
	return d
}

// maintenance is the window at that holds every policy's target, the
// first target's window's name; "" when one target is outside any (a
// region's outage matters to it).
func (ps policies) maintenance(at time.Time) string {
	name := ""
	for _, p := range ps {
		if p.maint == nil {
			return ""
		}
		m := p.maint(at)
		if m == "" {
			return ""
		}
		if name == "" {
			name = m
		}
	}
	return name
}

func (p *planner) remind(inc *incident, pols policies) {
	every := pols.reminder()
	if every <= 0 || p.now.Before(inc.LastAt.Add(every)) {
		return
	}
	p.add(inc, notify.Reminder, inc.LastSeq+1, pols.channels(), pols.maintenance(p.now))
}

// resolve resolves inc, notifying the channels of its policies now and
// every channel told of it before: a target removed since, or whose
// channels changed, leaves no receiver with an alert that never ends.
func (p *planner) resolve(inc *incident, pols policies) {
	r := p.now
	inc.ResolvedAt = &r
	names := pols.channels()
	for name := range inc.Notified {
		names = append(names, name)
	}
	slices.Sort(names)
	p.add(inc, notify.Resolved, inc.LastSeq+1, slices.Compact(names), pols.maintenance(p.now))
}

// add appends inc's transition. A transition of an incident confirmed in
// a maintenance window, or inside one itself, notifies no one; nor one
// without channels.
func (p *planner) add(inc *incident, transition string, seq int, names []string, windowNow string) {
	s := step{IncidentID: inc.ID, Transition: transition, Seq: seq, At: p.now, Region: inc.Region}
	if seq == 0 {
		s.Open = inc
	}
	switch {
	case inc.Maintenance != "":
		s.Suppressed = inc.Maintenance
	case windowNow != "":
		s.Suppressed = windowNow
	}
	if s.Suppressed == "" {
		for _, name := range names {
			typ, ok := p.pol.ChannelType(name)
			if !ok {
				typ, ok = inc.Notified[name]
			}
			if !ok {
				p.unknown = append(p.unknown, unknownChannel{Channel: name, IncidentID: inc.ID})
				continue
			}
			s.Channels = append(s.Channels, channel{name, typ})
		}
		if len(names) == 0 {
			s.Suppressed = evaluate.NoChannels
		}
	}
	s.Notification = notify.Notification{IncidentID: inc.ID, Transition: transition, Seq: seq, Kind: Kind,
		TargetID: inc.TargetID, URL: inc.URL, Regions: []string{inc.Region}, At: p.now,
		StartedAt: inc.StartedAt, ConfirmedAt: inc.ConfirmedAt, ResolvedAt: inc.ResolvedAt,
		FailureKind: Kind, Error: inc.Error}
	p.steps = append(p.steps, s)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// pair is a target and a region.
type pair struct{ target, region string }

func sortedPairs[V any](m map[pair]V) []pair {
	return slices.SortedFunc(maps.Keys(m), func(a, b pair) int {
		return cmp.Or(cmp.Compare(a.target, b.target), cmp.Compare(a.region, b.region))
	})
}
