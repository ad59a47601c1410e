package notify

import (
	"context"
	"errors"
	"net/http"

	"github.com/slack-go/slack"

	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// Slack posts the notification to a Slack incoming webhook
// (https://api.slack.com/messaging/webhooks) with slack-go's PostWebhook: a
// text (the summary, also what notifications and old clients show) and
// blocks with the details. Slack's incoming webhooks take no idempotency
// key; the incident ID and transition are in the message for a person to
// recognise a repeat.
type Slack struct {
	ch     targets.Channel
	client *http.Client
}

// NewSlack returns the sender of a slack channel.
func NewSlack(ch targets.Channel, opts Options) (*Slack, error) {
	client, err := httpClient(ch, opts)
	if err != nil {
		return nil, err
	}
	return &Slack{ch: ch, client: client}, nil
}

func slackMessage(n *Notification, key string) *slack.WebhookMessage {
	text := summary(n)
	var fields []*slack.TextBlockObject
	for _, d := range details(n) {
		if d[0] == "Incident" || d[0] == "Error" {
			continue // in the context block and the text
		}
		fields = append(fields, slack.NewTextBlockObject(slack.MarkdownType, "*"+d[0]+"*\n"+slackEscape(d[1]), false, false))
	}
	if len(fields) > 10 { // Slack's limit of a section's fields
		fields = fields[:10]
	}
	return &slack.WebhookMessage{
		// The text is mrkdwn too, and what notifications show: unescaped,
		// a site's error could ping a channel (<!channel>) or hide a link.
		Text: slackEscape(text),
		Blocks: &slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*"+slackEscape(text)+"*", false, false), fields, nil),
			slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType,
				"incident `"+slackEscape(n.IncidentID)+"` · "+slackEscape(key), false, false)),
		}},
	}
}

// slackEscape escapes the three characters Slack's mrkdwn gives a meaning
// (https://api.slack.com/reference/surfaces/formatting#escaping).
func slackEscape(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '&':
			out = append(out, "&amp;"...)
		case '<':
			out = append(out, "&lt;"...)
		case '>':
			out = append(out, "&gt;"...)
		default:
			out = append(out, s[i])
		}
	}
	return string(out)
}

func (s *Slack) Send(ctx context.Context, n *Notification, key string) error {
	ctx, cancel := attempt(ctx, s.ch)
	defer cancel()
	err := slack.PostWebhookCustomHTTPContext(ctx, s.ch.URL.Value(), s.client, slackMessage(n, key))
	if err == nil {
		return nil
	}
	var status slack.StatusCodeError
	var limited *slack.RateLimitedError
	switch {
	case errors.As(err, &status):
		return fail(s.ch, permanentStatus(status.Code), err)
	case errors.As(err, &limited):
		e := fail(s.ch, false, err)
		e.RetryAfter = limited.RetryAfter
		return e
	}
	return fail(s.ch, false, err)
}
