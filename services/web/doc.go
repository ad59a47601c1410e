// Command web serves sitewatch's pages, JSON API and badges from the
// PostgreSQL views and hourly rollups the recorder and the alerter keep:
// the overview of every target (/), a target's detail (/targets/{id}), the
// public status page (/status), SVG badges (/badges/{id}/...), the API
// (/api/v1/..., described by /api/v1/openapi.json), and /metrics, /healthz
// and /readyz. It only reads, through a read-only role in production
// (migration 00013, sitewatch_web).
//
//	web [flags]              serve (DATABASE_URL names the database)
//	web healthcheck URL      exit 0 when URL answers 200 (container healthcheck)
package main
