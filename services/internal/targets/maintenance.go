package targets

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Matches reports whether the window covers t: its ID is listed, or it has
// every label of the window's (a window with both covers either).
func (m *Maintenance) Matches(t *Target) bool {
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

// Active reports whether the window is open at the instant at: From <= at <
// To for a one-off window; for a recurring one, whether a start s of the
// schedule has s <= at < s+Duration. A window whose cron does not parse
// (built by hand, not by Parse) is never active.
func (m *Maintenance) Active(at time.Time) bool {
	if m.Cron == "" {
		return !at.Before(m.From) && at.Before(m.To)
	}
	sched := m.sched
	if sched == nil {
		var err error
		if sched, err = parseCron(m.Cron); err != nil {
			return false
		}
	}
	if m.Duration <= 0 {
		return false
	}
	// The first start after at-Duration is the only one that can still be
	// open at at (Next is strictly after its argument, so a window ending
	// exactly at at is closed).
	s := sched.Next(at.UTC().Add(-m.Duration))
	return !s.IsZero() && !s.After(at)
}

// MaintenanceAt returns the first window of the file that covers t and is
// open at the instant at, or nil.
func (f *File) MaintenanceAt(t *Target, at time.Time) *Maintenance {
	for _, m := range f.Maintenance {
		if m.Matches(t) && m.Active(at) {
			return m
		}
	}
	return nil
}

// Channel returns the channel called name, or nil.
func (f *File) Channel(name string) *Channel {
	for _, c := range f.Channels {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// ResolveSecrets reads the `${VAR}` references of the channels with getenv
// (os.Getenv) and sets their values. Parse checks only how a reference is
// written, so that a prober, which sends no notification, accepts a file
// whose secrets only the alerter has. The error joins one error per unset
// variable (or per URL that the variable makes invalid), as FILE:LINE:
// channel "NAME": FIELD: message; none shows a value. An empty variable
// counts as unset.
func (f *File) ResolveSecrets(getenv func(string) string) error {
	var errs []error
	for _, c := range f.Channels {
		for _, s := range []struct {
			field  string
			secret *Secret
			isURL  bool
		}{{"url", &c.URL, true}, {"secret", &c.Secret, false}, {"routing_key", &c.RoutingKey, false}, {"password", &c.Password, false}} {
			if s.secret.Ref == "" {
				continue
			}
			d := s.secret.v
			if d == nil { // built by hand: the reference is the whole value
				d = &secretData{text: "${" + s.secret.Ref + "}"}
				s.secret.v = d
			}
			at := f.Path
			if d.line > 0 {
				at = fmt.Sprintf("%s:%d", f.Path, d.line)
			}
			v := getenv(s.secret.Ref)
			if v == "" {
				errs = append(errs, fmt.Errorf("%s: channel %q: %s: ${%s} is not set", at, c.Name, s.field, s.secret.Ref))
				continue
			}
			text := d.text
			if text == "" {
				text = "${" + s.secret.Ref + "}"
			}
			value := strings.Replace(text, "${"+s.secret.Ref+"}", v, 1)
			if s.isURL {
				if msg := urlProblem(value); msg != "" {
					errs = append(errs, fmt.Errorf("%s: channel %q: %s: with ${%s} set: %s", at, c.Name, s.field, s.secret.Ref, msg))
					continue
				}
			}
			d.value = value
		}
	}
	return errors.Join(errs...)
}
