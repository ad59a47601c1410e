package stacktest

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/testing/internal/need"
)

// Getenv looks a variable up in the environment, then in .stack/env.
func Getenv(name string) string { return need.Getenv(name) }

// KafkaConfig returns the connection configuration of the stack's Kafka and
// registry, after checking that the first broker answers.
func KafkaConfig(t testing.TB) kafkaenv.Config {
	t.Helper()
	need.Stack(t)
	cfg, err := kafkaenv.FromEnv(Getenv)
	if err != nil {
		t.Fatal(err)
	}
	if Getenv("KAFKA_BROKERS") == "" {
		need.Unavailable(t, "KAFKA_BROKERS is not set")
	}
	need.Listening(t, "Kafka", cfg.Brokers[0])
	return cfg
}

// KafkaClient returns a client of the stack's Kafka with extra options,
// closed when the test ends.
func KafkaClient(t testing.TB, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts, err := KafkaConfig(t).ClientOpts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Registry returns a client of the stack's Schema Registry.
func Registry(t testing.TB) *sr.Client {
	t.Helper()
	need.Stack(t)
	raw := need.Var(t, "SCHEMA_REGISTRY_URL")
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("SCHEMA_REGISTRY_URL: %v", err)
	}
	need.Listening(t, "Schema Registry", u.Host)
	cfg, err := kafkaenv.FromEnv(Getenv)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := cfg.Registry()
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// Name returns a name no other test run uses, for topics, subjects, groups
// and databases: tests share one stack and must not see each other's data.
func Name(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}
