package e2e

import (
	"testing"
	"time"
)

// The whole system, as separate processes: local websites of known behaviour
// are checked by the prober, recorded by the recorder, and every table and
// view holds exactly what the websites served.
func TestEndToEnd(t *testing.T) {
	const interval, timeout = time.Second, 300 * time.Millisecond
	sys := newSystem(t)
	sites := standardSites(t, timeout)
	targets := targetsFile(t, interval, timeout, sites)

	rec := sys.recorder(t)
	prb := sys.prober(t, targets, true)
	time.Sleep(6 * interval)
	prb.stop(t, 15*time.Second)
	sys.waitStored(t, sites, 30*time.Second)
	rec.stop(t, 30*time.Second)

	sys.assertExact(t, sites)
	if n := sys.count(t, `SELECT count(*) FROM check_results WHERE prober_instance <> 'e2e'`); n != 0 {
		t.Errorf("%d rows with another prober instance", n)
	}
	if n := sys.count(t, `SELECT count(*) FROM targets`); n != len(sites) {
		t.Errorf("targets has %d rows, want %d", n, len(sites))
	}
}
