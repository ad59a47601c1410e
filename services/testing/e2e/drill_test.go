//go:build drill

// Failure drills (`task drill`): each stops or breaks one part of the running
// system and ends by comparing what the local websites served with what the
// tables hold. They stop and start the stack's own services, so they run
// alone (go test -p 1), never beside the other tests.
package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

// Drills run more traffic than the end-to-end test, so that a failure lands
// mid-stream: the standard sites plus extra always-up ones, checked often.
// The timeout leaves a loaded 2-core CI machine room to read a quick answer
// in time (at 150 ms a 500 once arrived late and was recorded as a timeout).
const drillInterval, drillTimeout = 500 * time.Millisecond, 300 * time.Millisecond

func drillSites(t testing.TB) []*site {
	sites := standardSites(t, drillTimeout)
	for i := range 20 {
		sites = append(sites, newSite(t, fmt.Sprintf("extra-%02d", i), drillTimeout, always("up")))
	}
	return sites
}

// stackCtl stops or starts one service of the native stack.
func stackCtl(t testing.TB, action, service string) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("no go.work above the test's directory: cannot find deploy/native/stack.sh")
		}
		dir = filepath.Dir(dir)
	}
	start := time.Now()
	out, err := exec.Command("bash", filepath.Join(dir, "deploy/native/stack.sh"), action, service).CombinedOutput()
	if err != nil {
		t.Fatalf("stack.sh %s %s: %v\n%s", action, service, err, out)
	}
	t.Logf("stack.sh %s %s took %s", action, service, time.Since(start).Round(time.Millisecond))
}

// outage stops service for d while the system runs, then starts it again;
// the service is started again at the end of the test whatever happens.
func outage(t testing.TB, service string, d time.Duration) {
	t.Helper()
	t.Cleanup(func() { stackCtl(t, "start", service) })
	stackCtl(t, "stop", service)
	time.Sleep(d)
	stackCtl(t, "start", service)
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// drill is a system running on the drill sites: a recorder and a prober.
type drill struct {
	sys   *system
	sites []*site
	rec   *proc
	prb   *proc
}

func startDrill(t testing.TB) *drill {
	t.Helper()
	d := &drill{sys: newSystem(t), sites: drillSites(t)}
	d.rec = d.sys.recorder(t)
	d.prb = d.sys.prober(t, targetsFile(t, drillInterval, drillTimeout, d.sites), true)
	return d
}

// finish stops the prober, requires the recorder to have lived through the
// drill, waits until every result is stored, stops the recorder and compares
// the tables with what the sites served.
func (d *drill) finish(t testing.TB, storeTimeout time.Duration) {
	t.Helper()
	d.prb.stop(t, 30*time.Second)
	if !d.rec.running() {
		t.Fatalf("the recorder exited during the drill: %v\n%s", d.rec.err, tail(d.rec.out.String(), 40))
	}
	d.sys.waitStored(t, d.sites, storeTimeout)
	d.rec.stop(t, 30*time.Second)
	d.sys.assertExact(t, d.sites)
}

// 1. The recorder is killed with SIGKILL mid-stream and restarted: what it
// had stored but not committed in Kafka is delivered again and not counted
// twice; what it had not stored is stored.
func TestDrillRecorderKilled(t *testing.T) {
	d := startDrill(t)
	for range 3 {
		time.Sleep(2 * time.Second)
		d.rec.kill()
		time.Sleep(500 * time.Millisecond)
		d.rec = d.sys.recorder(t)
	}
	time.Sleep(2 * time.Second)
	d.finish(t, 60*time.Second)
}

// 2. Two recorders share the group; one is killed and the other takes over
// its partitions.
func TestDrillRecorderTakeover(t *testing.T) {
	d := startDrill(t)
	other := d.sys.recorder(t)
	time.Sleep(4 * time.Second)
	d.rec.kill()
	d.rec = other
	time.Sleep(4 * time.Second)
	d.finish(t, 90*time.Second)
}

// 3. PostgreSQL is stopped for 20 s while events flow: the recorder retries
// and resumes without exiting.
func TestDrillPostgresDown(t *testing.T) {
	d := startDrill(t)
	time.Sleep(2 * time.Second)
	outage(t, "postgres", 20*time.Second)
	time.Sleep(2 * time.Second)
	d.finish(t, 90*time.Second)
}

// 4. Kafka is stopped for 20 s while the prober checks: results wait in the
// prober's buffer and are delivered when Kafka is back.
func TestDrillKafkaDown(t *testing.T) {
	d := startDrill(t)
	time.Sleep(2 * time.Second)
	outage(t, "kafka", 20*time.Second)
	time.Sleep(3 * time.Second)
	if n := metric(t, d.prb, "sitewatch_prober_results_dropped_total"); n != 0 {
		t.Errorf("the prober dropped %v results during a 20 s outage; its buffer should hold them", n)
	}
	d.finish(t, 120*time.Second)
}

// 5. The registry is down when the prober starts: the prober is alive but not
// ready, retries with backoff, and publishes once the registry answers.
func TestDrillRegistryDownAtStart(t *testing.T) {
	sys := newSystem(t)
	sites := standardSites(t, drillTimeout)
	targets := targetsFile(t, drillInterval, drillTimeout, sites)
	t.Cleanup(func() { stackCtl(t, "start", "registry") })
	stackCtl(t, "stop", "registry")

	prb := sys.prober(t, targets, false)
	waitFor(t, 20*time.Second, "prober answers /readyz with 503", func() (bool, string) {
		resp, err := http.Get("http://" + prb.listen + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable, resp.Status
	})
	time.Sleep(3 * time.Second)
	if !prb.running() {
		t.Fatalf("the prober exited while the registry was down: %v\n%s", prb.err, tail(prb.out.String(), 20))
	}
	stackCtl(t, "start", "registry")
	prb.waitReady(t, 60*time.Second)
	rec := sys.recorder(t)
	time.Sleep(3 * time.Second)
	prb.stop(t, 15*time.Second)
	sys.waitStored(t, sites, 60*time.Second)
	rec.stop(t, 30*time.Second)
	sys.assertExact(t, sites)
}

// 6. Garbage and records with unknown schema IDs on the topic are
// dead-lettered with their reason; the stream goes on.
func TestDrillGarbage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sys := newSystem(t)
	sites := standardSites(t, drillTimeout)
	targets := targetsFile(t, drillInterval, drillTimeout, sites)
	rec := sys.recorder(t)
	prb := sys.prober(t, targets, true)
	time.Sleep(time.Second)

	// The prober registered the schema; a record with its ID but a payload
	// that is not a CheckResult is a third kind of garbage.
	subject, err := stacktest.Registry(t).SchemaByVersion(ctx, kafkaenv.Subject(sys.topic), -1)
	if err != nil {
		t.Fatalf("schema the prober registered: %v", err)
	}
	header := func(id int) []byte {
		b := []byte{0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:5], uint32(id))
		return b // message index [0] is the single byte 0
	}
	garbage := map[string][]byte{
		"no_magic_byte":      []byte("hello, not an event"),
		"unknown_schema_id":  append(header(987654321), 0x0a, 0x01, 0x41),
		"not_a_check_result": append(header(subject.ID), 0xff, 0xff, 0xff),
	}
	cl := stacktest.KafkaClient(t, kgo.DefaultProduceTopic(sys.topic))
	for reason, value := range garbage {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("garbage-" + reason), Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	prb.stop(t, 15*time.Second)
	sys.waitStored(t, sites, 60*time.Second)
	if !rec.running() {
		t.Fatalf("the recorder exited on garbage: %v", rec.err)
	}
	rec.stop(t, 30*time.Second)
	sys.assertExact(t, sites)

	dlq := stacktest.KafkaClient(t, kgo.ConsumeTopics(kafkaenv.DLQ(sys.topic)), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[string]*kgo.Record{}
	for len(got) < len(garbage) && ctx.Err() == nil {
		dlq.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "dlq.reason" {
					got[string(h.Value)] = r
				}
			}
		})
	}
	for reason, value := range garbage {
		r := got[reason]
		if r == nil {
			t.Errorf("no dead letter with reason %s (got %d dead letters)", reason, len(got))
			continue
		}
		if string(r.Value) != string(value) || string(r.Key) != "garbage-"+reason {
			t.Errorf("%s: dead letter key %q value %x; want the original key and value", reason, r.Key, r.Value)
		}
		headers := map[string]string{}
		for _, h := range r.Headers {
			headers[h.Key] = string(h.Value)
		}
		if headers["dlq.topic"] != sys.topic || headers["dlq.partition"] == "" || headers["dlq.offset"] == "" {
			t.Errorf("%s: dead letter headers %v lack the source topic, partition or offset", reason, headers)
		}
	}
	if len(got) != len(garbage) {
		t.Errorf("%d distinct dead-letter reasons, want %d: %v", len(got), len(garbage), got)
	}
}

// 7. Hostile websites: an endless body, headers dripping a byte at a time, a
// redirect loop, and a 1 MB single-line body against a pathological-looking
// pattern. Every check ends within its timeout and the prober's memory stays
// bounded.
func TestDrillHostileWebsites(t *testing.T) {
	const interval, timeout = 2 * time.Second, time.Second
	sys := newSystem(t)
	chunk := []byte(strings.Repeat("x", 32<<10))
	hostile := map[string]http.HandlerFunc{
		"endless-body": func(w http.ResponseWriter, r *http.Request) {
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		},
		"drip-headers": func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			if _, err := buf.WriteString("HTTP/1.1 200 OK\r\n"); err != nil {
				return
			}
			for i := 0; i < 600; i++ {
				if _, err := buf.WriteString("X-Drip: " + strconv.Itoa(i) + "\r\n"); err != nil || buf.Flush() != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		},
		"redirect-loop": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, r.URL.Path, http.StatusFound)
		},
		"megabyte-line": func(w http.ResponseWriter, r *http.Request) {
			bw := bufio.NewWriter(w)
			for range 1_000_000 / len(chunk) {
				if _, err := bw.Write(chunk); err != nil {
					return
				}
			}
			bw.Flush()
		},
	}
	want := map[string]string{ // failure kind each must end with, and the pattern
		"endless-body":  "up",
		"drip-headers":  "timeout",
		"redirect-loop": "other",
		"megabyte-line": "content_mismatch",
	}
	var b strings.Builder
	fmt.Fprintf(&b, "defaults:\n  interval: %s\n  timeout: %s\ntargets:\n", interval, timeout)
	for id, h := range hostile {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		fmt.Fprintf(&b, "  - id: %s\n    url: %s/\n", id, srv.URL)
		if id == "megabyte-line" {
			b.WriteString("    pattern: '(x+x+)+y'\n")
		}
	}
	targets := filepath.Join(t.TempDir(), "targets.yaml")
	if err := os.WriteFile(targets, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	rec := sys.recorder(t)
	prb := sys.prober(t, targets, true)
	time.Sleep(5 * interval)
	peak := peakRSS(t, prb)
	prb.stop(t, 15*time.Second)
	waitFor(t, 30*time.Second, "results of every hostile site stored", func() (bool, string) {
		n := sys.count(t, "SELECT count(DISTINCT target_id) FROM check_results")
		return n == len(hostile), fmt.Sprintf("%d targets", n)
	})
	time.Sleep(time.Second)
	rec.stop(t, 30*time.Second)

	for id, kind := range want {
		var checks, wrong int
		var maxUS int64
		err := sys.db.QueryRow(context.Background(), `SELECT count(*),
				count(*) FILTER (WHERE coalesce(failure_kind, outcome) <> $2),
				max(response_time_us)
			FROM check_results WHERE target_id = $1`, id, kind).Scan(&checks, &wrong, &maxUS)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d checks, slowest %.1f ms", id, checks, float64(maxUS)/1000)
		if checks < 3 || wrong != 0 {
			t.Errorf("%s: %d checks, %d of them not %s", id, checks, wrong, kind)
		}
		// The deadline covers the whole check; allow scheduling slack only.
		if limit := (timeout + 250*time.Millisecond).Microseconds(); maxUS > limit {
			t.Errorf("%s: a check took %d us, beyond its %s timeout", id, maxUS, timeout)
		}
	}
	var truncated bool
	if err := sys.db.QueryRow(context.Background(),
		`SELECT bool_and(body_truncated) FROM check_results WHERE target_id = 'endless-body'`).Scan(&truncated); err != nil || !truncated {
		t.Errorf("endless-body: body_truncated on every check = %v (%v)", truncated, err)
	}
	t.Logf("prober peak RSS %.1f MiB", float64(peak)/(1<<20))
	if peak > 150<<20 {
		t.Errorf("prober peak RSS %d MiB, want under 150 MiB", peak>>20)
	}
}

// metric reads a sample from the process's /metrics: name alone sums every
// series of the metric (all label values), name{labels} reads one series.
func metric(t testing.TB, p *proc, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	found := false
	sum := 0.0
	for sc.Scan() {
		line := sc.Text()
		v, ok := strings.CutPrefix(line, name+" ")
		if !ok && !strings.Contains(name, "{") && strings.HasPrefix(line, name+"{") {
			v, ok = line[strings.LastIndexByte(line, ' ')+1:], true
		}
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		found = true
		sum += f
	}
	if !found {
		t.Fatalf("%s has no metric %s", p.name, name)
	}
	return sum
}

// peakRSS reads the high-water mark of the process's resident memory.
func peakRSS(t testing.TB, p *proc) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}
