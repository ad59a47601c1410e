package notify

import (
	"fmt"
	"strings"
	"time"
	"unicode"
)

// summary is a notification in one line: Slack's text, PagerDuty's summary,
// the Alertmanager's summary annotation and the e-mail's subject.
func summary(n *Notification) string {
	who := n.TargetID
	if who == "" {
		who = "region " + strings.Join(n.Regions, ", ")
	}
	var s string
	switch n.Kind + "/" + n.Transition {
	case "down/" + Opened:
		s = who + " is down"
	case "down/" + Reminder:
		s = who + " is still down"
	case "down/" + Resolved:
		s = who + " is up again"
	case "tls_expiry/" + Opened, "tls_expiry/" + Reminder:
		s = who + "'s certificate expires soon"
		if n.CertNotAfter != nil {
			s = who + "'s certificate expires " + n.CertNotAfter.UTC().Format(time.RFC3339)
		}
	case "tls_expiry/" + Resolved:
		s = who + "'s certificate was renewed"
	case "no_data/" + Opened, "no_data/" + Reminder:
		s = who + " sends no checks"
	case "no_data/" + Resolved:
		s = who + " sends checks again"
	default:
		s = fmt.Sprintf("%s: %s %s", who, n.Kind, n.Transition)
	}
	if n.Transition != Resolved && n.Error != "" {
		s += ": " + n.Error
	}
	return truncate(oneLine(s), 1000)
}

// oneLine turns each run of spaces and control characters (an error may
// quote a page's lines) into one space: a subject or a PagerDuty summary
// has one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)), " ")
}

// details are the notification's fields as "name: value" lines, for the
// e-mail's body and Slack's fields.
func details(n *Notification) [][2]string {
	d := [][2]string{
		{"Incident", n.IncidentID},
		{"Transition", n.Transition},
		{"Kind", n.Kind},
	}
	if n.TargetID != "" {
		d = append(d, [2]string{"Target", n.TargetID})
	}
	if n.URL != "" {
		d = append(d, [2]string{"URL", n.URL})
	}
	d = append(d, [2]string{"Regions", strings.Join(n.Regions, ", ")},
		[2]string{"Started", stamp(n.StartedAt)},
		[2]string{"Confirmed", stamp(n.ConfirmedAt)})
	if n.ResolvedAt != nil {
		d = append(d, [2]string{"Resolved", stamp(*n.ResolvedAt)})
	}
	if n.CertNotAfter != nil {
		d = append(d, [2]string{"Certificate expires", stamp(*n.CertNotAfter)})
	}
	if n.FailureKind != "" {
		d = append(d, [2]string{"Failure", n.FailureKind})
	}
	if n.Error != "" {
		d = append(d, [2]string{"Error", n.Error})
	}
	return d
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// truncate cuts s to at most max bytes, at a rune boundary.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len("…")
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
