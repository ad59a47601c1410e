package notify

import (
	"strconv"
	"time"
)

// Transitions of an incident.
const (
	Opened   = "opened"
	Reminder = "reminder"
	Resolved = "resolved"
)

// Notification is what every channel tells about one transition of an
// incident. The evaluator writes it (as JSON) into the outbox in the
// transition's transaction; a channel renders it for its receiver. Its JSON
// is also the generic webhook's body (docs/design.md, "Webhook delivery").
type Notification struct {
	IncidentID string `json:"incident_id"`
	// Transition is Opened, Reminder or Resolved; Seq numbers the
	// transitions of an incident from 0 (opened).
	Transition string `json:"transition"`
	Seq        int    `json:"seq"`
	// Kind is "down", "tls_expiry" or "no_data".
	Kind     string `json:"kind"`
	TargetID string `json:"target_id"`
	// URL is the target's public URL (its secret replaced by "xxxxx").
	URL     string   `json:"url"`
	Regions []string `json:"regions"`
	// At is the check time of the event that caused the transition.
	At          time.Time  `json:"at"`
	StartedAt   time.Time  `json:"started_at"`
	ConfirmedAt time.Time  `json:"confirmed_at"`
	ResolvedAt  *time.Time `json:"resolved_at"`
	// FailureKind and Error are those of the latest failed check.
	FailureKind string `json:"failure_kind"`
	Error       string `json:"error"`
	// CertNotAfter is the certificate's expiry, for kind "tls_expiry".
	CertNotAfter *time.Time `json:"cert_not_after,omitempty"`
}

// IdempotencyKey is stable per incident, transition and channel: a receiver
// that counts each key once counts each transition once, however often it
// is delivered.
func (n *Notification) IdempotencyKey(channel string) string {
	return n.IncidentID + "/" + strconv.Itoa(n.Seq) + "-" + n.Transition + "/" + channel
}
