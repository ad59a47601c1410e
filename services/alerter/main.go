package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sitewatch/sitewatch/services/alerter/internal/backtest"
	"github.com/sitewatch/sitewatch/services/alerter/internal/consume"
	"github.com/sitewatch/sitewatch/services/alerter/internal/nodata"
	"github.com/sitewatch/sitewatch/services/alerter/internal/notify"
	"github.com/sitewatch/sitewatch/services/alerter/internal/outbox"
	"github.com/sitewatch/sitewatch/services/alerter/internal/policy"
	"github.com/sitewatch/sitewatch/services/alerter/internal/store"
	"github.com/sitewatch/sitewatch/services/internal/cmdline"
	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
	"github.com/sitewatch/sitewatch/services/internal/opshttp"
	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/internal/targetstopic"
)

func main() { cmdline.Main("alerter", run) }

// config is the command line and environment, parsed and validated once.
type config struct {
	path     string
	validate bool
	fleet    bool

	targetsTopic   string
	topic, group   string
	listen         string
	batch          int
	shutdownGrace  time.Duration
	sessionTimeout time.Duration
	maxNotifyAge   time.Duration
	maxFuture      time.Duration
	schemaWait     time.Duration
	noDataInterval time.Duration
	logLevel       slog.Level
	// The outbox sender's lease and retry waits (outbox.Options).
	lease, firstRetry, maxRetry time.Duration
	// How long delivered and given-up outbox rows are kept; 0: for good.
	outboxRetention time.Duration

	databaseURL string
	kafka       kafkaenv.Config
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("alerter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: alerter -config FILE [-fleet] [flags]\n       alerter -config FILE -validate\n       alerter backtest -config FILE -from T -to T [-target ID]\n       alerter healthcheck URL\n       alerter sink [-listen ADDR]")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.path, "config", "targets.yaml", "targets file: the targets and their alert policies, channels and maintenance windows (with -fleet: only channels and maintenance windows are taken from it)")
	fs.BoolVar(&c.validate, "validate", false, "only validate the targets file, as `prober -validate` does: exit 0 when valid, 1 with the errors (with -fleet: as the fleet mode reads it, targets optional)")
	fs.BoolVar(&c.fleet, "fleet", false, "take the targets and their policies from the targets topic (channels and maintenance windows still from -config)")
	fs.StringVar(&c.targetsTopic, "targets-topic", targetstopic.DefaultTopic, "with -fleet: the targets topic")
	fs.StringVar(&c.topic, "topic", "check-results", "Kafka topic of the check results")
	fs.StringVar(&c.group, "group", "sitewatch-alerter", "Kafka consumer group")
	fs.StringVar(&c.listen, "listen", ":9104", "address of /metrics, /healthz and /readyz")
	fs.IntVar(&c.batch, "batch", 10000, "most records per batch (one database transaction)")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 30*time.Second, "on SIGTERM, how long the batch in hand may still take to be stored")
	fs.DurationVar(&c.sessionTimeout, "session-timeout", 10*time.Second, "how long the group waits for a silent alerter before giving its partitions to another")
	fs.DurationVar(&c.maxNotifyAge, "notify-max-age", time.Hour, "transitions caused by checks older than this when evaluated are recorded but not notified (suppressed \"stale\"): a first start over the topic's history pages no one for last month (the resolution of a notified incident is still sent); 0 notifies all")
	fs.DurationVar(&c.maxFuture, "max-future", 24*time.Hour, "skip events that started further ahead of this clock, as the recorder does (0 accepts any)")
	fs.DurationVar(&c.schemaWait, "schema-poll", 2*time.Second, "how often to look for the alerter's tables while the recorder has not created them")
	fs.DurationVar(&c.noDataInterval, "nodata-interval", nodata.DefaultInterval, "how often to look for targets and regions that went stale (no-data incidents); 0 switches them off")
	fs.TextVar(&c.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	fs.DurationVar(&c.lease, "outbox-lease", outbox.DefaultLease, "how long a sender's claim holds an outbox row: the rows of a killed alerter are sent by another after this; it must outlast the channels' timeout")
	fs.DurationVar(&c.outboxRetention, "outbox-retention", outbox.DefaultRetention, "delete outbox rows delivered or given up longer ago than this (incidents and their transitions stay); 0 keeps them for good")
	fs.DurationVar(&c.firstRetry, "retry-first", outbox.DefaultFirstRetry, "wait after a first failed delivery; the waits double, jittered by 20%")
	fs.DurationVar(&c.maxRetry, "retry-max", outbox.DefaultMaxRetry, "longest wait between two delivery attempts")
	var errs []error
	if err := cmdline.Parse(fs, args); errors.Is(err, flag.ErrHelp) {
		return c, err
	} else if err != nil {
		errs = append(errs, err)
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %q (flags go before them)", fs.Args()))
	}
	if c.validate {
		return c, errors.Join(errs...)
	}
	bad := func(cond bool, msg string) {
		if cond {
			errs = append(errs, errors.New(msg))
		}
	}
	bad(strings.TrimSpace(c.topic) == "", "-topic: empty")
	bad(strings.TrimSpace(c.group) == "", "-group: empty")
	bad(c.fleet && c.targetsTopic == "", "-targets-topic: required with -fleet")
	bad(c.batch < 1 || c.batch > 1_000_000, fmt.Sprintf("-batch: %d is not between 1 and 1000000", c.batch))
	bad(c.shutdownGrace < 0 || c.maxNotifyAge < 0 || c.maxFuture < 0 || c.noDataInterval < 0, "-shutdown-grace, -notify-max-age, -max-future, -nodata-interval: must not be negative")
	bad(c.schemaWait <= 0, "-schema-poll: must be positive")
	bad(c.lease < time.Second, fmt.Sprintf("-outbox-lease: %s is under 1s", c.lease))
	bad(c.outboxRetention < 0, fmt.Sprintf("-outbox-retention: %s is negative (0 keeps the rows for good)", c.outboxRetention))
	bad(c.firstRetry <= 0 || c.maxRetry < c.firstRetry, "-retry-first, -retry-max: must be positive, -retry-max at least -retry-first")
	// The broker's group.min/max.session.timeout.ms defaults.
	bad(c.sessionTimeout < 6*time.Second || c.sessionTimeout > 5*time.Minute,
		fmt.Sprintf("-session-timeout: %s is not between 6s and 5m", c.sessionTimeout))
	errs = append(errs, c.database(getenv)...)
	k, err := kafkaenv.FromEnv(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	c.kafka = k
	return c, errors.Join(errs...)
}

func (c *config) database(getenv func(string) string) []error {
	if c.databaseURL = getenv("DATABASE_URL"); c.databaseURL == "" {
		return []error{errors.New("DATABASE_URL: not set")}
	}
	if _, err := pgx.ParseConfig(c.databaseURL); err != nil {
		// pgx's message can quote the URL, password included.
		return []error{errors.New("DATABASE_URL: not a valid PostgreSQL connection string")}
	}
	return nil
}

// sender delivers the outbox's notifications: it claims rows of
// notification_outbox, delivers them to their channels with retries, and
// marks them (internal/outbox).
type sender interface {
	Run(ctx context.Context) error
}

// newSender returns the outbox sender of the channels, on a pool of its
// own: its claims and deliveries never wait for the evaluator's
// connections, nor the evaluator for its. With -outbox-retention the
// outbox's pruner runs beside it on the same pool (an hourly pass).
func newSender(ctx context.Context, cfg config, channels []*targets.Channel, reg prometheus.Registerer, logger *slog.Logger) (sender, func(), error) {
	senders, err := notify.Senders(channels, notify.Options{})
	if err != nil {
		return nil, nil, err
	}
	pool, err := pgxpool.New(ctx, cfg.databaseURL)
	if err != nil {
		return nil, nil, errors.New("DATABASE_URL: not a valid PostgreSQL connection string")
	}
	snd := outbox.New(pool, senders, outbox.Options{Logger: logger.With("component", "outbox"), Registerer: reg,
		Lease: cfg.lease, FirstRetry: cfg.firstRetry, MaxRetry: cfg.maxRetry})
	if cfg.outboxRetention == 0 {
		return snd, pool.Close, nil
	}
	pr := outbox.NewPruner(pool, outbox.PruneOptions{Retention: cfg.outboxRetention, Logger: logger.With("component", "outbox"), Registerer: reg})
	return senderAndPruner{snd, pr}, pool.Close, nil
}

// senderAndPruner runs the outbox sender and its pruner side by side.
type senderAndPruner struct{ snd, pr sender }

func (s senderAndPruner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.pr.Run(ctx) })
	err := s.snd.Run(ctx)
	wg.Wait()
	return err
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 2 && args[0] == "healthcheck" {
		return opshttp.Probe(ctx, args[1])
	}
	if len(args) > 0 && args[0] == "sink" {
		return runSink(ctx, args[1:], stdout, stderr, time.Now, nil)
	}
	if len(args) > 0 && args[0] == "backtest" {
		return runBacktest(ctx, args[1:], getenv, stdout, stderr)
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.validate {
		// The prober's check and message: both accept the same file. The
		// ${VAR} secrets are only checked for their syntax, as the machine
		// that validates need not hold them; the alerter resolves them
		// when it runs, and refuses to start without them.
		if cfg.fleet {
			file, err := targets.LoadAlerting(cfg.path)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: %d channels, %d maintenance windows, valid\n", cfg.path, len(file.Channels), len(file.Maintenance))
			return nil
		}
		file, err := targets.Load(cfg.path)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %d targets, valid\n", cfg.path, len(file.Targets))
		return nil
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))

	file, err := loadFile(cfg.path, cfg.fleet, getenv)
	if err != nil {
		return err
	}
	src := policy.NewSource(policy.FromFile(file))
	if cfg.fleet {
		// No policy until the topic is read: see fleet.Ready below.
		src.Store(policy.FromFile(file).WithTargets(nil))
	}
	logger.Info("starting", "config", cfg.path, "fleet", cfg.fleet, "targets", src.Load().Targets(), "channels", len(file.Channels),
		"maintenance", len(file.Maintenance), "topic", cfg.topic, "group", cfg.group, "kafka", cfg.kafka.String(), "database", describeDB(cfg.databaseURL))

	st, err := store.Open(ctx, cfg.databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	opts, err := cfg.kafka.ClientOpts()
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var fleet *policy.Fleet
	if cfg.fleet {
		fleet = policy.NewFleet(cfg.targetsTopic, opts, func(ts map[string]*targets.Target) {
			src.Update(func(s *policy.Set) *policy.Set { return s.WithTargets(ts) })
		}, logger)
	}
	cons, err := consume.New(consume.Config{
		Topic:         cfg.topic,
		Group:         cfg.group,
		MaxBatch:      cfg.batch,
		ShutdownGrace: cfg.shutdownGrace,
		MaxNotifyAge:  cfg.maxNotifyAge,
		MaxFuture:     cfg.maxFuture,
	}, append(opts, kgo.SessionTimeout(cfg.sessionTimeout), kgo.HeartbeatInterval(cfg.sessionTimeout/10)),
		st, func() consume.Policies { return src.Load() }, reg, logger)
	if err != nil {
		return err
	}
	defer cons.Close()
	// The channels are those of the file at start: a reload applies
	// policies and maintenance windows, a change of channels needs a
	// restart (the sender holds their connections and secrets).
	snd, closeSender, err := newSender(ctx, cfg, file.Channels, reg, logger)
	if err != nil {
		return err
	}
	defer closeSender()

	ops, err := opshttp.Listen(cfg.listen, reg, func(ctx context.Context) error {
		if err := st.Ping(ctx); err != nil {
			return fmt.Errorf("database: %w", err)
		}
		if err := st.SchemaReady(ctx); err != nil {
			return err
		}
		if fleet != nil {
			select {
			case <-fleet.Ready():
			default:
				return errors.New("the targets topic is not read yet")
			}
		}
		if err := cons.Ping(ctx); err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}

	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	var wg sync.WaitGroup
	defer wg.Wait()
	var opsErr error
	wg.Go(func() { opsErr = ops.Serve(bg, logger) })
	if fleet != nil {
		wg.Go(func() {
			if err := fleet.Run(bg); err != nil {
				logger.Error("reading the targets topic stopped", "err", err)
			}
		})
	}
	// Fleet mode too: the file's maintenance windows apply on change.
	err = targets.Watch(bg, cfg.path, time.Second, func() {
		f, err := loadFile(cfg.path, cfg.fleet, getenv)
		if err != nil {
			logger.Error("targets file not reloaded; the previous policies stay", "err", err)
			return
		}
		src.Update(func(s *policy.Set) *policy.Set {
			if fleet != nil {
				return s.WithFile(f)
			}
			return policy.FromFile(f)
		})
		logger.Info("targets file reloaded", "targets", len(f.Targets), "channels", len(f.Channels), "maintenance", len(f.Maintenance))
		if !reflect.DeepEqual(f.Channels, file.Channels) {
			logger.Warn("the channels changed: restart the alerter to send through the new ones; until then the policies may name channels the sender does not have (their rows are retried, then given up)")
		}
	}, func(err error) { logger.Warn("watching the targets file", "err", err) })
	if err != nil {
		logger.Warn("the targets file is not watched: restart the alerter to apply changes", "err", err)
	}

	if err := waitForSchema(ctx, st, cfg.schemaWait, logger); err != nil {
		return nil //nolint:nilerr // only ctx ends the wait: stopped before starting
	}
	if fleet != nil {
		select {
		case <-fleet.Ready():
		case <-ctx.Done():
			return nil
		}
	}
	wg.Go(func() {
		if err := snd.Run(bg); err != nil {
			logger.Error("the outbox sender stopped", "err", err)
		}
	})
	if cfg.noDataInterval > 0 {
		// A pool of its own: a pass never waits for the consumer's
		// connections. Every alerter runs passes; a database lock lets
		// one of them evaluate each.
		pool, err := pgxpool.New(ctx, cfg.databaseURL)
		if err != nil {
			return errors.New("DATABASE_URL: not a valid PostgreSQL connection string")
		}
		defer pool.Close()
		nd := nodata.New(pool, func() nodata.Policies { return src.Load() },
			nodata.Options{Interval: cfg.noDataInterval, Logger: logger.With("component", "nodata"), Registerer: reg})
		wg.Go(func() { _ = nd.Run(bg) })
	}
	err = cons.Run(ctx)
	stopBG()
	wg.Wait()
	if err != nil {
		return err
	}
	logger.Info("stopped")
	return opsErr
}

// loadFile reads the targets file and resolves its secrets. In fleet
// mode only its channels and maintenance windows are used, so it need not
// list targets (targets.ParseAlerting).
func loadFile(path string, fleet bool, getenv func(string) string) (*targets.File, error) {
	load := targets.Load
	if fleet {
		load = targets.LoadAlerting
	}
	f, err := load(path)
	if err != nil {
		return nil, err
	}
	if err := f.ResolveSecrets(getenv); err != nil {
		return nil, err
	}
	return f, nil
}

// waitForSchema returns once the alerter's tables exist, or ctx's error.
// The recorder applies the migrations; meanwhile /readyz says what is
// missing.
func waitForSchema(ctx context.Context, st *store.Store, every time.Duration, logger *slog.Logger) error {
	said := false
	for {
		err := st.SchemaReady(ctx)
		if err == nil {
			if said {
				logger.Info("the alerter's tables exist now")
			}
			return nil
		}
		if !said {
			logger.Warn("waiting for the schema", "err", err, "every", every.String())
			said = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// describeDB names the database for logs without its password.
func describeDB(url string) string {
	c, err := pgx.ParseConfig(url)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// runBacktest is `alerter backtest -config FILE -from T -to T [-target ID]`.
func runBacktest(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("alerter backtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: alerter backtest -config FILE -from T -to T [-target ID]   (RFC 3339 times; reads DATABASE_URL)")
		fs.PrintDefaults()
	}
	var o backtest.Options
	path := fs.String("config", "targets.yaml", "targets file whose policies and maintenance windows to evaluate")
	timeFlag := func(name string, into *time.Time) {
		fs.Func(name, "RFC 3339 time, such as 2026-11-01T00:00:00Z", func(s string) error {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return fmt.Errorf("%q is not an RFC 3339 time such as 2026-11-01T00:00:00Z", s)
			}
			*into = t
			return nil
		})
	}
	timeFlag("from", &o.From)
	timeFlag("to", &o.To)
	fs.StringVar(&o.Target, "target", "", "only this target")
	var errs []error
	if err := cmdline.Parse(fs, args); errors.Is(err, flag.ErrHelp) {
		return err
	} else if err != nil {
		errs = append(errs, err)
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	if o.From.IsZero() || o.To.IsZero() {
		errs = append(errs, errors.New("-from and -to: required"))
	} else if !o.From.Before(o.To) {
		errs = append(errs, errors.New("-from: must be before -to"))
	}
	var c config
	errs = append(errs, c.database(getenv)...)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Secrets are not needed: nothing is sent.
	file, err := targets.Load(*path)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, c.databaseURL)
	if err != nil {
		return fmt.Errorf("connect to the database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rep, err := backtest.Run(ctx, conn, policy.FromFile(file), o)
	if err != nil {
		return err
	}
	return rep.Print(stdout, o)
}
