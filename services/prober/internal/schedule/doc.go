// Package schedule runs a job for every target at the target's interval.
//
// Every run of a target is due on a slot of a fixed grid: the Unix epoch +
// Offset(ID, interval) + k*interval. The grid depends on the target's ID and
// interval only, so every prober, a restarted one or one that takes a
// target over from another, runs the same slots: a late start does not push
// the next ones back, there is no drift over hours, the targets are spread
// over their interval by their offsets (a restart is no thundering herd),
// and a handover neither bunches nor skips checks. A new target's first run
// waits for its next slot, or, with Options.CatchUp, runs at once its latest
// slot when that passed less than CatchUp ago: the slot that fell in the
// gap of a handover is checked by the new owner. A target's run that is due while its previous
// run is still going is skipped (never two runs of one target at once), and
// so are the runs that the scheduler fell behind on. A global bound limits
// the runs in progress; a run waiting for a concurrency slot is late, and
// its lag is reported. Wait lets a caller that removed targets wait until
// their checks have ended before another prober takes them.
package schedule
