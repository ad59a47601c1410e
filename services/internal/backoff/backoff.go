package backoff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sethvargo/go-retry"
)

// Exponential waits first, then doubles the wait up to most, each wait
// jittered by up to 20% either way so that many clients retrying one server
// spread out. It never stops by itself: bound it with the context, or with
// retry.WithMaxDuration. It holds state: use a new one for each Do.
func Exponential(first, most time.Duration) retry.Backoff {
	return retry.WithJitterPercent(20, retry.WithCappedDuration(most, retry.NewExponential(first)))
}

// Do runs fn until it returns nil or an error that retryable (nil: every
// error is) refuses, b stops, or ctx ends. Before each wait it calls
// failed, when not nil, with the attempt that failed (from 1), the wait and
// fn's error. It returns the number of attempts, and nil or fn's last error;
// when ctx ended, that error says so: "... (gave up: context canceled)".
func Do(ctx context.Context, b retry.Backoff, fn func(context.Context) error,
	retryable func(error) bool, failed func(attempt int, wait time.Duration, err error)) (int, error) {
	attempts := 0
	var last error
	err := retry.Do(ctx, retry.BackoffFunc(func() (time.Duration, bool) {
		wait, stop := b.Next()
		if !stop && failed != nil {
			failed(attempts, wait, last)
		}
		return wait, stop
	}), func(ctx context.Context) error {
		attempts++
		last = fn(ctx)
		if last != nil && (retryable == nil || retryable(last)) {
			return retry.RetryableError(last)
		}
		return last
	})
	switch {
	case err == nil:
		return attempts, nil
	case last == nil: // ctx ended before the first attempt
		return attempts, err
	case !errors.Is(err, last): // retry.Do returns ctx's cause when ctx ends
		return attempts, fmt.Errorf("%w (gave up: %w)", last, err)
	}
	return attempts, last
}

// Batch retries fn the way a consumer retries the store of a batch: backing
// off from 100 ms to 10 s until fn succeeds, retryable (nil: every error is)
// refuses, or ctx ends. Each failure calls counted (a metric) and is logged
// as transient; a success after failures is logged as a recovery. The error
// names what.
func Batch(ctx context.Context, logger *slog.Logger, what string, fn func() error,
	retryable func(error) bool, counted func()) error {
	attempts, err := Do(ctx, Exponential(100*time.Millisecond, 10*time.Second),
		func(context.Context) error { return fn() }, retryable,
		func(attempt int, wait time.Duration, err error) {
			counted()
			logger.Warn("transient failure; retrying the batch", "what", what, "attempt", attempt, "wait", wait.String(), "err", err)
		})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if attempts > 1 {
		logger.Info("recovered", "what", what, "attempts", attempts)
	}
	return nil
}
