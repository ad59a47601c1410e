package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/PagerDuty/go-pagerduty"

	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// PagerDuty sends the notification as an event of PagerDuty's Events API v2
// (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/) with
// go-pagerduty: "trigger" for opened and reminder, "resolve" for resolved,
// with the incident ID as dedup_key, so PagerDuty keeps one alert per
// incident however often a transition is delivered.
type PagerDuty struct {
	ch     targets.Channel
	client *pagerduty.Client
}

// PagerDutyEndpoint is the Events API's base URL when a channel sets none.
const PagerDutyEndpoint = "https://events.pagerduty.com"

// NewPagerDuty returns the sender of a pagerduty channel. Its URL, when set,
// is the Events API's base URL or its /v2/enqueue URL.
func NewPagerDuty(ch targets.Channel, opts Options) (*PagerDuty, error) {
	if ch.RoutingKey.Value() == "" {
		return nil, fmt.Errorf("pagerduty channel %s: no routing_key", ch.Name)
	}
	endpoint := PagerDutyEndpoint
	if u := ch.URL.Value(); u != "" {
		endpoint = strings.TrimSuffix(strings.TrimSuffix(u, "/"), "/v2/enqueue")
	}
	// The Events API authenticates by the routing key in the body: the
	// client's API token stays empty.
	client := pagerduty.NewClient("", pagerduty.WithV2EventsAPIEndpoint(endpoint))
	client.HTTPClient = noRedirects(opts.HTTPClient)
	return &PagerDuty{ch: ch, client: client}, nil
}

func pagerDutyEvent(n *Notification, routingKey string) *pagerduty.V2Event {
	action := "trigger"
	if n.Transition == Resolved {
		action = "resolve"
	}
	source := n.URL
	if source == "" {
		source = n.TargetID
	}
	if source == "" {
		source = "sitewatch region " + strings.Join(n.Regions, ",")
	}
	e := &pagerduty.V2Event{
		RoutingKey: routingKey,
		Action:     action,
		DedupKey:   n.IncidentID,
		Client:     "sitewatch",
	}
	// A resolve event needs no payload; PagerDuty ignores one.
	if action == "trigger" {
		e.Payload = &pagerduty.V2Payload{
			Summary:   summary(n),
			Source:    source,
			Severity:  severity(n.Kind),
			Timestamp: stamp(n.At),
			Component: n.TargetID,
			Class:     n.Kind,
			Details:   n,
		}
	}
	return e
}

func (p *PagerDuty) Send(ctx context.Context, n *Notification, _ string) error {
	ctx, cancel := attempt(ctx, p.ch)
	defer cancel()
	_, err := p.client.ManageEventWithContext(ctx, pagerDutyEvent(n, p.ch.RoutingKey.Value()))
	if err == nil {
		return nil
	}
	var apiErr pagerduty.APIError
	if errors.As(err, &apiErr) {
		return fail(p.ch, permanentStatus(apiErr.StatusCode), err)
	}
	return fail(p.ch, false, err)
}
