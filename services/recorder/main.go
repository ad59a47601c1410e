package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sitewatch/sitewatch/services/internal/cmdline"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/internal/opshttp"
	"github.com/sitewatch/sitewatch/services/internal/targetstopic"
	"github.com/sitewatch/sitewatch/services/recorder/internal/consume"
	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
	"github.com/sitewatch/sitewatch/services/recorder/internal/targets"
)

func main() { cmdline.Main("recorder", run) }

// config is the command line and environment, parsed and validated once.
type config struct {
	command string // "", "migrate" or "reset-offsets"

	topic, group   string
	targetsTopic   string
	listen         string
	batch          int
	retention      time.Duration
	maxFuture      time.Duration
	shutdownGrace  time.Duration
	partitionsPast int
	partitionsNext int
	maintainEvery  time.Duration
	sessionTimeout time.Duration
	instanceID     string
	logLevel       slog.Level

	databaseURL string
	kafka       kafkaenv.Config
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("recorder", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: recorder [flags] [migrate | reset-offsets]")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.topic, "topic", "check-results", "Kafka topic to consume; dead letters go to TOPIC.dlq")
	fs.StringVar(&c.group, "group", "sitewatch-recorder", "Kafka consumer group")
	fs.StringVar(&c.targetsTopic, "targets-topic", targetstopic.DefaultTopic, "compacted topic of the targets (fleet) projected into target_config; waited for while it does not exist (file mode); empty: no projection")
	fs.StringVar(&c.listen, "listen", ":9102", "address of /metrics, /healthz and /readyz")
	fs.IntVar(&c.batch, "batch", 50000, "most records per batch (one database transaction)")
	fs.Func("retention", "drop raw partitions and dead-letter events older than this (such as 400d or 72h; 0 keeps everything)", func(s string) error {
		d, err := parseDays(s)
		c.retention = d
		return err
	})
	fs.DurationVar(&c.maxFuture, "max-future", 24*time.Hour, "dead-letter events that started further ahead of this clock (0 accepts any)")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 30*time.Second, "on SIGTERM, how long the batch in hand may still take to be stored")
	fs.IntVar(&c.partitionsPast, "partitions-past", 2, "daily partitions kept created before today")
	fs.IntVar(&c.partitionsNext, "partitions-ahead", 3, "daily partitions created ahead of today")
	fs.DurationVar(&c.maintainEvery, "maintain-every", time.Hour, "how often to create partitions ahead and apply the retention")
	// Kafka's default session timeout is 45 s: a recorder killed without
	// leaving the group would hold its partitions that long before another
	// recorder takes them over.
	fs.DurationVar(&c.sessionTimeout, "session-timeout", 10*time.Second, "how long the group waits for a silent recorder before giving its partitions to another")
	fs.StringVar(&c.instanceID, "instance-id", "", "static group membership (KIP-345): a recorder restarted with the same ID within the session timeout gets its partitions back without a rebalance; unique per recorder")
	fs.TextVar(&c.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	var errs []error
	if err := cmdline.Parse(fs, args); errors.Is(err, flag.ErrHelp) {
		return c, err
	} else if err != nil {
		errs = append(errs, err)
	}
	switch c.command = fs.Arg(0); c.command {
	case "", "migrate", "reset-offsets":
	default:
		fs.Usage()
		errs = append(errs, fmt.Errorf("unknown command %q", c.command))
	}
	if fs.NArg() > 1 {
		errs = append(errs, fmt.Errorf("unexpected arguments after %s: %q (flags go before the command)", c.command, fs.Args()[1:]))
	}
	if strings.TrimSpace(c.topic) == "" {
		errs = append(errs, errors.New("-topic: empty"))
	}
	if strings.TrimSpace(c.group) == "" {
		errs = append(errs, errors.New("-group: empty"))
	}
	if c.batch < 1 || c.batch > 1_000_000 {
		errs = append(errs, fmt.Errorf("-batch: %d is not between 1 and 1000000", c.batch))
	}
	if c.retention < 0 || (c.retention > 0 && c.retention < 48*time.Hour) {
		errs = append(errs, fmt.Errorf("-retention: %s: use 0 (keep everything) or at least 2d (partitions are days)", c.retention))
	}
	if c.maxFuture < 0 || c.shutdownGrace < 0 || c.maintainEvery <= 0 {
		errs = append(errs, errors.New("-max-future, -shutdown-grace: must not be negative; -maintain-every: must be positive"))
	}
	if c.sessionTimeout < 6*time.Second || c.sessionTimeout > 5*time.Minute {
		// The broker's group.min/max.session.timeout.ms defaults.
		errs = append(errs, fmt.Errorf("-session-timeout: %s is not between 6s and 5m", c.sessionTimeout))
	}
	if c.partitionsPast < 0 || c.partitionsNext < 0 {
		errs = append(errs, errors.New("-partitions-past, -partitions-ahead: must not be negative"))
	}
	// reset-offsets resets the targets projection too when it has a database.
	if c.databaseURL = getenv("DATABASE_URL"); c.databaseURL == "" {
		if c.command != "reset-offsets" {
			errs = append(errs, errors.New("DATABASE_URL: not set"))
		}
	} else if _, err := pgx.ParseConfig(c.databaseURL); err != nil {
		// pgx's message can quote the URL, password included.
		errs = append(errs, errors.New("DATABASE_URL: not a valid PostgreSQL connection string"))
	}
	if c.command != "migrate" {
		k, err := kafkaenv.FromEnv(getenv)
		if err != nil {
			errs = append(errs, err)
		}
		if c.command == "" && k.RegistryURL == "" {
			errs = append(errs, errors.New("SCHEMA_REGISTRY_URL: not set"))
		}
		c.kafka = k
	}
	return c, errors.Join(errs...)
}

// parseDays parses a Go duration, or a whole number of days such as "400d".
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 2 && args[0] == "healthcheck" {
		return opshttp.Probe(ctx, args[1])
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))

	switch cfg.command {
	case "migrate":
		return store.Migrate(ctx, cfg.databaseURL, logger)
	case "reset-offsets":
		return resetOffsets(ctx, cfg, logger)
	}
	logger.Info("starting", "topic", cfg.topic, "group", cfg.group, "targets_topic", cfg.targetsTopic, "batch", cfg.batch,
		"retention", cfg.retention.String(), "kafka", cfg.kafka.String(), "database", describeDB(cfg.databaseURL))
	if err := store.Migrate(ctx, cfg.databaseURL, logger); err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.databaseURL, store.Config{Retention: cfg.retention}, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	schemas, err := cfg.kafka.Registry()
	if err != nil {
		return err
	}
	opts, err := cfg.kafka.ClientOpts()
	if err != nil {
		return err
	}
	opts = append(opts,
		kgo.SessionTimeout(cfg.sessionTimeout),
		kgo.HeartbeatInterval(cfg.sessionTimeout/10))
	if cfg.instanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.instanceID))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cons, err := consume.New(consume.Config{
		Topic:         cfg.topic,
		Group:         cfg.group,
		MaxBatch:      cfg.batch,
		Retention:     cfg.retention,
		MaxFuture:     cfg.maxFuture,
		ShutdownGrace: cfg.shutdownGrace,
	}, opts, schemas, st, reg, logger)
	if err != nil {
		return err
	}
	defer cons.Close()
	var proj *targets.Projector
	if cfg.targetsTopic != "" {
		pool, err := openPool(ctx, cfg.databaseURL)
		if err != nil {
			return err
		}
		defer pool.Close()
		if proj, err = targets.New(targets.Config{Topic: cfg.targetsTopic}, opts, pool, reg, logger); err != nil {
			return err
		}
	}
	ops, err := opshttp.Listen(cfg.listen, reg, func(ctx context.Context) error {
		if err := st.Ping(ctx); err != nil {
			return fmt.Errorf("database: %w", err)
		}
		if err := cons.Ping(ctx); err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}

	// Partitions for today and around it exist before the first batch.
	maintain := func() {
		if _, err := st.Maintain(ctx, time.Now(), cfg.partitionsPast, cfg.partitionsNext); err != nil && ctx.Err() == nil {
			logger.Error("partition maintenance failed; retried at the next round", "err", err)
		}
	}
	maintain()

	bg, stopBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var opsErr error
	wg.Go(func() { opsErr = ops.Serve(bg, logger) })
	if proj != nil {
		// The check results are stored whatever becomes of the projection:
		// it retries on its own, and ends only with bg.
		wg.Go(func() {
			if err := proj.Run(bg); err != nil {
				logger.Error("targets projection stopped", "err", err)
			}
		})
	}
	wg.Go(func() {
		t := time.NewTicker(cfg.maintainEvery)
		defer t.Stop()
		for {
			select {
			case <-bg.Done():
				return
			case <-t.C:
				maintain()
			}
		}
	})
	err = cons.Run(ctx)
	stopBG()
	wg.Wait()
	if err != nil {
		return err
	}
	logger.Info("stopped")
	return opsErr
}

// describeDB names the database for logs without its password.
func describeDB(url string) string {
	c, err := pgx.ParseConfig(url)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// resetOffsets rewinds the group to the start of the topic, so that the next
// recorders replay everything still in Kafka. Kafka refuses to change the
// offsets of a group with live members, and so does this: stop the recorders
// first.
func resetOffsets(ctx context.Context, cfg config, logger *slog.Logger) error {
	opts, err := cfg.kafka.ClientOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	groups, err := adm.DescribeGroups(ctx, cfg.group)
	if err != nil {
		return fmt.Errorf("describe group %s: %w", cfg.group, err)
	}
	if g, ok := groups[cfg.group]; ok && len(g.Members) > 0 {
		return fmt.Errorf("group %s has %d live members (state %s): stop the recorders first", cfg.group, len(g.Members), g.State)
	}
	listed, err := adm.ListStartOffsets(ctx, cfg.topic)
	if err != nil {
		return fmt.Errorf("list start offsets of %s: %w", cfg.topic, err)
	}
	if err := listed.Error(); err != nil {
		return fmt.Errorf("list start offsets of %s: %w", cfg.topic, err)
	}
	offsets := listed.Offsets()
	if err := adm.CommitAllOffsets(ctx, cfg.group, offsets); err != nil {
		return fmt.Errorf("commit offsets for group %s: %w", cfg.group, err)
	}
	n := 0
	offsets.Each(func(kadm.Offset) { n++ })
	logger.Info("group rewound to the earliest offsets; start the recorders to replay",
		"group", cfg.group, "topic", cfg.topic, "partitions", n)
	if cfg.targetsTopic == "" {
		return nil
	}
	if cfg.databaseURL == "" {
		logger.Warn("DATABASE_URL not set: the targets projection (target_config) is not reset", "targets_topic", cfg.targetsTopic)
		return nil
	}
	pool, err := openPool(ctx, cfg.databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := targets.Reset(ctx, pool, cfg.targetsTopic); err != nil {
		return fmt.Errorf("reset the targets projection: %w", err)
	}
	logger.Info("targets projection emptied; the recorders rebuild it from the start of the topic", "targets_topic", cfg.targetsTopic)
	return nil
}

// openPool connects the targets projection: a small pool of its own, so
// that it never waits for the check results' connections.
func openPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("DATABASE_URL: not a valid PostgreSQL connection string")
	}
	pcfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return pool, nil
}
