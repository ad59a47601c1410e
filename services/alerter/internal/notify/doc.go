// Package notify delivers incident notifications to channels: a generic
// webhook, Slack, PagerDuty, the Prometheus Alertmanager and e-mail. One
// file per channel type; each delivery carries the notification's
// idempotency key, so that at-least-once delivery counts once at a receiver
// that honours it.
package notify
