package stacktest_test

import (
	"flag"
	"fmt"
	"runtime"
	"testing"

	"github.com/sitewatch/sitewatch/services/testing/stackdb"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

// recordingTB records how a helper ends a test instead of ending it.
type recordingTB struct {
	testing.TB
	ended string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Skip(args ...any) {
	r.ended = "skip: " + fmt.Sprint(args...)
	runtime.Goexit()
}

func (r *recordingTB) Skipf(format string, args ...any) {
	r.ended = "skip: " + fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.ended = "fatal: " + fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recordingTB) Fatal(args ...any) {
	r.ended = "fatal: " + fmt.Sprint(args...)
	runtime.Goexit()
}

// end runs fn with a recordingTB in a goroutine of its own (Goexit ends
// it) and returns how it ended.
func end(t *testing.T, fn func(tb testing.TB)) string {
	r := &recordingTB{TB: t, ended: "returned"}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	return r.ended
}

// Under -short every helper that asks for a service skips with one message,
// even under CI=true with the services configured (here, to addresses where
// nothing listens): -short is the layer that needs none. Without -short the
// same call fails under CI=true.
func TestShortSkipsEvenUnderCI(t *testing.T) {
	t.Setenv("CI", "true")
	t.Setenv("KAFKA_BROKERS", "127.0.0.1:1")
	t.Setenv("SCHEMA_REGISTRY_URL", "http://127.0.0.1:1")
	t.Setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:1/postgres")
	short := flag.Lookup("test.short").Value
	was := short.String()
	t.Cleanup(func() { _ = short.Set(was) })

	helpers := []struct {
		name string
		call func(testing.TB)
	}{
		{"KafkaConfig", func(tb testing.TB) { stacktest.KafkaConfig(tb) }},
		{"KafkaClient", func(tb testing.TB) { stacktest.KafkaClient(tb) }},
		{"Registry", func(tb testing.TB) { stacktest.Registry(tb) }},
		{"Database", func(tb testing.TB) { stackdb.Database(tb) }},
	}
	for _, h := range helpers {
		t.Run(h.name, func(t *testing.T) {
			if err := short.Set("true"); err != nil {
				t.Fatal(err)
			}
			if got, want := end(t, h.call), "skip: -short: needs the stack"; got != want {
				t.Errorf("with -short: %s, want %s", got, want)
			}
			if err := short.Set("false"); err != nil {
				t.Fatal(err)
			}
			if got := end(t, h.call); len(got) < 6 || got[:6] != "fatal:" {
				t.Errorf("without -short under CI=true: %s, want a failure", got)
			}
		})
	}
}
