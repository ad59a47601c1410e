package need

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/sitewatch/sitewatch/services/testing/stackenv"
)

const howToStart = "start the stack with `go tool task stack:up` (or export the variables of .stack/env)"

// ShortSkip is the message of a test skipped under -short.
const ShortSkip = "-short: needs the stack"

// Getenv looks a variable up in the environment, then in .stack/env.
func Getenv(name string) string {
	return stackenv.Lookup(os.Getenv)(name)
}

// Stack skips the test under `go test -short`, the fast layer, which needs
// no services: whether the stack runs or not, and under CI=true too.
func Stack(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip(ShortSkip)
	}
}

// Unavailable skips the test, or fails it under CI.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: a missing service fails the test)", msg)
	}
	t.Skipf("%s; %s", msg, howToStart)
}

// Var returns the variable's value, or skips/fails when it is unset.
func Var(t testing.TB, name string) string {
	t.Helper()
	v := Getenv(name)
	if v == "" {
		Unavailable(t, "%s is not set", name)
	}
	return v
}

// Listening skips/fails the test when nothing listens at hostport.
func Listening(t testing.TB, what, hostport string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", hostport, 3*time.Second)
	if err != nil {
		Unavailable(t, "%s at %s does not answer: %v", what, hostport, err)
		return
	}
	conn.Close()
}
