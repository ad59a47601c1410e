package benchhost

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a service binary a benchmark program runs as a child, its
// output in Log.
type Process struct {
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
	stop sync.Once
}

// Start runs bin with args and env (nil: this process's environment), its
// stdout and stderr in the file logPath.
func Start(bin, logPath string, env []string, args ...string) (*Process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &Process{Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait() //nolint:errcheck // a benchmark child's exit status is in its log
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stop sends SIGTERM and waits for the process (a prober flushes to Kafka,
// a recorder stores the batch in hand), then SIGKILL after 30 s. Only the
// first call signals; later ones return at once.
func (p *Process) Stop() {
	p.stop.Do(func() {
		p.Cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // may have exited
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			p.Cmd.Process.Kill() //nolint:errcheck // may have exited
			<-p.done
		}
	})
}

// WaitReady waits until http://addr/readyz answers 200, and fails at once
// when the process exits first.
func (p *Process) WaitReady(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.done:
			return errors.New("exited before it was ready")
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready at %s within %v", addr, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WithEnv returns env with key set to value, replacing what it held.
func WithEnv(env []string, key, value string) []string {
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	return append(env, key+"="+value)
}
