package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"

	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/internal/targetstopic"
	"github.com/sitewatch/sitewatch/services/testing/stacktest"
)

// backend is a Kafka cluster and registry, as the environment of the
// command: franz-go's kfake and srfake under -short, the stack otherwise.
type backend struct {
	getenv func(string) string
}

func (b backend) opts(t *testing.T) []kgo.Opt {
	t.Helper()
	cfg, err := kafkaenv.FromEnv(b.getenv)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cfg.ClientOpts()
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

func eachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	t.Run("fake", func(t *testing.T) {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cluster.Close)
		registry := srfake.New()
		t.Cleanup(registry.Close)
		env := map[string]string{"KAFKA_BROKERS": strings.Join(cluster.ListenAddrs(), ","), "SCHEMA_REGISTRY_URL": registry.URL()}
		test(t, backend{getenv: func(k string) string { return env[k] }})
	})
	t.Run("stack", func(t *testing.T) {
		stacktest.KafkaConfig(t) // skips under -short, or without the stack outside CI
		stacktest.Registry(t)
		test(t, backend{getenv: stacktest.Getenv})
	})
}

// run runs `prober targets ARGS` and returns its output and error.
func (b backend) run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = Targets(ctx, args, b.getenv, &out, &errOut)
	return out.String(), errOut.String(), err
}

// records returns every record of topic, a line each sorted by key then
// offset: "KEY value" with the decoded target's URL and interval, or
// "KEY tombstone".
func (b backend) records(t *testing.T, topic string) []string {
	t.Helper()
	cl, err := kgo.NewClient(append(b.opts(t), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	ends.Each(func(o kadm.ListedOffset) { total += int(o.Offset) })
	type rec struct {
		key    string
		offset int64
		line   string
	}
	var rs []rec
	for len(rs) < total {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("reading %s: %v (%d of %d records)", topic, err, len(rs), total)
		}
		fs.EachRecord(func(r *kgo.Record) {
			line := string(r.Key) + " tombstone"
			if r.Value != nil {
				m, err := targetstopic.Decode(r.Value)
				if err != nil {
					t.Fatalf("record %s: %v", r.Key, err)
				}
				line = fmt.Sprintf("%s value %s %s", r.Key, m.GetUrl(), m.GetInterval().AsDuration())
			}
			rs = append(rs, rec{string(r.Key), r.Offset, line})
		})
	}
	slices.SortFunc(rs, func(a, b rec) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return int(a.offset - b.offset)
	})
	var out []string
	for _, r := range rs {
		out = append(out, r.line)
	}
	return out
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "targets.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const (
	fileOne = `defaults:
  interval: 30s
  timeout: 5s
targets:
  - id: a
    url: http://user:s3cret@127.0.0.1:8080/a
  - id: b
    url: http://127.0.0.1:8080/b
    regions: [eu-west, us-east]
  - id: c
    url: http://127.0.0.1:8080/c
`
	// b changes its URL and interval, c goes, d comes.
	fileTwo = `defaults:
  interval: 30s
  timeout: 5s
targets:
  - id: a
    url: http://user:s3cret@127.0.0.1:8080/a
  - id: b
    url: http://127.0.0.1:8080/b2
    interval: 1m
    regions: [eu-west, us-east]
  - id: d
    url: http://TOKEN@127.0.0.1:8080/d
    labels: {team: web}
`
)

func TestApplyAndList(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		topic := stacktest.Name("targets")
		one, two := writeFile(t, fileOne), writeFile(t, fileTwo)
		expect := func(step string, args []string, wantOut string, wantRecords ...string) {
			t.Helper()
			out, errOut, err := b.run(t, append(args, "-topic", topic)...)
			if err != nil || errOut != "" {
				t.Fatalf("%s: %v\n%s", step, err, errOut)
			}
			if out != wantOut {
				t.Errorf("%s: output\n%s\nwant\n%s", step, out, wantOut)
			}
			if got := b.records(t, topic); !slices.Equal(got, wantRecords) {
				t.Errorf("%s: the topic holds\n%s\nwant\n%s", step, strings.Join(got, "\n"), strings.Join(wantRecords, "\n"))
			}
		}
		first := []string{
			"a value http://user:s3cret@127.0.0.1:8080/a 30s",
			"b value http://127.0.0.1:8080/b 30s",
			"c value http://127.0.0.1:8080/c 30s",
		}
		expect("apply to an empty topic", []string{"apply", one},
			"+ a\n+ b\n+ c\n3 to add, 0 to change, 0 to remove\npublished 3 records to "+topic+"\n", first...)
		expect("apply the same file again", []string{"apply", one},
			"0 to add, 0 to change, 0 to remove\n", first...)
		plan := "+ d\n~ b (url, interval)\n- c\n1 to add, 1 to change, 1 to remove\n"
		expect("dry run", []string{"apply", "-dry-run", two}, plan, first...)
		expect("apply a change", []string{"apply", two, "-dry-run=false"}, plan+"published 3 records to "+topic+"\n",
			"a value http://user:s3cret@127.0.0.1:8080/a 30s",
			"b value http://127.0.0.1:8080/b 30s",
			"b value http://127.0.0.1:8080/b2 1m0s",
			"c value http://127.0.0.1:8080/c 30s",
			"c tombstone",
			"d value http://TOKEN@127.0.0.1:8080/d 30s",
		)
		expect("list", []string{"list"},
			"ID  URL                                 INTERVAL  REGIONS\n"+
				"a   http://user:xxxxx@127.0.0.1:8080/a  30s       all\n"+
				"b   http://127.0.0.1:8080/b2            1m0s      eu-west,us-east\n"+
				"d   http://xxxxx@127.0.0.1:8080/d       30s       all\n",
			b.records(t, topic)...)
	})
}

func TestApplyRefusesBadFiles(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		topic := stacktest.Name("targets")
		bad := writeFile(t, "targets:\n  - id: a\n    url: ftp://x/\n    regions: [EU]\n  - id: b\n    url: http://127.0.0.1/\n    labels: {1x: y}\n")
		out, errOut, err := b.run(t, "apply", bad, "-topic", topic)
		want := bad + `:3: target "a": url: "ftp://x/" is not an http:// or https:// URL` + "\n" +
			bad + `:4: target "a": regions: "EU" is not a region name (lowercase letters, digits and -, starting with a letter or digit, at most 63)` + "\n" +
			bad + `:7: target "b": labels: "1x" is not a label name (letters, digits and _, not starting with a digit or __, at most 63)`
		if err == nil || err.Error() != want || out != "" || errOut != "" {
			t.Errorf("error %v, output %q %q; want the error\n%s", err, out, errOut, want)
		}
		// Nothing reached Kafka, not even the topic.
		cl, cerr := kgo.NewClient(b.opts(t)...)
		if cerr != nil {
			t.Fatal(cerr)
		}
		defer cl.Close()
		topics, lerr := kadm.NewClient(cl).ListTopics(context.Background(), topic)
		if lerr != nil {
			t.Fatal(lerr)
		}
		if topics.Has(topic) {
			t.Errorf("the topic %s was created", topic)
		}
	})
}

func TestApplyRefusesAnotherPartitionCount(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		topic := stacktest.Name("targets")
		file := writeFile(t, fileOne)
		if _, _, err := b.run(t, "apply", file, "-topic", topic, "-partitions", "3"); err != nil {
			t.Fatal(err)
		}
		_, _, err := b.run(t, "apply", file, "-topic", topic)
		want := "the targets topic exists with other settings: " + topic + " has 3 partitions, not 60; the count never changes (it decides which prober owns a target): give -partitions 3"
		if !errors.Is(err, targetstopic.ErrTopicMismatch) || err.Error() != want {
			t.Errorf("error %v, want %s", err, want)
		}
	})
}

// A record that is not a valid target (written by hand or another tool) is
// named, never used, and the next apply repairs it.
func TestApplyRepairsBadRecords(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		topic := stacktest.Name("targets")
		file := writeFile(t, fileOne)
		if _, _, err := b.run(t, "apply", file, "-topic", topic); err != nil {
			t.Fatal(err)
		}
		hostile, err := proto.Marshal(&sitewatchv1.Target{Id: "b", Url: "ftp://user:s3cret@x/", Method: "GET",
			Interval: durationpb.New(time.Minute), Timeout: durationpb.New(time.Second), ExpectStatus: []*sitewatchv1.StatusRange{{Min: 200, Max: 299}}})
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(append(b.opts(t), kgo.DefaultProduceTopic(topic))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx := context.Background()
		if err := cl.ProduceSync(ctx,
			&kgo.Record{Key: []byte("b"), Value: append([]byte{0, 0, 0, 0, 1, 2, 2}, hostile...)}, // Target's index [1]
			&kgo.Record{Key: []byte("c"), Value: []byte("not the wire format")},
			&kgo.Record{Key: []byte("z"), Value: []byte{0, 0, 0, 0, 1, 0}}, // CheckResult's index
		).FirstErr(); err != nil {
			t.Fatal(err)
		}
		listed, errOut, err := b.run(t, "list", "-topic", topic)
		if err != nil {
			t.Fatal(err)
		}
		wantErr := `unusable record for "b": ` + topic + ` partition PB offset 1: target "b": url: "ftp://user:xxxxx@x/" is not an http:// or https:// URL` + "\n" +
			`unusable record for "c": ` + topic + ` partition PC offset 1: not in the Confluent wire format: 5 byte header for value is missing or does not have 0 magic byte` + "\n" +
			`unusable record for "z": ` + topic + ` partition PZ offset 0: message index [0] is not Target's [1]` + "\n"
		wantErr = b.partitions(t, topic, wantErr)
		if errOut != wantErr {
			t.Errorf("list: stderr\n%s\nwant\n%s", errOut, wantErr)
		}
		if want := "ID  URL                                 INTERVAL  REGIONS\na   http://user:xxxxx@127.0.0.1:8080/a  30s       all\n"; listed != want {
			t.Errorf("list:\n%s\nwant\n%s", listed, want)
		}
		out, _, err := b.run(t, "apply", file, "-topic", topic)
		if err != nil {
			t.Fatal(err)
		}
		if want := "~ b (unreadable)\n~ c (unreadable)\n- z\n0 to add, 2 to change, 1 to remove\npublished 3 records to " + topic + "\n"; out != want {
			t.Errorf("apply:\n%s\nwant\n%s", out, want)
		}
		out, errOut, err = b.run(t, "apply", file, "-topic", topic)
		if want := "0 to add, 0 to change, 0 to remove\n"; err != nil || out != want || errOut != "" {
			t.Errorf("apply again: %v %q %q, want %q", err, out, errOut, want)
		}
	})
}

// partitions replaces PB, PC and PZ in s with the partitions of the keys b,
// c and z on topic, as the producer's partitioner put them.
func (b backend) partitions(t *testing.T, topic, s string) string {
	t.Helper()
	cl, err := kgo.NewClient(append(b.opts(t), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	found := map[string]int32{}
	for len(found) < 3 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if k := string(r.Key); k == "b" || k == "c" || k == "z" {
				found[k] = r.Partition
			}
		})
	}
	return strings.NewReplacer("partition PB", fmt.Sprint("partition ", found["b"]), "partition PC", fmt.Sprint("partition ", found["c"]),
		"partition PZ", fmt.Sprint("partition ", found["z"])).Replace(s)
}
