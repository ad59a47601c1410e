package consume

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	stored        prometheus.Counter
	duplicates    prometheus.Counter
	dupSlots      prometheus.Counter
	deadLettered  *prometheus.CounterVec
	retries       *prometheus.CounterVec
	batchSize     prometheus.Histogram
	batchDuration prometheus.Histogram
	endToEnd      prometheus.Histogram
	lag           *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, maxBatch int) (*metrics, error) {
	m := &metrics{
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_recorder_events_stored_total",
			Help: "Events inserted into check_results (and counted in the rollup).",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_recorder_duplicates_skipped_total",
			Help: "Valid events whose event ID was already stored (redeliveries, replays).",
		}),
		dupSlots: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_recorder_duplicate_slots_total",
			Help: "Valid events not stored because another event holds their slot (target, region, scheduled_at): two probers checked it.",
		}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sitewatch_recorder_dead_lettered_total",
			Help: "Records sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sitewatch_recorder_retries_total",
			Help: "Transient failures retried, by what failed (registry, dead-letter, database).",
		}, []string{"what"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sitewatch_recorder_batch_records",
			Help:    "Records per polled batch.",
			Buckets: prometheus.ExponentialBucketsRange(1, float64(max(maxBatch, 2)), 12),
		}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sitewatch_recorder_batch_duration_seconds",
			Help:    "From a poll returning to its offsets committed: decode, dead-letter, store, commit.",
			Buckets: prometheus.ExponentialBucketsRange(0.001, 30, 16),
		}),
		endToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sitewatch_recorder_end_to_end_delay_seconds",
			Help:    "From an event's started_at to the commit of the transaction that stored it.",
			Buckets: prometheus.ExponentialBucketsRange(0.005, 600, 28),
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sitewatch_recorder_consumer_lag",
			Help: "Records behind the partition's high watermark at the last poll.",
		}, []string{"topic", "partition"}),
	}
	for _, c := range []prometheus.Collector{m.stored, m.duplicates, m.dupSlots, m.deadLettered, m.retries,
		m.batchSize, m.batchDuration, m.endToEnd, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	for _, r := range []string{ReasonNoMagicByte, ReasonBadHeader, ReasonUnknownSchemaID, ReasonWrongSchema,
		ReasonNotCheckResult, ReasonInvalidEvent, ReasonExpired, ReasonFuture, ReasonRejectedByDatabase} {
		m.deadLettered.WithLabelValues(r)
	}
	for _, w := range []string{"registry", "dead-letter", "database"} {
		m.retries.WithLabelValues(w)
	}
	return m, nil
}
