package backoff_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/sitewatch/sitewatch/services/internal/backoff"
)

var errBusy = errors.New("busy")

// Waits double from the first up to the cap, within the jitter.
func TestExponential(t *testing.T) {
	b := backoff.Exponential(100*time.Millisecond, time.Second)
	for i, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		got, stop := b.Next()
		if stop || got < want*8/10 || got > want*12/10 {
			t.Errorf("wait %d: %s (stop %v), want %s ± 20%%", i+1, got, stop, want)
		}
	}
}

func TestDo(t *testing.T) {
	fast := func() retry.Backoff { return retry.NewConstant(time.Millisecond) }
	t.Run("retries until success, reporting each failure", func(t *testing.T) {
		var failures []string
		n, err := backoff.Do(context.Background(), fast(), func(context.Context) error {
			if len(failures) < 2 {
				return errBusy
			}
			return nil
		}, nil, func(attempt int, wait time.Duration, err error) {
			failures = append(failures, fmt.Sprintf("%d %s %v", attempt, wait, err))
		})
		if err != nil || n != 3 || strings.Join(failures, ",") != "1 1ms busy,2 1ms busy" {
			t.Errorf("attempts %d, err %v, failures %q", n, err, failures)
		}
	})
	t.Run("an error not retryable ends at once", func(t *testing.T) {
		n, err := backoff.Do(context.Background(), fast(), func(context.Context) error { return errBusy },
			func(error) bool { return false }, nil)
		if n != 1 || err != errBusy {
			t.Errorf("attempts %d, err %v; want 1, busy", n, err)
		}
	})
	t.Run("a stopping backoff returns the last error", func(t *testing.T) {
		n, err := backoff.Do(context.Background(), retry.WithMaxRetries(2, fast()),
			func(context.Context) error { return errBusy }, nil, nil)
		if n != 3 || err != errBusy {
			t.Errorf("attempts %d, err %v; want 3, busy", n, err)
		}
	})
	t.Run("the end of ctx names the last error and why it gave up", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		n, err := backoff.Do(ctx, fast(), func(context.Context) error { return errBusy }, nil, nil)
		if n < 2 || !errors.Is(err, errBusy) || !errors.Is(err, context.DeadlineExceeded) ||
			err.Error() != "busy (gave up: context deadline exceeded)" {
			t.Errorf("attempts %d, err %v", n, err)
		}
	})
	t.Run("ctx ended before the first attempt", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		n, err := backoff.Do(ctx, fast(), func(context.Context) error { return nil }, nil, nil)
		if n != 0 || !errors.Is(err, context.Canceled) {
			t.Errorf("attempts %d, err %v", n, err)
		}
	})
}

func TestBatch(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	calls, counted := 0, 0
	err := backoff.Batch(context.Background(), logger, "store", func() error {
		if calls++; calls < 3 {
			return errors.New("connection reset")
		}
		return nil
	}, nil, func() { counted++ })
	if err != nil || calls != 3 || counted != 2 {
		t.Fatalf("err %v, %d calls, %d counted; want nil, 3, 2", err, calls, counted)
	}
	if !strings.Contains(logs.String(), `msg=recovered what=store attempts=3`) {
		t.Errorf("no recovery logged:\n%s", logs.String())
	}

	permanent := errors.New("constraint violated")
	err = backoff.Batch(context.Background(), logger, "store", func() error { return permanent },
		func(error) bool { return false }, func() { t.Error("a refused error was counted as a retry") })
	if !errors.Is(err, permanent) || err.Error() != "store: constraint violated" {
		t.Errorf("got %v, want store: constraint violated", err)
	}
}
