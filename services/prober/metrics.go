package main

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/checkevent"
	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/prober/internal/check"
	"github.com/sitewatch/sitewatch/services/prober/internal/schedule"
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
	// certExpiry has a series per https:// target once a check of it saw a
	// certificate.
	certExpiry *prometheus.GaugeVec

	// mu guards live, the IDs of the current targets (true: https://).
	// observe and skip record only theirs, so the check of a removed
	// target that ends after the reload leaves no series behind.
	mu   sync.RWMutex
	live map[string]bool
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
		// Named and valued as blackbox_exporter's probe_ssl_earliest_cert_expiry.
		certExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sitewatch_prober_tls_earliest_cert_expiry_seconds",
			Help: "Earliest NotAfter of the certificate chain an https:// target presented at its last check that got one, as a Unix timestamp.",
		}, []string{"target"}),
	}
	reg.MustRegister(m.checks, m.duration, m.lag, m.skipped, m.targets, m.reloads, m.certExpiry)
	return m
}

// observe records a check's result; it reports false, and records nothing,
// when the target is no longer current.
func (m *metrics) observe(r *check.Result) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	https, ok := m.live[r.Target.ID]
	if !ok {
		return false
	}
	outcome := outcomeLabel[r.Outcome]
	m.checks.WithLabelValues(r.Target.ID, outcome, kindLabel[r.FailureKind]).Inc()
	m.duration.WithLabelValues(outcome).Observe(r.ResponseTime.Seconds())
	// A check that failed before the handshake keeps the last date seen:
	// the certificate has not changed because the site is down.
	if https && !r.CertNotAfter.IsZero() {
		m.certExpiry.WithLabelValues(r.Target.ID).Set(float64(r.CertNotAfter.Unix()))
	}
	return true
}

// skip counts runs of t skipped, as schedule.Options.OnSkip, unless t is
// no longer current: a reload forgets the series before the scheduler's Set,
// and meanwhile the scheduler may still skip a run of a removed target.
func (m *metrics) skip(t *targets.Target, reason string, runs int) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, ok := m.live[t.ID]; ok {
		m.skipped.WithLabelValues(t.ID, reason).Add(float64(runs))
	}
}

// setTargets makes next the current targets and deletes the series of the
// others; it returns the IDs of the targets removed. It is not called
// concurrently with itself (the reloader holds its lock).
//
// Each series is deleted by its exact labels, from the closed sets of label
// values: a few dozen map deletions per removed target. DeletePartialMatch
// scans every series of a vector, which made a reload that removes n of n
// targets O(n²): 7 s for 10,000 targets, 2 minutes for 20,000 (issue 8).
// The deletions come after the lock is released: once live no longer holds
// a target, observe and skip make none of its series, so they need not
// wait (half a second for 100,000 targets removed) and neither does the
// scheduler, which calls skip.
func (m *metrics) setTargets(next []*targets.Target) (removed []string) {
	live := make(map[string]bool, len(next))
	for _, t := range next {
		live[t.ID] = strings.HasPrefix(t.PublicURL, "https://")
	}
	var notHTTPS []string
	m.mu.Lock()
	for id, https := range m.live {
		now, ok := live[id]
		if !ok {
			removed = append(removed, id)
		}
		if https && !now {
			notHTTPS = append(notHTTPS, id)
		}
	}
	m.live = live
	m.mu.Unlock()
	for _, id := range removed {
		for _, l := range checkLabels {
			m.checks.DeleteLabelValues(id, l[0], l[1])
		}
		for _, reason := range skipReasons {
			m.skipped.DeleteLabelValues(id, reason)
		}
	}
	for _, id := range notHTTPS {
		m.certExpiry.DeleteLabelValues(id)
	}
	return removed
}

// Label values: the names the database uses too (checkevent), but
// "unknown" for no outcome and "none" for no failure, computed once rather
// than per check.
var (
	outcomeLabel = enumLabels(sitewatchv1.Outcome_name, checkevent.OutcomeName, "unknown")
	kindLabel    = enumLabels(sitewatchv1.FailureKind_name, checkevent.KindName, "none")

	// checkLabels is every (outcome, failure_kind) pair of
	// sitewatch_prober_checks_total, skipReasons every reason of
	// sitewatch_prober_checks_skipped_total.
	checkLabels = func() (pairs [][2]string) {
		for _, o := range outcomeLabel {
			for _, k := range kindLabel {
				pairs = append(pairs, [2]string{o, k})
			}
		}
		return pairs
	}()
	skipReasons = schedule.SkipReasons()
)

func enumLabels[E ~int32](values map[int32]string, name func(E) string, unspecified string) map[E]string {
	out := make(map[E]string, len(values))
	for v := range values {
		out[E(v)] = name(E(v))
	}
	out[0] = unspecified
	return out
}
