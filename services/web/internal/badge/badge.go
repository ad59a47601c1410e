package badge

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"strings"
)

// Colours of shields.io's named colours.
const (
	BrightGreen = "#4c1"
	Green       = "#97ca00"
	Yellow      = "#dfb317"
	Orange      = "#fe7d37"
	Red         = "#e05d44"
	LightGrey   = "#9f9f9f"
)

// Badge is a label, a message and the message's colour.
type Badge struct {
	Label, Message, Color string
}

// ForState is the badge of a target's state (query.States).
func ForState(state string) Badge {
	color := LightGrey
	switch state {
	case "up":
		color = BrightGreen
	case "degraded":
		color = Orange
	case "down":
		color = Red
	case "":
		state = "unknown"
	}
	return Badge{"status", state, color}
}

// ForUptime is the badge of an uptime percentage over period ("7d"); nil
// means no checks in the period.
func ForUptime(period string, pct *float64) Badge {
	b := Badge{Label: "uptime " + period, Message: "no data", Color: LightGrey}
	if pct == nil {
		return b
	}
	b.Message = Percent(*pct) + "%"
	switch p := *pct; {
	case p >= 99.9:
		b.Color = BrightGreen
	case p >= 99:
		b.Color = Green
	case p >= 97:
		b.Color = Yellow
	case p >= 95:
		b.Color = Orange
	default:
		b.Color = Red
	}
	return b
}

// ForResponse is the badge of a mean response time in milliseconds; nil
// means no checks.
func ForResponse(period string, ms *float64) Badge {
	b := Badge{Label: "response " + period, Message: "no data", Color: LightGrey}
	if ms == nil {
		return b
	}
	b.Message = fmt.Sprintf("%.0f ms", math.Round(*ms))
	switch m := *ms; {
	case m < 200:
		b.Color = BrightGreen
	case m < 500:
		b.Color = Green
	case m < 1000:
		b.Color = Yellow
	case m < 2000:
		b.Color = Orange
	default:
		b.Color = Red
	}
	return b
}

// Percent formats an uptime with two decimals, cut rather than rounded:
// 99.999 shows as 99.99, never as a 100 that hides a failure.
func Percent(p float64) string {
	return fmt.Sprintf("%.2f", math.Floor(p*100+1e-6)/100)
}

// SVG draws b.
func (b Badge) SVG() []byte {
	lw := textWidth(b.Label) + 10
	mw := textWidth(b.Message) + 10
	w := lw + mw
	var buf bytes.Buffer
	esc := func(s string) string {
		var e strings.Builder
		_ = xml.EscapeText(&e, []byte(s))
		return e.String()
	}
	label, msg := esc(b.Label), esc(b.Message)
	title := label + ": " + msg
	fmt.Fprintf(&buf, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="20" role="img" aria-label="%s">`, w, title)
	fmt.Fprintf(&buf, `<title>%s</title>`, title)
	buf.WriteString(`<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>`)
	fmt.Fprintf(&buf, `<clipPath id="r"><rect width="%d" height="20" rx="3" fill="#fff"/></clipPath>`, w)
	fmt.Fprintf(&buf, `<g clip-path="url(#r)"><rect width="%d" height="20" fill="#555"/><rect x="%d" width="%d" height="20" fill="%s"/><rect width="%d" height="20" fill="url(#s)"/></g>`,
		lw, lw, mw, esc(b.Color), w)
	buf.WriteString(`<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" text-rendering="geometricPrecision" font-size="110">`)
	text := func(x, tw int, s string) {
		// Coordinates are ten times the pixels under scale(.1), as
		// shields draws them, for sub-pixel placement.
		fmt.Fprintf(&buf, `<text aria-hidden="true" x="%d" y="150" fill="#010101" fill-opacity=".3" transform="scale(.1)" textLength="%d">%s</text>`, x, tw*10, s)
		fmt.Fprintf(&buf, `<text x="%d" y="140" transform="scale(.1)" fill="#fff" textLength="%d">%s</text>`, x, tw*10, s)
	}
	text(lw*5, lw-10, label)
	text(lw*10+mw*5, mw-10, msg)
	buf.WriteString(`</g></svg>`)
	return buf.Bytes()
}

// textWidth approximates the width of s in Verdana 11px, in whole pixels.
func textWidth(s string) int {
	var w float64
	for _, r := range s {
		w += advance(r)
	}
	return int(math.Ceil(w))
}

// advance is a character's Verdana 11px advance width in pixels, grouped
// from the font's metrics; characters outside the table count as wide.
func advance(r rune) float64 {
	switch {
	case strings.ContainsRune("il.,:;|!'` ", r):
		return 3.8
	case strings.ContainsRune("fjrtI()[]{}/\\-", r):
		return 4.6
	case strings.ContainsRune("mwMW%", r):
		return 10.5
	case r >= '0' && r <= '9':
		return 7
	case r >= 'a' && r <= 'z':
		return 6.6
	case r >= 'A' && r <= 'Z':
		return 7.6
	default:
		return 8
	}
}
