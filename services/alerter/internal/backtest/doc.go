// Package backtest evaluates the alert policies over the check results
// stored in PostgreSQL (check_results), with the alerter's own evaluator,
// and reports the incidents they would have opened and the notifications
// they would have sent. It sends nothing and writes nothing.
//
// Rows are streamed target by target, each target's in check-time order
// (event ID breaking ties), so memory holds one target's state and the
// incidents found, not the rows. The live alerter applies a target's
// events in their order on the topic, which is the check-time order of
// each region; across regions the two orders may differ by the events in
// flight at once, which can only move a confirmation by those events.
package backtest
