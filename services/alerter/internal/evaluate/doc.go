// Package evaluate is the alerter's state machine: a pure function from a
// target's state, one check result and the target's alert policy to the
// target's next state and the incident transitions (opened, reminder,
// resolved) it causes. It does no I/O and reads no clock: every time it
// uses is a check's time, so the live alerter (events from Kafka) and the
// backtest (rows of check_results) reach the same incidents from the same
// events, and a new owner that loads a target's saved State reaches the
// same decisions as the old one would have.
//
// Rules (docs/design.md, "Alerting sections"):
//   - A region is down when at least FailureThreshold of its last
//     FailureWindow checks failed (equal numbers: consecutive failures). It
//     recovers after SuccessThreshold consecutive successful checks; its
//     window then starts empty, so a flapping site must fail
//     FailureThreshold times again before the region is down again.
//   - An incident of kind "down" opens when the number of down regions
//     reaches the policy's Regions (AllRegions: every region of the
//     target's regions list, or every region that has reported for the
//     target when it lists none), and resolves when it falls below.
//     started_at is the earliest failing check in the windows that
//     confirmed the down regions; confirmed_at is the check that made the
//     count reach the quorum.
//   - An incident of kind "tls_expiry" opens on a check whose certificate
//     expires before the check's time plus TLSExpiryDays, and resolves
//     after SuccessThreshold checks in a row (of any region) whose
//     certificate no longer does.
//   - While an incident is open, a check at or after the last notification
//     plus ReminderInterval sends a reminder.
//   - A transition inside a maintenance window is recorded with the
//     window's name in Suppressed and notifies no channel; so does one of
//     a check evaluated too late (Event.Stale). An incident confirmed in
//     a window and still open at the first check after it sends a
//     reminder then (the outage outlasted the maintenance); if it
//     resolves first, nothing of it is notified.
//   - The resolution of an incident with a notified transition is
//     notified whatever window or delay: receivers would keep its alert
//     open. That of an incident with none is not (no lone "resolved").
//
// Events of a region are applied in check-time order. An event older than
// the region's latest applied check (or that very check again), or of a
// slot (CheckResult.scheduled_at) at or before the region's latest, is
// ignored and reported as such: one result per target, region and slot
// counts, as in check_results; and the transitions of later checks may have been
// notified already, and a notification cannot be taken back.
//
// Incident IDs are deterministic: the hex of SHA-256 over the target, the
// kind and the event ID of the first failing check, truncated to 128 bits;
// the same events always give the same incident the same ID, however often
// Kafka redelivers them and whichever alerter evaluates them.
package evaluate
