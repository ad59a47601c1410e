package evaluate

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/alerter/internal/notify"
	"github.com/sitewatch/sitewatch/services/internal/checkevent"
	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// Incident kinds (the kind column of incidents).
const (
	KindDown      = "down"
	KindTLSExpiry = "tls_expiry"
)

// NoChannels is Transition.Suppressed when the policy names no channel.
const NoChannels = "no channels"

// Stale is Transition.Suppressed for a transition of a check evaluated
// too late to notify (Event.Stale).
const Stale = "stale"

// NothingNotified is Transition.Suppressed for the resolution of an
// incident none of whose transitions was notified.
const NothingNotified = "nothing notified before"

// Event is what the evaluator needs of one check result.
type Event struct {
	EventID   string
	TargetID  string
	URL       string // the target's public URL, its secret redacted
	Region    string // the prober's region; "" for a prober without one
	CheckedAt time.Time
	Up        bool
	// FailureKind (checkevent.KindName) and Error of a failed check.
	FailureKind string
	Error       string
	// CertNotAfter is the expiry of the certificate the check saw; zero
	// when it saw none.
	CertNotAfter time.Time
	// ScheduledAt is the check's slot (its time on the target's grid);
	// zero for events of probers older than the field.
	ScheduledAt time.Time
	// Stale is set by the caller when the check is evaluated too late for
	// its transitions to be worth notifying (a first start over a topic's
	// history, an alerter down for long): they are recorded, suppressed
	// Stale, but for the resolution of an incident whose opening was
	// notified.
	Stale bool
}

// FromCheckResult returns the Event of a CheckResult, or an error naming
// what the alerter cannot use (the recorder dead-letters such events).
func FromCheckResult(m *sitewatchv1.CheckResult) (Event, error) {
	e := Event{
		EventID:  m.GetEventId(),
		TargetID: m.GetTarget().GetId(),
		URL:      m.GetTarget().GetUrl(),
		Region:   m.GetProber().GetRegion(),
		Error:    m.GetError(),
	}
	var errs []error
	if e.EventID == "" {
		errs = append(errs, errors.New("event_id is empty"))
	}
	if e.TargetID == "" {
		errs = append(errs, errors.New("target.id is empty"))
	}
	if m.GetStartedAt() == nil {
		errs = append(errs, errors.New("started_at is missing"))
	} else if m.GetStartedAt().CheckValid() != nil {
		// Not the error's text: protobuf-go varies it on purpose.
		errs = append(errs, errors.New("started_at is not a valid timestamp"))
	} else {
		e.CheckedAt = m.GetStartedAt().AsTime()
	}
	switch m.GetOutcome() {
	case sitewatchv1.Outcome_OUTCOME_UP:
		e.Up = true
	case sitewatchv1.Outcome_OUTCOME_DOWN:
		e.FailureKind = checkevent.KindName(m.GetFailureKind())
	default:
		errs = append(errs, fmt.Errorf("outcome %s", m.GetOutcome()))
	}
	if ts := m.GetTlsCertExpiresAt(); ts != nil && ts.CheckValid() == nil {
		e.CertNotAfter = ts.AsTime()
	}
	if ts := m.GetScheduledAt(); ts != nil && ts.CheckValid() == nil {
		e.ScheduledAt = ts.AsTime()
	}
	if len(errs) > 0 {
		return Event{}, fmt.Errorf("event %q: %w", e.EventID, errors.Join(errs...))
	}
	return e, nil
}

// Policy is a target's alert policy and what the quorum needs of the
// target.
type Policy struct {
	Alert *targets.Alert
	// Regions lists the regions whose probers check the target; nil for
	// every region (then AllRegions counts the regions that reported).
	Regions []string
}

// Maintenance names the maintenance window that covers the target at a
// check's time, or returns "" when none does. nil means none ever does.
type Maintenance func(at time.Time) string

// State is one target's state: JSON-serializable, so that it is saved with
// the offsets of the events it has applied.
type State struct {
	Regions map[string]*Region `json:"regions,omitempty"`
	// Open holds the open incidents by kind.
	Open map[string]*Incident `json:"open,omitempty"`
	// CertRenewed counts the checks in a row, of any region, whose
	// certificate does not expire within the warning: SuccessThreshold of
	// them resolve a certificate-expiry incident.
	CertRenewed int `json:"cert_renewed,omitempty"`
}

// Region is the state of one region of a target.
type Region struct {
	// Window holds the region's last checks (at most FailureWindow), the
	// oldest first; it starts empty when the region recovers.
	Window []Check `json:"window,omitempty"`
	// Successes counts the consecutive successful checks.
	Successes int  `json:"successes,omitempty"`
	Down      bool `json:"down,omitempty"`
	// FirstFail is, while the region is down, the earliest failing check
	// of the window that confirmed it; after an incident that it was part
	// of resolved while it stayed down, its next failing check (nil until
	// then).
	FirstFail *Check `json:"first_fail,omitempty"`
	// Last and LastEventID are the latest check applied.
	Last        time.Time `json:"last"`
	LastEventID string    `json:"last_event_id"`
	LastUp      bool      `json:"last_up,omitempty"`
	// LastSlot is the slot of the latest check applied that had one.
	LastSlot time.Time `json:"last_slot,omitzero"`
}

// Check is one check of a region's window.
type Check struct {
	At          time.Time `json:"at"`
	EventID     string    `json:"event_id"`
	Up          bool      `json:"up,omitempty"`
	FailureKind string    `json:"failure_kind,omitempty"`
	Error       string    `json:"error,omitempty"`
}

// Incident is an incident as the incidents table holds it, plus what the
// evaluator keeps while it is open.
type Incident struct {
	ID               string     `json:"id"`
	TargetID         string     `json:"target_id"`
	Kind             string     `json:"kind"`
	URL              string     `json:"url"`
	StartedAt        time.Time  `json:"started_at"`
	FirstEventID     string     `json:"first_event_id"`
	ConfirmedAt      time.Time  `json:"confirmed_at"`
	ResolvedAt       *time.Time `json:"resolved_at,omitempty"`
	Regions          []string   `json:"regions"`
	FirstFailureKind string     `json:"first_failure_kind"`
	FirstError       string     `json:"first_error"`
	LastFailureKind  string     `json:"last_failure_kind"`
	LastError        string     `json:"last_error"`
	LastFailureAt    time.Time  `json:"last_failure_at"`
	// Maintenance names the window the incident was confirmed in: none of
	// its transitions notifies.
	Maintenance  string     `json:"maintenance,omitempty"`
	CertNotAfter *time.Time `json:"cert_not_after,omitempty"`

	// Seq is the sequence number of its latest transition.
	Seq int `json:"seq"`
	// LastNotice is the check time of its latest opened or reminder
	// transition, from which the next reminder is due.
	LastNotice time.Time `json:"last_notice"`
	// Flaps counts the checks, while it was open, that failed right after
	// a successful check of the same region.
	Flaps int `json:"flaps,omitempty"`
	// Unnotified is set while none of its transitions went to channels:
	// its resolution then goes to none (a lone "resolved"); otherwise to
	// them whatever window or delay, or receivers would keep the alert
	// open. (Inverted so that states saved before the field notify.)
	Unnotified bool `json:"unnotified,omitempty"`
}

// TimeToDetect is how long the incident took to be confirmed.
func (inc *Incident) TimeToDetect() time.Duration { return inc.ConfirmedAt.Sub(inc.StartedAt) }

// Transition is one step of an incident's timeline.
type Transition struct {
	IncidentID string
	Seq        int
	Transition string // notify.Opened, notify.Reminder or notify.Resolved
	At         time.Time
	EventID    string
	Regions    []string
	// Suppressed is why no channel is notified: a maintenance window's
	// name, or NoChannels; "" when Channels are.
	Suppressed string
	// Channels are the names of the channels to notify, in the policy's
	// order; none when Suppressed.
	Channels     []string
	Notification notify.Notification
}

// Result is what one event did.
type Result struct {
	// Ignored is set for an event at or before its region's latest
	// applied check: it changed nothing.
	Ignored bool
	// DuplicateSlot is set, with Ignored, for an event of a slot the
	// region has counted already (two probers checked it).
	DuplicateSlot bool
	// Transitions caused by the event, in order.
	Transitions []Transition
	// Changed holds a copy of each incident whose row the event changed
	// (opened, resolved, its regions or its last failure).
	Changed []Incident
}

// Merge adds the incidents changed to list, each incident once with its
// latest copy, in the order incidents first changed (a resolved incident
// before the one that replaces it); index maps IDs to their places in
// list and is kept up to date.
func Merge(list []Incident, index map[string]int, changed []Incident) []Incident {
	for _, inc := range changed {
		if i, ok := index[inc.ID]; ok {
			list[i] = inc
		} else {
			index[inc.ID] = len(list)
			list = append(list, inc)
		}
	}
	return list
}

// IncidentID is the deterministic ID of an incident of target and kind
// whose first failing check is the event firstEventID.
func IncidentID(target, kind, firstEventID string) string {
	sum := sha256.Sum256([]byte(target + "\x00" + kind + "\x00" + firstEventID))
	return hex.EncodeToString(sum[:16])
}

// Apply applies ev, an event of the target whose state s is, under policy
// p, and returns what it did; s is updated in place. maint may be nil.
// p.Alert must not be nil: a target whose alerts are off is not evaluated.
func (s *State) Apply(ev Event, p Policy, maint Maintenance) Result {
	a := p.Alert
	if s.Regions == nil {
		s.Regions = map[string]*Region{}
	}
	if s.Open == nil {
		s.Open = map[string]*Incident{}
	}
	r := s.Regions[ev.Region]
	if r == nil {
		r = &Region{}
		s.Regions[ev.Region] = r
	} else if ev.CheckedAt.Before(r.Last) || (ev.CheckedAt.Equal(r.Last) && ev.EventID == r.LastEventID) {
		return Result{Ignored: true}
	} else if !ev.ScheduledAt.IsZero() && !r.LastSlot.IsZero() && !ev.ScheduledAt.After(r.LastSlot) {
		// A slot already counted: two probers of the region checked it
		// (a fleet rebalance). One result per slot counts, as in
		// check_results, where the recorder keeps one.
		return Result{Ignored: true, DuplicateSlot: true}
	}
	e := evaluation{s: s, ev: ev, p: p, maint: maint, changed: map[string]bool{}}
	wasUp, seen := r.LastUp, r.LastEventID != ""
	r.Last, r.LastEventID, r.LastUp = ev.CheckedAt, ev.EventID, ev.Up
	if !ev.ScheduledAt.IsZero() {
		r.LastSlot = ev.ScheduledAt
	}
	if !ev.Up && seen && wasUp {
		for _, inc := range s.Open {
			inc.Flaps++
		}
	}
	r.observe(ev, a)

	e.down()
	e.tlsExpiry()
	// Reminders of the incidents this event did not otherwise move.
	for _, kind := range []string{KindDown, KindTLSExpiry} {
		inc := s.Open[kind]
		if inc == nil || e.moved[kind] {
			continue
		}
		switch {
		case inc.Maintenance != "" && inc.Unnotified && len(a.Notify) > 0 && !ev.Stale && e.window() == "":
			// Confirmed in a window that has ended, and still open: the
			// outage outlasted the maintenance, so the receivers are told
			// now, whatever the reminder interval.
		case a.ReminderInterval > 0 && !ev.CheckedAt.Before(inc.LastNotice.Add(a.ReminderInterval)):
		default:
			continue
		}
		e.transition(inc, notify.Reminder)
		inc.LastNotice = ev.CheckedAt
	}
	for _, kind := range slices.Sorted(maps.Keys(e.changed)) {
		if inc := e.incident(kind); inc != nil {
			e.res.Changed = append(e.res.Changed, inc.clone())
		}
	}
	return e.res
}

// observe adds the check to the region's window and moves the region down
// or up.
func (r *Region) observe(ev Event, a *targets.Alert) {
	c := Check{At: ev.CheckedAt, EventID: ev.EventID, Up: ev.Up}
	if !ev.Up {
		c.FailureKind, c.Error = ev.FailureKind, ev.Error
	}
	window := max(a.FailureWindow, a.FailureThreshold, 1)
	r.Window = append(r.Window, c)
	if n := len(r.Window); n > window {
		r.Window = slices.Delete(r.Window, 0, n-window)
	}
	if ev.Up {
		r.Successes++
	} else {
		r.Successes = 0
	}
	if r.Down && r.FirstFail == nil && !ev.Up {
		// The first failure since an incident it was part of resolved.
		r.FirstFail = &c
	}
	if !r.Down {
		fails := 0
		var first *Check
		for i := range r.Window {
			if !r.Window[i].Up {
				if first == nil {
					first = &r.Window[i]
				}
				fails++
			}
		}
		if fails >= max(a.FailureThreshold, 1) {
			f := *first
			r.Down, r.FirstFail = true, &f
		}
		return
	}
	if r.Successes >= max(a.SuccessThreshold, 1) {
		// A fresh window: after a recovery only new failures count, so a
		// flapping site does not go down again at its next failure.
		r.Down, r.FirstFail, r.Window = false, nil, nil
	}
}

// evaluation is the work of one Apply.
type evaluation struct {
	s       *State
	ev      Event
	p       Policy
	maint   Maintenance
	res     Result
	changed map[string]bool // kinds of the incidents whose rows changed
	moved   map[string]bool // kinds of the incidents with a transition
	// resolved holds the incidents resolved by this event (no longer in
	// s.Open), by kind.
	resolved map[string]*Incident
}

func (e *evaluation) incident(kind string) *Incident {
	if inc := e.s.Open[kind]; inc != nil {
		return inc
	}
	return e.resolved[kind]
}

// down opens, updates or resolves the target's "down" incident.
func (e *evaluation) down() {
	ev, s := e.ev, e.s
	known := e.p.Regions
	if len(known) == 0 {
		known = slices.Collect(maps.Keys(s.Regions))
	}
	slices.Sort(known)
	var down []string
	for _, name := range known {
		if r := s.Regions[name]; r != nil && r.Down {
			down = append(down, name)
		}
	}
	need := e.p.Alert.Regions
	if need == targets.AllRegions {
		need = len(known)
	}
	need = max(need, 1)
	inc := s.Open[KindDown]
	var first *Check
	for _, name := range down {
		f := s.Regions[name].FirstFail
		if f == nil {
			continue // down, but no failure since the last incident
		}
		if first == nil || f.At.Before(first.At) || (f.At.Equal(first.At) && f.EventID < first.EventID) {
			first = f
		}
	}
	switch {
	// first is nil when every down region stayed down through the last
	// incident and has not failed since (a reload lowered the quorum):
	// the next incident starts at a failure, which opens it.
	case inc == nil && len(down) >= need && first != nil:
		// Never before it started: after a reload that lowered the
		// quorum, a lagging region's event can be older than the failures.
		confirmed := ev.CheckedAt
		if confirmed.Before(first.At) {
			confirmed = first.At
		}
		inc = &Incident{
			ID:               IncidentID(ev.TargetID, KindDown, first.EventID),
			TargetID:         ev.TargetID,
			Kind:             KindDown,
			URL:              ev.URL,
			StartedAt:        first.At,
			FirstEventID:     first.EventID,
			ConfirmedAt:      confirmed,
			Regions:          down,
			FirstFailureKind: first.FailureKind,
			FirstError:       first.Error,
			LastFailureKind:  first.FailureKind,
			LastError:        first.Error,
			LastFailureAt:    first.At,
			LastNotice:       confirmed,
		}
		e.failed(inc)
		e.open(inc)
	case inc != nil && len(down) < need:
		e.failed(inc)
		e.resolve(inc)
		// A region still down starts the next incident from its next
		// failure: the failures of this one are not the next one's, nor
		// is its first event (its ID).
		for _, r := range s.Regions {
			if r.Down {
				r.FirstFail = nil
			}
		}
	case inc != nil:
		if e.failed(inc) {
			e.changed[KindDown] = true
		}
		if merged := union(inc.Regions, down); len(merged) != len(inc.Regions) {
			inc.Regions = merged
			e.changed[KindDown] = true
		}
	}
}

// failed records a failed check as the incident's last failure, and
// reports whether it was one.
func (e *evaluation) failed(inc *Incident) bool {
	if e.ev.Up || e.ev.CheckedAt.Before(inc.LastFailureAt) {
		return false
	}
	inc.LastFailureKind, inc.LastError, inc.LastFailureAt = e.ev.FailureKind, e.ev.Error, e.ev.CheckedAt
	return true
}

// tlsExpiry opens or resolves the target's certificate-expiry incident.
func (e *evaluation) tlsExpiry() {
	ev, s := e.ev, e.s
	days := e.p.Alert.TLSExpiryDays
	inc := s.Open[KindTLSExpiry]
	if days <= 0 {
		if inc != nil {
			e.resolve(inc) // the warning was switched off
		}
		return
	}
	if ev.CertNotAfter.IsZero() {
		return // a check that saw no certificate tells nothing
	}
	expiring := ev.CertNotAfter.Before(ev.CheckedAt.Add(time.Duration(days) * 24 * time.Hour))
	if expiring {
		s.CertRenewed = 0
	} else {
		s.CertRenewed++
	}
	switch {
	case expiring && inc == nil:
		notAfter := ev.CertNotAfter
		msg := "certificate expires at " + notAfter.UTC().Format(time.RFC3339)
		inc = &Incident{
			ID:               IncidentID(ev.TargetID, KindTLSExpiry, ev.EventID),
			TargetID:         ev.TargetID,
			Kind:             KindTLSExpiry,
			URL:              ev.URL,
			StartedAt:        ev.CheckedAt,
			FirstEventID:     ev.EventID,
			ConfirmedAt:      ev.CheckedAt,
			Regions:          []string{ev.Region},
			FirstFailureKind: KindTLSExpiry,
			FirstError:       msg,
			LastFailureKind:  KindTLSExpiry,
			LastError:        msg,
			LastFailureAt:    ev.CheckedAt,
			CertNotAfter:     &notAfter,
			LastNotice:       ev.CheckedAt,
		}
		e.open(inc)
	case !expiring && inc != nil && s.CertRenewed >= max(e.p.Alert.SuccessThreshold, 1):
		// Not at the first: backends (or regions' edges) that serve the
		// old and the renewed certificate in turn would open and resolve
		// an incident at every check.
		e.resolve(inc)
	case expiring && !inc.CertNotAfter.Equal(ev.CertNotAfter):
		notAfter := ev.CertNotAfter
		inc.CertNotAfter = &notAfter
		inc.LastError = "certificate expires at " + notAfter.UTC().Format(time.RFC3339)
		inc.LastFailureAt = ev.CheckedAt
		if r := union(inc.Regions, []string{ev.Region}); len(r) != len(inc.Regions) {
			inc.Regions = r
		}
		e.changed[KindTLSExpiry] = true
	}
}

func (e *evaluation) open(inc *Incident) {
	inc.Maintenance = e.window()
	e.s.Open[inc.Kind] = inc
	inc.Seq = -1
	e.transition(inc, notify.Opened)
}

func (e *evaluation) resolve(inc *Incident) {
	// An event of one region may carry an earlier time than the check of
	// another region that confirmed the incident: the resolution is never
	// before the confirmation.
	at := e.ev.CheckedAt
	if at.Before(inc.ConfirmedAt) {
		at = inc.ConfirmedAt
	}
	inc.ResolvedAt = &at
	delete(e.s.Open, inc.Kind)
	if e.resolved == nil {
		e.resolved = map[string]*Incident{}
	}
	e.resolved[inc.Kind] = inc
	e.transition(inc, notify.Resolved)
}

// window names the maintenance window the event's check is in, or "".
func (e *evaluation) window() string {
	if e.maint == nil {
		return ""
	}
	return e.maint(e.ev.CheckedAt)
}

// transition appends the incident's next transition and its notification.
func (e *evaluation) transition(inc *Incident, kind string) {
	inc.Seq++
	e.changed[inc.Kind] = true
	if e.moved == nil {
		e.moved = map[string]bool{}
	}
	e.moved[inc.Kind] = true
	at := e.ev.CheckedAt
	if at.Before(inc.ConfirmedAt) {
		at = inc.ConfirmedAt
	}
	t := Transition{
		IncidentID: inc.ID,
		Seq:        inc.Seq,
		Transition: kind,
		At:         at,
		EventID:    e.ev.EventID,
		Regions:    slices.Clone(inc.Regions),
	}
	window := e.window()
	switch {
	case kind == notify.Resolved && !inc.Unnotified && len(e.p.Alert.Notify) > 0:
		// Receivers that were told it opened would keep the alert open.
		t.Channels = slices.Clone(e.p.Alert.Notify)
	case window != "":
		t.Suppressed = window
	case inc.Maintenance != "" && inc.Unnotified && kind != notify.Reminder:
		// Confirmed in a window and never notified: neither is its
		// resolution. (A reminder after the window tells the receivers.)
		t.Suppressed = inc.Maintenance
	case len(e.p.Alert.Notify) == 0:
		t.Suppressed = NoChannels
	case e.ev.Stale:
		t.Suppressed = Stale
	case kind == notify.Resolved:
		t.Suppressed = NothingNotified
	default:
		t.Channels = slices.Clone(e.p.Alert.Notify)
	}
	inc.Unnotified = (kind == notify.Opened || inc.Unnotified) && len(t.Channels) == 0
	t.Notification = notify.Notification{
		IncidentID:  inc.ID,
		Transition:  kind,
		Seq:         inc.Seq,
		Kind:        inc.Kind,
		TargetID:    inc.TargetID,
		URL:         inc.URL,
		Regions:     slices.Clone(inc.Regions),
		At:          at,
		StartedAt:   inc.StartedAt,
		ConfirmedAt: inc.ConfirmedAt,
		FailureKind: inc.LastFailureKind,
		Error:       inc.LastError,
	}
	if inc.ResolvedAt != nil {
		ra := *inc.ResolvedAt
		t.Notification.ResolvedAt = &ra
	}
	if inc.CertNotAfter != nil {
		na := *inc.CertNotAfter
		t.Notification.CertNotAfter = &na
	}
	e.res.Transitions = append(e.res.Transitions, t)
}

// Clone returns a deep copy of s.
func (s *State) Clone() *State {
	c := &State{CertRenewed: s.CertRenewed}
	if s.Regions != nil {
		c.Regions = make(map[string]*Region, len(s.Regions))
		for name, r := range s.Regions {
			rc := *r
			rc.Window = slices.Clone(r.Window)
			if r.FirstFail != nil {
				f := *r.FirstFail
				rc.FirstFail = &f
			}
			c.Regions[name] = &rc
		}
	}
	if s.Open != nil {
		c.Open = make(map[string]*Incident, len(s.Open))
		for kind, inc := range s.Open {
			ic := inc.clone()
			c.Open[kind] = &ic
		}
	}
	return c
}

func (inc *Incident) clone() Incident {
	c := *inc
	c.Regions = slices.Clone(inc.Regions)
	if inc.ResolvedAt != nil {
		r := *inc.ResolvedAt
		c.ResolvedAt = &r
	}
	if inc.CertNotAfter != nil {
		n := *inc.CertNotAfter
		c.CertNotAfter = &n
	}
	return c
}

// union returns the sorted union of two sorted lists.
func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if _, found := slices.BinarySearch(out, s); !found {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, cmp.Compare)
	return out
}
