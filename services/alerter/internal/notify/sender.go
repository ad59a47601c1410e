package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// Sender delivers a notification to one channel. idempotencyKey is the
// outbox row's (Notification.IdempotencyKey of the channel): a receiver that
// counts each key once counts each transition once, however often a sender
// retries. A failed delivery returns an *Error.
type Sender interface {
	Send(ctx context.Context, n *Notification, idempotencyKey string) error
}

// DefaultTimeout bounds one delivery attempt when the channel sets none.
const DefaultTimeout = 10 * time.Second

// Options are what a sender takes besides its channel.
type Options struct {
	// HTTPClient posts to the HTTP channels; nil: a client of the sender's
	// own. Each attempt is bounded by the channel's Timeout either way.
	HTTPClient *http.Client
	// TLSConfig verifies the SMTP server after STARTTLS; nil: the system's
	// roots and the server's host name. Tests pass their own root.
	TLSConfig *tls.Config
}

// New returns the sender of the channel's type.
func New(ch targets.Channel, opts Options) (Sender, error) {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	switch ch.Type {
	case targets.ChannelWebhook:
		return NewWebhook(ch, opts)
	case targets.ChannelSlack:
		return NewSlack(ch, opts)
	case targets.ChannelPagerDuty:
		return NewPagerDuty(ch, opts)
	case targets.ChannelAlertmanager:
		return NewAlertmanager(ch, opts)
	case targets.ChannelEmail:
		return NewEmail(ch, opts)
	}
	return nil, fmt.Errorf("channel %s: unknown type %q", ch.Name, ch.Type)
}

// Senders returns a sender per channel name (targets.File.Channels), for
// outbox.New.
func Senders(channels []*targets.Channel, opts Options) (map[string]Sender, error) {
	senders := make(map[string]Sender, len(channels))
	for _, ch := range channels {
		s, err := New(*ch, opts)
		if err != nil {
			return nil, err
		}
		senders[ch.Name] = s
	}
	return senders, nil
}

// Error is a failed delivery. Its text names the channel and never holds one
// of the channel's secrets (URL, HMAC secret, routing key, password): those
// are replaced by their names (targets.Secret.String).
type Error struct {
	// Permanent is true when a retry cannot help: the receiver refused the
	// request (an HTTP 4xx other than 408 and 429, an SMTP 5xx reply) or
	// the channel's settings cannot work.
	Permanent bool
	// RetryAfter is the wait the receiver asked for (HTTP Retry-After on
	// a 429 or 503); 0 when it asked for none.
	RetryAfter time.Duration
	msg        string
}

func (e *Error) Error() string { return e.msg }

// RetryAfter returns the wait the receiver of a failed delivery asked for,
// or 0.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// Permanent reports whether err is an *Error that a retry cannot mend.
// Every other error (a network failure, a 5xx, a timeout) is worth a retry.
func Permanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// PermanentError returns err as an *Error that a retry cannot mend.
func PermanentError(err error) error { return &Error{Permanent: true, msg: err.Error()} }

// fail returns the *Error of a delivery to ch that failed with err. The
// error is flattened to text, its secrets replaced, so that no caller can
// unwrap its way back to them.
func fail(ch targets.Channel, permanent bool, err error) *Error {
	text := redact(ch, err.Error())
	var ue *url.Error
	if errors.As(err, &ue) {
		// net/http names the URL it failed to reach; the URL of a Slack
		// or generic webhook is itself a secret.
		text = ue.Op + " " + redactedURL(ch) + ": " + redact(ch, ue.Err.Error())
	}
	return &Error{Permanent: permanent, msg: truncate(ch.Type+" channel "+ch.Name+": "+text, 600)}
}

// redact replaces the channel's secrets in text by their names.
func redact(ch targets.Channel, text string) string {
	for _, s := range []targets.Secret{ch.URL, ch.Secret, ch.RoutingKey, ch.Password} {
		for _, v := range secretForms(s.Value()) {
			text = strings.ReplaceAll(text, v, s.String())
		}
	}
	return text
}

// secretForms are the ways a secret value may show in an error: itself,
// query-escaped, and, for a URL, its path and query alone (a receiver's
// error page may echo the path it was asked for). Forms shorter than 4
// bytes are left out: they would blank out ordinary words.
func secretForms(v string) []string {
	forms := []string{v, url.QueryEscape(v)}
	if u, err := url.Parse(v); err == nil && u.Host != "" {
		forms = append(forms, u.String(), u.EscapedPath(), u.Path, u.RawQuery)
		if p, ok := u.User.Password(); ok {
			forms = append(forms, p)
		}
	}
	var long []string
	for _, f := range forms {
		if len(f) >= 4 {
			long = append(long, f)
		}
	}
	// The longest first, so a part never leaves the rest of a whole.
	slices.SortFunc(long, func(a, b string) int { return len(b) - len(a) })
	return long
}

// redactedURL names the channel's URL without it: its scheme and host stay
// (the host helps an operator), its path and query (where webhook services
// keep their tokens) go.
func redactedURL(ch targets.Channel) string {
	u, err := url.Parse(ch.URL.Value())
	if err != nil || u.Host == "" {
		return ch.URL.String()
	}
	return u.Scheme + "://" + u.Host + "/" + ch.URL.String()
}

// permanentStatus reports whether an HTTP status refuses the request for
// good: a redirect (not followed, see New) or a client error other than 408
// Request Timeout and 429 Too Many Requests, which ask to try again.
func permanentStatus(code int) bool {
	return code >= 300 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests
}

// httpClient is the client of an HTTP channel, which needs a URL.
func httpClient(ch targets.Channel, opts Options) (*http.Client, error) {
	if ch.URL.Value() == "" {
		return nil, fmt.Errorf("%s channel %s: no url", ch.Type, ch.Name)
	}
	return noRedirects(opts.HTTPClient), nil
}

// noRedirects returns a copy of client (a new one when nil) that answers
// with a redirect instead of following it: net/http would resend a POST
// redirected by 301, 302 or 303 as a GET without its body, and that GET's
// 200 would pass for a delivery. The 3xx refuses the notification for good
// (permanentStatus): the channel's URL is wrong.
func noRedirects(client *http.Client) *http.Client {
	c := http.Client{}
	if client != nil {
		c = *client
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// attempt bounds one delivery by the channel's timeout.
func attempt(ctx context.Context, ch targets.Channel) (context.Context, context.CancelFunc) {
	d := ch.Timeout
	if d <= 0 {
		d = DefaultTimeout
	}
	return context.WithTimeout(ctx, d)
}
