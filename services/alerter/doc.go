// Command alerter turns the check results of the `check-results` topic
// into incidents, their transitions and a notification outbox in
// PostgreSQL (README.md, docs/design.md "Alerter"), and backtests alert
// policies over the stored check results.
package main
