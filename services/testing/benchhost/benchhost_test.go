package benchhost

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name with a space and a parenthesis, as /proc shows it.
	const stat = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 8 0 100 0 0"
	user, sys, err := parseStat("/proc/4242/stat", stat)
	if err != nil {
		t.Fatal(err)
	}
	if user != 2500*time.Millisecond || sys != 500*time.Millisecond {
		t.Errorf("user %v, system %v; want 2.5s, 500ms", user, sys)
	}
	if _, _, err := parseStat("/proc/1/stat", "1 (init) S 1 2"); err == nil ||
		err.Error() != "/proc/1/stat: 3 fields after the command name, want at least 13" {
		t.Errorf("short line: %v", err)
	}
}

func TestParseStatus(t *testing.T) {
	const status = "Name:\tprober\nVmPeak:\t  900000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t9\n"
	rss, peak, err := parseStatus("/proc/1/status", status)
	if err != nil {
		t.Fatal(err)
	}
	if rss != 1<<20 || peak != 2<<20 {
		t.Errorf("rss %d, peak %d; want %d, %d", rss, peak, 1<<20, 2<<20)
	}
	if _, _, err := parseStatus("/proc/1/status", "VmRSS:\tlots kB\n"); err == nil ||
		err.Error() != `/proc/1/status: VmRSS: strconv.ParseInt: parsing "lots": invalid syntax` {
		t.Errorf("bad number: %v", err)
	}
}

// nginx serves Page on every port asked for, and nothing listens there once
// it is stopped.
func TestStartNginx(t *testing.T) {
	if _, err := NginxBinary(); err != nil {
		t.Skip(err)
	}
	n, err := StartNginx(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.URLs) != 3 {
		t.Fatalf("%d URLs, want 3: %v", len(n.URLs), n.URLs)
	}
	var addrs []string
	for _, u := range n.URLs {
		resp, err := http.Get(u)
		if err != nil {
			n.Stop()
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != string(Page) {
			t.Errorf("%s: %d, %d bytes; want 200 and the %d bytes of Page", u, resp.StatusCode, len(body), len(Page))
		}
		addrs = append(addrs, resp.Request.URL.Host)
	}
	n.Stop()
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Stop", a)
		}
	}
}
