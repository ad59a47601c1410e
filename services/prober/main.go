package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kgo"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/cmdline"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/internal/opshttp"
	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/internal/targetstopic"
	"github.com/sitewatch/sitewatch/services/prober/internal/check"
	"github.com/sitewatch/sitewatch/services/prober/internal/fleet"
	"github.com/sitewatch/sitewatch/services/prober/internal/publish"
	"github.com/sitewatch/sitewatch/services/prober/internal/schedule"
)

func main() { cmdline.Main("prober", run) }

// flags are the command line of the prober.
type flags struct {
	config       string
	validate     bool
	fleet        bool
	targetsTopic string
	session      time.Duration
	catchUp      time.Duration
	listen       string
	instance     string
	region       string
	topic        string
	partitions   int
	replication  int
	concurrency  int
	coalesce     time.Duration
	buffer       int
	compression  string
	linger       time.Duration
	flushTimeout time.Duration
	logLevel     slog.Level
	codec        kgo.CompressionCodec
	spoolDir     string
	spoolMax     string
	spoolMaxB    int64
	spoolSync    time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	host, _ := os.Hostname()
	f := &flags{}
	fs := flag.NewFlagSet("prober", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "targets.yaml", "targets file")
	fs.BoolVar(&f.validate, "validate", false, "only validate the targets file: exit 0 when valid, 1 with the errors")
	fs.BoolVar(&f.fleet, "fleet", false, "fleet mode: take targets from the targets topic, shared with the region's other probers (group sitewatch-prober-REGION); not with -config")
	fs.StringVar(&f.targetsTopic, "targets-topic", targetstopic.DefaultTopic, "fleet mode: the targets topic")
	fs.DurationVar(&f.session, "session-timeout", 45*time.Second, "fleet mode: how long the group waits for a prober that stopped answering (or restarts with the same -instance) before its targets go to the others")
	fs.DurationVar(&f.catchUp, "catch-up", defaultCatchUp, "fleet mode: a target taken over runs at once its latest slot if that passed at most this long ago, so that the slot between the old owner's revoke and this prober's assignment (up to two heartbeats of 500ms and the rebalance) is checked; the recorder drops the result of a slot the old owner checked too (0: the next slot, as in file mode)")
	fs.StringVar(&f.listen, "listen", ":9101", "address of /metrics, /healthz and /readyz")
	fs.StringVar(&f.instance, "instance", host, "name of this prober in events, unique among probers")
	fs.StringVar(&f.region, "region", "", "where this prober runs (for example eu-west-1), in events")
	fs.StringVar(&f.topic, "topic", "check-results", "Kafka topic; the schema subject is TOPIC-value")
	fs.IntVar(&f.partitions, "partitions", 6, "partitions of the topic when the prober creates it (-1: the broker's default)")
	fs.IntVar(&f.replication, "replication-factor", -1, "replication factor of the topic when the prober creates it (-1: the broker's default)")
	fs.IntVar(&f.concurrency, "concurrency", 256, "checks running at once, at most")
	fs.DurationVar(&f.coalesce, "coalesce", 20*time.Millisecond, "least time between scheduler wake-ups: checks due meanwhile start together, at most this late (saves CPU at high rates; 0: every check on time)")
	fs.IntVar(&f.buffer, "buffer", 10000, "results waiting in memory (to be spooled, or without a spool for Kafka), at most; beyond, the oldest are dropped")
	fs.StringVar(&f.compression, "compression", "lz4", "Kafka batch compression: zstd, lz4, snappy, gzip or none")
	fs.DurationVar(&f.linger, "linger", 20*time.Millisecond, "how long the producer waits to fill a batch")
	fs.DurationVar(&f.flushTimeout, "flush-timeout", 15*time.Second, "at shutdown, how long to wait for Kafka to take the buffered results")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	fs.StringVar(&f.spoolDir, "spool-dir", "", "directory of the on-disk spool where results wait for Kafka, one per prober (default $STATE_DIRECTORY/spool under systemd's StateDirectory=, else $XDG_STATE_HOME/sitewatch/prober/INSTANCE/spool, with $HOME/.local/state when XDG_STATE_HOME is unset)")
	fs.StringVar(&f.spoolMax, "spool-max-bytes", "1GiB", "cap of the spool (1GiB, 500MB, ...); beyond it the oldest results are dropped; 0: no spool, results wait in memory only (-buffer)")
	fs.DurationVar(&f.spoolSync, "spool-sync", time.Second, "how often the spool is fsynced: what a power loss can cost (a killed prober loses only results not yet written, normally none)")
	var errs []error
	if err := cmdline.Parse(fs, args); errors.Is(err, flag.ErrHelp) {
		return nil, err
	} else if err != nil {
		errs = append(errs, err)
	}
	bad := func(cond bool, msg string) {
		if cond {
			errs = append(errs, errors.New(msg))
		}
	}
	bad(fs.NArg() > 0, "unexpected arguments: "+strings.Join(fs.Args(), " "))
	configSet := false
	fs.Visit(func(fl *flag.Flag) { configSet = configSet || fl.Name == "config" })
	bad(f.fleet && configSet, "-config and -fleet: give one (-config: a targets file, one machine; -fleet: the targets topic, shared)")
	bad(f.fleet && f.validate, "-validate checks a targets file: not with -fleet (use `prober targets apply -dry-run FILE`)")
	bad(f.fleet && f.region == "", "-region: required with -fleet (the group is sitewatch-prober-REGION)")
	bad(f.fleet && f.region != "" && !targets.ValidRegion(f.region), fmt.Sprintf("-region: %q is not a region name (%s), as targets list them", f.region, targets.RegionNameRule))
	bad(f.fleet && f.targetsTopic == "", "-targets-topic: required with -fleet")
	bad(f.session < 6*time.Second || f.session > 30*time.Minute, "-session-timeout: between 6s and 30m (the broker's usual limits)")
	bad(f.catchUp < 0 || f.catchUp > time.Hour, "-catch-up: between 0 and 1h")
	bad(f.concurrency < 1, "-concurrency: at least 1")
	bad(f.coalesce < 0 || f.coalesce > time.Second, "-coalesce: between 0 and 1s")
	bad(f.buffer < 1, "-buffer: at least 1")
	bad(f.partitions == 0 || f.partitions < -1, "-partitions: at least 1, or -1")
	bad(f.replication == 0 || f.replication < -1 || f.replication > 32767, "-replication-factor: at least 1, or -1")
	bad(f.topic == "", "-topic: required")
	bad(f.instance == "", "-instance: required (the host name is unknown)")
	bad(f.spoolSync <= 0, "-spool-sync: more than 0")
	var err error
	if f.codec, err = compressionCodec(f.compression); err != nil {
		errs = append(errs, err)
	}
	if maxBytes, err := humanize.ParseBytes(f.spoolMax); err != nil || maxBytes > math.MaxInt64 {
		errs = append(errs, fmt.Errorf("-spool-max-bytes: %q is not a size such as 1GiB or 500MB", f.spoolMax))
	} else {
		f.spoolMaxB = int64(maxBytes)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return f, nil
}

// defaultCatchUp is -catch-up's default. It must exceed the gap of a
// graceful hand-over, from the old owner's revoke to the new owner's first
// check (two heartbeats, fleet.DefaultHeartbeat, the rebalance, reading the
// partitions; about 1 s, more on a busy machine), and the restart of a
// region's only prober (stop, start, join: 2 to 4 s in the fleet drill).
// Larger values only add duplicates the recorder drops: a hand-over of
// targets checked every I runs about min(1, catchUp/I) of them twice, each
// once more at most (only the latest slot is caught up).
const defaultCatchUp = 10 * time.Second

// catchUpWindow is -catch-up in fleet mode, where targets move between
// probers, and 0 in file mode: a file's new target has no other prober
// that could have missed its latest slot, and a restart with it would run
// the recent slots of the previous process again.
func (f *flags) catchUpWindow() time.Duration {
	if !f.fleet {
		return 0
	}
	return f.catchUp
}

func compressionCodec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "zstd":
		return kgo.ZstdCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "none":
		return kgo.NoCompression(), nil
	}
	return kgo.NoCompression(), fmt.Errorf("-compression: %q is not one of zstd, lz4, snappy, gzip, none", name)
}

// spoolDir returns -spool-dir, or its default: under systemd's
// StateDirectory= when the unit has one (the unit's own, writable even with
// DynamicUser=), else under the user's state directory (XDG Base Directory
// Specification), one per instance so that probers sharing a machine do
// not share a spool.
func spoolDir(f *flags, getenv func(string) string) (string, error) {
	if f.spoolDir != "" {
		return f.spoolDir, nil
	}
	if dirs := getenv("STATE_DIRECTORY"); dirs != "" {
		first, _, _ := strings.Cut(dirs, ":")
		return filepath.Join(first, "spool"), nil
	}
	state := getenv("XDG_STATE_HOME")
	if state == "" {
		home := getenv("HOME")
		if home == "" {
			return "", errors.New("-spool-dir: required when neither XDG_STATE_HOME nor HOME is set")
		}
		state = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(state, "sitewatch", "prober", f.instance, "spool"), nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 2 && args[0] == "healthcheck" {
		return opshttp.Probe(ctx, args[1])
	}
	if len(args) > 0 && args[0] == "targets" {
		return fleet.Targets(ctx, args[1:], getenv, stdout, stderr)
	}
	f, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if f.validate {
		file, err := targets.Load(f.config)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %d targets, valid\n", f.config, len(file.Targets))
		return nil
	}

	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: f.logLevel}))
	kcfg, err := kafkaenv.FromEnv(getenv)
	if err != nil {
		return err
	}
	var initial []byte
	file := &targets.File{}
	if !f.fleet {
		if initial, err = os.ReadFile(f.config); err != nil {
			return err
		}
		if file, err = targets.Parse(f.config, initial); err != nil {
			return err
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := newMetrics(reg)

	spoolPath := ""
	if f.spoolMaxB > 0 {
		if spoolPath, err = spoolDir(f, getenv); err != nil {
			return err
		}
	}
	pub, err := publish.New(kcfg, publish.Options{
		Topic:             f.topic,
		Partitions:        int32(f.partitions),
		ReplicationFactor: int16(f.replication),
		Buffer:            f.buffer,
		Compression:       f.codec,
		Linger:            f.linger,
		FlushTimeout:      f.flushTimeout,
		SpoolDir:          spoolPath,
		SpoolMaxBytes:     f.spoolMaxB,
		SpoolSync:         f.spoolSync,
		Prober:            &sitewatchv1.Prober{Instance: f.instance, Region: f.region},
		Logger:            logger,
		Registerer:        reg,
	})
	if err != nil {
		return err
	}
	defer pub.Close()

	// member is set before ops serves: /readyz then also asks it.
	var member *fleet.Member
	ops, err := opshttp.Listen(f.listen, reg, func(ctx context.Context) error {
		if err := pub.Ready(ctx); err != nil || member == nil {
			return err
		}
		return member.Ready(ctx)
	})
	if err != nil {
		return err
	}
	spool := []any{"spool", spoolPath, "spool_max_bytes", f.spoolMaxB, "spool_sync", f.spoolSync}
	if f.fleet {
		logger.Info("starting in fleet mode", append([]any{"targets_topic", f.targetsTopic, "group", fleet.Group(f.region), "catch_up", f.catchUp, "kafka", kcfg.String(),
			"topic", f.topic, "instance", f.instance, "region", f.region, "concurrency", f.concurrency, "buffer", f.buffer}, spool...)...)
	} else {
		logger.Info("starting", append([]any{"config", f.config, "targets", len(file.Targets), "kafka", kcfg.String(),
			"topic", f.topic, "instance", f.instance, "region", f.region, "concurrency", f.concurrency, "buffer", f.buffer}, spool...)...)
	}

	prober := check.New(check.Options{})
	defer prober.Close()
	w := &worker{probe: prober.Check, publish: pub.Publish, metrics: m, logger: logger}
	sched := schedule.New(w.check, schedule.Options{
		Concurrency: f.concurrency,
		Coalesce:    f.coalesce,
		CatchUp:     f.catchUpWindow(),
		OnRun: func(_ *targets.Target, _ time.Time, lag time.Duration) {
			m.lag.Observe(lag.Seconds())
		},
		OnSkip: m.skip,
	})
	rl := &reloader{path: f.config, last: initial, sched: sched, metrics: m, worker: w, logger: logger}
	rl.forget(file.Targets)
	sched.Set(file.Targets)
	m.targets.Set(float64(len(file.Targets)))
	if f.fleet {
		kopts, err := kcfg.ClientOpts()
		if err != nil {
			return err
		}
		member, err = fleet.NewMember(ctx, kopts, fleetScheduler{rl}, fleet.Options{
			Topic:          f.targetsTopic,
			Region:         f.region,
			Instance:       f.instance,
			SessionTimeout: f.session,
			Logger:         logger,
			Registerer:     reg,
		})
		if err != nil {
			return err
		}
		defer member.Close()
	}

	// A fatal publisher error (an incompatible schema) stops everything.
	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)

	var wg sync.WaitGroup
	defer wg.Wait()
	opsCtx, stopOps := context.WithCancel(context.WithoutCancel(ctx))
	defer stopOps()
	wg.Go(func() {
		if err := ops.Serve(opsCtx, logger); err != nil {
			cancelRun(err)
		}
	})

	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPub()
	pubDone := make(chan error, 1)
	go func() {
		err := pub.Run(pubCtx)
		if err != nil {
			cancelRun(err)
		}
		pubDone <- err
	}()

	memberDone := make(chan struct{})
	if member != nil {
		go func() {
			defer close(memberDone)
			if err := member.Run(runCtx); err != nil {
				cancelRun(err)
			}
		}()
	} else {
		close(memberDone)
		rl.watch(runCtx)
	}

	sched.Run(runCtx) // until SIGTERM (or a fatal error); waits for running checks
	<-memberDone      // the fleet member has handed its partitions over
	logger.Info("scheduling stopped, running checks ended; flushing")
	stopPub()
	pubErr := <-pubDone
	stopOps()
	if cause := context.Cause(runCtx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if pubErr != nil {
		return pubErr
	}
	logger.Info("stopped")
	return nil
}

// watch reloads the targets file on SIGHUP and when it changes, until ctx
// ends.
func (rl *reloader) watch(runCtx context.Context) {
	logger := rl.logger
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-runCtx.Done():
				return
			case <-hup:
				rl.reload("SIGHUP")
			}
		}
	}()
	if err := targets.Watch(runCtx, rl.path, 500*time.Millisecond, func() { rl.reload("file changed") },
		func(err error) { logger.Warn("watching the targets file", "err", err) }); err != nil {
		// Without a watch, SIGHUP still reloads.
		logger.Warn("not watching the targets file; reload with SIGHUP", "err", err)
	}
}

// fleetScheduler is the scheduler as a fleet member drives it: the metric
// series and state of the targets that go away are forgotten first, as on
// a reload of the file.
type fleetScheduler struct{ rl *reloader }

func (fs fleetScheduler) Set(ts []*targets.Target) {
	fs.rl.forget(ts)
	fs.rl.sched.Set(ts)
	fs.rl.metrics.targets.Set(float64(len(ts)))
}

func (fs fleetScheduler) Wait(ctx context.Context, ids []string) error {
	return fs.rl.sched.Wait(ctx, ids)
}

// worker is the scheduler's job: check, count, publish.
type worker struct {
	probe   check.Func
	publish func(check.Result)
	metrics *metrics
	logger  *slog.Logger
	// last outcome per target ID, to log changes rather than every check
	last sync.Map
}

func (w *worker) check(ctx context.Context, t *targets.Target) {
	r := w.probe(ctx, t)
	r.ScheduledAt, _ = schedule.Due(ctx)
	// net/http quotes the URL in its errors, hiding only a password.
	r.Err = t.Redact(r.Err)
	defer w.publish(r)
	if !w.metrics.observe(&r) {
		// Removed by a reload while it ran: its result is still a true
		// observation, published, but it must not bring back the state
		// and series that the reload forgot.
		return
	}
	if prev, ok := w.last.Swap(t.ID, r.Outcome); !ok || prev != r.Outcome {
		log := w.logger.With("target", t.ID, "check_id", r.EventID.String())
		if r.Outcome == sitewatchv1.Outcome_OUTCOME_UP {
			log.Info("target up", "status", r.StatusCode, "response_time", r.ResponseTime.String())
		} else {
			log.Warn("target down", "failure_kind", r.FailureKind.String(), "status", r.StatusCode, "err", r.Err)
		}
	}
}

// reloader applies a new targets file when it is valid and different.
type reloader struct {
	path    string
	sched   *schedule.Scheduler
	metrics *metrics
	worker  *worker
	logger  *slog.Logger

	mu   sync.Mutex
	last []byte
}

// forget drops the metric series and state of the targets that go away, so
// that a prober whose targets change over months does not grow. It comes
// before the scheduler's Set, so that the targets added are current when
// their first checks end.
func (rl *reloader) forget(next []*targets.Target) {
	for _, id := range rl.metrics.setTargets(next) {
		if rl.worker != nil {
			rl.worker.last.Delete(id)
		}
	}
}

func (rl *reloader) reload(why string) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	data, err := os.ReadFile(rl.path)
	if err != nil {
		rl.metrics.reloads.WithLabelValues("error").Inc()
		rl.logger.Error("reload failed; keeping the current targets", "why", why, "err", err)
		return
	}
	if bytes.Equal(data, rl.last) {
		return
	}
	file, err := targets.Parse(rl.path, data)
	if err != nil {
		rl.metrics.reloads.WithLabelValues("error").Inc()
		rl.logger.Error("reload failed: invalid targets file; keeping the current targets", "why", why, "err", err)
		return
	}
	rl.last = data
	rl.forget(file.Targets)
	rl.sched.Set(file.Targets)
	rl.metrics.targets.Set(float64(len(file.Targets)))
	rl.metrics.reloads.WithLabelValues("ok").Inc()
	rl.logger.Info("targets reloaded", "why", why, "targets", len(file.Targets))
}
