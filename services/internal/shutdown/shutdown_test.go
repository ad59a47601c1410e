package shutdown_test

import (
	"context"
	"testing"
	"time"

	"github.com/sitewatch/sitewatch/services/internal/shutdown"
)

func TestWithGrace(t *testing.T) {
	t.Run("ends the grace after its parent", func(t *testing.T) {
		parent, stop := context.WithCancel(context.Background())
		work, cancel := shutdown.WithGrace(parent, 50*time.Millisecond)
		defer cancel()
		stop()
		start := time.Now()
		select {
		case <-work.Done():
			t.Fatal("ended with its parent, not after the grace")
		case <-time.After(20 * time.Millisecond):
		}
		<-work.Done()
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Errorf("ended %s after its parent, want at least the grace of 50ms", d)
		}
	})
	t.Run("lives while its parent does", func(t *testing.T) {
		work, cancel := shutdown.WithGrace(context.Background(), 0)
		select {
		case <-work.Done():
			t.Fatal("ended on its own")
		case <-time.After(20 * time.Millisecond):
		}
		cancel()
		<-work.Done()
	})
}
