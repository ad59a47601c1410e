package targets

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
)

// ToProto returns the whole definition of t as a message of the targets
// topic, secrets included (the URL as written, headers, body). Repeated
// fields are in a fixed order (headers by name), so that two equal targets
// give equal messages (proto.Equal) and a plan compares by value.
func ToProto(t *Target) *sitewatchv1.Target {
	m := &sitewatchv1.Target{
		Id:              t.ID,
		Url:             t.URL,
		Method:          t.Method,
		Interval:        durationpb.New(t.Interval),
		Timeout:         durationpb.New(t.Timeout),
		Body:            t.Body,
		FollowRedirects: t.FollowRedirects,
		TlsSkipVerify:   t.TLSSkipVerify,
		MaxBodyBytes:    t.MaxBodyBytes,
		Regions:         slices.Clone(t.Regions),
	}
	for _, name := range slices.Sorted(maps.Keys(t.Headers)) {
		m.Headers = append(m.Headers, &sitewatchv1.Header{Name: name, Values: slices.Clone(t.Headers[name])})
	}
	for _, r := range t.ExpectStatus {
		m.ExpectStatus = append(m.ExpectStatus, &sitewatchv1.StatusRange{Min: uint32(r.Min), Max: uint32(r.Max)})
	}
	if t.Pattern != nil {
		m.Pattern = t.Pattern.String()
	}
	if len(t.Labels) > 0 {
		m.Labels = maps.Clone(t.Labels)
	}
	m.Alert = alertToProto(t.Alert)
	return m
}

// alertToProto returns the policy as a message; alerts off is a message too
// (off set), so that a consumer tells it from a record without a policy.
func alertToProto(a *Alert) *sitewatchv1.AlertPolicy {
	if a == nil {
		return &sitewatchv1.AlertPolicy{Off: true}
	}
	m := &sitewatchv1.AlertPolicy{
		FailureThreshold: uint32(a.FailureThreshold),
		FailureWindow:    uint32(a.FailureWindow),
		SuccessThreshold: uint32(a.SuccessThreshold),
		TlsExpiryDays:    uint32(a.TLSExpiryDays),
		NoData:           a.NoData,
		Notify:           slices.Clone(a.Notify),
	}
	if a.Regions == AllRegions {
		m.AllRegions = true
	} else {
		m.Regions = uint32(a.Regions)
	}
	if a.ReminderInterval > 0 {
		m.ReminderInterval = durationpb.New(a.ReminderInterval)
	}
	return m
}

// alertRawOf renders a policy as the nodes of an `alert:` mapping for the
// parser; nil for a record without one (alerts off, like `off`).
func (p *parser) alertRawOf(at *yaml.Node, where string, m *sitewatchv1.AlertPolicy) *alertRaw {
	if m == nil || m.GetOff() {
		return nil
	}
	num := func(n uint32) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatUint(uint64(n), 10)}
	}
	a := &alertRaw{
		failureThreshold: num(m.GetFailureThreshold()),
		failureWindow:    num(m.GetFailureWindow()),
		successThreshold: num(m.GetSuccessThreshold()),
		regions:          num(m.GetRegions()),
		tlsExpiryDays:    num(m.GetTlsExpiryDays()),
		noData:           boolean(m.GetNoData()),
		notify:           &yaml.Node{Kind: yaml.SequenceNode},
		reminder:         str("0s"),
	}
	if m.GetAllRegions() {
		if m.GetRegions() != 0 {
			p.errorf(at, where, "alert: regions", "%d and all_regions both set", m.GetRegions())
		}
		a.regions = str("all")
	}
	if d := m.GetReminderInterval(); d != nil {
		if d.CheckValid() != nil {
			p.errorf(at, where, "alert: reminder_interval", "not a valid duration (seconds %d, nanos %d)", d.GetSeconds(), d.GetNanos())
		} else {
			a.reminder = str(d.AsDuration().String())
		}
	}
	if len(m.GetNotify()) == 0 {
		// The file says `notify: []` as off; a record says off.
		p.errorf(at, where, "alert: notify", "empty while off is not set")
	}
	for _, n := range m.GetNotify() {
		a.notify.Content = append(a.notify.Content, str(n))
	}
	return a
}

// FromProto validates a message of the targets topic with the rules of the
// targets file and returns its target; source names the record in errors
// (SOURCE: target "ID": FIELD: message, as Parse has FILE:LINE: ...). A
// record is the whole definition: interval and timeout must be present,
// and no default fills in for a field; empty regions mean every region. A
// record without an alert policy (from a producer older than the field) has
// its alerts off, like one whose policy says off.
//
// The message is rendered as the YAML nodes of a target and handed to the
// file's parser, so a record can hold nothing a file could not: a hostile or
// corrupt record is refused as a whole, never half-applied.
func FromProto(source string, m *sitewatchv1.Target) (*Target, error) {
	if m == nil {
		return nil, fmt.Errorf("%s: no target", source)
	}
	p := parser{file: source}
	where := fmt.Sprintf("target %q", m.GetId())
	self := &yaml.Node{Kind: yaml.MappingNode}
	var r raw
	r.id, r.url, r.method, r.body = str(m.GetId()), str(m.GetUrl()), str(m.GetMethod()), str(m.GetBody())
	r.interval = p.protoDuration(self, where, "interval", m.GetInterval())
	r.timeout = p.protoDuration(self, where, "timeout", m.GetTimeout())
	r.pattern = str(m.GetPattern())
	r.followRedirects, r.tlsSkipVerify = boolean(m.GetFollowRedirects()), boolean(m.GetTlsSkipVerify())
	r.maxBodyBytes = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(m.GetMaxBodyBytes(), 10)}
	r.expectStatus = &yaml.Node{Kind: yaml.SequenceNode}
	for _, s := range m.GetExpectStatus() {
		r.expectStatus.Content = append(r.expectStatus.Content, str(fmt.Sprintf("%d-%d", s.GetMin(), s.GetMax())))
	}
	if len(m.GetRegions()) > 0 {
		r.regions = &yaml.Node{Kind: yaml.SequenceNode}
		for _, s := range m.GetRegions() {
			r.regions.Content = append(r.regions.Content, str(s))
		}
	}
	if len(m.GetLabels()) > 0 {
		r.labels = &yaml.Node{Kind: yaml.MappingNode}
		for _, k := range slices.Sorted(maps.Keys(m.GetLabels())) {
			r.labels.Content = append(r.labels.Content, str(k), str(m.GetLabels()[k]))
		}
	}
	// Headers are checked one value at a time: a record may carry several
	// values of one name, which a file gives under names differing in case.
	headers := p.protoHeaders(m.GetHeaders(), where)
	// Notify names the alerter's channels, which are not on the topic:
	// p.channelNames stays nil and they are not looked up.
	r.alert = p.alertRawOf(self, where, m.GetAlert())
	t := p.target(self, where, r, raw{})
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	t.Headers = headers
	return t, nil
}

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func boolean(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

// protoDuration renders d as a duration scalar for the parser; nil when d
// is absent or invalid, which it reports.
func (p *parser) protoDuration(at *yaml.Node, where, field string, d *durationpb.Duration) *yaml.Node {
	if d == nil {
		p.errorf(at, where, field, "missing")
		return nil
	}
	if d.CheckValid() != nil {
		// Not the error's text: protobuf-go varies its spacing on purpose.
		p.errorf(at, where, field, "not a valid duration (seconds %d, nanos %d)", d.GetSeconds(), d.GetNanos())
		return nil
	}
	return str(d.AsDuration().String())
}

func (p *parser) protoHeaders(hs []*sitewatchv1.Header, where string) http.Header {
	if len(hs) == 0 {
		return nil
	}
	h := http.Header{}
	for _, x := range hs {
		name := x.GetName()
		node := &yaml.Node{Kind: yaml.MappingNode}
		for _, v := range x.GetValues() {
			node.Content = append(node.Content[:0], str(name), str(v))
			before := len(p.errs)
			vs := p.headers(node, where)
			if len(p.errs) > before {
				break // once per header is enough
			}
			for _, v := range vs[http.CanonicalHeaderKey(name)] {
				h.Add(name, v)
			}
		}
	}
	return h
}
