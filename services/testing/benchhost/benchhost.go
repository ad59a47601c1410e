package benchhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Page is the ~2 KB static page every benchmark checks.
var Page = []byte("<!doctype html><html><head><title>sitewatch bench</title></head><body>\n" +
	strings.Repeat("<p>The quick brown fox jumps over the lazy dog.</p>\n", 42) + "</body></html>\n")

// FreeAddr returns a 127.0.0.1 address whose port nothing listened on when
// asked (a check, not a reservation: whoever listens there next must check
// that it listens).
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// userHZ is the unit of /proc/PID/stat's times: USER_HZ, 100 on Linux
// whatever the kernel's tick rate.
const userHZ = 100

// CPU returns the user and system CPU time of process pid so far, from
// /proc/PID/stat (os.Getpid() for the caller itself).
func CPU(pid int) (user, system time.Duration, err error) {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	return parseStat(path, string(data))
}

func parseStat(path, s string) (user, system time.Duration, err error) {
	// After the parenthesised command name, which may hold spaces and
	// parentheses, state is the first field: utime the 12th, stime the 13th.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("%s: %d fields after the command name, want at least 13", path, len(f))
	}
	u, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: utime: %w", path, err)
	}
	st, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: stime: %w", path, err)
	}
	return time.Duration(u) * time.Second / userHZ, time.Duration(st) * time.Second / userHZ, nil
}

// Memory returns the resident set size of process pid and its peak so far
// (VmRSS and VmHWM of /proc/PID/status), in bytes.
func Memory(pid int) (rss, peak int64, err error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	return parseStatus(path, string(data))
}

func parseStatus(path, s string) (rss, peak int64, err error) {
	for line := range strings.SplitSeq(s, "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %s: %w", path, name, err)
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	return rss, peak, nil
}

// Nginx is an nginx process serving Page, one worker, from a temporary
// directory of its own.
type Nginx struct {
	// URLs of the page, one per port asked for.
	URLs []string
	// PID of the nginx process.
	PID int
	cmd *exec.Cmd
	dir string
}

// NginxBinary returns the path of nginx: on PATH or Debian's /usr/sbin.
func NginxBinary() (string, error) {
	bin, err := exec.LookPath("nginx")
	if err == nil {
		return bin, nil
	}
	if _, statErr := os.Stat("/usr/sbin/nginx"); statErr == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", fmt.Errorf("nginx not found (apt-get install -y nginx-light): %w", err)
}

// StartNginx runs nginx in the foreground (one process, worker_processes 1,
// as the current user) serving Page on the given number of free 127.0.0.1
// ports: a benchmark step on a port of its own does not meet the closed
// connections an earlier step left in TIME_WAIT (tens of thousands per step
// on loopback), which make finding a free four-tuple slower.
func StartNginx(ctx context.Context, ports int) (*Nginx, error) {
	bin, err := NginxBinary()
	if err != nil {
		return nil, err
	}
	// A port found free may be taken before nginx binds it: try again.
	for attempt := 1; ; attempt++ {
		n, err := startNginx(ctx, bin, ports)
		if err == nil || attempt == 3 {
			return n, err
		}
	}
}

func startNginx(ctx context.Context, bin string, ports int) (*Nginx, error) {
	dir, err := os.MkdirTemp("", "sitewatch-nginx")
	if err != nil {
		return nil, err
	}
	n := &Nginx{dir: dir}
	var listen strings.Builder
	addrs := make([]string, ports)
	for i := range addrs {
		if addrs[i], err = FreeAddr(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		fmt.Fprintf(&listen, "    listen %s;\n", addrs[i])
		n.URLs = append(n.URLs, "http://"+addrs[i]+"/index.html")
	}
	if err := os.WriteFile(filepath.Join(dir, "index.html"), Page, 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s;
  proxy_temp_path %[1]s;
  fastcgi_temp_path %[1]s;
  uwsgi_temp_path %[1]s;
  scgi_temp_path %[1]s;
  server {
%[2]s    root %[1]s;
    location / { index index.html; }
  }
}
`, dir, listen.String())
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	n.cmd = exec.Command(bin, "-c", confPath, "-p", dir, "-e", filepath.Join(dir, "error.log"))
	// nginx goes with its parent, even one killed.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	n.cmd.Stdout, n.cmd.Stderr = &out, &out
	if err := n.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	n.PID = n.cmd.Process.Pid
	for _, addr := range addrs {
		if err := WaitListening(ctx, addr, 10*time.Second); err != nil {
			n.Stop()
			errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return nil, fmt.Errorf("nginx: %w: %s%s", err, out.String(), errLog)
		}
	}
	return n, nil
}

// Stop ends nginx (SIGQUIT: a graceful stop) and removes its directory.
func (n *Nginx) Stop() {
	n.cmd.Process.Signal(syscall.SIGQUIT) //nolint:errcheck // may have exited
	n.cmd.Wait()                          //nolint:errcheck // its exit status is the signal's
	os.RemoveAll(n.dir)
}

// WaitListening waits until something accepts connections at addr.
func WaitListening(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens at %s after %v: %w", addr, timeout, err)
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("nothing listens at %s", addr), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
