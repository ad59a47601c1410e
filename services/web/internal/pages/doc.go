// Package pages renders the web service's HTML: the overview of every
// target, a target's detail page with its charts, the public status page
// and the 404 page, from html/template files and static files embedded in
// the binary. The charts are drawn in the browser by uPlot 1.6.32 (MIT,
// vendored from npm under static/uplot with its LICENSE) from JSON the
// server embeds in the page; nothing is loaded from another origin and no
// page has an inline script or style, so the CSP can forbid both.
package pages
