package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// Headers of a webhook delivery (docs/design.md, "Webhook delivery").
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderSignature      = "X-Sitewatch-Signature"
)

// Webhook posts the notification as JSON to a URL, with its idempotency key
// in a header and, when the channel has a secret, an HMAC-SHA256 signature
// of the body.
type Webhook struct {
	ch     targets.Channel
	client *http.Client
}

// NewWebhook returns the sender of a webhook channel.
func NewWebhook(ch targets.Channel, opts Options) (*Webhook, error) {
	client, err := httpClient(ch, opts)
	if err != nil {
		return nil, err
	}
	return &Webhook{ch: ch, client: client}, nil
}

// Signature is the X-Sitewatch-Signature header's value of a body: "sha256="
// and the hex HMAC-SHA256 of the body under the channel's secret. A receiver
// computes it over the raw body and compares with hmac.Equal.
func Signature(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (w *Webhook) Send(ctx context.Context, n *Notification, key string) error {
	body, err := json.Marshal(n)
	if err != nil {
		return fail(w.ch, true, err)
	}
	header := http.Header{}
	header.Set("Content-Type", "application/json")
	header.Set(HeaderIdempotencyKey, key)
	if s := w.ch.Secret.Value(); s != "" {
		header.Set(HeaderSignature, Signature(s, body))
	}
	return postJSON(ctx, w.client, w.ch, w.ch.URL.Value(), header, body)
}

// retryAfter is the wait a 429 or 503 answer asks for in its Retry-After
// header (RFC 9110 10.2.3), in seconds or as a date; 0 for none.
func retryAfter(resp *http.Response) time.Duration {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0
	}
	v := resp.Header.Get("Retry-After")
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(time.Until(at), 0)
	}
	return 0
}

// postJSON posts body and accepts any 2xx answer; the error of another
// answer says its status and the start of its body.
func postJSON(ctx context.Context, client *http.Client, ch targets.Channel, url string, header http.Header, body []byte) error {
	ctx, cancel := attempt(ctx, ch)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fail(ch, true, err)
	}
	req.Header = header
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return fail(ch, false, err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // reuse the connection
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	msg := resp.Status
	if t := strings.TrimSpace(string(text)); t != "" {
		msg += ": " + t // fail redacts, then truncates
	}
	e := fail(ch, permanentStatus(resp.StatusCode), fmt.Errorf("%s", msg))
	e.RetryAfter = retryAfter(resp)
	return e
}
