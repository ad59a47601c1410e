package targetstopic

import (
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
)

// Plan is the difference between the targets wanted and what the topic
// holds, each list sorted by ID.
type Plan struct {
	Added   []*sitewatchv1.Target
	Changed []Change
	Removed []string
}

// Change is a target whose definition differs from the topic's.
type Change struct {
	Target *sitewatchv1.Target
	// Fields names the fields that differ, in the order of the message
	// (url, interval, ...); "unreadable" when the topic's value is bad.
	Fields []string
}

// NewPlan compares want with the topic's state. A key whose latest value
// is bad (State.Bad) is changed when wanted and removed when not, so that
// applying repairs it.
func NewPlan(want []*sitewatchv1.Target, st *State) Plan {
	var p Plan
	seen := map[string]bool{}
	for _, m := range want {
		seen[m.GetId()] = true
		cur, ok := st.Targets[m.GetId()]
		switch {
		case ok && proto.Equal(cur, m):
		case ok:
			p.Changed = append(p.Changed, Change{Target: m, Fields: diff(cur, m)})
		case st.Bad[m.GetId()] != nil:
			p.Changed = append(p.Changed, Change{Target: m, Fields: []string{"unreadable"}})
		default:
			p.Added = append(p.Added, m)
		}
	}
	for id := range st.Targets {
		if !seen[id] {
			p.Removed = append(p.Removed, id)
		}
	}
	for id := range st.Bad {
		if !seen[id] {
			p.Removed = append(p.Removed, id)
		}
	}
	byID := func(a, b *sitewatchv1.Target) int { return strings.Compare(a.GetId(), b.GetId()) }
	slices.SortFunc(p.Added, byID)
	slices.SortFunc(p.Changed, func(a, b Change) int { return byID(a.Target, b.Target) })
	slices.Sort(p.Removed)
	return p
}

// diff names the fields of Target that differ between a and b.
func diff(a, b *sitewatchv1.Target) []string {
	var out []string
	fields := a.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !proto.Equal(only(a, fd), only(b, fd)) {
			out = append(out, string(fd.Name()))
		}
	}
	return out
}

// only returns a Target holding just the field fd of m.
func only(m *sitewatchv1.Target, fd protoreflect.FieldDescriptor) *sitewatchv1.Target {
	out := &sitewatchv1.Target{}
	if r := m.ProtoReflect(); r.Has(fd) {
		out.ProtoReflect().Set(fd, r.Get(fd))
	}
	return out
}

// Empty reports whether the plan changes nothing.
func (p Plan) Empty() bool { return len(p.Added)+len(p.Changed)+len(p.Removed) == 0 }

// String prints the plan, a line per target (+ added, ~ changed with the
// fields that differ, - removed) and a summary line.
func (p Plan) String() string {
	var b strings.Builder
	for _, m := range p.Added {
		fmt.Fprintf(&b, "+ %s\n", m.GetId())
	}
	for _, c := range p.Changed {
		fmt.Fprintf(&b, "~ %s (%s)\n", c.Target.GetId(), strings.Join(c.Fields, ", "))
	}
	for _, id := range p.Removed {
		fmt.Fprintf(&b, "- %s\n", id)
	}
	fmt.Fprintf(&b, "%d to add, %d to change, %d to remove\n", len(p.Added), len(p.Changed), len(p.Removed))
	return b.String()
}

// Records returns the records that carry out the plan on topic: a value
// per target added or changed, a tombstone per target removed.
func (p Plan) Records(c *Codec, topic string) ([]*kgo.Record, error) {
	var rs []*kgo.Record
	for _, m := range slices.Concat(p.Added, changed(p.Changed)) {
		r, err := c.Record(topic, m)
		if err != nil {
			return nil, fmt.Errorf("encode target %q: %w", m.GetId(), err)
		}
		rs = append(rs, r)
	}
	for _, id := range p.Removed {
		rs = append(rs, Tombstone(topic, id))
	}
	return rs, nil
}

func changed(cs []Change) []*sitewatchv1.Target {
	out := make([]*sitewatchv1.Target, len(cs))
	for i, c := range cs {
		out[i] = c.Target
	}
	return out
}
