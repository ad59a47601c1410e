package stacktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/internal/stackenv"
)

const howToStart = "start the stack with `go tool task stack:up` (or export the variables of .stack/env)"

// Getenv looks a variable up in the environment, then in .stack/env.
func Getenv(name string) string {
	return stackenv.Lookup(os.Getenv)(name)
}

// shortSkip is the message of a test skipped under -short.
const shortSkip = "-short: needs the stack"

// needsStack skips the test under `go test -short`, the fast layer, which
// needs no services: whether the stack runs or not, and under CI=true too.
func needsStack(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip(shortSkip)
	}
}

// unavailable skips the test, or fails it under CI.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: a missing service fails the test)", msg)
	}
	t.Skipf("%s; %s", msg, howToStart)
}

// require returns the variable's value, or skips/fails when it is unset.
func require(t testing.TB, name string) string {
	t.Helper()
	v := Getenv(name)
	if v == "" {
		unavailable(t, "%s is not set", name)
	}
	return v
}

// reachable skips/fails the test when nothing listens at hostport.
func reachable(t testing.TB, what, hostport string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", hostport, 3*time.Second)
	if err != nil {
		unavailable(t, "%s at %s does not answer: %v", what, hostport, err)
		return
	}
	conn.Close()
}

// KafkaConfig returns the connection configuration of the stack's Kafka and
// registry, after checking that the first broker answers.
func KafkaConfig(t testing.TB) kafkaenv.Config {
	t.Helper()
	needsStack(t)
	cfg, err := kafkaenv.FromEnv(Getenv)
	if err != nil {
		t.Fatal(err)
	}
	if Getenv("KAFKA_BROKERS") == "" {
		unavailable(t, "KAFKA_BROKERS is not set")
	}
	reachable(t, "Kafka", cfg.Brokers[0])
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
	needsStack(t)
	raw := require(t, "SCHEMA_REGISTRY_URL")
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("SCHEMA_REGISTRY_URL: %v", err)
	}
	reachable(t, "Schema Registry", u.Host)
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

// Database creates an empty database on the stack's PostgreSQL server, drops
// it when the test ends (unless STACKTEST_KEEP_DB is set, to look at it), and
// returns its connection string.
func Database(t testing.TB) string {
	t.Helper()
	needsStack(t)
	admin := require(t, "DATABASE_URL")
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		t.Fatalf("DATABASE_URL: %v", err)
	}
	reachable(t, "PostgreSQL", net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect to DATABASE_URL: %v", err)
	}
	defer conn.Close(ctx)
	name := Name("test")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if os.Getenv("STACKTEST_KEEP_DB") != "" {
			t.Logf("kept database %s", name)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}
