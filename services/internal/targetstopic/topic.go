package targetstopic

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/internal/targets"
)

// Defaults of the topic's name and partition count (see the package doc
// for why the count never changes once the topic exists).
const (
	DefaultTopic      = "targets"
	DefaultPartitions = 60
)

// ErrTopicMismatch is returned by Ensure when the topic exists with another
// partition count or a cleanup policy that deletes targets.
var ErrTopicMismatch = errors.New("the targets topic exists with other settings")

// index is the Confluent message index of Target in check_result.proto,
// taken from the generated descriptor rather than written down: records
// name the message by its position among the file's top-level messages.
var index = (&sitewatchv1.Target{}).ProtoReflect().Descriptor().Index()

// Ensure creates topic compacted with the given partition count, or checks
// that an existing one has that count and is compacted: a topic that
// deletes by time would lose targets, and another partition count would
// move targets between probers.
func Ensure(ctx context.Context, adm *kadm.Client, topic string, partitions int32) error {
	compact := "compact"
	resp, err := adm.CreateTopic(ctx, partitions, -1, map[string]*string{"cleanup.policy": &compact}, topic)
	if err == nil {
		err = resp.Err
	}
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, kerr.TopicAlreadyExists):
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("describe topic %s: %w", topic, err)
	}
	if d, ok := details[topic]; ok && d.Err == nil && int32(len(d.Partitions)) != partitions {
		return fmt.Errorf("%w: %s has %d partitions, not %d; the count never changes (it decides which prober owns a target): give -partitions %d",
			ErrTopicMismatch, topic, len(d.Partitions), partitions, len(d.Partitions))
	}
	var rc kadm.ResourceConfig
	// A topic another apply has just created may be unknown to the broker
	// asked for a moment.
	for try := 0; ; try++ {
		cfgs, err := adm.DescribeTopicConfigs(ctx, topic)
		if err == nil {
			rc, err = cfgs.On(topic, nil)
		}
		if err == nil {
			err = rc.Err
		}
		if err == nil {
			break
		}
		if !errors.Is(err, kerr.UnknownTopicOrPartition) || try == 20 {
			return fmt.Errorf("describe the configuration of topic %s: %w", topic, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	cfg := map[string]string{"cleanup.policy": "<none>", "retention.ms": "<none>", "retention.bytes": "<none>"}
	for _, c := range rc.Configs {
		cfg[c.Key] = "<none>"
		if c.Value != nil {
			cfg[c.Key] = *c.Value
		}
	}
	policy := cfg["cleanup.policy"]
	switch policy {
	case "compact":
	case "compact,delete", "delete,compact":
		// Deletion by age or size removes whole segments, latest values
		// and all: a target applied once and left alone would go.
		if cfg["retention.ms"] != "-1" || cfg["retention.bytes"] != "-1" {
			return fmt.Errorf("%w: %s has cleanup.policy=%s with retention.ms=%s and retention.bytes=%s: it would delete targets applied longer ago; set both to -1, or cleanup.policy=compact",
				ErrTopicMismatch, topic, policy, cfg["retention.ms"], cfg["retention.bytes"])
		}
	default:
		return fmt.Errorf("%w: %s has cleanup.policy=%s, not compact: it would lose targets", ErrTopicMismatch, topic, policy)
	}
	return nil
}

// Codec encodes and decodes the topic's values.
type Codec struct {
	id int // the schema's ID, for encoding
}

// Register registers the schema under the subject of topic as PROTOBUF and
// sets the subject's compatibility to BACKWARD when it has none stricter.
func Register(ctx context.Context, reg *sr.Client, topic string) (*Codec, error) {
	subject := kafkaenv.Subject(topic)
	ss, err := reg.CreateSchema(ctx, subject, sr.Schema{Schema: sitewatchv1.Schema, Type: sr.TypeProtobuf})
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusConflict {
			return nil, fmt.Errorf("register schema under %s: refused as incompatible: %s; evolve check_result.proto compatibly (buf breaking)", subject, re.Message)
		}
		return nil, fmt.Errorf("register schema under %s: %w", subject, err)
	}
	res := reg.Compatibility(ctx, subject)
	if len(res) != 1 || res[0].Err != nil || res[0].Level == sr.CompatNone {
		set := reg.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatBackward}, subject)
		if len(set) == 1 && set[0].Err != nil {
			return nil, fmt.Errorf("set the compatibility of %s to BACKWARD: %w", subject, set[0].Err)
		}
	}
	return &Codec{id: ss.ID}, nil
}

// Encode returns m in the Confluent wire format.
func (c *Codec) Encode(m *sitewatchv1.Target) ([]byte, error) {
	var h sr.ConfluentHeader
	b, _ := h.AppendEncode(nil, c.id, []int{index})
	return proto.MarshalOptions{Deterministic: true}.MarshalAppend(b, m)
}

// Decode returns the Target of a record value. It takes any schema ID, as a
// record written under an older version of the schema must still be read
// (BACKWARD), but requires Target's message index.
func Decode(value []byte) (*sitewatchv1.Target, error) {
	var h sr.ConfluentHeader
	_, rest, err := h.DecodeID(value)
	if err != nil {
		return nil, fmt.Errorf("not in the Confluent wire format: %w", err)
	}
	idx, rest, err := h.DecodeIndex(rest, 4)
	if err != nil {
		return nil, fmt.Errorf("message index: %w", err)
	}
	if len(idx) != 1 || idx[0] != index {
		return nil, fmt.Errorf("message index %v is not Target's [%d]", idx, index)
	}
	m := &sitewatchv1.Target{}
	if err := proto.Unmarshal(rest, m); err != nil {
		return nil, fmt.Errorf("not a Target: %w", err)
	}
	return m, nil
}

// Record returns the record that sets the target m.
func (c *Codec) Record(topic string, m *sitewatchv1.Target) (*kgo.Record, error) {
	v, err := c.Encode(m)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: topic, Key: []byte(m.GetId()), Value: v}, nil
}

// Tombstone returns the record that removes the target id.
func Tombstone(topic, id string) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(id)}
}

// State is what the topic holds: the latest value of each key.
type State struct {
	// Targets holds the targets by ID, each valid by the rules of the
	// targets file.
	Targets map[string]*sitewatchv1.Target
	// Bad holds the keys whose latest value cannot be used (not a
	// Target, invalid, or its ID differs from the key), with why.
	Bad map[string]error
	// Misplaced describes the records with a value outside their key's
	// partition (murmur2 of the key, where Record lands with franz-go's or
	// the Java client's default partitioner), which the state leaves out:
	// probers skip them, and a tombstone apply writes for their key goes to
	// the key's partition, not theirs.
	Misplaced []string
	// Records is the number of records read.
	Records int
}

// idleEnd is how long a read waits for records below the end offsets it
// listed before it takes what it has: the log cleaner may have removed the
// last records of a partition (an old tombstone) below its end.
const idleEnd = 3 * time.Second

// Read reads topic from the start of each partition to the end offsets it
// lists first, with a direct consumer built from opts, and returns the
// latest value of each key; a tombstone deletes its key.
func Read(ctx context.Context, opts []kgo.Opt, topic string) (*State, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	st := &State{Targets: map[string]*sitewatchv1.Target{}, Bad: map[string]error{}}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return st, nil // a topic not yet created holds nothing
	}
	if err != nil {
		return nil, fmt.Errorf("list the end offsets of %s: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list the start offsets of %s: %w", topic, err)
	}
	want := map[int32]int64{} // partition -> end offset, for those with records
	assign := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(topic, o.Partition); ok && o.Offset > s.Offset {
			want[o.Partition] = o.Offset
			assign[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(want) == 0 {
		return st, nil
	}
	nparts := len(ends[topic])
	part := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign})
	for len(want) > 0 {
		pctx, cancel := context.WithTimeout(ctx, idleEnd)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if fs.NumRecords() == 0 && errors.Is(pctx.Err(), context.DeadlineExceeded) {
			break // nothing left below the ends: compacted away
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = errors.Join(ferr, fmt.Errorf("read %s partition %d: %w", t, p, err))
			}
		})
		if ferr != nil {
			return nil, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok {
				return
			}
			if r.Offset >= end {
				// Written after the ends were listed: the records up to
				// the end were compacted away.
				delete(want, r.Partition)
				return
			}
			st.Records++
			if p := part.Partition(r, nparts); r.Value != nil && int32(p) != r.Partition {
				st.Misplaced = append(st.Misplaced, fmt.Sprintf("%s partition %d offset %d: target %q belongs in partition %d; remove this record with a tombstone in partition %d",
					r.Topic, r.Partition, r.Offset, r.Key, p, r.Partition))
			} else {
				st.apply(r)
			}
			if r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return st, nil
}

func (st *State) apply(r *kgo.Record) {
	id := string(r.Key)
	delete(st.Targets, id)
	delete(st.Bad, id)
	if r.Value == nil {
		return
	}
	where := fmt.Sprintf("%s partition %d offset %d", r.Topic, r.Partition, r.Offset)
	m, err := Decode(r.Value)
	if err != nil {
		st.Bad[id] = fmt.Errorf("%s: %w", where, err)
		return
	}
	if m.GetId() != id {
		st.Bad[id] = fmt.Errorf("%s: the key %q differs from the target's id %q", where, id, m.GetId())
		return
	}
	if _, err := targets.FromProto(where, m); err != nil {
		st.Bad[id] = err
		return
	}
	st.Targets[id] = m
}
