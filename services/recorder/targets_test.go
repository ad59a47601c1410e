package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/durationpb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/targetstopic"
)

// `recorder` projects its -targets-topic beside the check results, and
// `recorder reset-offsets` empties the projection, which the next run
// rebuilds from the topic row for row.
// targetsTopic creates the fixture's targets topic with the given
// partitions and registers its schema, returning the codec of its values.
func (f *fixture) targetsTopic(partitions int32) *targetstopic.Codec {
	f.t.Helper()
	ctx := context.Background()
	if err := targetstopic.Ensure(ctx, f.adm, f.targets, partitions); err != nil {
		f.t.Fatal(err)
	}
	codec, err := targetstopic.Register(ctx, f.reg, f.targets)
	if err != nil {
		f.t.Fatal(err)
	}
	return codec
}

func TestRecorderProjectsTargetsTopic(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	codec := f.targetsTopic(2)
	var recs []*kgo.Record
	for _, id := range []string{"one", "two"} {
		rec, err := codec.Record(f.targets, &sitewatchv1.Target{Id: id, Url: "http://" + id + ".test/", Method: "GET",
			Interval: durationpb.New(time.Minute), Timeout: durationpb.New(time.Second),
			ExpectStatus: []*sitewatchv1.StatusRange{{Min: 200, Max: 299}}, MaxBodyBytes: 1024})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	recs = append(recs, targetstopic.Tombstone(f.targets, "two"))
	if err := f.kafka.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	const table = `SELECT concat_ws(' ', target_id, url, configured_at, removed_at IS NOT NULL) FROM target_config ORDER BY 1`
	const status = `SELECT concat_ws(' ', target_id, status) FROM target_status ORDER BY 1`
	waitRows := func(sql string, n int) string {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			// Until the recorder has migrated the database, there is no table.
			var got string
			if r, err := f.db.Query(ctx, sql); err == nil {
				lines, err := pgx.CollectRows(r, pgx.RowTo[string])
				if err == nil && len(lines) == n {
					return strings.Join(lines, "\n")
				}
				got = strings.Join(lines, "\n")
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %q, want %d rows", sql, got, n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	r := f.start()
	before := waitRows(`SELECT concat_ws(' ', target_id, url, configured_at, removed_at IS NOT NULL) FROM target_config WHERE removed_at IS NOT NULL OR target_id = 'one' ORDER BY 1`, 2)
	if got := rows(t, f.db, status); got != "one pending" {
		t.Errorf("target_status: %q, want one pending", got)
	}
	if m := r.metrics(t); !strings.Contains(m, `sitewatch_recorder_targets_records_total{result="set"} 2`+"\n") ||
		!strings.Contains(m, `sitewatch_recorder_targets_records_total{result="removed"} 1`+"\n") {
		t.Errorf("metrics:\n%s", grep(m, "sitewatch_recorder_targets"))
	}
	r.stop(t)

	if err := run(ctx, []string{"-topic", f.topic, "-group", f.group, "-targets-topic", f.targets, "reset-offsets"}, f.getenv, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, f.db, `SELECT count(*)::text FROM target_config`); got != "0" {
		t.Fatalf("target_config after reset-offsets: %s rows, want 0", got)
	}
	f.start()
	if after := waitRows(table, 2); after != before {
		t.Errorf("after the replay:\n%s\nbefore:\n%s", after, before)
	}
}
