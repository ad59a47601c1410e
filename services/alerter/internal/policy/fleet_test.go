package policy_test

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sitewatch/sitewatch/services/alerter/internal/alertertest"
	"github.com/sitewatch/sitewatch/services/alerter/internal/policy"
	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/internal/targetstopic"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

// The follower publishes the topic's targets once it has read it to the
// end, and each change after; a tombstone removes a target, a record that
// is no valid target leaves its key without one.
func TestFleetFollowsTheTargetsTopic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tt := alertertest.NewTargetsTopic(t)
	topic, codec, cl := tt.Name, tt.Codec, tt.Client
	file, err := targets.Parse("t.yaml", []byte(`targets:
  - id: a
    url: http://127.0.0.1:1/a
  - id: b
    url: http://127.0.0.1:1/b
  - id: c
    url: http://127.0.0.1:1/c
`))
	if err != nil {
		t.Fatal(err)
	}
	tt.Set(t, file.Targets, targetstopic.Tombstone(topic, "b"), &kgo.Record{Topic: topic, Key: []byte("c"), Value: []byte("garbage")})

	opts, err := stacktest.KafkaConfig(t).ClientOpts()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var published [][]string
	f := policy.NewFleet(topic, opts, func(ts map[string]*targets.Target) {
		mu.Lock()
		defer mu.Unlock()
		published = append(published, slices.Sorted(maps.Keys(ts)))
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case <-f.Ready():
	case <-ctx.Done():
		t.Fatal("not ready within 60 s")
	}
	last := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return published[len(published)-1]
	}
	if got := last(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("at the end of the topic: %v, want [a]", got)
	}
	r, err := codec.Record(topic, targets.ToProto(file.Targets[1]))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for !slices.Equal(last(), []string{"a", "b"}) {
		if ctx.Err() != nil {
			t.Fatalf("after b is set again: %v, want [a b]", last())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
