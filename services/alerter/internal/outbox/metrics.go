package outbox

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	delivered *prometheus.CounterVec
	failed    *prometheus.CounterVec
	retries   *prometheus.CounterVec
	pending   prometheus.Gauge
	latency   *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sitewatch_alerter_notifications_delivered_total",
			Help: "Notifications a channel's receiver accepted.",
		}, []string{"channel"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sitewatch_alerter_notifications_failed_total",
			Help: "Notifications given up (failed_at set): refused for good by the receiver, or still failing at the end of the retry budget.",
		}, []string{"channel"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sitewatch_alerter_notification_retries_total",
			Help: "Failed delivery attempts that will be retried.",
		}, []string{"channel"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sitewatch_alerter_outbox_pending",
			Help: "Rows of notification_outbox neither delivered nor given up, as last counted.",
		}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sitewatch_alerter_notification_delivery_seconds",
			Help:    "From an outbox row's insert (created_at) to its receiver's acceptance, retries included.",
			Buckets: prometheus.ExponentialBucketsRange(0.005, 3600, 24),
		}, []string{"channel"}),
	}
	if reg != nil {
		reg.MustRegister(m.delivered, m.failed, m.retries, m.pending, m.latency)
	}
	return m
}
