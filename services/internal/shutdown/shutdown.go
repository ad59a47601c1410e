package shutdown

import (
	"context"
	"time"
)

// WithGrace returns a context that ends grace after ctx ends (or when the
// returned cancel is called): the work in hand when a service is told to
// stop may finish, but not forever. It carries ctx's values.
func WithGrace(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(work, func() { t.Stop() })
	})
	return work, func() { stop(); cancel() }
}
