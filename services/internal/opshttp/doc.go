// Package opshttp serves the operational HTTP endpoints of a sitewatch
// service: Prometheus metrics at /metrics, liveness at /healthz and readiness
// at /readyz.
package opshttp
