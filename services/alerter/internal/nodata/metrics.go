package nodata

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	passes         *prometheus.CounterVec
	transitions    *prometheus.CounterVec
	outbox         prometheus.Counter
	unknownChannel prometheus.Counter
	duration       prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sitewatch_alerter_nodata_passes_total",
			Help: "No-data passes by result: evaluated, skipped (another alerter held the lock), failed.",
		}, []string{"result"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sitewatch_alerter_nodata_transitions_total",
			Help: "Transitions of no-data incidents stored, by transition.",
		}, []string{"transition"}),
		outbox: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_alerter_nodata_outbox_rows_total",
			Help: "Outbox rows inserted by no-data passes.",
		}),
		unknownChannel: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_alerter_nodata_unknown_channel_total",
			Help: "No-data notifications not queued: the policy names a channel the configuration lacks.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sitewatch_alerter_nodata_pass_duration_seconds",
			Help:    "Duration of an evaluated no-data pass, its transaction included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.passes, m.transitions, m.outbox, m.unknownChannel, m.duration)
	}
	return m
}
