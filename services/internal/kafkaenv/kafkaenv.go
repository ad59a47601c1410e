package kafkaenv

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/pkg/sr"
)

// DefaultBrokers is used when KAFKA_BROKERS is unset.
const DefaultBrokers = "127.0.0.1:9092"

// Config is the connection configuration read from the environment.
type Config struct {
	Brokers []string

	TLS     bool
	TLSCA   string // PEM file; empty means the system roots
	TLSCert string // PEM file of a client certificate (mutual TLS)
	TLSKey  string

	SASLMechanism string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty is off
	SASLUsername  string
	SASLPassword  string

	RegistryURL      string
	RegistryUsername string
	RegistryPassword string
}

// FromEnv reads the configuration; every error names the variable at fault.
func FromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		TLSCA:            getenv("KAFKA_TLS_CA"),
		TLSCert:          getenv("KAFKA_TLS_CERT"),
		TLSKey:           getenv("KAFKA_TLS_KEY"),
		SASLMechanism:    strings.ToUpper(strings.TrimSpace(getenv("KAFKA_SASL_MECHANISM"))),
		SASLUsername:     getenv("KAFKA_SASL_USERNAME"),
		SASLPassword:     getenv("KAFKA_SASL_PASSWORD"),
		RegistryURL:      strings.TrimSpace(getenv("SCHEMA_REGISTRY_URL")),
		RegistryUsername: getenv("SCHEMA_REGISTRY_USERNAME"),
		RegistryPassword: getenv("SCHEMA_REGISTRY_PASSWORD"),
	}
	var errs []error
	brokers := getenv("KAFKA_BROKERS")
	if strings.TrimSpace(brokers) == "" {
		brokers = DefaultBrokers
	}
	for _, b := range strings.Split(brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			c.Brokers = append(c.Brokers, b)
		}
	}
	if v := strings.TrimSpace(getenv("KAFKA_TLS")); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("KAFKA_TLS: %q is not a boolean (true or false)", v))
		}
		c.TLS = on
	}
	// A CA or client certificate only makes sense over TLS: imply it rather
	// than silently connecting in plain text.
	if c.TLSCA != "" || c.TLSCert != "" {
		c.TLS = true
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("KAFKA_TLS_CERT and KAFKA_TLS_KEY: set both or neither"))
	}
	switch c.SASLMechanism {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		errs = append(errs, fmt.Errorf("KAFKA_SASL_MECHANISM: %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", c.SASLMechanism))
	}
	if c.SASLMechanism != "" && c.SASLUsername == "" {
		errs = append(errs, fmt.Errorf("KAFKA_SASL_USERNAME: required with KAFKA_SASL_MECHANISM=%s", c.SASLMechanism))
	}
	if c.RegistryURL != "" {
		u, err := url.Parse(c.RegistryURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// Not u.Redacted(): an unparsable URL may still hold a password.
			errs = append(errs, errors.New("SCHEMA_REGISTRY_URL: not an http(s) URL such as http://HOST:PORT/apis/ccompat/v7"))
		}
	}
	return c, errors.Join(errs...)
}

// String describes the configuration for logs, without secrets.
func (c Config) String() string {
	s := fmt.Sprintf("brokers=%s tls=%t", strings.Join(c.Brokers, ","), c.TLS)
	if c.SASLMechanism != "" {
		s += fmt.Sprintf(" sasl=%s user=%s", c.SASLMechanism, c.SASLUsername)
	}
	if c.RegistryURL != "" {
		s += " registry=" + redactURL(c.RegistryURL)
	}
	return s
}

// redactURL hides a password in the URL's user info (net/http turns
// https://key:secret@host/ into basic auth, so such URLs work and must not
// be logged as they are).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}

// ClientOpts returns the franz-go options for the brokers, TLS and SASL.
func (c Config) ClientOpts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	if c.TLS {
		cfg, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if m := c.saslMechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLSCA != "" {
		pem, err := os.ReadFile(c.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("KAFKA_TLS_CA: %s holds no PEM certificate", c.TLSCA)
		}
		cfg.RootCAs = pool
	}
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_CERT/KAFKA_TLS_KEY: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (c Config) saslMechanism() sasl.Mechanism {
	switch c.SASLMechanism {
	case "PLAIN":
		return plain.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsMechanism()
	case "SCRAM-SHA-256":
		return scram.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		return scram.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsSha512Mechanism()
	}
	return nil
}

// Registry returns a Schema Registry client for SCHEMA_REGISTRY_URL.
func (c Config) Registry() (*sr.Client, error) {
	if c.RegistryURL == "" {
		return nil, errors.New("SCHEMA_REGISTRY_URL: required (for Apicurio: http://HOST:PORT/apis/ccompat/v7)")
	}
	opts := []sr.ClientOpt{sr.URLs(c.RegistryURL)}
	if c.RegistryUsername != "" {
		opts = append(opts, sr.BasicAuth(c.RegistryUsername, c.RegistryPassword))
	}
	return sr.NewClient(opts...)
}
