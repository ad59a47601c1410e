package fleet

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/cmdline"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/internal/targetstopic"
)

const usage = "usage: prober targets apply FILE [-dry-run] [-topic T] [-partitions N] | prober targets list [-topic T]"

// Targets runs `prober targets apply|list` with args after "targets".
func Targets(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("prober targets "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	topic := fs.String("topic", targetstopic.DefaultTopic, "the targets topic")
	partitions := fs.Int("partitions", targetstopic.DefaultPartitions, "partitions of the targets topic; fixed when it is created, never changed")
	var dryRun *bool
	if args[0] == "apply" {
		dryRun = fs.Bool("dry-run", false, "print the plan, publish nothing")
	}
	// Flags may come before or after FILE.
	if err := cmdline.Parse(fs, args[1:]); err != nil {
		return err
	}
	pos := fs.Args()
	if len(pos) > 0 {
		rest := pos[1:]
		if err := cmdline.Parse(fs, rest); err != nil {
			return err
		}
		pos = append(pos[:1:1], fs.Args()...)
	}
	if *topic == "" {
		return errors.New("-topic: required")
	}
	if *partitions < 1 {
		return errors.New("-partitions: at least 1")
	}
	kcfg, err := kafkaenv.FromEnv(getenv)
	if err != nil {
		return err
	}
	switch {
	case args[0] == "apply" && len(pos) == 1:
		return apply(ctx, kcfg, pos[0], *topic, int32(*partitions), *dryRun, stdout, stderr)
	case args[0] == "list" && len(pos) == 0:
		return list(ctx, kcfg, *topic, stdout, stderr)
	}
	return errors.New(usage)
}

func apply(ctx context.Context, kcfg kafkaenv.Config, path, topic string, partitions int32, dryRun bool, stdout, stderr io.Writer) error {
	// The rules and messages of -validate: bad input never reaches Kafka.
	file, err := targets.Load(path)
	if err != nil {
		return err
	}
	want := make([]*sitewatchv1.Target, len(file.Targets))
	for i, t := range file.Targets {
		want[i] = targets.ToProto(t)
	}
	opts, err := kcfg.ClientOpts()
	if err != nil {
		return err
	}
	var codec *targetstopic.Codec
	if !dryRun {
		// Before reading, so a topic with other settings stops the apply
		// before the plan is printed as if it would be carried out.
		adm, err := kgo.NewClient(opts...)
		if err != nil {
			return err
		}
		err = targetstopic.Ensure(ctx, kadm.NewClient(adm), topic, partitions)
		adm.Close()
		if err != nil {
			return err
		}
		reg, err := kcfg.Registry()
		if err != nil {
			return err
		}
		if codec, err = targetstopic.Register(ctx, reg, topic); err != nil {
			return err
		}
	}
	st, err := targetstopic.Read(ctx, opts, topic)
	if err != nil {
		return err
	}
	reportBad(st, stderr)
	plan := targetstopic.NewPlan(want, st)
	fmt.Fprint(stdout, plan)
	if dryRun || plan.Empty() {
		return nil
	}
	records, err := plan.Records(codec, topic)
	if err != nil {
		return err
	}
	// Idempotent (franz-go's default) with acks from every in-sync replica:
	// a retry neither duplicates nor loses a change.
	cl, err := kgo.NewClient(append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var errs []error
	for _, r := range cl.ProduceSync(ctx, records...) {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("publish target %q: %w", r.Record.Key, r.Err))
		}
	}
	if err := cl.Flush(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%d of %d records not published:\n%w", len(errs), len(records), err)
	}
	fmt.Fprintf(stdout, "published %d records to %s\n", len(records), topic)
	return nil
}

func list(ctx context.Context, kcfg kafkaenv.Config, topic string, stdout, stderr io.Writer) error {
	opts, err := kcfg.ClientOpts()
	if err != nil {
		return err
	}
	st, err := targetstopic.Read(ctx, opts, topic)
	if err != nil {
		return err
	}
	reportBad(st, stderr)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tURL\tINTERVAL\tREGIONS")
	for _, id := range slices.Sorted(maps.Keys(st.Targets)) {
		m := st.Targets[id]
		// Read validated it; FromProto again for the public URL.
		t, err := targets.FromProto(id, m)
		if err != nil {
			return err
		}
		regions := "all"
		if len(t.Regions) > 0 {
			regions = strings.Join(t.Regions, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.PublicURL, t.Interval, regions)
	}
	return tw.Flush()
}

// reportBad names the records the topic holds that cannot be used; apply
// overwrites or removes them.
func reportBad(st *targetstopic.State, stderr io.Writer) {
	for _, id := range slices.Sorted(maps.Keys(st.Bad)) {
		fmt.Fprintf(stderr, "unusable record for %q: %v\n", id, st.Bad[id])
	}
	for _, m := range st.Misplaced {
		fmt.Fprintf(stderr, "misplaced record, skipped by probers: %s\n", m)
	}
}
