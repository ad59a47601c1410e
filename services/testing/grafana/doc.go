// Package grafana checks sitewatch's Grafana provisioning
// (deploy/grafana): Expand turns a panel's SQL into what Grafana's
// PostgreSQL data source sends to the server, template variables and
// macros expanded as Grafana documents them, and its tests run every query
// of every dashboard against the stack's PostgreSQL with the migrations
// applied, so a dashboard that no longer matches the schema fails `task
// test` instead of a panel.
package grafana
