package receivers

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sitewatch/sitewatch/services/testing/internal/need"
	"github.com/sitewatch/sitewatch/services/testing/stackenv"
)

// AlertmanagerVersion is the version deploy/native/receivers.sh builds.
const AlertmanagerVersion = "v0.28.1"

// FreeAddr returns a loopback address no one listened on a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs cmd until the test ends, its output in the test's log when
// the test fails.
func start(t testing.TB, name string, cmd *exec.Cmd) {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Stdout == nil { // else the caller reads it
		cmd.Stdout = out
	}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			logTail(t, name, out.Name())
		}
		out.Close()
	})
}

func logTail(t testing.TB, name, path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	for _, l := range lines {
		t.Logf("%s: %s", name, l)
	}
}

// waitHTTP waits until url answers 200, or fails the test.
func waitHTTP(t testing.TB, what, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not ready at %s after 30s (last: %v)", what, url, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Alertmanager starts a Prometheus Alertmanager on a free loopback port
// with a route to a receiver that sends nothing, gossip off and storage in
// a temporary directory, and returns its base URL. The binary is
// $SITEWATCH_ALERTMANAGER, or .stack/alertmanager/alertmanager.
func Alertmanager(t testing.TB) string {
	t.Helper()
	need.Stack(t)
	bin := os.Getenv("SITEWATCH_ALERTMANAGER")
	if bin == "" {
		bin = filepath.Join(stackenv.Top(), ".stack", "alertmanager", "alertmanager")
	}
	if _, err := os.Stat(bin); err != nil {
		need.Unavailable(t, "no Alertmanager binary at %s (build it with `deploy/stack.sh receivers build`)", bin)
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(config, []byte(`route:
  receiver: none
  group_wait: 1s
receivers:
  - name: none
`), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	start(t, "alertmanager", exec.Command(bin,
		"--config.file="+config,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=", // no gossip: a single instance
		"--log.level=warn"))
	url := "http://" + addr
	waitHTTP(t, "Alertmanager", url+"/-/ready")
	return url
}

// python is Debian's interpreter, whose dist-packages hold python3-aiosmtpd
// (a python3 first on PATH, such as pyenv's, does not see them).
const python = "/usr/bin/python3"

func needAiosmtpd(t testing.TB) {
	t.Helper()
	if err := exec.Command(python, "-c", "import aiosmtpd").Run(); err != nil {
		need.Unavailable(t, "%s cannot import aiosmtpd (apt-get install python3-aiosmtpd): %v", python, err)
	}
}
