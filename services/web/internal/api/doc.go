// Package api serves the JSON API under /api/v1: the data of the pages
// (targets, a target's hours, days, phases, failures and incidents, all
// incidents), described by the OpenAPI 3 document services/web/openapi.json,
// which the command embeds and this package serves at /api/v1/openapi.json.
package api
