package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/sitewatch/sitewatch/services/testing/internal/need"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

// ExecEnv names the chromium to run where it is not on PATH.
const ExecEnv = "SITEWATCH_CHROMIUM"

// Timeout bounds each step of a page (a load, a query, a screenshot).
const Timeout = 30 * time.Second

// closeTimeout bounds the browser's graceful close at the end of its test.
const closeTimeout = 10 * time.Second

// Browser is one headless chromium, stopped when its test ends.
type Browser struct {
	ctx     context.Context // the browser's; each Page is a tab under it
	profile string          // its --user-data-dir
}

// Path finds chromium: $SITEWATCH_CHROMIUM, else chromium, chromium-browser
// or google-chrome (GitHub's runner image has it) on PATH.
func Path() (string, error) {
	if p := os.Getenv(ExecEnv); p != "" {
		return exec.LookPath(p)
	}
	var errs []error
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		p, err := exec.LookPath(name)
		if err == nil {
			return p, nil
		}
		errs = append(errs, err)
	}
	return "", errors.Join(errs...)
}

// Start runs a headless chromium with a profile of its own for the test.
// It skips the test under -short and where chromium is missing (fails
// under CI=true).
func Start(t testing.TB) *Browser {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: needs chromium")
	}
	path, err := Path()
	if err != nil {
		need.Unavailable(t, "chromium not found (apt-get install -y chromium, or set %s): %v", ExecEnv, err)
		return nil
	}
	// Before the browser's cleanup, so removed after the browser stopped.
	profile := t.TempDir()
	// Chromium's output, for the message of a failed start.
	var output stacktest.Log
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		// DefaultExecAllocatorOptions has --disable-background-networking,
		// --disable-sync and --no-first-run already; without these two as
		// well chromium keeps calling out to hosts this network refuses.
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(&output),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	var mu sync.Mutex
	ended := false
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if !ended {
			t.Logf("chromedp: "+format, args...)
		}
	}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(logf))
	t.Cleanup(func() {
		// Closed, not killed: a killed chromium leaves its
		// org.chromium.Chromium.* directory in /tmp on every run. The kill
		// of cancelAlloc stays for one that does not close in time.
		cctx, ccancel := context.WithTimeout(ctx, closeTimeout)
		if err := chromedp.Cancel(cctx); err != nil {
			logf("close: %v", err)
		}
		ccancel()
		cancel()
		cancelAlloc()
		mu.Lock()
		ended = true
		mu.Unlock()
	})
	// The first run starts the browser, bound to ctx (no timeout: a
	// timeout here would stop the whole browser when it ends).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v\n%s", path, err, output.String())
	}
	return &Browser{ctx: ctx, profile: profile}
}

// Option changes how Open loads a page.
type Option func(*openConfig)

type openConfig struct {
	noJS bool
}

// NoJavaScript loads the page with script execution disabled
// (Emulation.setScriptExecutionDisabled), as a reader without JavaScript
// sees it.
func NoJavaScript() Option { return func(c *openConfig) { c.noJS = true } }

// Page is one tab, with what its console said.
type Page struct {
	t      testing.TB
	ctx    context.Context
	url    string
	status int64
	noJS   bool

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
	marks   chan string
}

// Open loads url in a new tab and waits for its load event. The page's
// console (console API calls, uncaught exceptions, the browser's log) is
// collected from before the request on; Errors returns it. A response
// status of 400 or more, or a page that does not load, fails t, the test
// (or subtest) that the page's helpers report to; the tab closes when t
// ends.
func (b *Browser) Open(t testing.TB, url string, opts ...Option) *Page {
	t.Helper()
	var cfg openConfig
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	p := &Page{t: t, ctx: ctx, url: url, noJS: cfg.noJS, marks: make(chan string, 16)}
	// Opens the tab, so that Console subscribes to it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: new tab: %v", url, err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleDebug && strings.HasPrefix(m.Text, syncMark) {
				p.marks <- m.Text
				continue
			}
			p.mu.Lock()
			p.console = append(p.console, m)
			p.mu.Unlock()
		}
	}()
	if cfg.noJS {
		if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatalf("%s: disable JavaScript: %v", url, err)
		}
	}
	tctx, tcancel := context.WithTimeout(ctx, Timeout)
	defer tcancel()
	resp, err := chromedp.Run(tctx, chromedp.NavigateResponse(url))
	if err != nil {
		t.Fatalf("%s: load: %v", url, err)
	}
	p.status = resp.Status
	if resp.Status >= 400 {
		t.Fatalf("%s: HTTP status %d", url, resp.Status)
	}
	return p
}

// Status is the HTTP status of the page's response.
func (p *Page) Status() int64 { return p.status }

// syncMark starts the console messages Settle writes to know that every
// message before it has arrived.
const syncMark = "sitewatch-browser-sync "

// Settle waits until the page has drawn a frame after its load and every
// console message written until then has been collected: a console.debug
// marker, evaluated by the tools (which run with page scripts disabled
// too), comes back through the same stream after them.
func (p *Page) Settle() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, Timeout)
	defer cancel()
	if !p.noJS {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](
			`new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))`, chromedp.EvalAwaitPromise)); err != nil {
			p.t.Fatalf("%s: wait for a frame: %v", p.url, err)
		}
	}
	mark := fmt.Sprintf("%s%d", syncMark, time.Now().UnixNano())
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void]("console.debug("+jsString(mark)+")")); err != nil {
		p.t.Fatalf("%s: console marker: %v", p.url, err)
	}
	for {
		select {
		case m := <-p.marks:
			if m == mark {
				return
			}
		case <-ctx.Done():
			p.t.Fatalf("%s: the console marker did not come back: %v", p.url, ctx.Err())
		}
	}
}

// Console returns every console message of the page so far, after Settle.
func (p *Page) Console() []chromedp.ConsoleMessage {
	p.t.Helper()
	p.Settle()
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]chromedp.ConsoleMessage(nil), p.console...)
}

// Errors returns the page's console errors and uncaught exceptions so far,
// after Settle, one line each: "TYPE URL:LINE: TEXT".
func (p *Page) Errors() []string {
	p.t.Helper()
	var out []string
	for _, m := range p.Console() {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			out = append(out, fmt.Sprintf("%s %s:%d: %s", m.Type, m.URL, m.Line+1, m.Text))
		}
	}
	return out
}

// NoErrors fails the test for each console error or uncaught exception.
func (p *Page) NoErrors() {
	p.t.Helper()
	for _, e := range p.Errors() {
		p.t.Errorf("%s: console: %s", p.url, e)
	}
}

// Text returns the visible text of the first element matching the CSS
// selector, waiting for it to exist.
func (p *Page) Text(selector string) string {
	p.t.Helper()
	return run(p, "text of "+selector, chromedp.Text(chromedp.CSS(selector)))
}

// Texts returns the text (textContent, trimmed) of every element matching
// the selector, in document order; none is an empty slice.
func (p *Page) Texts(selector string) []string {
	p.t.Helper()
	return Eval[[]string](p, `Array.from(document.querySelectorAll(`+jsString(selector)+`), e => e.textContent.trim())`)
}

// Attr returns an attribute of the first element matching the selector,
// and whether the element has it.
func (p *Page) Attr(selector, name string) (string, bool) {
	p.t.Helper()
	r := run(p, "attribute "+name+" of "+selector, chromedp.AttributeValue(chromedp.CSS(selector), name))
	return r.Value, r.Exists
}

// Count returns the number of elements matching the selector.
func (p *Page) Count(selector string) int {
	p.t.Helper()
	return Eval[int](p, `document.querySelectorAll(`+jsString(selector)+`).length`)
}

// Eval evaluates a JavaScript expression in the page and decodes its value
// (a promise is awaited). It works on a page opened with NoJavaScript too:
// only the page's own scripts are off.
func Eval[T any](p *Page, expr string) T {
	p.t.Helper()
	return run(p, "evaluate "+expr, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// Ink describes the pixels of a canvas.
type Ink struct {
	Width, Height int
	// Colors is the number of distinct RGBA values, Drawn the pixels that
	// differ from the most common one (the background): 0 for a blank
	// canvas, whatever color it was cleared to.
	Colors, Drawn int
}

// Canvas reads the pixels of the first canvas matching the selector, by
// drawing it onto a 2D canvas of the same size (so a WebGL canvas reads
// too) and counting them with getImageData.
func (p *Page) Canvas(selector string) Ink {
	p.t.Helper()
	return Eval[Ink](p, `((sel) => {
  const c = document.querySelector(sel);
  if (!(c instanceof HTMLCanvasElement)) throw new Error(sel + ": no canvas");
  const w = c.width, h = c.height;
  if (w === 0 || h === 0) return {Width: w, Height: h, Colors: 0, Drawn: 0};
  const copy = document.createElement("canvas");
  copy.width = w; copy.height = h;
  const g = copy.getContext("2d");
  g.drawImage(c, 0, 0);
  const px = new Uint32Array(g.getImageData(0, 0, w, h).data.buffer);
  const counts = new Map();
  for (const v of px) counts.set(v, (counts.get(v) || 0) + 1);
  let most = 0;
  for (const n of counts.values()) most = Math.max(most, n);
  return {Width: w, Height: h, Colors: counts.size, Drawn: px.length - most};
})(`+jsString(selector)+`)`)
}

// SVGShapes counts the drawn shapes inside the first svg matching the
// selector: path elements with a non-empty d, polylines and polygons with
// points, and rect, circle and line elements.
func (p *Page) SVGShapes(selector string) int {
	p.t.Helper()
	return Eval[int](p, `((sel) => {
  const s = document.querySelector(sel);
  if (!(s instanceof SVGSVGElement)) throw new Error(sel + ": no svg");
  let n = 0;
  for (const e of s.querySelectorAll("path, polyline, polygon, rect, circle, line")) {
    const a = e.tagName === "path" ? e.getAttribute("d") : e.tagName.startsWith("poly") ? e.getAttribute("points") : "x";
    if (a && a.trim() !== "") n++;
  }
  return n;
})(`+jsString(selector)+`)`)
}

// Screenshot writes a full-page PNG of the page to
// .stack/screenshots/NAME.png at the repository's root and returns its
// path.
func (p *Page) Screenshot(name string) string {
	p.t.Helper()
	png := run(p, "screenshot", chromedp.FullScreenshot(100))
	dir, err := ScreenshotDir()
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// ScreenshotDir is .stack/screenshots at the repository's root: the
// directory of go.work, from the working directory up.
func ScreenshotDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return filepath.Join(dir, ".stack", "screenshots"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work in the working directory or above: not in the repository")
		}
		dir = parent
	}
}

// run runs one action with the step timeout, failing the test on error.
func run[T any](p *Page, what string, a chromedp.Action[T]) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		p.t.Fatalf("%s: %s: %v", p.url, what, err)
	}
	return v
}

// jsString writes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
