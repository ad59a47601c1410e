package browser

import (
	"bytes"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
)

var pages = map[string]string{
	// A chart drawn by an inline script, a canvas left blank, an svg chart.
	"/chart": `<!doctype html><html><head><title>chart</title></head><body>
<h1 id="title" data-state="up">Overview</h1>
<ul><li class="t">alpha</li><li class="t"> beta </li></ul>
<canvas id="drawn" width="200" height="100"></canvas>
<canvas id="blank" width="200" height="100"></canvas>
<svg id="bars" width="100" height="50"><path d="M0 50 L10 10 L20 30"/><path d=""/><rect x="1" y="1" width="5" height="5"/></svg>
<svg id="empty" width="10" height="10"></svg>
<div style="height: 2000px">taller than the window</div>
<script>
const g = document.getElementById("drawn").getContext("2d");
g.fillStyle = "#fff"; g.fillRect(0, 0, 200, 100);
g.fillStyle = "#c00"; g.fillRect(10, 10, 20, 30);
const b = document.getElementById("blank").getContext("2d");
b.fillStyle = "#eee"; b.fillRect(0, 0, 200, 100);
console.log("drawn");
</script></body></html>`,
	// A console error, an uncaught exception, an unhandled rejection.
	"/errors": `<!doctype html><html><body><p>errors</p>
<script>
console.error("boom", 42);
setTimeout(() => { throw new Error("kaput"); }, 0);
Promise.reject(new Error("refused"));
</script></body></html>`,
	// Server-rendered text a script would replace.
	"/status": `<!doctype html><html><body>
<p id="state">up since 10:00</p><noscript><p id="hint">no script</p></noscript>
<script>document.getElementById("state").textContent = "rewritten by script";</script>
</body></html>`,
}

func server(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/favicon.ico" {
			// Chromium asks for it; a 404 would be a console error.
			w.WriteHeader(http.StatusNoContent)
			return
		}
		page, ok := pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(page))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestPage(t *testing.T) {
	srv := server(t)
	b := Start(t)

	p := b.Open(t, srv.URL+"/chart")
	if got := p.Errors(); len(got) != 0 {
		t.Errorf("errors of /chart: %q, want none", got)
	}
	var logs []string
	for _, m := range p.Console() {
		logs = append(logs, string(m.Type)+": "+m.Text)
	}
	if want := []string{"log: drawn"}; !slices.Equal(logs, want) {
		t.Errorf("console of /chart: %q, want %q", logs, want)
	}
	if p.Status() != 200 {
		t.Errorf("status %d, want 200", p.Status())
	}
	if got := p.Text("#title"); got != "Overview" {
		t.Errorf("Text(#title) = %q, want Overview", got)
	}
	if got := p.Texts("li.t"); !slices.Equal(got, []string{"alpha", "beta"}) {
		t.Errorf("Texts(li.t) = %q", got)
	}
	if got := p.Texts("li.none"); len(got) != 0 {
		t.Errorf("Texts(li.none) = %q, want none", got)
	}
	if v, ok := p.Attr("#title", "data-state"); v != "up" || !ok {
		t.Errorf("Attr(data-state) = %q, %v; want up, true", v, ok)
	}
	if v, ok := p.Attr("#title", "data-none"); v != "" || ok {
		t.Errorf("Attr(data-none) = %q, %v; want \"\", false", v, ok)
	}
	if n := p.Count("canvas"); n != 2 {
		t.Errorf("Count(canvas) = %d, want 2", n)
	}
	// A 20x30 red rectangle on white.
	if got, want := p.Canvas("#drawn"), (Ink{Width: 200, Height: 100, Colors: 2, Drawn: 600}); got != want {
		t.Errorf("Canvas(#drawn) = %+v, want %+v", got, want)
	}
	if got, want := p.Canvas("#blank"), (Ink{Width: 200, Height: 100, Colors: 1, Drawn: 0}); got != want {
		t.Errorf("Canvas(#blank) = %+v, want %+v", got, want)
	}
	if n := p.SVGShapes("#bars"); n != 2 {
		t.Errorf("SVGShapes(#bars) = %d, want 2 (a path with d, a rect)", n)
	}
	if n := p.SVGShapes("#empty"); n != 0 {
		t.Errorf("SVGShapes(#empty) = %d, want 0", n)
	}

	path := p.Screenshot("browser-selftest")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	// The whole page, not the 900 pixels of the window.
	if cfg.Width != 1280 || cfg.Height < 2000 {
		t.Errorf("%s: %dx%d, want 1280 wide and the page's height (over 2000)", path, cfg.Width, cfg.Height)
	}
	os.Remove(path)
}

func TestErrors(t *testing.T) {
	srv := server(t)
	b := Start(t)
	p := b.Open(t, srv.URL+"/errors")
	got := p.Errors()
	// The timer's exception may come after the first Settle: wait for it.
	for i := 0; i < 20 && len(got) < 3; i++ {
		got = p.Errors()
	}
	// The timer's exception and the rejection's report are two tasks
	// whose order is the browser's.
	slices.Sort(got)
	want := []string{
		"error " + srv.URL + "/errors:3: boom 42",
		"exception " + srv.URL + "/errors:4: Uncaught Error: kaput",
		"exception " + srv.URL + "/errors:5: Uncaught (in promise) Error: refused",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Errors():\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestNoJavaScript(t *testing.T) {
	srv := server(t)
	b := Start(t)

	off := b.Open(t, srv.URL+"/status", NoJavaScript())
	if got := off.Text("#state"); got != "up since 10:00" {
		t.Errorf("without JavaScript: #state %q, want the server's text", got)
	}
	if got := off.Text("#hint"); got != "no script" {
		t.Errorf("without JavaScript: noscript %q, want shown", got)
	}
	off.NoErrors()

	on := b.Open(t, srv.URL+"/status")
	if got := on.Text("#state"); got != "rewritten by script" {
		t.Errorf("with JavaScript: #state %q, want the script's text", got)
	}
	if n := on.Count("#hint"); n != 0 {
		t.Errorf("with JavaScript: %d #hint, want none (noscript is not parsed)", n)
	}
}
