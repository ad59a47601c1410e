package targets

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"
)

// The alerting sections of a targets file (docs/design.md, "Alerting
// sections"). The prober validates them with the rest of the file and
// ignores them; the alerter acts on them.

// AllRegions as Alert.Regions means that every region checking the target
// must agree.
const AllRegions = -1

// Alert is a target's alert policy with defaults applied. Target.Alert is
// nil when the target's alerts are off (`alert: false` or `notify: []`).
type Alert struct {
	// FailureThreshold failed checks out of the last FailureWindow checks
	// of a region confirm the region down (equal: consecutive failures).
	FailureThreshold int
	FailureWindow    int
	// SuccessThreshold consecutive successful checks recover a region.
	SuccessThreshold int
	// Regions is how many regions must be down to open an incident, or
	// AllRegions.
	Regions int
	// ReminderInterval between reminders while an incident is open; 0 for
	// none.
	ReminderInterval time.Duration
	// TLSExpiryDays opens a certificate-expiry incident this many days
	// before the certificate's NotAfter; 0 for none.
	TLSExpiryDays int
	// NoData opens a "no data" incident when a region stops checking the
	// target (issue 13); on unless the policy says `no_data: false`.
	NoData bool
	// Notify names the channels (File.Channels) to notify.
	Notify []string
}

// Channel types.
const (
	ChannelWebhook      = "webhook"
	ChannelSlack        = "slack"
	ChannelPagerDuty    = "pagerduty"
	ChannelAlertmanager = "alertmanager"
	ChannelEmail        = "email"
)

// Channel is a named receiver of notifications. Which fields apply depends
// on Type:
//   - webhook: URL, optional Secret (HMAC-SHA256 key of the signature header);
//   - slack: URL (the incoming webhook's, itself a secret);
//   - pagerduty: RoutingKey, optional URL (the Events API v2 endpoint; the
//     public one when empty);
//   - alertmanager: URL (the Alertmanager's base URL; the client posts to
//     /api/v2/alerts under it);
//   - email: SMTP (host:port), From, To, optional Username and Password,
//     StartTLS.
type Channel struct {
	Name       string
	Type       string
	URL        Secret
	Secret     Secret
	RoutingKey Secret
	SMTP       string
	From       string
	To         []string
	Username   string
	Password   Secret
	// StartTLS is "always" (the default: refuse a server without
	// STARTTLS), "opportunistic" or "never" (loopback test servers).
	StartTLS string
	// Timeout of one delivery attempt.
	Timeout time.Duration
}

// Secret is a setting that may come from the environment (`${VAR}`). Its
// String, GoString, Format, LogValue and MarshalJSON never show the value:
// a secret in a log line or an error names its variable, or shows "xxxxx".
// The value sits behind a pointer, so that even fmt's fallback for a verb
// that does not fit (%s of a struct holding a *Channel prints the fields
// raw) shows an address, not the value.
type Secret struct {
	// Ref is the environment variable the value comes from; "" for a
	// value written in the file.
	Ref string
	v   *secretData
}

type secretData struct {
	value string
	// text is the field as written, the reference in it; line is its line
	// in the file (0 when not from a file), for ResolveSecrets.
	text string
	line int
}

// NewSecret returns a secret with the given value, read from the
// environment variable ref ("" when written in the file).
func NewSecret(ref, value string) Secret { return Secret{Ref: ref, v: &secretData{value: value}} }

// Value returns the secret itself, for the one place that sends it; ""
// for a reference that File.ResolveSecrets has not resolved.
func (s Secret) Value() string {
	if s.v == nil {
		return ""
	}
	return s.v.value
}

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.Value() == "" && s.Ref == "" }

func (s Secret) String() string {
	switch {
	case s.Ref != "":
		return "${" + s.Ref + "}"
	case s.Value() != "":
		return "xxxxx"
	}
	return ""
}

// Format prints String for every verb (%d or %x of the raw value would
// show it).
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", s.String())
		return
	}
	fmt.Fprint(f, s.String())
}

func (s Secret) GoString() string             { return s.String() }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(s.String()) }
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// Maintenance is a window in which incidents of the targets it matches are
// recorded but not notified: a one-off range (From, To) or a recurring one
// (a cron schedule of starts in UTC, each lasting Duration).
type Maintenance struct {
	Name string
	// Targets and Labels select the targets: a target matches when its ID
	// is listed, or when it has every label of Labels.
	Targets []string
	Labels  map[string]string
	// Cron is the recurring start, "" for a one-off window.
	Cron     string
	Duration time.Duration
	From, To time.Time

	// sched is Cron parsed, by Parse; nil in a window built by hand.
	sched cron.Schedule
}
