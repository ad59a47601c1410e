package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"

	gomail "github.com/wneessen/go-mail"

	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// HeaderEmailKey carries the idempotency key in an e-mail, besides the
// Message-ID derived from it.
const HeaderEmailKey = "X-Sitewatch-Idempotency-Key"

// Email sends the notification as a plain-text e-mail over SMTP with
// go-mail: STARTTLS as the channel's StartTLS says, AUTH when it has a
// username. Its Message-ID is derived from the idempotency key, so a
// delivered-twice transition arrives as two copies of one message, which
// mail clients and archives fold into one.
type Email struct {
	ch     targets.Channel
	client *gomail.Client
	domain string
}

// NewEmail returns the sender of an email channel.
func NewEmail(ch targets.Channel, opts Options) (*Email, error) {
	host, portText, err := net.SplitHostPort(ch.SMTP)
	if err != nil {
		return nil, fmt.Errorf("email channel %s: smtp %q: want host:port", ch.Name, ch.SMTP)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("email channel %s: smtp %q: bad port", ch.Name, ch.SMTP)
	}
	from, err := mail.ParseAddress(ch.From)
	if err != nil {
		return nil, fmt.Errorf("email channel %s: from %q: %v", ch.Name, ch.From, err)
	}
	if len(ch.To) == 0 {
		return nil, fmt.Errorf("email channel %s: no to", ch.Name)
	}
	policy := gomail.TLSMandatory
	switch ch.StartTLS {
	case "", "always":
	case "opportunistic":
		policy = gomail.TLSOpportunistic
	case "never":
		policy = gomail.NoTLS
	default:
		return nil, fmt.Errorf("email channel %s: starttls %q: want always, opportunistic or never", ch.Name, ch.StartTLS)
	}
	tlsConfig := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if opts.TLSConfig != nil {
		tlsConfig = opts.TLSConfig.Clone()
		if tlsConfig.ServerName == "" {
			tlsConfig.ServerName = host
		}
	}
	timeout := ch.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	clientOpts := []gomail.Option{
		gomail.WithPort(port),
		gomail.WithTLSPolicy(policy),
		gomail.WithTLSConfig(tlsConfig),
		gomail.WithTimeout(timeout),
		gomail.WithDialContextFunc(dialSession),
	}
	if ch.Username != "" {
		clientOpts = append(clientOpts,
			gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(ch.Username),
			gomail.WithPassword(ch.Password.Value()))
	}
	client, err := gomail.NewClient(host, clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("email channel %s: %v", ch.Name, err)
	}
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	return &Email{ch: ch, client: client, domain: domain}, nil
}

// MessageID is the Message-ID (without its angle brackets) of the e-mail of
// an idempotency key at a sender's domain: the key, each character that a
// Message-ID may not hold (RFC 5322 dot-atom-text) written as %XX.
func MessageID(key, domain string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c == '%' || !atext(c) {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String() + "@" + domain
}

// atext reports whether c may appear in a dot-atom (RFC 5322 3.2.3); a
// dot may, but not first, last or twice in a row, so it is escaped too.
func atext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

func (e *Email) message(n *Notification, key string) (*gomail.Msg, error) {
	m := gomail.NewMsg()
	if err := m.From(e.ch.From); err != nil {
		return nil, err
	}
	if err := m.To(e.ch.To...); err != nil {
		return nil, err
	}
	m.Subject("[sitewatch] " + summary(n))
	m.SetMessageIDWithValue(MessageID(key, e.domain))
	m.SetGenHeader(HeaderEmailKey, key)
	m.SetDate()
	var body strings.Builder
	body.WriteString(summary(n) + "\n\n")
	for _, d := range details(n) {
		fmt.Fprintf(&body, "%s: %s\n", d[0], d[1])
	}
	fmt.Fprintf(&body, "\nIdempotency key: %s\n", key)
	m.SetBodyString(gomail.TypeTextPlain, body.String())
	return m, nil
}

func (e *Email) Send(ctx context.Context, n *Notification, key string) error {
	m, err := e.message(n, key)
	if err != nil {
		return fail(e.ch, true, err)
	}
	ctx, cancel := attempt(ctx, e.ch)
	defer cancel()
	if err := e.client.DialAndSendWithContext(context.WithValue(ctx, sessionKey{}, ctx), m); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return fail(e.ch, permanentSMTP(err), err)
	}
	return nil
}

// sessionKey carries an attempt's context to dialSession.
type sessionKey struct{}

// dialSession connects to the SMTP server and closes the connection when
// the attempt that dialled it ends. go-mail heeds the context only while it
// connects, then gives each stage of the session a deadline of its own (the
// timeout again): a stalling server would hold an attempt past its timeout
// and past the outbox row's lease.
func dialSession(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if session, ok := ctx.Value(sessionKey{}).(context.Context); ok {
		context.AfterFunc(session, func() { _ = conn.Close() })
	}
	return conn, nil
}

// permanentSMTP reports whether the server refused for good: a 5xx reply
// (RFC 5321 4.2.1), to the message or to AUTH. Failures to connect, 4xx
// replies and timeouts are worth a retry.
func permanentSMTP(err error) bool {
	var sendErr *gomail.SendError
	if errors.As(err, &sendErr) {
		return !sendErr.IsTemp() && sendErr.ErrorCode() >= 500
	}
	var reply *textproto.Error
	return errors.As(err, &reply) && reply.Code >= 500
}
