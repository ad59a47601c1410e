package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// Alertmanager posts the notification as an alert to a Prometheus
// Alertmanager's API v2 (POST /api/v2/alerts, the postableAlerts of its
// OpenAPI spec, api/v2/openapi.yaml). The incident ID is a label, so the
// Alertmanager deduplicates each incident's alert by it: posting the same
// transition twice changes nothing.
//
// The body is written here, not with the Alertmanager's generated go-swagger
// client: it is a list of four plain fields, while the client would bring
// the Alertmanager module and the go-openapi runtime into the alerter.
type Alertmanager struct {
	ch     targets.Channel
	url    string
	client *http.Client
	// hold is how long an open incident's alert stays firing without a
	// later notification (see Send).
	hold time.Duration
}

// AlertmanagerHold is how long an open incident's alert stays firing after
// its last notification. The Alertmanager resolves an alert by itself at
// its endsAt, or resolve_timeout (5 min) after it was posted when it has
// none; Prometheus re-posts its alerts every minute, sitewatch posts only
// transitions. Reminders renew it, and the resolved transition ends it.
const AlertmanagerHold = 24 * time.Hour

// NewAlertmanager returns the sender of an alertmanager channel.
func NewAlertmanager(ch targets.Channel, opts Options) (*Alertmanager, error) {
	client, err := httpClient(ch, opts)
	if err != nil {
		return nil, err
	}
	return &Alertmanager{
		ch:     ch,
		url:    strings.TrimSuffix(ch.URL.Value(), "/") + "/api/v2/alerts",
		client: client,
		hold:   AlertmanagerHold,
	}, nil
}

// postableAlert is a postableAlert of the Alertmanager's API v2.
type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// alertnames by incident kind.
var alertnames = map[string]string{
	"down":       "SitewatchDown",
	"tls_expiry": "SitewatchCertificateExpiry",
	"no_data":    "SitewatchNoData",
}

// Severity of an incident's kind, as PagerDuty and the Alertmanager's
// severity label name it.
func severity(kind string) string {
	if kind == "down" {
		return "critical"
	}
	return "warning"
}

func (a *Alertmanager) alert(n *Notification, key string) postableAlert {
	name := alertnames[n.Kind]
	if name == "" {
		name = "Sitewatch"
	}
	labels := map[string]string{
		"alertname":   name,
		"incident_id": n.IncidentID,
		"kind":        n.Kind,
		"severity":    severity(n.Kind),
	}
	if n.TargetID != "" {
		labels["target_id"] = n.TargetID
	} else {
		labels["regions"] = strings.Join(n.Regions, ",")
	}
	annotations := map[string]string{
		"summary":         summary(n),
		"transition":      n.Transition,
		"idempotency_key": key,
		"regions":         strings.Join(n.Regions, ","),
	}
	for k, v := range map[string]string{"url": n.URL, "failure_kind": n.FailureKind, "error": n.Error} {
		if v != "" {
			annotations[k] = v
		}
	}
	al := postableAlert{Labels: labels, Annotations: annotations, StartsAt: n.StartedAt.UTC()}
	if n.Transition == Resolved && n.ResolvedAt != nil {
		al.EndsAt = n.ResolvedAt.UTC()
	} else {
		al.EndsAt = n.At.Add(a.hold).UTC()
	}
	return al
}

func (a *Alertmanager) Send(ctx context.Context, n *Notification, key string) error {
	body, err := json.Marshal([]postableAlert{a.alert(n, key)})
	if err != nil {
		return fail(a.ch, true, err)
	}
	header := http.Header{}
	header.Set("Content-Type", "application/json")
	return postJSON(ctx, a.client, a.ch, a.url, header, body)
}
