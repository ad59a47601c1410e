// Package deploy holds no Go code: its tests run the scripts of deploy/
// against fakes (a docker command, a stack.sh, listeners on loopback), so
// that the choices the scripts make are tested where no Docker engine runs.
package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// toolPath returns a directory of links to exactly the named commands, for
// PATH: neither docker nor go is there unless named, wherever the machine
// keeps them.
func toolPath(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			t.Skipf("%s not found: %v", n, err)
		}
		if err := os.Symlink(p, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// What stack.sh needs to choose, and bench.sh up to its check for go.
var (
	stackTools = []string{"bash", "dirname", "timeout"}
	benchTools = []string{"bash", "env", "dirname", "mkdir", "rm", "mktemp", "curl", "paste", "sed", "cat"}
)

func bash(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	return p
}

func writeExecutable(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

// runScript runs a script with exactly env, returning stdout, stderr and
// the exit code.
func runScript(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bash(t), args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// stack.sh picks Docker Compose only when the engine and the Compose plugin
// both answer, and says why it picked what it picked.
func TestStackChoosesComposeOnlyWhenBothAnswer(t *testing.T) {
	fake := t.TempDir()
	system := toolPath(t, stackTools...)
	writeExecutable(t, filepath.Join(fake, "docker"), `#!/bin/sh
case "$1 $2" in
  "info "*) exit "$FAKE_INFO" ;;
  "compose version") exit "$FAKE_COMPOSE" ;;
esac
exit 3
`)
	tests := []struct {
		name       string
		env        []string
		wantStdout string
		wantStderr string
		wantCode   int
	}{
		{
			name:       "no docker command",
			env:        []string{"PATH=" + system},
			wantStdout: "native\n",
			wantStderr: "[stack] native stack (deploy/native/stack.sh): no docker command on PATH\n",
		},
		{
			name:       "a client without an engine",
			env:        []string{"PATH=" + fake + ":" + system, "FAKE_INFO=1", "FAKE_COMPOSE=0"},
			wantStdout: "native\n",
			wantStderr: "[stack] native stack (deploy/native/stack.sh): 'docker info' does not answer: no Docker engine reachable\n",
		},
		{
			name:       "an engine without the Compose plugin",
			env:        []string{"PATH=" + fake + ":" + system, "FAKE_INFO=0", "FAKE_COMPOSE=1"},
			wantStdout: "native\n",
			wantStderr: "[stack] native stack (deploy/native/stack.sh): 'docker info' answers but 'docker compose version' does not: the Compose plugin is missing\n",
		},
		{
			name:       "engine and plugin",
			env:        []string{"PATH=" + fake + ":" + system, "FAKE_INFO=0", "FAKE_COMPOSE=0"},
			wantStdout: "compose\n",
			wantStderr: "[stack] Docker Compose (compose.yaml): 'docker info' and 'docker compose version' answer\n",
		},
		{
			name:       "forced native where Docker answers (drills, .ci/run)",
			env:        []string{"PATH=" + fake + ":" + system, "FAKE_INFO=0", "FAKE_COMPOSE=0", "SITEWATCH_STACK=native"},
			wantStdout: "native\n",
			wantStderr: "[stack] native stack (deploy/native/stack.sh): forced by SITEWATCH_STACK=native\n",
		},
		{
			name:       "an unknown choice",
			env:        []string{"PATH=" + system, "SITEWATCH_STACK=podman"},
			wantStderr: "SITEWATCH_STACK=podman: want native or compose\n",
			wantCode:   2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runScript(t, tt.env, "stack.sh", "mode")
			if stdout != tt.wantStdout || stderr != tt.wantStderr || code != tt.wantCode {
				t.Errorf("stack.sh mode: stdout %q, stderr %q, exit %d; want %q, %q, %d",
					stdout, stderr, code, tt.wantStdout, tt.wantStderr, tt.wantCode)
			}
		})
	}
}

// A stand-in stack: Kafka and PostgreSQL are listeners that accept, the
// registry an HTTP server answering its subjects.
type fakeStack struct{ kafka, pg, registry string }

func startFakeStack(t *testing.T) fakeStack {
	t.Helper()
	var s fakeStack
	for _, addr := range []*string{&s.kafka, &s.pg} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		*addr = l.Addr().String()
	}
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/apis/ccompat/v7/subjects" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "[]")
	}))
	t.Cleanup(reg.Close)
	s.registry = reg.URL + "/apis/ccompat/v7"
	return s
}

func (s fakeStack) env() string {
	return fmt.Sprintf("export KAFKA_BROKERS=%s\nexport SCHEMA_REGISTRY_URL=%s\nexport DATABASE_URL='postgres://postgres@%s/sitewatch?sslmode=disable'\n",
		s.kafka, s.registry, s.pg)
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// `task bench` after `task down`: .stack/env is there but nothing answers;
// bench.sh starts the stack instead of stopping with an error. The copy of
// bench.sh runs in a scratch tree whose deploy/stack.sh is a fake that
// records its calls, with no go on PATH, so that it stops right after the
// stack step ("go not found on PATH").
func TestBenchStartsAStackThatDoesNotAnswer(t *testing.T) {
	script, err := os.ReadFile("bench/bench.sh")
	if err != nil {
		t.Fatal(err)
	}
	tools := toolPath(t, benchTools...)
	up := startFakeStack(t)
	down := fakeStack{kafka: closedAddr(t), pg: closedAddr(t), registry: "http://" + closedAddr(t) + "/apis/ccompat/v7"}
	tests := []struct {
		name       string
		env        *fakeStack // .stack/env before the run; nil: none
		upWrites   fakeStack  // what the fake `stack.sh up` writes to .stack/env
		wantCalls  string
		wantStderr []string // the lines of bench.sh on stderr
	}{
		{
			name:      "stopped stack",
			env:       &down,
			upWrites:  up,
			wantCalls: "up\n",
			wantStderr: []string{
				fmt.Sprintf("bench: the stack does not answer (Kafka at %s, the registry at %s, PostgreSQL at %s): starting it (deploy/stack.sh up)", down.kafka, down.registry, down.pg),
				"bench: go not found on PATH",
			},
		},
		{
			name:      "no .stack/env",
			upWrites:  up,
			wantCalls: "up\n",
			wantStderr: []string{
				"bench: the stack does not answer (no .stack/env): starting it (deploy/stack.sh up)",
				"bench: go not found on PATH",
			},
		},
		{
			name:       "running stack: used as it is",
			env:        &up,
			wantStderr: []string{"bench: go not found on PATH"},
		},
		{
			name:      "started, yet still silent",
			env:       &down,
			upWrites:  fakeStack{kafka: down.kafka, pg: up.pg, registry: up.registry},
			wantCalls: "up\n",
			wantStderr: []string{
				fmt.Sprintf("bench: the stack does not answer (Kafka at %s, the registry at %s, PostgreSQL at %s): starting it (deploy/stack.sh up)", down.kafka, down.registry, down.pg),
				fmt.Sprintf("bench: the stack started but does not answer: Kafka at %s (.stack/env)", down.kafka),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeExecutable(t, filepath.Join(root, "deploy/bench/bench.sh"), string(script))
			writeExecutable(t, filepath.Join(root, "deploy/stack.sh"), fmt.Sprintf(`#!/usr/bin/env bash
echo "$@" >>%q
[[ $1 == up ]] && mkdir -p .stack && cat >.stack/env <<'ENV'
%sENV
`, filepath.Join(root, "calls"), tt.upWrites.env()))
			if tt.env != nil {
				writeExecutable(t, filepath.Join(root, ".stack/env"), tt.env.env())
			}
			_, stderr, code := runScript(t, []string{"PATH=" + tools, "BENCH_QUICK=1"}, filepath.Join(root, "deploy/bench/bench.sh"))
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			var lines []string
			for l := range strings.Lines(stderr) {
				if strings.HasPrefix(l, "bench: ") {
					lines = append(lines, strings.TrimSuffix(l, "\n"))
				}
			}
			if strings.Join(lines, "\n") != strings.Join(tt.wantStderr, "\n") {
				t.Errorf("stderr:\n%s\nwant the lines:\n%s", stderr, strings.Join(tt.wantStderr, "\n"))
			}
			calls, err := os.ReadFile(filepath.Join(root, "calls"))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			if string(calls) != tt.wantCalls {
				t.Errorf("stack.sh called with %q, want %q", calls, tt.wantCalls)
			}
		})
	}
}

// `task drill` runs the stack natively even where Docker answers (the drills
// stop and start its services through deploy/native/stack.sh): the Taskfile
// runs in a scratch tree whose deploy/stack.sh records what it was given and
// fails, which ends the task before any drill.
func TestDrillForcesTheNativeStack(t *testing.T) {
	taskfile, err := os.ReadFile("../Taskfile.yml")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	writeExecutable(t, filepath.Join(root, "Taskfile.yml"), string(taskfile))
	record := filepath.Join(root, "stack-calls")
	writeExecutable(t, filepath.Join(root, "deploy/stack.sh"),
		fmt.Sprintf("#!/usr/bin/env bash\necho \"SITEWATCH_STACK=${SITEWATCH_STACK:-} $*\" >>%q\nexit 1\n", record))
	cmd := exec.Command("go", "tool", "task", "-d", root, "drill")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SITEWATCH_STACK=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("task drill succeeded with a failing stack.sh:\n%s", out)
	}
	calls, err := os.ReadFile(record)
	if err != nil {
		t.Fatalf("stack.sh was not called: %v\n%s", err, out)
	}
	if want := "SITEWATCH_STACK=native up\n"; string(calls) != want {
		t.Errorf("stack.sh called with %q, want %q", calls, want)
	}
}

// .ci/run closes with the count of passed, failed and skipped tests when a
// test fails too, where the count matters most, and still fails; the drills
// do not run after failed tests (and do after passed ones). It runs in a scratch tree with a fake go
// (whose `task test` writes go test's JSON events as gotestsum does) and a
// fake deploy/stack.sh.
func TestCIRunCountsWhenTestsFail(t *testing.T) {
	script, err := os.ReadFile("../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	writeExecutable(t, filepath.Join(root, ".ci/run"), string(script))
	writeExecutable(t, filepath.Join(root, "deploy/stack.sh"), "#!/usr/bin/env bash\necho \"stack.sh $*\"\n")
	bin := toolPath(t, "bash", "dirname", "mkdir", "rm", "cut", "nproc", "cat")
	// The interpreter itself: python3 on PATH may be a shim (pyenv) that
	// needs more of PATH.
	python, err := exec.Command("python3", "-c", "import os, sys; print(os.path.realpath(sys.executable))").Output()
	if err != nil {
		t.Skipf("python3: %v", err)
	}
	if err := os.Symlink(strings.TrimSpace(string(python)), filepath.Join(bin, "python3")); err != nil {
		t.Fatal(err)
	}
	// A browser is there, as .ci/run installs one before the tests run.
	writeExecutable(t, filepath.Join(bin, "chromium"), "#!/usr/bin/env bash\n")
	events := `{"Action":"pass","Package":"p","Test":"TestA"}` + "\n" +
		`{"Action":"pass","Package":"p","Test":"TestB"}` + "\n" +
		`{"Action":"skip","Package":"p","Test":"TestC"}` + "\n" +
		`{"Action":"fail","Package":"p","Test":"TestD"}` + "\n" +
		`{"Action":"fail","Package":"p"}` + "\n"
	writeExecutable(t, filepath.Join(bin, "go"), fmt.Sprintf(`#!/usr/bin/env bash
case "$*" in
  version) echo "go version go1.0 linux/amd64" ;;
  "tool task lint") echo "lint ok" ;;
  "tool task test") cat >"$GOTESTSUM_JSONFILE" <<'JSON'
%sJSON
    exit "$FAKE_TEST_EXIT" ;;
  "tool task drill") echo "drills ran"; exit 0 ;;
  *) echo "unexpected go $*" >&2; exit 3 ;;
esac
`, events))
	for _, tc := range []struct {
		testExit, wantCode int
		drills             bool
	}{{1, 1, false}, {0, 0, true}} {
		stdout, stderr, code := runScript(t, []string{"PATH=" + bin, "HOME=" + root, fmt.Sprint("FAKE_TEST_EXIT=", tc.testExit)}, filepath.Join(root, ".ci/run"))
		if code != tc.wantCode {
			t.Errorf("task test exiting %d: .ci/run exited %d, want %d", tc.testExit, code, tc.wantCode)
		}
		if !strings.Contains(stdout, "tests: 2 passed, 1 failed, 1 skipped\n") {
			t.Errorf("task test exiting %d: no closing count in:\n%s\nstderr:\n%s", tc.testExit, stdout, stderr)
		}
		if strings.Contains(stdout, "drills ran") != tc.drills {
			t.Errorf("task test exiting %d: drills ran %v, want %v:\n%s", tc.testExit, !tc.drills, tc.drills, stdout)
		}
		if !strings.Contains(stdout, "stack.sh down") {
			t.Errorf("task test exiting %d: the stack was not stopped:\n%s", tc.testExit, stdout)
		}
	}
}
