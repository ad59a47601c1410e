package policy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/sitewatch/sitewatch/services/alerter/internal/evaluate"
	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// Set is the policies, windows and channels at one time. Do not change it
// once made: readers share it.
type Set struct {
	targets     map[string]*targets.Target
	channels    map[string]*targets.Channel
	maintenance []*targets.Maintenance
}

// FromFile returns the set of a targets file: its targets, channels and
// maintenance windows.
func FromFile(f *targets.File) *Set {
	s := &Set{targets: map[string]*targets.Target{}, channels: map[string]*targets.Channel{}, maintenance: f.Maintenance}
	for _, t := range f.Targets {
		s.targets[t.ID] = t
	}
	for _, c := range f.Channels {
		s.channels[c.Name] = c
	}
	return s
}

// WithTargets returns a set with the channels and windows of s and the
// targets ts (fleet mode: from the targets topic).
func (s *Set) WithTargets(ts map[string]*targets.Target) *Set {
	return &Set{targets: ts, channels: s.channels, maintenance: s.maintenance}
}

// WithFile returns a set with the targets of s and the channels and
// windows of f (fleet mode: the file changed).
func (s *Set) WithFile(f *targets.File) *Set {
	n := FromFile(f)
	n.targets = s.targets
	return n
}

// Targets is the number of targets.
func (s *Set) Targets() int { return len(s.targets) }

// Target returns the target with the ID, or nil.
func (s *Set) Target(id string) *targets.Target { return s.targets[id] }

// Lookup returns the policy of the target with the ID, and its
// maintenance windows; false when the target is unknown or its alerts
// are off.
func (s *Set) Lookup(id string) (evaluate.Policy, evaluate.Maintenance, bool) {
	t := s.targets[id]
	if t == nil || t.Alert == nil {
		return evaluate.Policy{}, nil, false
	}
	var windows []*targets.Maintenance
	for _, m := range s.maintenance {
		if m.Matches(t) {
			windows = append(windows, m)
		}
	}
	var maint evaluate.Maintenance
	if len(windows) > 0 {
		maint = func(at time.Time) string {
			for _, m := range windows {
				if m.Active(at) {
					return m.Name
				}
			}
			return ""
		}
	}
	return evaluate.Policy{Alert: t.Alert, Regions: t.Regions}, maint, true
}

// Channel returns the channel called name, or nil.
func (s *Set) Channel(name string) *targets.Channel { return s.channels[name] }

// ChannelType returns the type of the channel called name.
func (s *Set) ChannelType(name string) (string, bool) {
	c := s.channels[name]
	if c == nil {
		return "", false
	}
	return c.Type, true
}

// Channels returns every channel.
func (s *Set) Channels() []*targets.Channel {
	out := make([]*targets.Channel, 0, len(s.channels))
	for _, c := range s.channels {
		out = append(out, c)
	}
	return out
}

// Source holds the current set; safe for concurrent use.
type Source struct {
	p  atomic.Pointer[Set]
	mu sync.Mutex // serializes Update
}

// NewSource returns a source holding s.
func NewSource(s *Set) *Source {
	src := &Source{}
	src.p.Store(s)
	return src
}

// Load returns the current set.
func (src *Source) Load() *Set { return src.p.Load() }

// Store makes s the current set.
func (src *Source) Store(s *Set) { src.p.Store(s) }

// Update makes fn's set from the current one the current set: the
// targets topic and the file change parts of it independently.
func (src *Source) Update(fn func(*Set) *Set) {
	src.mu.Lock()
	defer src.mu.Unlock()
	src.p.Store(fn(src.p.Load()))
}
