package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/prober/internal/fleet"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

// fleetProber is a prober run in fleet mode by a test.
type fleetProber struct {
	instance string
	metrics  string // address of /metrics and /readyz
	stop     context.CancelFunc
	done     chan error
	logs     *stacktest.Log
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startFleetProber(t *testing.T, instance, region, targetsTopic, resultsTopic string) *fleetProber {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	p := &fleetProber{instance: instance, metrics: freeAddr(t), stop: stop, done: make(chan error, 1), logs: &stacktest.Log{}}
	go func() {
		p.done <- run(ctx, []string{"-fleet", "-region", region, "-instance", instance, "-targets-topic", targetsTopic,
			"-topic", resultsTopic, "-partitions", "2", "-listen", p.metrics, "-linger", "5ms", "-session-timeout", "10s", "-spool-dir", t.TempDir()},
			stacktest.Getenv, &bytes.Buffer{}, p.logs)
	}()
	t.Cleanup(func() {
		p.shutdown(t)
		if t.Failed() {
			t.Logf("logs of %s:\n%s", instance, p.logs.String())
		}
	})
	return p
}

// shutdown stops the prober gracefully, once.
func (p *fleetProber) shutdown(t *testing.T) {
	t.Helper()
	if p.done == nil {
		return
	}
	p.stop()
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("%s: run: %v", p.instance, err)
		}
	case <-time.After(40 * time.Second):
		t.Errorf("%s: run did not return within 40s of cancel", p.instance)
	}
	p.done = nil
}

// partitions returns the prober's sitewatch_prober_fleet_partitions and
// whether /readyz says ready; -1 when it does not answer yet.
func (p *fleetProber) partitions() (int, bool) {
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return -1, false
	}
	defer resp.Body.Close()
	n := -1
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "sitewatch_prober_fleet_partitions "); ok {
			n, _ = strconv.Atoi(v)
		}
	}
	ready, err := http.Get("http://" + p.metrics + "/readyz")
	if err != nil {
		return n, false
	}
	ready.Body.Close()
	return n, ready.StatusCode == http.StatusOK
}

// checkEvent is what the test keeps of a CheckResult.
type checkEvent struct {
	target, url, instance string
	started               time.Time
}

// events reads the results topic in the background.
type events struct {
	mu   sync.Mutex
	all  []checkEvent
	errs []string
}

func readEvents(t *testing.T, ctx context.Context, topic string) *events {
	t.Helper()
	cl := stacktest.KafkaClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation())
	e := &events{}
	go func() {
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				var h sr.ConfluentHeader
				_, rest, err := h.DecodeID(r.Value)
				if err == nil {
					_, rest, err = h.DecodeIndex(rest, 16)
				}
				var m sitewatchv1.CheckResult
				if err == nil {
					err = proto.Unmarshal(rest, &m)
				}
				e.mu.Lock()
				defer e.mu.Unlock()
				if err != nil {
					e.errs = append(e.errs, fmt.Sprintf("record %s: %v", r.Key, err))
					return
				}
				e.all = append(e.all, checkEvent{target: m.GetTarget().GetId(), url: m.GetTarget().GetUrl(),
					instance: m.GetProber().GetInstance(), started: m.GetStartedAt().AsTime()})
			})
		}
	}()
	return e
}

// owners returns, per target, the instances among of whose checks started
// in [from, to), as "i1+i2".
func (e *events) owners(from, to time.Time, of ...string) map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	set := map[string]map[string]bool{}
	for _, ev := range e.all {
		if ev.started.Before(from) || !ev.started.Before(to) || !slices.Contains(of, ev.instance) {
			continue
		}
		if set[ev.target] == nil {
			set[ev.target] = map[string]bool{}
		}
		set[ev.target][ev.instance] = true
	}
	out := map[string]string{}
	for id, is := range set {
		out[id] = strings.Join(slices.Sorted(maps.Keys(is)), "+")
	}
	return out
}

// perURL counts the events by target URL.
func (e *events) perURL() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int{}
	for _, ev := range e.all {
		out[ev.url]++
	}
	return out
}

// countingSite serves 200 and counts requests by URL.
type countingSite struct {
	*httptest.Server
	mu     sync.Mutex
	counts map[string]int
}

func newCountingSite(t *testing.T) *countingSite {
	s := &countingSite{counts: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.counts[s.URL+r.URL.Path]++
		s.mu.Unlock()
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *countingSite) snapshot() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts)
}

func eventually(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, got := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// regionName returns a region name no other test uses (lowercase letters,
// digits and -, as the targets file wants).
func regionName(prefix string) string {
	return strings.ReplaceAll(stacktest.Name(prefix), "_", "-")
}

// expectOwners returns the map owners must equal: each id owned by owner.
func expectOwners(ids []string, owner string) map[string]string {
	out := map[string]string{}
	for _, id := range ids {
		out[id] = owner
	}
	return out
}

// TestFleetProbers runs fleet probers against the stack: two in region r1
// split its targets with no overlap and no gap, one in r2 checks only what
// r2 should, the survivor of a graceful stop takes every target, and live
// changes (a tombstone, a new URL) reach the probers. At the end, what the
// site served equals the events published, URL by URL.
func TestFleetProbers(t *testing.T) {
	stacktest.KafkaConfig(t) // skips (or fails under CI) without the stack
	stacktest.Registry(t)
	site := newCountingSite(t)
	targetsTopic, resultsTopic := stacktest.Name("fleet_targets"), stacktest.Name("fleet_results")
	// Regions name the groups: unique ones, as other tests run fleet
	// members at the same time.
	r1Name, r2Name := regionName("r1"), regionName("r2")

	// t00-t15 in every region, t16-t17 in r1 only, t18-t19 in r2 only.
	file := func(mutate func(id string) (url string, keep bool)) string {
		var b strings.Builder
		b.WriteString("defaults:\n  interval: 1s\n  timeout: 500ms\ntargets:\n")
		for i := range 20 {
			id := fmt.Sprintf("t%02d", i)
			url, keep := site.URL+"/"+id, true
			if mutate != nil {
				url, keep = mutate(id)
			}
			if !keep {
				continue
			}
			fmt.Fprintf(&b, "  - id: %s\n    url: %s\n", id, url)
			switch {
			case i >= 18:
				fmt.Fprintf(&b, "    regions: [%s]\n", r2Name)
			case i >= 16:
				fmt.Fprintf(&b, "    regions: [%s, r3]\n", r1Name)
			}
		}
		return b.String()
	}
	var r1, r2 []string
	for i := range 20 {
		id := fmt.Sprintf("t%02d", i)
		if i < 18 {
			r1 = append(r1, id)
		}
		if i < 16 || i >= 18 {
			r2 = append(r2, id)
		}
	}
	apply := func(content string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var out, errOut bytes.Buffer
		if err := fleet.Targets(ctx, []string{"apply", writeFile(t, content), "-topic", targetsTopic, "-partitions", "6"}, stacktest.Getenv, &out, &errOut); err != nil {
			t.Fatalf("apply: %v\n%s%s", err, out.String(), errOut.String())
		}
	}
	apply(file(nil))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs := readEvents(t, ctx, resultsTopic)

	p1 := startFleetProber(t, "p1", r1Name, targetsTopic, resultsTopic)
	p2 := startFleetProber(t, "p2", r1Name, targetsTopic, resultsTopic)
	p3 := startFleetProber(t, "p3", r2Name, targetsTopic, resultsTopic)
	eventually(t, "r1's 6 partitions split over p1 and p2, p3 owning all 6 of r2, all ready", time.Minute, func() (bool, string) {
		n1, ok1 := p1.partitions()
		n2, ok2 := p2.partitions()
		n3, ok3 := p3.partitions()
		return ok1 && ok2 && ok3 && n1 > 0 && n2 > 0 && n1+n2 == 6 && n3 == 6, fmt.Sprintf("p1 %d %v, p2 %d %v, p3 %d %v", n1, ok1, n2, ok2, n3, ok3)
	})

	// A window of 3 intervals, starting once running checks of any
	// earlier assignment are over (timeout 500ms).
	window := func() (from, to time.Time) {
		from = time.Now().Add(time.Second)
		to = from.Add(3 * time.Second)
		time.Sleep(time.Until(to) + 2*time.Second) // the last events reach Kafka
		return from, to
	}
	from, to := window()
	got := evs.owners(from, to, "p1", "p2")
	var only1, only2 int
	for _, id := range r1 {
		switch got[id] {
		case "p1":
			only1++
		case "p2":
			only2++
		default:
			t.Errorf("r1: %s checked by %q, want exactly one of p1, p2", id, got[id])
		}
	}
	if len(got) != len(r1) || only1 == 0 || only2 == 0 {
		t.Errorf("r1: owners %v; want the %d targets of r1 split over p1 (%d) and p2 (%d)", got, len(r1), only1, only2)
	}
	if got, want := evs.owners(from, to, "p3"), expectOwners(r2, "p3"); !maps.Equal(got, want) {
		t.Errorf("r2: owners %v, want %v", got, want)
	}

	// A graceful stop: p2 takes every target of r1 well before the
	// session timeout (10s), as p1 left the group.
	stopped := time.Now()
	p1.shutdown(t)
	eventually(t, "p2 owns all 6 partitions", 8*time.Second, func() (bool, string) {
		n, ok := p2.partitions()
		return ok && n == 6, fmt.Sprint(n, ok)
	})
	t.Logf("p2 owned every partition %s after p1 was told to stop", time.Since(stopped).Round(time.Millisecond))
	from, to = window()
	if got, want := evs.owners(from, to, "p1", "p2"), expectOwners(r1, "p2"); !maps.Equal(got, want) {
		t.Errorf("r1 after p1 stopped: owners %v, want %v", got, want)
	}

	// Live: t01 removed (a tombstone), t02 moves to a new URL.
	apply(file(func(id string) (string, bool) {
		switch id {
		case "t01":
			return "", false
		case "t02":
			return site.URL + "/t02-new", true
		}
		return site.URL + "/" + id, true
	}))
	eventually(t, "both regions check t02 at its new URL", 15*time.Second, func() (bool, string) {
		c := site.snapshot()[site.URL+"/t02-new"]
		return c >= 2, fmt.Sprint(c)
	})
	from, to = window()
	wantR1, wantR2 := expectOwners(r1, "p2"), expectOwners(r2, "p3")
	delete(wantR1, "t01")
	delete(wantR2, "t01")
	if got := evs.owners(from, to, "p2"); !maps.Equal(got, wantR1) {
		t.Errorf("r1 after the change: owners %v, want %v", got, wantR1)
	}
	if got := evs.owners(from, to, "p3"); !maps.Equal(got, wantR2) {
		t.Errorf("r2 after the change: owners %v, want %v", got, wantR2)
	}
	evs.mu.Lock()
	for _, ev := range evs.all {
		if ev.target == "t02" && !ev.started.Before(from) && ev.url != site.URL+"/t02-new" {
			t.Errorf("t02 checked at %s after the change", ev.url)
		}
	}
	evs.mu.Unlock()

	// Every request the site served is an event, and every event a request.
	p2.shutdown(t)
	p3.shutdown(t)
	served := site.snapshot()
	eventually(t, "events for every request served", 20*time.Second, func() (bool, string) {
		got := evs.perURL()
		return maps.Equal(got, served), fmt.Sprintf("events %v, served %v", got, served)
	})
	evs.mu.Lock()
	if len(evs.errs) > 0 {
		t.Errorf("undecodable events: %v", evs.errs)
	}
	evs.mu.Unlock()
}
