package consume

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of an event, the label of sitewatch_alerter_events_total.
const (
	resultEvaluated   = "evaluated"
	resultIgnoredLate = "ignored_late"
	resultDupSlot     = "duplicate_slot"
	resultNoPolicy    = "no_policy"
	resultUndecodable = "undecodable"
	resultFuture      = "future"
)

type metrics struct {
	events         *prometheus.CounterVec
	transitions    *prometheus.CounterVec
	outbox         prometheus.Counter
	unknownChannel prometheus.Counter
	fenced         prometheus.Counter
	retries        *prometheus.CounterVec
	batchDuration  prometheus.Histogram
	lag            *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sitewatch_alerter_events_total",
			Help: "Check results read, by result: evaluated, ignored_late (older than its region's latest check: a sent notification cannot be taken back), duplicate_slot (a slot its region has counted: two probers checked it), no_policy (target unknown or its alerts off), undecodable, future (checked further ahead of the alerter's clock than -max-future).",
		}, []string{"result"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sitewatch_alerter_transitions_total",
			Help: "Incident transitions stored, by incident kind and transition (opened, reminder, resolved).",
		}, []string{"kind", "transition"}),
		outbox: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_alerter_outbox_rows_total",
			Help: "Notifications queued in the outbox (one per transition and channel).",
		}),
		unknownChannel: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_alerter_unknown_channel_total",
			Help: "Notifications not queued because the policy names a channel the configuration lacks (fleet mode).",
		}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_alerter_fenced_batches_total",
			Help: "Batches rolled back because another alerter had evaluated their partition meanwhile.",
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sitewatch_alerter_retries_total",
			Help: "Transient failures retried, by what failed.",
		}, []string{"what"}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sitewatch_alerter_batch_duration_seconds",
			Help:    "Time from a poll's records to their effects committed in PostgreSQL.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		// Named and labelled as the recorder's, so that one dashboard
		// query covers both consumers of check-results.
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sitewatch_alerter_consumer_lag",
			Help: "Records behind the end of each partition, at the last fetch.",
		}, []string{"topic", "partition"}),
	}
	for _, r := range []string{resultEvaluated, resultIgnoredLate, resultDupSlot, resultNoPolicy, resultUndecodable, resultFuture} {
		m.events.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.events, m.transitions, m.outbox, m.unknownChannel, m.fenced, m.retries, m.batchDuration, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register alerter metrics: %w", err)
		}
	}
	return m, nil
}
