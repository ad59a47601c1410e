package targets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/sitewatch/sitewatch/services/internal/checkevent"
)

// Built-in defaults, used for what neither the target nor `defaults` sets.
const (
	defaultInterval     = 60 * time.Second
	defaultTimeout      = 10 * time.Second
	defaultMethod       = http.MethodGet
	defaultMaxBodyBytes = 1 << 20
	// maxBodyBytesLimit bounds max_body_bytes. A check with a pattern holds
	// the decoded body up to the cap in memory, so the cap is the memory a
	// check may take, times the checks running at once: 64 MiB is 64 times
	// the default and far above any page a browser renders. More every
	// interval is a download test, not an availability check.
	maxBodyBytesLimit = 64 << 20

	// MaxRedirects bounds the redirects followed: a loop ends as a failure
	// instead of running until the timeout.
	MaxRedirects = 10
)

// defaultExpectStatus is what a target expects unless it says otherwise:
// any success or redirect status.
var defaultExpectStatus = []StatusRange{{Min: 200, Max: 399}}

// Target is one website to check, with defaults applied.
type Target struct {
	ID  string
	URL string // may hold a password or token (https://user:pass@host/): never log it
	// PublicURL is URL with its secret replaced by "xxxxx", for events and
	// logs: the password, or the user name when there is no password (a
	// token: https://TOKEN@host/).
	PublicURL string
	Method    string
	Headers   http.Header // may hold secrets: never log it
	Body      string      // may hold secrets: never log it
	Interval  time.Duration
	Timeout   time.Duration
	// ExpectStatus lists the status codes that count as up.
	ExpectStatus    []StatusRange
	Pattern         *regexp.Regexp // nil when no content check is configured
	FollowRedirects bool
	TLSSkipVerify   bool
	MaxBodyBytes    int64
	// Regions lists the regions whose probers check the target; nil for
	// every region.
	Regions []string
	// Labels are free key-value pairs for grouping; nil when none.
	Labels map[string]string
	// Alert is the target's alert policy; nil when its alerts are off.
	Alert *Alert

	// secretUser is the user name of URL when it is a secret (see
	// PublicURL) as it appears in URL, escaped; else "".
	secretUser string
}

// Redact returns s, a text about the target such as an error, with the
// secret user name of its URL replaced by "xxxxx". net/http already hides a
// URL's password in its errors ("user:***@"), but not a user name given
// without one.
func (t *Target) Redact(s string) string {
	if t.secretUser == "" {
		return s
	}
	// The user name and what ends it, so that a host that begins with the
	// same letters (a redirect's URL in the error) stays as it is.
	return strings.NewReplacer("//"+t.secretUser+"@", "//xxxxx@", "//"+t.secretUser+":", "//xxxxx:").Replace(s)
}

// StatusRange is an inclusive range of HTTP status codes; a single code has
// Min == Max.
type StatusRange struct{ Min, Max int }

// Expects reports whether code is one of the target's expected status codes.
func (t *Target) Expects(code int) bool {
	for _, r := range t.ExpectStatus {
		if code >= r.Min && code <= r.Max {
			return true
		}
	}
	return false
}

// File is a validated targets file.
type File struct {
	Path        string
	Targets     []*Target
	Channels    []*Channel
	Maintenance []*Maintenance
}

// Load reads and validates the targets file at path.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// LoadAlerting reads and validates the file at path as ParseAlerting does.
func LoadAlerting(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseAlerting(path, data)
}

// ParseAlerting validates the file of an alerter in fleet mode, which
// takes only its channels and maintenance windows: the targets come from
// the targets topic, so the file need not list any, and a window may name
// targets it does not list. Whatever the file does hold is validated as
// Parse does, so the file that `prober targets apply` reads works too.
func ParseAlerting(name string, data []byte) (*File, error) {
	return parse(name, data, true)
}

// Parse validates the content of a targets file; name is used in errors.
// The error, if any, joins one error per problem found (errors.Join).
func Parse(name string, data []byte) (*File, error) { return parse(name, data, false) }

// parse is Parse, or with alertingOnly ParseAlerting.
func parse(name string, data []byte, alertingOnly bool) (*File, error) {
	if line, col, b, ok := firstInvalidUTF8(data); !ok {
		// The YAML decoder says "invalid UTF-8 octet" without a line.
		return nil, fmt.Errorf("%s:%d: not UTF-8: byte 0x%02x at column %d; save the file as UTF-8", name, line, b, col)
	}
	p := parser{file: name}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			if alertingOnly {
				return nil, fmt.Errorf("%s: empty file: no channels", name)
			}
			return nil, fmt.Errorf("%s: empty file: no targets", name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: the file must be a mapping with `defaults` and `targets`", name, root.Line)
	}

	var defaults raw
	var targetsNode, channelsNode, maintenanceNode *yaml.Node
	p.eachKey(root, "", func(key string, k, v *yaml.Node) {
		switch key {
		case "defaults":
			if v.Kind != yaml.MappingNode {
				p.errorf(v, "defaults", "", "must be a mapping of target keys")
				return
			}
			defaults = p.raw(v, "defaults")
		case "targets":
			targetsNode = v
		case "channels":
			channelsNode = v
		case "maintenance":
			maintenanceNode = v
		default:
			p.errorf(k, "", key, "unknown key (expected defaults, targets, channels or maintenance)")
		}
	})
	if defaults.id != nil {
		p.errorf(defaults.id, "defaults", "id", "not allowed in defaults: each target needs its own")
	}
	if defaults.url != nil {
		p.errorf(defaults.url, "defaults", "url", "not allowed in defaults: each target needs its own")
	}

	f := &File{Path: name}
	// Channels first, so that a target's notify list can be checked
	// against them wherever the section is in the file.
	if channelsNode != nil {
		f.Channels = p.channels(channelsNode)
	} else {
		p.channelNames = map[string]bool{}
	}
	switch {
	case alertingOnly && (targetsNode == nil || targetsNode.Kind == yaml.SequenceNode && len(targetsNode.Content) == 0):
	case targetsNode == nil:
		p.errs = append(p.errs, fmt.Errorf("%s: targets: missing: no targets", name))
	case targetsNode.Kind != yaml.SequenceNode:
		p.errorf(targetsNode, "", "targets", "must be a list of targets")
	case len(targetsNode.Content) == 0:
		// An empty list is refused rather than taken as "check nothing": a
		// file caught half-written by a reload must not stop every check.
		p.errorf(targetsNode, "", "targets", "empty: no targets")
	}
	seen := map[string]int{} // ID -> line
	if targetsNode != nil && targetsNode.Kind == yaml.SequenceNode {
		for i, n := range targetsNode.Content {
			where := fmt.Sprintf("target #%d", i+1)
			if n.Kind != yaml.MappingNode {
				p.errorf(n, where, "", "must be a mapping with at least id and url")
				continue
			}
			// Name the target by its ID in every error, even those of keys
			// before the id.
			if idNode := lookup(n, "id"); idNode != nil && idNode.Kind == yaml.ScalarNode && idNode.Value != "" {
				id := idNode.Value
				where = fmt.Sprintf("target %q", id)
				if line, dup := seen[id]; dup {
					p.errorf(idNode, where, "id", "duplicate: already used by the target at line %d", line)
				} else {
					seen[id] = idNode.Line
				}
			}
			r := p.raw(n, where)
			if t := p.target(n, where, r, defaults); t != nil {
				f.Targets = append(f.Targets, t)
			}
		}
	}
	if maintenanceNode != nil {
		if alertingOnly {
			seen = nil // the targets topic's targets are not known here
		}
		f.Maintenance = p.maintenance(maintenanceNode, seen)
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return f, nil
}

// raw holds the value nodes of one target mapping (or of defaults); nil
// means the key is absent.
type raw struct {
	id, url, method, headers, body, interval, timeout, expectStatus,
	pattern, followRedirects, tlsSkipVerify, maxBodyBytes, regions, labels, alertNode *yaml.Node
	alert *alertRaw
}

type parser struct {
	file string
	errs []error
	// channelNames holds the names of the file's channels, which notify
	// lists must name; nil when they are not known (FromProto).
	channelNames map[string]bool
}

// errorf records an error at node n: FILE:LINE: WHERE: FIELD: message. A
// node without a line (built by FromProto from a record, not read from a
// file) gives FILE: WHERE: FIELD: message.
func (p *parser) errorf(n *yaml.Node, where, field, format string, args ...any) {
	var b strings.Builder
	if n.Line == 0 {
		fmt.Fprintf(&b, "%s: ", p.file)
	} else {
		fmt.Fprintf(&b, "%s:%d: ", p.file, n.Line)
	}
	if where != "" {
		b.WriteString(where)
		b.WriteString(": ")
	}
	if field != "" {
		b.WriteString(field)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, format, args...)
	p.errs = append(p.errs, errors.New(b.String()))
}

// eachKey calls fn for each key of mapping m, reporting duplicate and
// non-string keys.
func (p *parser) eachKey(m *yaml.Node, where string, fn func(key string, k, v *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, where, "", "keys must be plain strings")
			continue
		}
		if seen[k.Value] {
			p.errorf(k, where, k.Value, "key given twice")
			continue
		}
		seen[k.Value] = true
		fn(k.Value, k, v)
	}
}

func (p *parser) raw(m *yaml.Node, where string) raw {
	var r raw
	p.eachKey(m, where, func(key string, k, v *yaml.Node) {
		slot := map[string]**yaml.Node{
			"id": &r.id, "url": &r.url, "method": &r.method, "headers": &r.headers,
			"body": &r.body, "interval": &r.interval, "timeout": &r.timeout,
			"expect_status": &r.expectStatus, "pattern": &r.pattern,
			"follow_redirects": &r.followRedirects, "tls_skip_verify": &r.tlsSkipVerify,
			"max_body_bytes": &r.maxBodyBytes, "regions": &r.regions, "labels": &r.labels,
			"alert": &r.alertNode,
		}[key]
		if slot == nil {
			p.errorf(k, where, key, "unknown key (known: id, url, method, headers, body, interval, timeout, expect_status, pattern, follow_redirects, tls_skip_verify, max_body_bytes, regions, labels, alert)")
			return
		}
		*slot = v
	})
	if r.alertNode != nil {
		// Split here, so that an unknown key of defaults' alert is
		// reported once, not once per target.
		r.alert = p.alertRaw(r.alertNode, where)
	}
	return r
}

// lookup returns the value of key in mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// pick returns the target's node for a key, else the default's, else nil.
func pick(own, def *yaml.Node) *yaml.Node {
	if own != nil {
		return own
	}
	return def
}

// target validates one target; it returns nil when it has errors.
func (p *parser) target(n *yaml.Node, where string, r, d raw) *Target {
	before := len(p.errs)
	t := &Target{
		Method:          defaultMethod,
		Interval:        defaultInterval,
		Timeout:         defaultTimeout,
		ExpectStatus:    defaultExpectStatus,
		FollowRedirects: true,
		MaxBodyBytes:    defaultMaxBodyBytes,
	}

	if r.id == nil {
		p.errorf(n, where, "id", "missing")
	} else if id, ok := p.scalar(r.id, where, "id"); ok {
		switch {
		case id == "":
			p.errorf(r.id, where, "id", "empty")
		case len(id) > checkevent.MaxTargetID:
			p.errorf(r.id, where, "id", "longer than %d bytes", checkevent.MaxTargetID)
		case strings.IndexFunc(id, func(c rune) bool { return unicode.IsSpace(c) || !unicode.IsPrint(c) }) >= 0:
			p.errorf(r.id, where, "id", "%q contains a space or an unprintable character", id)
		}
		t.ID = id
	}

	if r.url == nil {
		p.errorf(n, where, "url", "missing")
	} else if s, ok := p.scalar(r.url, where, "url"); ok {
		u, err := url.Parse(s)
		switch {
		case err != nil:
			p.errorf(r.url, where, "url", "invalid: %v", unwrapURLError(err))
		case u.Scheme != "http" && u.Scheme != "https":
			p.errorf(r.url, where, "url", "%q is not an http:// or https:// URL", redacted(u))
		case u.Hostname() == "":
			p.errorf(r.url, where, "url", "%q has no host", redacted(u))
		case !validPort(u.Port()):
			p.errorf(r.url, where, "url", "%q: port %s is outside 1-65535", redacted(u), u.Port())
		default:
			t.PublicURL = redacted(u)
			if pw, _ := u.User.Password(); u.User != nil && pw == "" {
				t.secretUser, _, _ = strings.Cut(u.User.String(), ":")
			}
		}
		t.URL = s
	}

	if v := pick(r.method, d.method); v != nil {
		if s, ok := p.scalar(v, where, "method"); ok {
			if s == "" || strings.IndexFunc(s, func(c rune) bool { return !isTokenChar(c) }) >= 0 {
				p.errorf(v, where, "method", "%q is not an HTTP method", s)
			}
			t.Method = s
		}
	}

	if v := pick(r.headers, d.headers); v != nil {
		t.Headers = p.headers(v, where)
	}
	if v := pick(r.body, d.body); v != nil {
		if s, ok := p.scalar(v, where, "body"); ok {
			t.Body = s
		}
	}

	if v := pick(r.interval, d.interval); v != nil {
		if dur, ok := p.duration(v, where, "interval"); ok {
			t.Interval = dur
		}
	}
	if v := pick(r.timeout, d.timeout); v != nil {
		if dur, ok := p.duration(v, where, "timeout"); ok {
			t.Timeout = dur
		}
	}
	if t.Timeout >= t.Interval {
		// A check must end before the next is due; otherwise every other
		// check of a slow target would be skipped.
		at := pick(r.timeout, d.timeout)
		if at == nil {
			at = pick(r.interval, d.interval)
		}
		if at == nil {
			at = n
		}
		p.errorf(at, where, "timeout", "%s is not below the interval %s", t.Timeout, t.Interval)
	}

	if v := pick(r.expectStatus, d.expectStatus); v != nil {
		t.ExpectStatus = p.statusRanges(v, where)
	}

	if v := pick(r.pattern, d.pattern); v != nil {
		// An empty pattern is none, so a target can switch off a pattern
		// its defaults set (a HEAD target must).
		if s, ok := p.scalar(v, where, "pattern"); ok && s != "" {
			re, err := regexp.Compile(s)
			if err != nil {
				p.errorf(v, where, "pattern", "invalid regexp: %v", err)
			}
			t.Pattern = re
		}
	}

	if t.Method == http.MethodHead && t.Pattern != nil {
		// Where the target says it: its pattern, else its method.
		const msg = "not allowed with method HEAD: a response to HEAD has no body to match"
		if r.pattern != nil {
			p.errorf(r.pattern, where, "pattern", msg)
		} else {
			p.errorf(pick(r.method, d.pattern), where, "pattern", msg+` (the pattern comes from defaults; pattern: "" on the target sets none)`)
		}
	}

	if v := pick(r.followRedirects, d.followRedirects); v != nil {
		t.FollowRedirects, _ = p.boolean(v, where, "follow_redirects")
	}
	if v := pick(r.tlsSkipVerify, d.tlsSkipVerify); v != nil {
		t.TLSSkipVerify, _ = p.boolean(v, where, "tls_skip_verify")
	}
	if v := pick(r.maxBodyBytes, d.maxBodyBytes); v != nil {
		if s, ok := p.scalar(v, where, "max_body_bytes"); ok {
			n, err := strconv.ParseInt(s, 10, 64)
			switch {
			case errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(s, "-"), err == nil && n > maxBodyBytesLimit:
				p.errorf(v, where, "max_body_bytes", "%s is above the limit of %d (%d MiB)", s, maxBodyBytesLimit, maxBodyBytesLimit>>20)
			case err != nil || n < 0:
				p.errorf(v, where, "max_body_bytes", "%q is not a number of bytes (0 or more)", s)
			}
			t.MaxBodyBytes = n
		}
	}

	if v := pick(r.regions, d.regions); v != nil {
		t.Regions = p.regions(v, where)
	}
	if v := pick(r.labels, d.labels); v != nil {
		t.Labels = p.labels(v, where)
	}
	// After regions: a quorum may not exceed the regions listed.
	if r.alertNode == nil || r.alert != nil { // else reported, and no default fills in
		t.Alert = p.alert(where, r.alert, d.alert, t.Regions)
	}

	if len(p.errs) > before {
		return nil
	}
	return t
}

// Bounds of regions and labels: a target names a few, and a record on the
// targets topic is refused beyond them rather than held in every prober.
const (
	maxRegions       = 64
	maxLabels        = 64
	maxLabelValueLen = 256
)

// regionName is what a region may be called: it ends up in consumer group
// names (sitewatch-prober-REGION), metric labels and SQL rows, so it is kept
// to what all of them take as it is.
var regionName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// RegionNameRule says what ValidRegion takes, for error messages.
const RegionNameRule = "lowercase letters, digits and -, starting with a letter or digit, at most 63"

// ValidRegion reports whether a target may list region: a prober's
// -region must be one, or it would match no target's list.
func ValidRegion(region string) bool { return regionName.MatchString(region) }

// labelName is a Prometheus label name, so that labels can become metric
// labels as they are; names starting with "__" are Prometheus' own.
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,62}$`)

func (p *parser) regions(v *yaml.Node, where string) []string {
	if v.Kind != yaml.SequenceNode {
		p.errorf(v, where, "regions", "must be a list of region names such as [eu-west, us-east]")
		return nil
	}
	switch {
	case len(v.Content) == 0:
		// An empty list would check the target nowhere, surely not meant.
		p.errorf(v, where, "regions", "empty: list at least one region, or leave regions out for every region")
		return nil
	case len(v.Content) > maxRegions:
		p.errorf(v, where, "regions", "%d regions, more than %d", len(v.Content), maxRegions)
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, it := range v.Content {
		s, ok := p.scalar(it, where, "regions")
		switch {
		case !ok:
		case !regionName.MatchString(s):
			p.errorf(it, where, "regions", "%q is not a region name (%s)", s, RegionNameRule)
		case seen[s]:
			p.errorf(it, where, "regions", "%q given twice", s)
		default:
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) labels(v *yaml.Node, where string) map[string]string {
	if v.Kind != yaml.MappingNode {
		p.errorf(v, where, "labels", "must be a mapping of label names to values")
		return nil
	}
	if n := len(v.Content) / 2; n > maxLabels {
		p.errorf(v, where, "labels", "%d labels, more than %d", n, maxLabels)
		return nil
	}
	out := map[string]string{}
	p.eachKey(v, where+": labels", func(key string, k, val *yaml.Node) {
		if !labelName.MatchString(key) || strings.HasPrefix(key, "__") {
			p.errorf(k, where, "labels", "%q is not a label name (letters, digits and _, not starting with a digit or __, at most 63)", key)
			return
		}
		s, ok := p.scalar(val, where, "labels: "+key)
		if !ok {
			return
		}
		switch {
		case len(s) > maxLabelValueLen:
			p.errorf(val, where, "labels: "+key, "the value is longer than %d bytes", maxLabelValueLen)
		case !utf8.ValidString(s):
			p.errorf(val, where, "labels: "+key, "the value is not UTF-8")
		case strings.IndexFunc(s, unicode.IsControl) >= 0:
			p.errorf(val, where, "labels: "+key, "the value contains a control character")
		default:
			out[key] = s
		}
	})
	return out
}

// redacted returns u with its secret replaced by "xxxxx": the password
// (as url.Redacted does), or else the user name, which then is a token
// (https://TOKEN@host/, or https://TOKEN:@host/ as some APIs take it).
func redacted(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	if pw, _ := u.User.Password(); pw != "" {
		return u.Redacted()
	}
	ru := *u
	if _, has := u.User.Password(); has {
		ru.User = url.UserPassword("xxxxx", "")
	} else {
		ru.User = url.User("xxxxx")
	}
	return ru.String()
}

// validPort reports whether port, the digits after the host's colon (if
// any: url.Parse admits only digits), is empty or a TCP port number.
func validPort(port string) bool {
	if port == "" {
		return true
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535
}

// firstInvalidUTF8 returns where the first byte that is not UTF-8 is, by
// line and column (of bytes, from 1), and the byte; ok is true when there
// is none. A file that starts with a UTF-16 byte order mark is left to the
// YAML decoder, which reads UTF-16.
func firstInvalidUTF8(data []byte) (line, col int, b byte, ok bool) {
	if bytes.HasPrefix(data, []byte{0xfe, 0xff}) || bytes.HasPrefix(data, []byte{0xff, 0xfe}) || utf8.Valid(data) {
		return 0, 0, 0, true
	}
	line, start := 1, 0
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return line, i - start + 1, data[i], false
		}
		if r == '\n' {
			line, start = line+1, i+size
		}
		i += size
	}
	return 0, 0, 0, true
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// scalar returns the text of a scalar node; "~" and "null" are refused so a
// forgotten value is not silently empty.
func (p *parser) scalar(v *yaml.Node, where, field string) (string, bool) {
	if v.Kind != yaml.ScalarNode {
		p.errorf(v, where, field, "must be a single value, not a list or mapping")
		return "", false
	}
	if v.Tag == "!!null" {
		p.errorf(v, where, field, "has no value")
		return "", false
	}
	return v.Value, true
}

func (p *parser) duration(v *yaml.Node, where, field string) (time.Duration, bool) {
	s, ok := p.scalar(v, where, field)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.errorf(v, where, field, "%q is not a duration such as 30s or 1m30s", s)
		return 0, false
	}
	if d <= 0 {
		p.errorf(v, where, field, "%s is not positive", s)
		return 0, false
	}
	return d, true
}

func (p *parser) boolean(v *yaml.Node, where, field string) (bool, bool) {
	s, ok := p.scalar(v, where, field)
	if !ok {
		return false, false
	}
	var b bool
	if v.Tag != "!!bool" || v.Decode(&b) != nil {
		p.errorf(v, where, field, "%q is not true or false", s)
		return false, false
	}
	return b, true
}

func (p *parser) headers(v *yaml.Node, where string) http.Header {
	if v.Kind != yaml.MappingNode {
		p.errorf(v, where, "headers", "must be a mapping of header names to values")
		return nil
	}
	h := http.Header{}
	p.eachKey(v, where+": headers", func(key string, k, val *yaml.Node) {
		if key == "" || strings.IndexFunc(key, func(c rune) bool { return !isTokenChar(c) }) >= 0 {
			p.errorf(k, where, "headers", "%q is not a header name", key)
			return
		}
		s, ok := p.scalar(val, where, "headers: "+key)
		if !ok {
			return
		}
		// Say nothing of the value: it may be a secret.
		if strings.ContainsAny(s, "\r\n") {
			p.errorf(val, where, "headers: "+key, "the value contains a line break")
			return
		}
		if i := strings.IndexFunc(s, isCTL); i >= 0 {
			p.errorf(val, where, "headers: "+key, "the value contains the control character 0x%02x (of those, only tab is allowed)", s[i])
			return
		}
		h.Add(key, s)
	})
	return h
}

// statusRanges parses expect_status: a list of codes and ranges ("200",
// 200, "200-299"), or one such value, or several separated by commas.
func (p *parser) statusRanges(v *yaml.Node, where string) []StatusRange {
	var items []*yaml.Node
	switch v.Kind {
	case yaml.SequenceNode:
		items = v.Content
	case yaml.ScalarNode:
		items = []*yaml.Node{v}
	default:
		p.errorf(v, where, "expect_status", "must be a list of status codes and ranges such as 200-299")
		return nil
	}
	if len(items) == 0 {
		p.errorf(v, where, "expect_status", "empty: no status would count as up")
		return nil
	}
	var out []StatusRange
	for _, it := range items {
		s, ok := p.scalar(it, where, "expect_status")
		if !ok {
			continue
		}
		for _, part := range strings.Split(s, ",") {
			r, err := parseStatusRange(strings.TrimSpace(part))
			if err != nil {
				p.errorf(it, where, "expect_status", "%v", err)
				continue
			}
			out = append(out, r)
		}
	}
	return out
}

func parseStatusRange(s string) (StatusRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	code := func(x string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil || n < 100 || n > 599 {
			return 0, fmt.Errorf("%q is not a status code (100-599) or range such as 200-299", s)
		}
		return n, nil
	}
	a, err := code(lo)
	if err != nil {
		return StatusRange{}, err
	}
	if !isRange {
		return StatusRange{a, a}, nil
	}
	b, err := code(hi)
	if err != nil {
		return StatusRange{}, err
	}
	if a > b {
		return StatusRange{}, fmt.Errorf("%q is an empty range: %d is above %d", s, a, b)
	}
	return StatusRange{a, b}, nil
}

// isCTL reports whether c is a control character that an HTTP field value
// must not hold (RFC 9110 5.5: CTLs other than HTAB; the rule of
// golang.org/x/net/http/httpguts.ValidHeaderFieldValue, which net/http
// applies when it sends the request).
func isCTL(c rune) bool {
	return c < ' ' && c != '\t' || c == 0x7f
}

// isTokenChar reports whether c may appear in an HTTP token (RFC 9110 5.6.2).
func isTokenChar(c rune) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.ContainsRune("!#$%&'*+-.^_`|~", c)
}
