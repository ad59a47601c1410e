package targets

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"
)

// Built-in alert defaults, for what neither the target's `alert:` nor the
// one in `defaults:` sets. They are those of a pager that should wake
// someone for an outage, not for a blip: three failed checks in a row, two
// good ones to resolve, one region enough, no reminders (a pager escalates
// by itself; `reminder_interval` asks for them), a warning 14 days before a
// certificate expires (a certificate renewed by ACME at 30 days left that
// still has 14 has failed to renew twice).
const (
	defaultFailureThreshold = 3
	defaultSuccessThreshold = 2
	defaultAlertRegions     = 1
	defaultTLSExpiryDays    = 14
	defaultChannelTimeout   = 10 * time.Second

	// maxAlertChecks bounds failure_threshold, failure_window and
	// success_threshold: the alerter keeps that many results per target
	// and region.
	maxAlertChecks = 100
	// maxTLSExpiryDays is ten years: anything more warns for every
	// certificate there is.
	maxTLSExpiryDays = 3650
	maxNotify        = 16
)

// StartTLS modes of an email channel.
const (
	StartTLSAlways        = "always"
	StartTLSOpportunistic = "opportunistic"
	StartTLSNever         = "never"
)

// nameRule is what channels and maintenance windows may be called: they
// appear in notify lists, logs and metric labels as they are.
var nameRule = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]{0,62}$`)

const nameRuleText = "letters, digits, _ and -, starting with a letter, at most 63"

// envRef is one `${VAR}` reference; envVarName is what VAR may be.
var (
	envRef     = regexp.MustCompile(`\$\{([^}]*)\}`)
	envVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// alertRaw holds the value nodes of one `alert:` mapping; off is set for
// `alert: false`; node is the mapping, for the line of what is missing.
type alertRaw struct {
	off, node                                                            *yaml.Node
	failureThreshold, failureWindow, successThreshold, regions, reminder *yaml.Node
	tlsExpiryDays, noData, notify                                        *yaml.Node
}

const alertKeys = "failure_threshold, failure_window, success_threshold, regions, reminder_interval, tls_expiry_days, no_data, notify"

// alertRaw splits an `alert:` value into its keys, reporting unknown ones.
func (p *parser) alertRaw(v *yaml.Node, where string) *alertRaw {
	a := &alertRaw{node: v}
	if v.Kind == yaml.ScalarNode && v.Tag == "!!bool" && v.Value != "" {
		var b bool
		if v.Decode(&b) == nil && !b {
			a.off = v
			return a
		}
	}
	if v.Kind != yaml.MappingNode {
		p.errorf(v, where, "alert", "must be a mapping of alert settings, or false")
		return nil
	}
	p.eachKey(v, where+": alert", func(key string, k, val *yaml.Node) {
		slot := map[string]**yaml.Node{
			"failure_threshold": &a.failureThreshold, "failure_window": &a.failureWindow,
			"success_threshold": &a.successThreshold, "regions": &a.regions,
			"reminder_interval": &a.reminder, "tls_expiry_days": &a.tlsExpiryDays,
			"no_data": &a.noData, "notify": &a.notify,
		}[key]
		if slot == nil {
			p.errorf(k, where, "alert: "+key, "unknown key (known: %s)", alertKeys)
			return
		}
		*slot = val
	})
	return a
}

// alert merges a target's `alert:` with the defaults' key by key and
// validates the result; nil when the target's alerts are off. Targets of
// regions are the target's (nil: every region), to bound the quorum.
func (p *parser) alert(where string, own, def *alertRaw, targetRegions []string) *Alert {
	if own != nil && own.off != nil {
		return nil
	}
	if def != nil && def.off != nil {
		// `alert: false` in defaults: a target opts in with a block of its own.
		def = nil
	}
	if own == nil && def == nil {
		return nil
	}
	if own == nil {
		own = &alertRaw{}
	}
	if def == nil {
		def = &alertRaw{}
	}
	const f = "alert: "
	a := &Alert{
		FailureThreshold: defaultFailureThreshold,
		SuccessThreshold: defaultSuccessThreshold,
		Regions:          defaultAlertRegions,
		TLSExpiryDays:    defaultTLSExpiryDays,
		NoData:           true,
	}
	if v := pick(own.failureThreshold, def.failureThreshold); v != nil {
		a.FailureThreshold, _ = p.integer(v, where, f+"failure_threshold", 1, maxAlertChecks)
	}
	a.FailureWindow = a.FailureThreshold
	if v := pick(own.failureWindow, def.failureWindow); v != nil {
		if n, ok := p.integer(v, where, f+"failure_window", 1, maxAlertChecks); ok {
			a.FailureWindow = n
			if n < a.FailureThreshold && own.failureWindow == nil && own.failureThreshold != nil {
				// The target raised the threshold above the defaults'
				// window (design.md's defaults say 3 of 3): the
				// failures it asks for, consecutive, not an error
				// about a key it did not write.
				a.FailureWindow = a.FailureThreshold
			} else if n < a.FailureThreshold {
				p.errorf(v, where, f+"failure_window", "%d is below failure_threshold %d: the window holds the failures that confirm", n, a.FailureThreshold)
			}
		}
	}
	if v := pick(own.successThreshold, def.successThreshold); v != nil {
		a.SuccessThreshold, _ = p.integer(v, where, f+"success_threshold", 1, maxAlertChecks)
	}
	if v := pick(own.regions, def.regions); v != nil {
		if s, ok := p.scalar(v, where, f+"regions"); ok && s == "all" {
			a.Regions = AllRegions
		} else if ok {
			// Not p.integer: its message would not say that all is taken.
			if n, err := strconv.Atoi(s); err != nil || n < 1 || n > maxRegions {
				p.errorf(v, where, f+"regions", "%q is not a count from 1 to %d, or all", s, maxRegions)
			} else {
				a.Regions = n
				if targetRegions != nil && n > len(targetRegions) {
					p.errorf(v, where, f+"regions", "%d is more than the %d regions the target lists: no incident could open (all says every region)", n, len(targetRegions))
				}
			}
		}
	}
	if v := pick(own.reminder, def.reminder); v != nil {
		if s, ok := p.scalar(v, where, f+"reminder_interval"); ok {
			d, err := time.ParseDuration(s)
			switch {
			case err != nil:
				p.errorf(v, where, f+"reminder_interval", "%q is not a duration such as 1h, or 0 for none", s)
			case d < 0:
				p.errorf(v, where, f+"reminder_interval", "%s is negative (0 for none)", s)
			default:
				a.ReminderInterval = d
			}
		}
	}
	if v := pick(own.tlsExpiryDays, def.tlsExpiryDays); v != nil {
		a.TLSExpiryDays, _ = p.integer(v, where, f+"tls_expiry_days", 0, maxTLSExpiryDays)
	}
	if v := pick(own.noData, def.noData); v != nil {
		a.NoData, _ = p.boolean(v, where, f+"no_data")
	}
	v := pick(own.notify, def.notify)
	if v == nil {
		at := own.node // the target's block, else the defaults'
		if at == nil {
			at = def.node
		}
		if at == nil {
			at = &yaml.Node{} // a record of the topic: no line to name
		}
		p.errorf(at, where, f+"notify", "missing: list the channels to notify, or [] to switch the target's alerts off")
		return nil
	}
	a.Notify = p.notify(v, where)
	if len(a.Notify) == 0 {
		return nil
	}
	return a
}

// notify validates a list of channel names; p.channels, when set, holds
// the names the file defines (nil: not known, as in a record of the
// targets topic).
func (p *parser) notify(v *yaml.Node, where string) []string {
	const field = "alert: notify"
	if v.Kind != yaml.SequenceNode {
		p.errorf(v, where, field, "must be a list of channel names such as [ops-hook]")
		return nil
	}
	if len(v.Content) > maxNotify {
		p.errorf(v, where, field, "%d channels, more than %d", len(v.Content), maxNotify)
		return nil
	}
	var out []string
	for _, it := range v.Content {
		s, ok := p.scalar(it, where, field)
		switch {
		case !ok:
		case !nameRule.MatchString(s):
			p.errorf(it, where, field, "%q is not a channel name (%s)", s, nameRuleText)
		case slices.Contains(out, s):
			p.errorf(it, where, field, "%q given twice", s)
		case p.channelNames != nil && !p.channelNames[s]:
			p.errorf(it, where, field, "%q is no channel of the file (channels: %s)", s, p.channelList())
		default:
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) channelList() string {
	if len(p.channelNames) == 0 {
		return "none"
	}
	var names []string
	for n := range p.channelNames {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// integer parses a whole number in [lo, hi].
func (p *parser) integer(v *yaml.Node, where, field string, lo, hi int) (int, bool) {
	s, ok := p.scalar(v, where, field)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		p.errorf(v, where, field, "%q is not a whole number from %d to %d", s, lo, hi)
		return 0, false
	}
	return n, true
}

// channelKeys per type: the keys a channel of the type takes besides name,
// type and timeout, and those it needs.
var channelKeys = map[string]struct{ allowed, required []string }{
	ChannelWebhook:      {[]string{"url", "secret"}, []string{"url"}},
	ChannelSlack:        {[]string{"url"}, []string{"url"}},
	ChannelPagerDuty:    {[]string{"routing_key", "url"}, []string{"routing_key"}},
	ChannelAlertmanager: {[]string{"url"}, []string{"url"}},
	ChannelEmail:        {[]string{"smtp", "from", "to", "username", "password", "starttls"}, []string{"smtp", "from", "to"}},
}

const channelTypes = "webhook, slack, pagerduty, alertmanager or email"

// channels validates the top-level `channels:` list. Every name found is
// kept in p.channelNames, even that of a channel with errors, so that a
// notify list naming it is not reported as well.
func (p *parser) channels(v *yaml.Node) []*Channel {
	p.channelNames = map[string]bool{}
	var out []*Channel
	p.eachNamed(v, "channels", "channel", "the channel", "a list of channels, each with name and type", "at least name and type",
		func(n *yaml.Node, where, name string) {
			if name != "" {
				p.channelNames[name] = true
			}
			if c := p.channel(n, where); c != nil {
				out = append(out, c)
			}
		})
	return out
}

// eachNamed calls fn for each mapping of the list v (the top-level
// section), named in errors by its name (`KIND "NAME"`, else `KIND #N`),
// reporting what is not a mapping and a name given twice; name is "" when
// the item has none.
func (p *parser) eachNamed(v *yaml.Node, section, kind, the, list, mapping string, fn func(n *yaml.Node, where, name string)) {
	if v.Kind != yaml.SequenceNode {
		p.errorf(v, "", section, "must be %s", list)
		return
	}
	seen := map[string]int{}
	for i, n := range v.Content {
		where := fmt.Sprintf("%s #%d", kind, i+1)
		if n.Kind != yaml.MappingNode {
			p.errorf(n, where, "", "must be a mapping with %s", mapping)
			continue
		}
		name := ""
		if nn := lookup(n, "name"); nn != nil && nn.Kind == yaml.ScalarNode && nn.Value != "" {
			name = nn.Value
			where = fmt.Sprintf("%s %q", kind, name)
			if line, dup := seen[name]; dup {
				p.errorf(nn, where, "name", "duplicate: already used by %s at line %d", the, line)
			} else {
				seen[name] = nn.Line
			}
		}
		fn(n, where, name)
	}
}

func (p *parser) channel(n *yaml.Node, where string) *Channel {
	before := len(p.errs)
	nodes := p.fields(n, where, "name", "type", "timeout", "url", "secret", "routing_key", "smtp", "from", "to", "username", "password", "starttls")
	c := &Channel{Timeout: defaultChannelTimeout, Name: p.name(n, nodes["name"], where, "channel")}
	kind, ok := "", false
	if v := nodes["type"]; v == nil {
		p.errorf(n, where, "type", "missing (%s)", channelTypes)
	} else if kind, ok = p.scalar(v, where, "type"); ok {
		if _, known := channelKeys[kind]; !known {
			p.errorf(v, where, "type", "%q is not a channel type (%s)", kind, channelTypes)
			ok = false
		}
		c.Type = kind
	}
	if v := nodes["timeout"]; v != nil {
		if d, ok := p.duration(v, where, "timeout"); ok {
			c.Timeout = d
		}
	}
	if !ok {
		return nil // which keys apply depends on the type
	}
	keys := channelKeys[kind]
	for key, v := range nodes {
		switch key {
		case "name", "type", "timeout":
			continue
		}
		if !slices.Contains(keys.allowed, key) {
			p.errorf(v, where, key, "not used by a %s channel (it takes %s)", kind, strings.Join(keys.allowed, ", "))
		}
	}
	for _, key := range keys.required {
		if nodes[key] == nil {
			p.errorf(n, where, key, "missing: a %s channel needs it", kind)
		}
	}
	allowed := func(key string) *yaml.Node {
		if slices.Contains(keys.allowed, key) {
			return nodes[key]
		}
		return nil
	}
	if v := allowed("url"); v != nil {
		c.URL = p.secretURL(v, where, "url")
	}
	if v := allowed("secret"); v != nil {
		c.Secret = p.secret(v, where, "secret")
	}
	if v := allowed("routing_key"); v != nil {
		c.RoutingKey = p.secret(v, where, "routing_key")
	}
	if v := allowed("password"); v != nil {
		c.Password = p.secret(v, where, "password")
	}
	if v := allowed("smtp"); v != nil {
		if s, ok := p.plain(v, where, "smtp"); ok {
			host, port, err := net.SplitHostPort(s)
			if err != nil || host == "" || !validPort(port) || port == "" {
				p.errorf(v, where, "smtp", "%q is not host:port of an SMTP server, such as 127.0.0.1:587", s)
			}
			c.SMTP = s
		}
	}
	if v := allowed("from"); v != nil {
		if s, ok := p.plain(v, where, "from"); ok {
			c.From = p.address(v, where, "from", s)
		}
	}
	if v := allowed("to"); v != nil {
		items := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			items = v.Content
		}
		if len(items) == 0 {
			p.errorf(v, where, "to", "empty: list at least one address")
		}
		for _, it := range items {
			if s, ok := p.plain(it, where, "to"); ok {
				if a := p.address(it, where, "to", s); a != "" {
					c.To = append(c.To, a)
				}
			}
		}
	}
	if v := allowed("username"); v != nil {
		c.Username, _ = p.plain(v, where, "username")
	}
	if (c.Username == "") != c.Password.IsZero() && len(p.errs) == before {
		p.errorf(n, where, "password", "username and password go together: SMTP AUTH needs both")
	}
	if kind == ChannelEmail {
		c.StartTLS = StartTLSAlways
		if v := allowed("starttls"); v != nil {
			if s, ok := p.plain(v, where, "starttls"); ok {
				switch s {
				case StartTLSAlways, StartTLSOpportunistic, StartTLSNever:
					c.StartTLS = s
				default:
					p.errorf(v, where, "starttls", "%q is not always, opportunistic or never", s)
				}
			}
		}
	}
	if len(p.errs) > before {
		return nil
	}
	return c
}

// fields returns the value nodes of mapping n by key, reporting keys not
// in known.
func (p *parser) fields(n *yaml.Node, where string, known ...string) map[string]*yaml.Node {
	nodes := map[string]*yaml.Node{}
	p.eachKey(n, where, func(key string, k, v *yaml.Node) {
		if !slices.Contains(known, key) {
			p.errorf(k, where, key, "unknown key (known: %s)", strings.Join(known, ", "))
			return
		}
		nodes[key] = v
	})
	return nodes
}

// name validates the name (node v) of a channel or window n.
func (p *parser) name(n, v *yaml.Node, where, kind string) string {
	if v == nil {
		p.errorf(n, where, "name", "missing")
		return ""
	}
	s, ok := p.scalar(v, where, "name")
	if ok && !nameRule.MatchString(s) {
		p.errorf(v, where, "name", "%q is not a %s name (%s)", s, kind, nameRuleText)
	}
	return s
}

// address parses one e-mail address, returning it as net/mail writes it.
func (p *parser) address(v *yaml.Node, where, field, s string) string {
	a, err := mail.ParseAddress(s)
	if err != nil {
		p.errorf(v, where, field, "%q is not an e-mail address: %v", s, err)
		return ""
	}
	return a.String()
}

// plain is a scalar that may not reference the environment: only the
// secret-bearing fields do.
func (p *parser) plain(v *yaml.Node, where, field string) (string, bool) {
	s, ok := p.scalar(v, where, field)
	if ok && strings.Contains(s, "${") {
		p.errorf(v, where, field, "${...} is not read here: only url, secret, routing_key and password reference the environment")
		return "", false
	}
	if ok && s == "" {
		p.errorf(v, where, field, "empty")
		return "", false
	}
	return s, ok
}

// secret parses a secret-bearing field: a value written in the file, or a
// text with one `${VAR}` reference, resolved later (File.ResolveSecrets).
// No message shows the value.
func (p *parser) secret(v *yaml.Node, where, field string) Secret {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		p.scalar(v, where, field) // reports it
		return Secret{}
	}
	s := v.Value
	if s == "" {
		p.errorf(v, where, field, "empty")
		return Secret{}
	}
	refs := envRef.FindAllStringSubmatchIndex(s, -1)
	switch {
	case len(refs) == 0 && strings.Contains(s, "${"):
		p.errorf(v, where, field, "${ without a closing }")
		return Secret{}
	case len(refs) == 0:
		return Secret{v: &secretData{value: s, text: s, line: v.Line}}
	case len(refs) > 1:
		p.errorf(v, where, field, "more than one ${...} reference; put the whole value in one variable")
		return Secret{}
	}
	name := s[refs[0][2]:refs[0][3]]
	if !envVarName.MatchString(name) {
		// Not quoted: what is there may be the secret itself.
		p.errorf(v, where, field, "the ${...} does not hold a variable name (letters, digits and _, not starting with a digit)")
		return Secret{}
	}
	if strings.Contains(s[:refs[0][0]]+s[refs[0][1]:], "${") {
		p.errorf(v, where, field, "${ without a closing }")
		return Secret{}
	}
	return Secret{Ref: name, v: &secretData{text: s, line: v.Line}}
}

// secretURL is a secret that is an http(s) URL: a Slack webhook's URL is
// itself the secret, so no message shows it. With a reference, the URL is
// checked as far as the file shows it, and in full when resolved.
func (p *parser) secretURL(v *yaml.Node, where, field string) Secret {
	s := p.secret(v, where, field)
	if s.v == nil {
		return s
	}
	if s.Ref != "" && strings.HasPrefix(s.v.text, "${") {
		return s // the whole URL comes from the environment
	}
	// A placeholder where the reference is: https://hooks.slack.com/${X}.
	// A digit, which a host, a port, a path and userinfo all take.
	if msg := urlProblem(envRef.ReplaceAllString(s.v.text, "1")); msg != "" {
		p.errorf(v, where, field, "%s", msg)
		return Secret{}
	}
	return s
}

// urlProblem says what is wrong with u as a receiver's URL, without
// quoting it; "" when nothing is.
func urlProblem(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil, strings.IndexFunc(s, func(c rune) bool { return c <= ' ' || c == 0x7f }) >= 0:
		return "not an http:// or https:// URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "not an http:// or https:// URL"
	case u.Hostname() == "":
		return "the URL has no host"
	case !validPort(u.Port()):
		return "the URL's port is outside 1-65535"
	}
	return ""
}

// maintenance validates the top-level `maintenance:` list; ids holds the
// IDs of the file's targets (line of each), or is nil when the targets
// are not the file's (ParseAlerting) and any ID is taken.
func (p *parser) maintenance(v *yaml.Node, ids map[string]int) []*Maintenance {
	var out []*Maintenance
	p.eachNamed(v, "maintenance", "maintenance", "the window",
		"a list of maintenance windows, each with name, targets or labels, and cron and duration or from and to",
		"name, targets or labels, and cron and duration or from and to",
		func(n *yaml.Node, where, _ string) {
			if m := p.window(n, where, ids); m != nil {
				out = append(out, m)
			}
		})
	return out
}

func (p *parser) window(n *yaml.Node, where string, ids map[string]int) *Maintenance {
	before := len(p.errs)
	nodes := p.fields(n, where, "name", "targets", "labels", "cron", "duration", "from", "to")
	m := &Maintenance{Name: p.name(n, nodes["name"], where, "window")}

	if v := nodes["targets"]; v != nil {
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			p.errorf(v, where, "targets", "must be a non-empty list of target IDs")
		} else {
			for _, it := range v.Content {
				s, ok := p.scalar(it, where, "targets")
				switch {
				case !ok:
				case slices.Contains(m.Targets, s):
					p.errorf(it, where, "targets", "%q given twice", s)
				case ids != nil && ids[s] == 0:
					p.errorf(it, where, "targets", "%q is no target of the file", s)
				default:
					m.Targets = append(m.Targets, s)
				}
			}
		}
	}
	if v := nodes["labels"]; v != nil {
		m.Labels = p.labels(v, where)
		if v.Kind == yaml.MappingNode && len(v.Content) == 0 {
			p.errorf(v, where, "labels", "empty: it would match every target; list the targets or labels it covers")
		}
	}
	if nodes["targets"] == nil && nodes["labels"] == nil {
		p.errorf(n, where, "targets", "missing: a window covers targets (by ID) or labels, or both")
	}

	cronNode, durNode, fromNode, toNode := nodes["cron"], nodes["duration"], nodes["from"], nodes["to"]
	switch {
	case cronNode != nil && (fromNode != nil || toNode != nil):
		p.errorf(pick(fromNode, toNode), where, "", "cron and from/to exclude each other: a window recurs (cron, duration) or happens once (from, to)")
	case cronNode != nil:
		if durNode == nil {
			p.errorf(cronNode, where, "duration", "missing: how long each window lasts, such as 1h")
		} else if d, ok := p.duration(durNode, where, "duration"); ok {
			m.Duration = d
		}
		if s, ok := p.scalar(cronNode, where, "cron"); ok {
			sched, err := parseCron(s)
			if err != nil {
				p.errorf(cronNode, where, "cron", "%q: %v", s, err)
			}
			m.Cron, m.sched = s, sched
		}
	case fromNode != nil || toNode != nil:
		if durNode != nil {
			p.errorf(durNode, where, "duration", "only with cron: a one-off window ends at to")
		}
		if fromNode == nil || toNode == nil {
			p.errorf(pick(fromNode, toNode), where, "", "from and to go together")
			break
		}
		from, okF := p.timestamp(fromNode, where, "from")
		to, okT := p.timestamp(toNode, where, "to")
		if okF && okT && !to.After(from) {
			p.errorf(toNode, where, "to", "%s is not after from %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
		}
		m.From, m.To = from, to
	default:
		p.errorf(n, where, "", "no time: a window needs cron and duration (recurring) or from and to (once)")
	}
	if len(p.errs) > before {
		return nil
	}
	return m
}

func (p *parser) timestamp(v *yaml.Node, where, field string) (time.Time, bool) {
	s, ok := p.scalar(v, where, field)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		p.errorf(v, where, field, "%q is not an RFC 3339 time such as 2026-12-24T22:00:00Z", s)
		return time.Time{}, false
	}
	return t.UTC(), true
}

// parseCron parses a 5-field cron expression (or a descriptor such as
// @weekly) whose times are UTC.
func parseCron(s string) (cron.Schedule, error) {
	switch {
	case strings.Contains(s, "="):
		// TZ=... and CRON_TZ=...: windows are in UTC. (And robfig/cron
		// v3.0.1 panics on "TZ=" without a space after it.)
		return nil, fmt.Errorf("a time zone is not taken: the times are UTC")
	case strings.HasPrefix(strings.TrimSpace(s), "@every"):
		// Not anchored to the clock: its starts would depend on when
		// they are asked for.
		return nil, fmt.Errorf("@every is not taken: give the start times, such as 0 3 * * SUN")
	}
	sched, err := cron.ParseStandard(s)
	if err != nil {
		return nil, err
	}
	// A schedule that matches no day (30 February) never starts: Next
	// looks five years ahead and gives up.
	if sched.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, fmt.Errorf("never starts (no such day)")
	}
	return sched, nil
}
