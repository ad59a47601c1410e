//go:build drill

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Spool drills (issue 14): 1,000 targets checked every second while Kafka is
// away. The issue asks for a 5-minute outage; CI runs 90 s, and
// DRILL_OUTAGE=5m runs the full length by hand. The file sorts after
// drill_test.go, so these heavy drills run last and the older ones keep the
// stack as fresh as before.
const fleetSize = 1000

func outageLength(t testing.TB) time.Duration {
	t.Helper()
	v := os.Getenv("DRILL_OUTAGE")
	if v == "" {
		return 90 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("DRILL_OUTAGE=%q: %v", v, err)
	}
	return d
}

// fleet is one local website serving fleetSize targets (/t/0000 ...),
// recording when each request came.
type fleet struct {
	srv    *httptest.Server
	served [fleetSize]atomic.Int64
	last   [fleetSize]atomic.Int64 // unix nanos

	mu       sync.Mutex
	arrivals [fleetSize][]int64 // unix nanos
}

func newFleet(t testing.TB) *fleet {
	t.Helper()
	f := &fleet{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/t/"))
		if err != nil || i < 0 || i >= fleetSize {
			http.NotFound(w, r)
			return
		}
		now := time.Now().UnixNano()
		f.mu.Lock()
		f.arrivals[i] = append(f.arrivals[i], now)
		f.mu.Unlock()
		f.served[i].Add(1)
		f.last[i].Store(now)
		fmt.Fprint(w, okPattern)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func fleetID(i int) string { return fmt.Sprintf("t%04d", i) }

func (f *fleet) targets(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("defaults:\n  interval: 1s\n  timeout: 500ms\ntargets:\n")
	for i := range fleetSize {
		fmt.Fprintf(&b, "  - id: %s\n    url: %s/t/%04d\n", fleetID(i), f.srv.URL, i)
	}
	path := filepath.Join(t.TempDir(), "targets.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (f *fleet) total() int {
	n := 0
	for i := range f.served {
		n += int(f.served[i].Load())
	}
	return n
}

// waitSpoolEmpty waits until the prober's spool holds nothing unacknowledged.
func waitSpoolEmpty(t testing.TB, p *proc, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	waitFor(t, timeout, "spool drained", func() (bool, string) {
		n := metric(t, p, "sitewatch_prober_spool_records")
		return n == 0, fmt.Sprintf("%v records spooled", n)
	})
	t.Logf("spool drained %s after Kafka came back", time.Since(start).Round(100*time.Millisecond))
}

// match pairs every request the fleet served with the row of the check
// that made it: the latest row of the same target whose check started
// before the request came (and at most 2 s before: a starved site may read
// a request after the prober gave up on it).
type match struct {
	rows    int // rows stored
	matched int // requests with their row
	// lost are requests without a row: results lost.
	lost int
	// unreached are rows without a request: only failed checks (a
	// timeout or a refused connection before the site saw the request)
	// may be unreached.
	unreached, unreachedUp int
}

func (s *system) match(t testing.TB, f *fleet) match {
	t.Helper()
	q, err := s.db.Query(context.Background(),
		`SELECT target_id, (extract(epoch FROM checked_at) * 1e6)::int8, outcome FROM check_results ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	type row struct {
		at      int64 // unix micros
		up, hit bool
	}
	rows := map[string][]row{}
	var m match
	for q.Next() {
		var id, outcome string
		var at int64
		if err := q.Scan(&id, &at, &outcome); err != nil {
			t.Fatal(err)
		}
		rows[id] = append(rows[id], row{at: at, up: outcome == "up"})
		m.rows++
	}
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range fleetSize {
		rs, arr := rows[fleetID(i)], f.arrivals[i]
		j := len(rs) - 1
		// Newest request first: it takes the newest check started before
		// it; older checks are left for older requests.
		for k := len(arr) - 1; k >= 0; k-- {
			a := arr[k] / 1000
			for j >= 0 && rs[j].at > a+5_000 { // clock reading granularity
				j--
			}
			if j >= 0 && rs[j].at >= a-2_000_000 {
				rs[j].hit = true
				j--
				m.matched++
				continue
			}
			m.lost++
		}
		for _, r := range rs {
			if !r.hit {
				m.unreached++
				if r.up {
					m.unreachedUp++
				}
			}
		}
	}
	return m
}

// drainAndCompare stops the prober, waits until the recorder stored a row
// for every request the fleet served (or, when results were lost, until
// the count stops moving), stops the recorder and matches requests and
// rows.
func (s *system) drainAndCompare(t testing.TB, prb, rec *proc, f *fleet, dropped int) match {
	t.Helper()
	prb.stop(t, 60*time.Second)
	if !rec.running() {
		t.Fatalf("the recorder exited during the drill: %v\n%s", rec.err, tail(rec.out.String(), 40))
	}
	want := f.total() - dropped
	last, stable := -1, time.Now()
	waitFor(t, 180*time.Second, fmt.Sprintf("at least %d results stored", want), func() (bool, string) {
		got := s.count(t, "SELECT count(*) FROM check_results")
		if got != last {
			last, stable = got, time.Now()
		}
		// Failed checks that never reached the site add rows; a count
		// that stopped moving is final.
		return time.Since(stable) > 5*time.Second && (got >= want || time.Since(stable) > 15*time.Second),
			fmt.Sprintf("%d rows", got)
	})
	rec.stop(t, 30*time.Second)
	m := s.match(t, f)
	t.Logf("%d requests served, %d rows: %d matched, %d requests without a row, %d rows of failed checks that never reached the site",
		f.total(), m.rows, m.matched, m.lost, m.unreached)
	if m.unreachedUp != 0 {
		t.Errorf("%d rows report up without a request to the site", m.unreachedUp)
	}
	return m
}

// spoolDrill starts a recorder and a prober on the fleet.
func spoolDrill(t testing.TB, extra ...string) (*system, *fleet, *proc, *proc) {
	t.Helper()
	sys := newSystem(t)
	f := newFleet(t)
	rec := sys.recorder(t)
	prb := sys.prober(t, f.targets(t), true, append([]string{"-flush-timeout", "2s"}, extra...)...)
	return sys, f, rec, prb
}

func assertReady(t testing.TB, p *proc, when string) {
	t.Helper()
	resp, err := http.Get("http://" + p.listen + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz %s during %s, want 200: the spool keeps the results", resp.Status, when)
	}
}

// 8. Kafka away for DRILL_OUTAGE (90 s in CI) under 1,000 checks a second:
// every check made is stored once, nothing dropped.
func TestDrillSpoolKafkaOutage(t *testing.T) {
	d := outageLength(t)
	sys, f, rec, prb := spoolDrill(t)
	time.Sleep(5 * time.Second)
	t.Cleanup(func() { stackCtl(t, "start", "kafka") })
	stackCtl(t, "stop", "kafka")
	before := f.total()
	time.Sleep(d / 2)
	assertReady(t, prb, "the outage")
	spooled := metric(t, prb, "sitewatch_prober_spool_records")
	age := metric(t, prb, "sitewatch_prober_spool_oldest_age_seconds")
	time.Sleep(d - d/2)
	stackCtl(t, "start", "kafka")
	during := f.total() - before
	bytes := metric(t, prb, "sitewatch_prober_spool_bytes")
	records := metric(t, prb, "sitewatch_prober_spool_records")
	t.Logf("outage %s: %d checks made; half-way %v spooled, the oldest %.0f s old; at the end %v records, the spool's files %.1f MiB (acknowledged records included until their segment goes)",
		d, during, spooled, age, records, bytes/(1<<20))
	if spooled == 0 || age < float64(d/2/time.Second)-10 {
		t.Errorf("half-way through the outage: %v spooled, oldest %.0f s; want results waiting since the outage began", spooled, age)
	}
	waitSpoolEmpty(t, prb, 5*time.Minute)
	if n := metric(t, prb, "sitewatch_prober_results_dropped_total"); n != 0 {
		t.Errorf("the prober dropped %v results during a %s outage", n, d)
	}
	drained := metric(t, prb, "sitewatch_prober_spool_drained_total")
	if n := metric(t, prb, "sitewatch_prober_produce_errors_total"); n != 0 {
		t.Errorf("%v produce errors", n)
	}
	m := sys.drainAndCompare(t, prb, rec, f, 0)
	if m.lost != 0 {
		t.Errorf("%d checks made have no row in check_results", m.lost)
	}
	t.Logf("%v results drained from the spool", drained)
}

// 9. The prober is killed (SIGKILL) half-way through the outage and started
// again on the same spool: what the first one spooled is delivered; what it
// lost is at most what it had not written yet.
func TestDrillSpoolProberKilledDuringOutage(t *testing.T) {
	d := outageLength(t)
	sys, f, rec, prb := spoolDrill(t)
	time.Sleep(5 * time.Second)
	t.Cleanup(func() { stackCtl(t, "start", "kafka") })
	stackCtl(t, "stop", "kafka")
	time.Sleep(d / 2)
	prb.kill()
	killedAt := f.total()
	prb = sys.prober(t, f.targets(t), true, "-flush-timeout", "2s")
	if n := metric(t, prb, "sitewatch_prober_spool_records"); n < float64(fleetSize)*float64(d/2/time.Second)/2 {
		t.Errorf("the restarted prober found %v records in the spool, want those of the first half of the outage", n)
	}
	time.Sleep(d - d/2)
	stackCtl(t, "start", "kafka")
	waitSpoolEmpty(t, prb, 5*time.Minute)
	if n := metric(t, prb, "sitewatch_prober_results_dropped_total"); n != 0 {
		t.Errorf("the restarted prober dropped %v results", n)
	}
	m := sys.drainAndCompare(t, prb, rec, f, 0)
	t.Logf("SIGKILL after %d checks: %d of %d checks made lost (not yet written when killed, or in flight)", killedAt, m.lost, f.total())
	// At most one -spool-sync interval (1 s) of checks: 1,000.
	if m.lost > fleetSize {
		t.Errorf("%d results lost by the SIGKILL, want at most one sync interval's worth (%d)", m.lost, fleetSize)
	}
}

// 10. A small -spool-max-bytes: the oldest spooled results are dropped and
// counted, the newest delivered, memory stays flat.
func TestDrillSpoolCap(t *testing.T) {
	const capBytes = 512 << 10
	sys, f, rec, prb := spoolDrill(t, "-spool-max-bytes", strconv.Itoa(capBytes))
	time.Sleep(5 * time.Second)
	t.Cleanup(func() { stackCtl(t, "start", "kafka") })
	stackCtl(t, "stop", "kafka")
	time.Sleep(10 * time.Second)
	rssEarly := rss(t, prb)
	time.Sleep(20 * time.Second)
	rssLate := rss(t, prb)
	if b := metric(t, prb, "sitewatch_prober_spool_bytes"); b > capBytes {
		t.Errorf("spool %v bytes, cap %d", b, capBytes)
	}
	stackCtl(t, "start", "kafka")
	waitSpoolEmpty(t, prb, 3*time.Minute)
	dropped := int(metric(t, prb, `sitewatch_prober_results_dropped_total{reason="spool_full"}`))
	all := int(metric(t, prb, "sitewatch_prober_results_dropped_total"))
	// Failed checks so far: a dropped one that never reached the site
	// leaves neither a request nor a row.
	failed := int(metricWith(t, prb, "sitewatch_prober_checks_total", `outcome="down"`))
	m := sys.drainAndCompare(t, prb, rec, f, dropped)
	t.Logf("%d requests served, %d results dropped (spool_full), %d stored, %d failed checks; RSS %d MiB 10 s into the outage, %d MiB 30 s into it",
		f.total(), dropped, m.rows, failed, rssEarly>>20, rssLate>>20)
	if dropped == 0 || all != dropped {
		t.Errorf("dropped %d spool_full of %d in all; want spool_full drops only", dropped, all)
	}
	// Each drop is a check with no row: a request without a row, or a
	// failed check that never reached the site (then seen nowhere).
	if m.lost > dropped || dropped-m.lost > failed {
		t.Errorf("%d requests without a row, %d dropped, %d failed checks made: want requests without a row = dropped, less at most the failed checks",
			m.lost, dropped, failed)
	}
	// The newest are delivered: every target's last check is stored.
	ctx := context.Background()
	q, err := sys.db.Query(ctx, `SELECT target_id, extract(epoch FROM max(checked_at))::float8 FROM check_results GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	lastStored := map[string]float64{}
	for q.Next() {
		var id string
		var at float64
		if err := q.Scan(&id, &at); err != nil {
			t.Fatal(err)
		}
		lastStored[id] = at
	}
	q.Close()
	missing := 0
	for i := range fleetSize {
		last := float64(f.last[i].Load()) / 1e9
		// Checks are 1 s apart: the last one stored within half a
		// second before the last request is that request's check.
		if at, ok := lastStored[fleetID(i)]; !ok || last-at > 0.5 {
			missing++
		}
	}
	if missing != 0 {
		t.Errorf("%d targets lack their newest check", missing)
	}
	if rssLate > rssEarly+32<<20 {
		t.Errorf("RSS grew from %d MiB to %d MiB while the capped spool dropped: memory is not flat", rssEarly>>20, rssLate>>20)
	}
}

// 11. A corrupt segment planted in the spool while the prober is stopped:
// skipped and counted; everything spooled is delivered.
func TestDrillSpoolCorruptSegment(t *testing.T) {
	sys, f, rec, prb := spoolDrill(t)
	time.Sleep(3 * time.Second)
	t.Cleanup(func() { stackCtl(t, "start", "kafka") })
	stackCtl(t, "stop", "kafka")
	time.Sleep(10 * time.Second)
	prb.stop(t, 30*time.Second) // Kafka away: the spool keeps the results

	segs, err := filepath.Glob(filepath.Join(sys.spool, "*.seg"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segments in %s after 10 s without Kafka (%v)", sys.spool, err)
	}
	slices.Sort(segs)
	lastID, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(segs[len(segs)-1]), ".seg"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(sys.spool, fmt.Sprintf("%020d.seg", lastID+1))
	garbage := []byte(strings.Repeat("\x00\x00\x01\x00garbage, not a spool record. ", 2000))
	if err := os.WriteFile(planted, garbage, 0o640); err != nil {
		t.Fatal(err)
	}

	prb = sys.prober(t, f.targets(t), true, "-flush-timeout", "2s")
	if n := metric(t, prb, "sitewatch_prober_spool_corrupt_segments_total"); n != 1 {
		t.Errorf("corrupt segments %v, want 1", n)
	}
	if _, err := os.Stat(planted + ".corrupt"); err != nil {
		t.Errorf("the planted segment was not set aside: %v", err)
	}
	time.Sleep(3 * time.Second)
	stackCtl(t, "start", "kafka")
	waitSpoolEmpty(t, prb, 3*time.Minute)
	if n := metric(t, prb, "sitewatch_prober_results_dropped_total"); n != 0 {
		t.Errorf("dropped %v results", n)
	}
	m := sys.drainAndCompare(t, prb, rec, f, 0)
	if m.lost != 0 {
		t.Errorf("%d checks made have no row in check_results", m.lost)
	}
}

// metricWith sums the series of a metric whose labels contain labels.
func metricWith(t testing.TB, p *proc, name, labels string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, labels) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		sum += v
	}
	return sum
}

// rss reads the process's resident memory now.
func rss(t testing.TB, p *proc) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}
