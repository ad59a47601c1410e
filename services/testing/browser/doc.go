// Package browser drives Debian's chromium, headless, for the tests of
// sitewatch's web pages: Start runs one browser for a test, Open loads a
// page in a new tab while collecting its console, and the Page's helpers
// read text and attributes, tell whether a chart has data (a canvas with
// pixels drawn, an svg with paths), load a page with JavaScript off, and
// write a full-page screenshot to .stack/screenshots/NAME.png at the
// repository's root for the README.
//
// It uses github.com/chromedp/chromedp, which talks to the browser over a
// pipe (no debugging port). The browser runs with a fresh profile and the
// flags that keep it off the network on this closed machine:
// --disable-background-networking, --disable-component-update,
// --disable-sync, --disable-quic, --no-first-run (and --no-sandbox: the
// tests run as root).
//
// A test that needs the browser skips under `go test -short` and when no
// chromium is installed, and fails instead under CI=true, as the tests of
// the stack do (services/testing/internal/need). `.ci/run` installs
// Debian's chromium when it is missing.
package browser
