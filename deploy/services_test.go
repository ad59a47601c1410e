package deploy

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeServices lays out a checkout for deploy/native/services.sh: the
// script itself, .stack/env, targets.yaml, and a `go` on PATH whose build
// writes stand-in prober and recorder binaries that log their arguments to
// calls.log and sleep until signalled. /readyz answers from an httptest
// server at the addresses the script is given.
func fakeServices(t *testing.T) (root string, env []string) {
	t.Helper()
	root = t.TempDir()
	script, err := os.ReadFile("native/services.sh")
	if err != nil {
		t.Fatal(err)
	}
	writeExecutable(t, filepath.Join(root, "deploy/native/services.sh"), string(script))
	writeExecutable(t, filepath.Join(root, ".stack/env"), "export KAFKA_BROKERS=127.0.0.1:1\n")
	writeExecutable(t, filepath.Join(root, "targets.yaml"), "targets: []\n")
	fake := t.TempDir()
	binary := `#!/bin/sh
echo "$(basename "$0") $*" >>"` + root + `/calls.log"
case "$1" in targets|-validate) exit 0 ;; esac
case "$3" in -validate) exit 0 ;; esac
exec sleep 60
`
	// go build -o DIR/ PKG...: one stand-in per package.
	writeExecutable(t, filepath.Join(fake, "go"), `#!/bin/sh
dir=$3
for b in prober recorder alerter web; do
  cat >"$dir/$b" <<'BIN'
`+binary+`BIN
  chmod +x "$dir/$b"
done
`)
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(ready.Close)
	ready2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(ready2.Close)
	ready3 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(ready3.Close)
	ready4 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(ready4.Close)
	ready5 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(ready5.Close)
	system := toolPath(t, "bash", "dirname", "mkdir", "cat", "setsid", "curl", "kill", "sleep", "rm", "tail", "basename", "chmod", "sh")
	env = []string{"PATH=" + fake + ":" + system,
		"SITEWATCH_PROBER_LISTEN=" + strings.TrimPrefix(ready.URL, "http://"),
		"SITEWATCH_RECORDER_LISTEN=" + strings.TrimPrefix(ready2.URL, "http://"),
		"SITEWATCH_WEB_LISTEN=" + strings.TrimPrefix(ready3.URL, "http://"),
		"SITEWATCH_ALERTER_LISTEN=" + strings.TrimPrefix(ready4.URL, "http://"),
		"SITEWATCH_ALERT_SINK_LISTEN=" + strings.TrimPrefix(ready5.URL, "http://")}
	return root, env
}

// `task up` applies targets.yaml to the targets topic and starts one fleet
// prober in region local; SITEWATCH_PROBER_MODE=file starts it on the file.
func TestServicesUpRunsTheFleet(t *testing.T) {
	tests := []struct {
		name       string
		env        []string
		wantCalls  string
		wantStatus string
	}{
		{
			name: "fleet by default",
			wantCalls: "prober -config ROOT/targets.yaml -validate\n" +
				"recorder -listen RECORDER\n" +
				"alerter sink -listen SINK\n" +
				"alerter -listen ALERTER -config ROOT/targets.yaml\n" +
				"web -listen WEB\n" +
				"prober targets apply ROOT/targets.yaml\n" +
				"prober -listen PROBER -fleet -region local -instance local-1\n",
			wantStatus: "(fleet region local instance local-1)",
		},
		{
			name: "another region and instance",
			env:  []string{"SITEWATCH_PROBER_REGION=eu-west", "SITEWATCH_PROBER_INSTANCE=eu-west-1"},
			wantCalls: "prober -config ROOT/targets.yaml -validate\n" +
				"recorder -listen RECORDER\n" +
				"alerter sink -listen SINK\n" +
				"alerter -listen ALERTER -config ROOT/targets.yaml\n" +
				"web -listen WEB\n" +
				"prober targets apply ROOT/targets.yaml\n" +
				"prober -listen PROBER -fleet -region eu-west -instance eu-west-1\n",
			wantStatus: "(fleet region eu-west instance eu-west-1)",
		},
		{
			name: "file mode",
			env:  []string{"SITEWATCH_PROBER_MODE=file"},
			wantCalls: "prober -config ROOT/targets.yaml -validate\n" +
				"recorder -listen RECORDER\n" +
				"alerter sink -listen SINK\n" +
				"alerter -listen ALERTER -config ROOT/targets.yaml\n" +
				"web -listen WEB\n" +
				"prober -listen PROBER -config ROOT/targets.yaml\n",
			wantStatus: "(file ROOT/targets.yaml)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, env := fakeServices(t)
			env = append(env, tt.env...)
			script := filepath.Join(root, "deploy/native/services.sh")
			t.Cleanup(func() { runScript(t, env, script, "down") })
			if _, stderr, code := runScript(t, env, script, "up"); code != 0 {
				t.Fatalf("services.sh up: exit %d\n%s", code, stderr)
			}
			// The services log their start in the background, after the
			// script saw them ready: wait for every line, then compare
			// them sorted (apply runs in the foreground, before the prober).
			var calls []string
			for i := 0; i < 100 && len(calls) < strings.Count(tt.wantCalls, "\n"); i++ {
				b, _ := os.ReadFile(filepath.Join(root, "calls.log"))
				calls = strings.SplitAfter(string(b), "\n")
				calls = calls[:len(calls)-1]
				time.Sleep(50 * time.Millisecond)
			}
			slices.Sort(calls)
			want := strings.SplitAfter(tt.wantCalls, "\n")
			want = want[:len(want)-1]
			slices.Sort(want)
			replace := strings.NewReplacer(root, "ROOT", envValue(env, "SITEWATCH_PROBER_LISTEN"), "PROBER",
				envValue(env, "SITEWATCH_RECORDER_LISTEN"), "RECORDER", envValue(env, "SITEWATCH_WEB_LISTEN"), "WEB",
				envValue(env, "SITEWATCH_ALERTER_LISTEN"), "ALERTER", envValue(env, "SITEWATCH_ALERT_SINK_LISTEN"), "SINK")
			if got := replace.Replace(strings.Join(calls, "")); got != strings.Join(want, "") {
				t.Errorf("calls, sorted:\n%s\nwant:\n%s", got, strings.Join(want, ""))
			}
			stdout, _, _ := runScript(t, env, script, "status")
			first := strings.SplitN(stdout, "\n", 2)[0]
			if !strings.HasPrefix(first, "prober    running") || !strings.HasSuffix(replace.Replace(first), "ready  "+tt.wantStatus) {
				t.Errorf("status: %q, want the prober running, ready, %s", first, tt.wantStatus)
			}
			if _, stderr, code := runScript(t, env, script, "down"); code != 0 {
				t.Fatalf("services.sh down: exit %d\n%s", code, stderr)
			}
			if _, err := os.Stat(filepath.Join(root, ".stack/run/prober.mode")); !os.IsNotExist(err) {
				t.Errorf("after down, .stack/run/prober.mode: %v; want it removed", err)
			}
		})
	}
	t.Run("an unknown mode", func(t *testing.T) {
		root, env := fakeServices(t)
		env = append(env, "SITEWATCH_PROBER_MODE=lease")
		_, stderr, code := runScript(t, env, filepath.Join(root, "deploy/native/services.sh"), "up")
		if want := "[services] ERROR: SITEWATCH_PROBER_MODE=lease: want fleet or file\n"; code != 1 || stderr != want {
			t.Errorf("exit %d, stderr %q; want 1, %q", code, stderr, want)
		}
	})
}

func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}
