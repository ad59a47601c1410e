package benchhost

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestWithEnv(t *testing.T) {
	env := []string{"A=1", "DATABASE_URL=old", "B=2"}
	got := WithEnv(env, "DATABASE_URL", "new")
	if want := []string{"A=1", "B=2", "DATABASE_URL=new"}; !slices.Equal(got, want) {
		t.Errorf("WithEnv: %q, want %q", got, want)
	}
	if env[1] != "DATABASE_URL=old" {
		t.Errorf("WithEnv changed its argument: %q", env)
	}
}

// A process that exits before answering /readyz fails the wait at once,
// not at its timeout; Stop of an exited process returns.
func TestProcessExitsBeforeReady(t *testing.T) {
	p, err := Start("/bin/sh", filepath.Join(t.TempDir(), "log"), nil, "-c", "exit 3")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = p.WaitReady(context.Background(), "127.0.0.1:1", time.Minute)
	if err == nil || err.Error() != "exited before it was ready" || time.Since(start) > 10*time.Second {
		t.Errorf("WaitReady: %v after %s; want \"exited before it was ready\" at once", err, time.Since(start))
	}
	p.Stop()
	p.Stop()
}
