// Package e2e runs the prober and recorder binaries as separate processes
// against the real stack and local websites of known behaviour, then compares
// what the websites served with what PostgreSQL holds. The failure drills
// (drill_test.go, build tag "drill", `task drill`) use the same harness.
package e2e

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitewatch/sitewatch/services/testing/stackdb"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

// binaries builds the prober, recorder and alerter once per test run.
var binaries = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "sitewatch-e2e-bin")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", dir+"/",
		"github.com/sitewatch/sitewatch/services/prober",
		"github.com/sitewatch/sitewatch/services/recorder",
		"github.com/sitewatch/sitewatch/services/alerter")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return dir, nil
})

func binPath(t testing.TB, name string) string {
	t.Helper()
	dir, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a sitewatch binary running as a child process.
type proc struct {
	name   string
	listen string
	cmd    *exec.Cmd
	out    *stacktest.Log
	done   chan struct{}
	err    error
}

// env is what every child gets: the stack's variables, DATABASE_URL replaced.
type env struct {
	databaseURL string
}

func (e env) list() []string {
	vars := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for _, name := range []string{"KAFKA_BROKERS", "SCHEMA_REGISTRY_URL"} {
		vars = append(vars, name+"="+stacktest.Getenv(name))
	}
	return append(vars, "DATABASE_URL="+e.databaseURL)
}

// start runs a binary with -listen on a free port and args, and waits for its
// /readyz unless wait is false.
func start(t testing.TB, e env, name string, wait bool, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, listen: freeAddr(t), out: &stacktest.Log{}, done: make(chan struct{})}
	p.cmd = exec.Command(binPath(t, name), append([]string{"-listen", p.listen}, args...)...)
	p.cmd.Env = e.list()
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("--- %s output (tail):\n%s", name, tail(p.out.String(), 40))
		}
	})
	if wait {
		p.waitReady(t, 60*time.Second)
	}
	return p
}

func (p *proc) signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

func (p *proc) waitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, p.name+" /readyz", func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready: %v\n%s", p.name, p.err, tail(p.out.String(), 40))
		default:
		}
		resp, err := http.Get("http://" + p.listen + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200, strings.TrimSpace(string(b))
	})
}

// stop sends SIGTERM and requires a clean exit within timeout.
func (p *proc) stop(t testing.TB, timeout time.Duration) {
	t.Helper()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("%s exited with %v after SIGTERM\n%s", p.name, p.err, tail(p.out.String(), 40))
		}
	case <-time.After(timeout):
		t.Fatalf("%s still runs %s after SIGTERM\n%s", p.name, timeout, tail(p.out.String(), 40))
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// waitFor polls cond until it holds, failing the test after timeout with the
// last explanation cond gave.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s (last: %s)", what, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// verdict is what a website meant one response to be, as the prober should
// classify it: "up" or a failure kind as stored in check_results.
type verdict string

// site is a local website that records the verdict of every request it got.
type site struct {
	id  string
	srv *httptest.Server

	mu     sync.Mutex
	served []verdict
}

func (s *site) record(v verdict) {
	s.mu.Lock()
	s.served = append(s.served, v)
	s.mu.Unlock()
}

// counts returns how many requests got each verdict, and the last verdict.
func (s *site) counts() (map[verdict]int, verdict) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[verdict]int{}
	for _, v := range s.served {
		m[v]++
	}
	var last verdict
	if len(s.served) > 0 {
		last = s.served[len(s.served)-1]
	}
	return m, last
}

const okPattern = "sitewatch-e2e-ok"

// newSite starts a website that answers request n (from 1) as decide says,
// recording the verdict before it answers, so a check the prober gives up on
// (a timeout) is counted too.
func newSite(t testing.TB, id string, timeout time.Duration, decide func(n int) verdict) *site {
	t.Helper()
	s := &site{id: id}
	var n atomic.Int64
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := decide(int(n.Add(1)))
		s.record(v)
		switch v {
		case "up":
			fmt.Fprintf(w, "<html><body>%s</body></html>", okPattern)
		case "content_mismatch":
			fmt.Fprint(w, "<html><body>maintenance</body></html>")
		case "http_status":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "timeout":
			select {
			case <-time.After(3 * timeout):
			case <-r.Context().Done():
			}
		default:
			panic("no response for verdict " + v)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func always(v verdict) func(int) verdict { return func(int) verdict { return v } }

// standardSites are the websites of the end-to-end test: up, wrong content,
// 500s, slow (beyond the timeout) and flapping between up and 500.
func standardSites(t testing.TB, timeout time.Duration) []*site {
	return []*site{
		newSite(t, "up", timeout, always("up")),
		newSite(t, "wrong-content", timeout, always("content_mismatch")),
		newSite(t, "errors", timeout, always("http_status")),
		newSite(t, "slow", timeout, always("timeout")),
		newSite(t, "flapping", timeout, func(n int) verdict {
			if n%2 == 1 {
				return "up"
			}
			return "http_status"
		}),
	}
}

// targetsFile writes a targets file for the sites and returns its path.
func targetsFile(t testing.TB, interval, timeout time.Duration, sites []*site) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "defaults:\n  interval: %s\n  timeout: %s\n  pattern: %q\ntargets:\n", interval, timeout, okPattern)
	for _, s := range sites {
		fmt.Fprintf(&b, "  - id: %s\n    url: %s/\n", s.id, s.srv.URL)
	}
	path := filepath.Join(t.TempDir(), "targets.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// system is one isolated sitewatch deployment on the shared stack: its own
// topic, consumer group and database.
type system struct {
	env   env
	topic string
	group string
	db    *pgxpool.Pool
	spool string // the probers' -spool-dir
}

func newSystem(t testing.TB) *system {
	t.Helper()
	stacktest.KafkaConfig(t) // skips or fails when Kafka is missing
	url := stackdb.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	name := stacktest.Name("e2e")
	return &system{env: env{databaseURL: url}, topic: name, group: name, db: db, spool: filepath.Join(t.TempDir(), "spool")}
}

func (s *system) recorder(t testing.TB, extra ...string) *proc {
	t.Helper()
	return start(t, s.env, "recorder", true, append([]string{"-topic", s.topic, "-group", s.group}, extra...)...)
}

func (s *system) prober(t testing.TB, targets string, wait bool, extra ...string) *proc {
	t.Helper()
	// extra comes last: a flag given twice takes the last value.
	return start(t, s.env, "prober", wait, append([]string{"-config", targets, "-topic", s.topic, "-instance", "e2e", "-partitions", "3",
		"-spool-dir", s.spool}, extra...)...)
}

func (s *system) count(t testing.TB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// served is the total of requests all sites got.
func served(sites []*site) int {
	n := 0
	for _, s := range sites {
		c, _ := s.counts()
		for _, k := range c {
			n += k
		}
	}
	return n
}

// waitStored waits until check_results holds as many rows as the sites
// served requests.
func (s *system) waitStored(t testing.TB, sites []*site, timeout time.Duration) {
	t.Helper()
	want := served(sites)
	waitFor(t, timeout, fmt.Sprintf("%d results stored", want), func() (bool, string) {
		got := s.count(t, "SELECT count(*) FROM check_results")
		return got == want, fmt.Sprintf("%d rows", got)
	})
}

// assertExact compares, per target, what the site served with check_results,
// check_results_hourly and target_status: nothing lost, nothing twice.
func (s *system) assertExact(t testing.TB, sites []*site) {
	t.Helper()
	ctx := context.Background()
	for _, st := range sites {
		want, last := st.counts()
		total := 0
		for _, n := range want {
			total += n
		}
		if total == 0 {
			t.Errorf("%s: the site was never checked", st.id)
			continue
		}
		t.Logf("%s: served %v, last %s", st.id, want, last)

		// Raw events, by verdict.
		rows, err := s.db.Query(ctx, `SELECT coalesce(failure_kind, outcome), count(*)
			FROM check_results WHERE target_id = $1 GROUP BY 1`, st.id)
		if err != nil {
			t.Fatal(err)
		}
		got := map[verdict]int{}
		for rows.Next() {
			var v string
			var n int
			if err := rows.Scan(&v, &n); err != nil {
				t.Fatal(err)
			}
			got[verdict(v)] = n
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: check_results by verdict %v, the site served %v", st.id, got, want)
		}
		if n := s.count(t, `SELECT count(DISTINCT event_id) FROM check_results WHERE target_id = $1`, st.id); n != total {
			t.Errorf("%s: %d distinct event IDs, want %d", st.id, n, total)
		}

		// The hourly rollup counts each event once.
		var checks, up, down, timeouts, statuses, mismatches int
		err = s.db.QueryRow(ctx, `SELECT coalesce(sum(checks),0), coalesce(sum(up),0), coalesce(sum(down),0),
				coalesce(sum(failures_timeout),0), coalesce(sum(failures_http_status),0),
				coalesce(sum(failures_content_mismatch),0)
			FROM check_results_hourly WHERE target_id = $1`, st.id).
			Scan(&checks, &up, &down, &timeouts, &statuses, &mismatches)
		if err != nil {
			t.Fatal(err)
		}
		if checks != total || up != want["up"] || down != total-want["up"] ||
			timeouts != want["timeout"] || statuses != want["http_status"] || mismatches != want["content_mismatch"] {
			t.Errorf("%s: rollup checks=%d up=%d down=%d timeout=%d http_status=%d content_mismatch=%d; served %v",
				st.id, checks, up, down, timeouts, statuses, mismatches, want)
		}

		// The dashboard views agree.
		var state string
		if err := s.db.QueryRow(ctx, `SELECT state FROM target_status WHERE target_id = $1`, st.id).Scan(&state); err != nil {
			t.Fatalf("%s: target_status: %v", st.id, err)
		}
		wantState := "down"
		if last == "up" {
			wantState = "up"
		}
		if state != wantState {
			t.Errorf("%s: target_status.state %s, the last response served was %s", st.id, state, last)
		}
		var dayChecks int
		var pct float64
		if err := s.db.QueryRow(ctx, `SELECT sum(checks), 100.0 * sum(up) / sum(checks) FROM availability_daily WHERE target_id = $1`, st.id).
			Scan(&dayChecks, &pct); err != nil {
			t.Fatal(err)
		}
		wantPct := 100.0 * float64(want["up"]) / float64(total)
		if dayChecks != total || pct-wantPct > 0.001 || wantPct-pct > 0.001 {
			t.Errorf("%s: availability_daily %d checks, %.3f%%; want %d, %.3f%%", st.id, dayChecks, pct, total, wantPct)
		}
	}
}

// slotOffset is schedule.Offset (services/prober/internal/schedule, out of
// reach of this package): FNV-1a 64 of the ID modulo the interval. It never
// changes (TestOffsetIsStable pins it there).
func slotOffset(id string, interval time.Duration) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(id))
	return time.Duration(h.Sum64() % uint64(interval))
}

// slotAt returns the slot a request that came at t belongs to: the latest
// grid point at or before t (a check never starts before its slot, and one
// later than an interval is skipped as behind).
func slotAt(offset, interval time.Duration, t time.Time) int64 {
	n := t.UnixNano()
	r := (n - int64(offset)) % int64(interval)
	if r < 0 {
		r += int64(interval)
	}
	return n - r
}
