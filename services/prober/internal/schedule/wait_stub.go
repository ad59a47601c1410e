package schedule

import (
	"context"
	"time"
)

// Wait blocks until no check of the given target IDs is running, or ctx
// ends (then it returns ctx.Err()).
//
// TEMPORARY stub of the slots branch's Wait, so that fleet mode compiles:
// dropped when that branch lands on main.
func (s *Scheduler) Wait(ctx context.Context, ids []string) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		busy := false
		for _, id := range ids {
			if e := s.entries[id]; e != nil && e.running {
				busy = true
			}
			if _, ok := s.draining[id]; ok {
				busy = true
			}
		}
		s.mu.Unlock()
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
