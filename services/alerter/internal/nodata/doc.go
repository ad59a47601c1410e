// Package nodata opens "no data" incidents: a target that no prober of a
// region has checked for stale_after_intervals() intervals (the recorder's
// target_region_freshness), or a whole region whose probers went quiet.
//
// The absence of events is not an event: the check-results consumer
// (package consume) never sees it. So this is a clock-driven evaluator
// beside it: every pass reads the staleness the recorder keeps, decides
// (plan, a pure function of that snapshot, the policies and the pass's
// time) and writes the incidents, their transitions and outbox rows in one
// transaction, under a PostgreSQL advisory lock: with several alerters,
// one evaluates each pass and the others skip it.
package nodata
