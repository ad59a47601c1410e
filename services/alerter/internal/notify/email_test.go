package notify_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/sitewatch/sitewatch/services/alerter/internal/notify"
	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/testing/receivers"
)

// A real SMTP server (aiosmtpd) that requires STARTTLS and AUTH gets the
// message, and the test reads it back.
func TestEmailThroughARealSMTPServer(t *testing.T) {
	const password = "s3cr3t-smtp-password"
	srv := receivers.SMTP(t, "alerts", password)
	ch := targets.Channel{Name: "ops-mail", Type: targets.ChannelEmail, SMTP: srv.Addr,
		From: "sitewatch <alerts@sitewatch.example>", To: []string{"ops@example.org", "oncall@example.org"},
		Username: "alerts", Password: targets.NewSecret("SMTP_PASSWORD", password)}
	s, err := notify.New(ch, notify.Options{TLSConfig: &tls.Config{RootCAs: srv.Roots}})
	if err != nil {
		t.Fatal(err)
	}
	n := opened()
	key := n.IdempotencyKey("ops-mail")
	if err := s.Send(context.Background(), n, key); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages(t)
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.MailFrom != "alerts@sitewatch.example" || strings.Join(m.RcptTos, ",") != "ops@example.org,oncall@example.org" ||
		!m.TLS || !m.Authenticated {
		t.Errorf("envelope from %q to %q, tls %v, authenticated %v", m.MailFrom, m.RcptTos, m.TLS, m.Authenticated)
	}
	parsed, err := mail.ReadMessage(strings.NewReader(m.Data))
	if err != nil {
		t.Fatalf("%v:\n%s", err, m.Data)
	}
	for name, want := range map[string]string{
		"Subject":                     "[sitewatch] example-home is down: connection refused",
		"Message-Id":                  "<inc-7f3a/0-opened/ops-mail@sitewatch.example>",
		"X-Sitewatch-Idempotency-Key": key,
		"From":                        `"sitewatch" <alerts@sitewatch.example>`,
		"To":                          "<ops@example.org>, <oncall@example.org>",
	} {
		if got := parsed.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	body := strings.ReplaceAll(m.Data[strings.Index(m.Data, "\n\n")+2:], "\r\n", "\n")
	want := `example-home is down: connection refused

Incident: inc-7f3a
Transition: opened
Kind: down
Target: example-home
URL: https://example.com/
Regions: eu, us
Started: 2026-11-30T09:00:00Z
Confirmed: 2026-11-30T09:02:00Z
Failure: connect
Error: connection refused

Idempotency key: inc-7f3a/0-opened/ops-mail
`
	if body != want {
		t.Errorf("body:\n%s\nwant:\n%s", body, want)
	}

	t.Run("a wrong password is refused for good, and not shown", func(t *testing.T) {
		wrong := ch
		wrong.Password = targets.NewSecret("SMTP_PASSWORD", "wr0ng-password")
		s, err := notify.New(wrong, notify.Options{TLSConfig: &tls.Config{RootCAs: srv.Roots}})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Send(context.Background(), n, key)
		if err == nil || !notify.Permanent(err) || strings.Contains(err.Error(), "wr0ng-password") {
			t.Errorf("err %v, permanent %v", err, notify.Permanent(err))
		}
		if got := len(srv.Messages(t)); got != 1 {
			t.Errorf("%d messages after a refused AUTH, want 1", got)
		}
	})
	t.Run("an unknown certificate is not trusted", func(t *testing.T) {
		s, err := notify.New(ch, notify.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(context.Background(), n, key); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("err %v, want a certificate error", err)
		}
	})
}

// An SMTP server that stalls is left when the attempt's context ends (the
// outbox ends it with the row's lease), not a timeout per step later.
func TestEmailEndsWithItsContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // greets, then never answers
				defer c.Close()
				_, _ = io.WriteString(c, "220 tarpit.example ESMTP\r\n")
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	s, err := notify.New(targets.Channel{Name: "slow-mail", Type: targets.ChannelEmail, SMTP: ln.Addr().String(),
		From: "alerts@sitewatch.example", To: []string{"ops@example.org"}, StartTLS: "never",
		Timeout: 20 * time.Second}, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	n := opened()
	start := time.Now()
	err = s.Send(ctx, n, n.IdempotencyKey("slow-mail"))
	if took := time.Since(start); err == nil || notify.Permanent(err) || took > 10*time.Second ||
		!strings.HasPrefix(err.Error(), "email channel slow-mail: context deadline exceeded: ") {
		t.Errorf("err %v (permanent %v) after %s; want a retryable context deadline within the context's 300ms",
			err, notify.Permanent(err), took)
	}
}
