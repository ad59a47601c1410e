// Package check runs one HTTP(S) check of a target and classifies the
// outcome as docs/design.md's enums define it. A check sees what a browser
// sees: HTTP/2 where a TLS server offers it, and the body with its
// Content-Encoding undone (decode.go) before the cap and the pattern.
//
// The shape follows prometheus/blackbox_exporter prober/http.go: a probe is a
// function of (ctx, target), its timeout a context deadline, its phases from
// net/http/httptrace.
package check
