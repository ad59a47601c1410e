// Package schedule runs a job for every target at the target's interval.
//
// Each target has a fixed origin: its runs are due at origin + k*interval, so
// a late start does not push the next ones back and there is no drift over
// hours. The first runs of the targets given together are spread evenly over
// their interval, so a restart is not a thundering herd. A target's run that
// is due while its previous run is still going is skipped (never two runs of
// one target at once), and so are the runs that the scheduler fell behind on.
// A global bound limits the runs in progress; a run waiting for a slot is
// late, and its lag is reported.
package schedule
