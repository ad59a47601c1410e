package main

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/prober/internal/check"
)

// metrics are the prober's own Prometheus metrics; the publisher registers
// the buffer, drop and produce metrics, kprom the Kafka client's.
type metrics struct {
	checks   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	lag      prometheus.Histogram
	skipped  *prometheus.CounterVec
	targets  prometheus.Gauge
	reloads  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sitewatch_prober_checks_total",
			Help: "Checks made, by target, outcome and failure kind.",
		}, []string{"target", "outcome", "failure_kind"}),
		// Not by target: with thousands of targets, a histogram each
		// would be most of the prober's memory.
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sitewatch_prober_check_duration_seconds",
			Help:    "Total response time of checks, by outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"outcome"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sitewatch_prober_schedule_lag_seconds",
			Help:    "How late checks start after they are due (waiting for a concurrency slot, or a busy scheduler).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sitewatch_prober_checks_skipped_total",
			Help: "Checks not made when due, by target and reason: overlap (the previous check of the target still running) or behind (the prober fell more than an interval behind).",
		}, []string{"target", "reason"}),
		targets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sitewatch_prober_targets",
			Help: "Targets being checked.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sitewatch_prober_config_reloads_total",
			Help: "Reloads of the targets file, by result (ok, error: the old targets kept running).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.checks, m.duration, m.lag, m.skipped, m.targets, m.reloads)
	return m
}

func (m *metrics) observe(r *check.Result) {
	outcome := outcomeLabel[r.Outcome]
	m.checks.WithLabelValues(r.Target.ID, outcome, kindLabel[r.FailureKind]).Inc()
	m.duration.WithLabelValues(outcome).Observe(r.ResponseTime.Seconds())
}

// Label values: the enum names without their prefix, in lower case
// (OUTCOME_UP is "up", FAILURE_KIND_HTTP_STATUS "http_status", no failure
// "none"), computed once rather than per check.
var (
	outcomeLabel = enumLabels[sitewatchv1.Outcome](sitewatchv1.Outcome_name, "OUTCOME_", map[string]string{"unspecified": "unknown"})
	kindLabel    = enumLabels[sitewatchv1.FailureKind](sitewatchv1.FailureKind_name, "FAILURE_KIND_", map[string]string{"unspecified": "none"})
)

func enumLabels[E ~int32](names map[int32]string, prefix string, rename map[string]string) map[E]string {
	out := make(map[E]string, len(names))
	for v, name := range names {
		l := strings.ToLower(strings.TrimPrefix(name, prefix))
		if r, ok := rename[l]; ok {
			l = r
		}
		out[E(v)] = l
	}
	return out
}
