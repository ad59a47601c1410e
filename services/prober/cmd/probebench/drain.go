package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/prober/internal/check"
	"github.com/sitewatch/sitewatch/services/prober/internal/publish"
	"github.com/sitewatch/sitewatch/services/prober/internal/schedule"
	"github.com/sitewatch/sitewatch/services/testing/benchhost"
	"github.com/sitewatch/sitewatch/services/testing/stackenv"
)

type drainOptions struct {
	n           int
	dir         string
	targets     []*targets.Target
	interval    time.Duration
	concurrency int
	getenv      func(string) string
	logger      *slog.Logger
}

// runDrain measures the spool after an outage. First a publisher whose
// Kafka does not answer (a closed port; the registry is the real one)
// spools n results, copies of a real check of the page with fresh event
// IDs over the targets' keys: the spool's bytes per result. Then a second
// publisher on the same spool, with the real Kafka, delivers them while
// the targets are checked on schedule: the drain rate, from its start
// until n spooled results are acknowledged.
func runDrain(ctx context.Context, o drainOptions, stdout, stderr io.Writer) error {
	kcfg, err := kafkaenv.FromEnv(stackenv.Lookup(o.getenv))
	if err != nil {
		return err
	}
	topic := fmt.Sprintf("probebench_drain_%d", time.Now().UnixNano())
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := stackenv.RemoveTopic(ctx, kcfg, topic); err != nil {
			fmt.Fprintln(stderr, "probebench:", err)
		}
	}()
	options := func(reg prometheus.Registerer) publish.Options {
		return publish.Options{Topic: topic, Partitions: 6, ReplicationFactor: -1, Buffer: 10000,
			Compression: kgo.Lz4Compression(), Linger: 20 * time.Millisecond, FlushTimeout: 100 * time.Millisecond,
			Prober:   &sitewatchv1.Prober{Instance: "probebench", Region: "local"},
			SpoolDir: o.dir, SpoolMaxBytes: 64 << 30, SpoolSync: time.Second,
			Logger: o.logger, Registerer: reg}
	}

	prober := check.New(check.Options{})
	defer prober.Close()
	sample := prober.Check(ctx, o.targets[0])
	if sample.Outcome != sitewatchv1.Outcome_OUTCOME_UP {
		return fmt.Errorf("a check of %s failed: %s", o.targets[0].URL, sample.Err)
	}

	// 1. Kafka away: fill the spool.
	down := kcfg
	down.Brokers = []string{"127.0.0.1:1"}
	regA := prometheus.NewRegistry()
	a, err := publish.New(down, options(regA))
	if err != nil {
		return err
	}
	ctxA, stopA := context.WithCancel(ctx)
	doneA := make(chan error, 1)
	go func() { doneA <- a.Run(ctxA) }()
	if err := waitUntil(ctx, 30*time.Second, func() bool { return a.Ready(ctx) == nil }); err != nil {
		stopA()
		a.Close()
		return fmt.Errorf("registry: %w", err)
	}
	fillStart := time.Now()
	for i := range o.n {
		r := sample
		r.Target = o.targets[i%len(o.targets)]
		r.EventID = uuid.Must(uuid.NewV7())
		a.Publish(r)
		if i%5000 == 4999 {
			// Stay under the memory buffer: what this measures is the spool.
			want := float64(i + 1 - 5000)
			if err := waitUntil(ctx, time.Minute, func() bool { return counter(regA, "sitewatch_prober_spool_records") >= want }); err != nil {
				break
			}
		}
	}
	err = waitUntil(ctx, time.Minute, func() bool { return counter(regA, "sitewatch_prober_spool_records") >= float64(o.n) })
	fill := time.Since(fillStart)
	spooled := counter(regA, "sitewatch_prober_spool_records")
	bytes := counter(regA, "sitewatch_prober_spool_bytes")
	dropped := counter(regA, "sitewatch_prober_results_dropped_total")
	stopA()
	<-doneA
	a.Close()
	if err != nil {
		return fmt.Errorf("spooling %d results: %d spooled, %v dropped", o.n, int(spooled), dropped)
	}

	// 2. Kafka back: drain while checking.
	regB := prometheus.NewRegistry()
	b, err := publish.New(kcfg, options(regB))
	if err != nil {
		return err
	}
	defer b.Close()
	sched := schedule.New(func(ctx context.Context, t *targets.Target) { b.Publish(prober.Check(ctx, t)) },
		schedule.Options{Concurrency: o.concurrency, Coalesce: 20 * time.Millisecond})
	sched.Set(o.targets)
	ctxB, stopB := context.WithCancel(context.WithoutCancel(ctx))
	doneB := make(chan error, 1)
	userBefore, sysBefore, err := benchhost.CPU(os.Getpid())
	if err != nil {
		stopB()
		return err
	}
	start := time.Now()
	go func() { doneB <- b.Run(ctxB) }()
	schedCtx, stopSched := context.WithCancel(ctx)
	schedDone := make(chan struct{})
	go func() {
		sched.Run(schedCtx)
		close(schedDone)
	}()
	// The first acknowledgement comes after connecting and creating the
	// topic; the rate from then on is the drain proper.
	var first time.Time
	err = waitUntil(ctx, 10*time.Minute, func() bool {
		d := counter(regB, "sitewatch_prober_spool_drained_total")
		if d > 0 && first.IsZero() {
			first = time.Now()
		}
		return d >= spooled
	})
	elapsed := time.Since(start)
	proper := time.Since(first)
	userAfter, sysAfter, cpuErr := benchhost.CPU(os.Getpid())
	stopSched()
	<-schedDone
	stopB()
	if rerr := <-doneB; rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("draining: %w", err)
	}
	if cpuErr != nil {
		return cpuErr
	}
	cpu := (userAfter - userBefore) + (sysAfter - sysBefore)

	return json.NewEncoder(stdout).Encode(drainReport{
		Spooled: spooled, FillS: fill.Seconds(), Dropped: dropped,
		BytesPerResult: bytes / spooled, SpoolMiB: bytes / (1 << 20), EncodedBytes: encodedSize(sample),
		DrainPerS: spooled / proper.Seconds(), DrainS: proper.Seconds(), TotalS: elapsed.Seconds(),
		Targets: len(o.targets), IntervalS: o.interval.Seconds(), CorePct: 100 * cpu.Seconds() / elapsed.Seconds(),
	})
}

// drainReport is the JSON object of a -drain run (doc.go describes the
// fields).
type drainReport struct {
	Spooled        float64 `json:"spooled"`
	FillS          float64 `json:"fill_s"`
	Dropped        float64 `json:"dropped"`
	BytesPerResult float64 `json:"bytes_per_result"`
	SpoolMiB       float64 `json:"spool_mib"`
	EncodedBytes   int     `json:"encoded_bytes"`
	DrainPerS      float64 `json:"drain_per_s"`
	DrainS         float64 `json:"drain_s"`
	TotalS         float64 `json:"total_s"`
	Targets        int     `json:"targets"`
	IntervalS      float64 `json:"interval_s"`
	CorePct        float64 `json:"core_pct"`
}

// encodedSize is the protobuf size of r's event, without the 6-byte
// Confluent framing.
func encodedSize(r check.Result) int {
	var e sitewatchv1.CheckResult
	r.FillEvent(&e, &sitewatchv1.Prober{Instance: "probebench", Region: "local"})
	return protoSize(&e)
}

func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func protoSize(m proto.Message) int { return proto.Size(m) }
