package kafkaenv

import (
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestFromEnvDefaultsAndParsing(t *testing.T) {
	c, err := FromEnv(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Brokers, ",") != DefaultBrokers || c.TLS || c.SASLMechanism != "" {
		t.Fatalf("defaults: %+v", c)
	}

	c, err = FromEnv(envOf(map[string]string{
		"KAFKA_BROKERS":        " a:9092, b:9093 ,",
		"KAFKA_SASL_MECHANISM": "scram-sha-512",
		"KAFKA_SASL_USERNAME":  "svc",
		"KAFKA_SASL_PASSWORD":  "s3cret",
		"SCHEMA_REGISTRY_URL":  "https://key:regs3cret@reg.example:8081/apis/ccompat/v7",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Brokers, ","); got != "a:9092,b:9093" {
		t.Fatalf("brokers %q", got)
	}
	if c.SASLMechanism != "SCRAM-SHA-512" {
		t.Fatalf("mechanism %q", c.SASLMechanism)
	}
	opts, err := c.ClientOpts()
	if err != nil || len(opts) != 2 {
		t.Fatalf("ClientOpts: %d options, %v", len(opts), err)
	}
	if s := c.String(); strings.Contains(s, "s3cret") || !strings.Contains(s, "registry=https://key:xxxxx@reg.example:8081/apis/ccompat/v7") {
		t.Fatalf("String() leaks a password or hides the registry: %s", s)
	}
}

func TestFromEnvBad(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"tls not a bool", map[string]string{"KAFKA_TLS": "yes please"},
			`KAFKA_TLS: "yes please" is not a boolean (true or false)`},
		{"cert without key", map[string]string{"KAFKA_TLS_CERT": "/c.pem"},
			"KAFKA_TLS_CERT and KAFKA_TLS_KEY: set both or neither"},
		{"unknown mechanism", map[string]string{"KAFKA_SASL_MECHANISM": "GSSAPI", "KAFKA_SASL_USERNAME": "u"},
			`KAFKA_SASL_MECHANISM: "GSSAPI" is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`},
		{"mechanism without user", map[string]string{"KAFKA_SASL_MECHANISM": "PLAIN"},
			"KAFKA_SASL_USERNAME: required with KAFKA_SASL_MECHANISM=PLAIN"},
		{"registry not a URL", map[string]string{"SCHEMA_REGISTRY_URL": "localhost:8081"},
			"SCHEMA_REGISTRY_URL: not an http(s) URL such as http://HOST:PORT/apis/ccompat/v7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromEnv(envOf(tt.env))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestTLSCAFileMissing(t *testing.T) {
	c, err := FromEnv(envOf(map[string]string{"KAFKA_TLS_CA": "/nonexistent/ca.pem"}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.TLS {
		t.Fatal("a CA file must switch TLS on")
	}
	_, err = c.ClientOpts()
	if err == nil || !strings.HasPrefix(err.Error(), "KAFKA_TLS_CA: open /nonexistent/ca.pem") {
		t.Fatalf("got %v", err)
	}
}
