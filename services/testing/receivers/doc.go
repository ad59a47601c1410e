// Package receivers starts real notification receivers for the alerter's
// tests, each on a free loopback port and stopped when the test ends: a
// Prometheus Alertmanager built from its Go module into .stack/alertmanager
// (`deploy/stack.sh receivers build`), and an SMTP server with STARTTLS and
// AUTH on Debian's python3-aiosmtpd (`apt-get install python3-aiosmtpd`),
// which keeps each message it accepts for the test to read back.
//
// A missing receiver skips the test, or fails it under CI=true, as a missing
// stack service does (stacktest).
package receivers
