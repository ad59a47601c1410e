package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sitewatch/sitewatch/services/internal/cmdline"
	"github.com/sitewatch/sitewatch/services/internal/opshttp"
	"github.com/sitewatch/sitewatch/services/web/internal/pages"
	"github.com/sitewatch/sitewatch/services/web/internal/query"
)

func main() { cmdline.Main("web", run) }

// config is the command line and environment, parsed and validated once.
type config struct {
	listen        string
	perPage       int
	uptimeCache   time.Duration
	shutdownGrace time.Duration
	logLevel      slog.Level
	status        pages.Config

	databaseURL string
	auth        basicAuth
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("web", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: web [flags]\n       web healthcheck URL")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.listen, "listen", "127.0.0.1:9103", "address of the pages, the API, the badges, /metrics, /healthz and /readyz (loopback by default: put a reverse proxy in front to publish /status)")
	fs.IntVar(&c.perPage, "per-page", 100, "targets per page of the overview and the API")
	fs.DurationVar(&c.uptimeCache, "uptime-cache", 5*time.Minute, "how long a target's 7- and 30-day uptimes are reused (the overview's largest cost); 0 computes them for every page")
	fs.StringVar(&c.status.StatusTitle, "status-title", "Service status", "heading of the public status page")
	fs.StringVar(&c.status.StatusGroupLabel, "status-group-label", "", "group the status page by the value of this target label (such as team); empty: one group")
	fs.BoolVar(&c.status.StatusShowDetails, "status-show-details", false, "show target URLs and the last errors on the public status page")
	fs.DurationVar(&c.status.StatusCache, "status-cache", 30*time.Second, "how long the status page's figures are reused before the database is asked again")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 10*time.Second, "on SIGTERM, how long requests in flight may still take")
	fs.TextVar(&c.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	var errs []error
	if err := cmdline.Parse(fs, args); errors.Is(err, flag.ErrHelp) {
		return c, err
	} else if err != nil {
		errs = append(errs, err)
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if _, _, err := net.SplitHostPort(c.listen); err != nil {
		errs = append(errs, fmt.Errorf("-listen: %q is not host:port", c.listen))
	}
	if c.perPage < 1 || c.perPage > 1000 {
		errs = append(errs, fmt.Errorf("-per-page: %d is not between 1 and 1000", c.perPage))
	}
	if c.status.StatusCache < 0 || c.uptimeCache < 0 || c.shutdownGrace < 0 {
		errs = append(errs, errors.New("-status-cache, -uptime-cache, -shutdown-grace: must not be negative"))
	}
	c.status.PerPage = c.perPage
	if c.databaseURL = getenv("DATABASE_URL"); c.databaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL: not set"))
	} else if _, err := pgx.ParseConfig(c.databaseURL); err != nil {
		// pgx's message can quote the URL, password included.
		errs = append(errs, errors.New("DATABASE_URL: not a valid PostgreSQL connection string"))
	}
	auth, err := authFromEnv(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	c.auth = auth
	return c, errors.Join(errs...)
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
	db, err := query.Open(ctx, cfg.databaseURL, cfg.uptimeCache)
	if err != nil {
		return err
	}
	defer db.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h, err := newHandler(db, cfg, reg, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("listening", "url", "http://"+ln.Addr().String()+"/", "database", describeDB(cfg.databaseURL),
		"basic_auth", cfg.auth.on(), "status_group_label", cfg.status.StatusGroupLabel, "status_show_details", cfg.status.StatusShowDetails)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "grace", cfg.shutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// describeDB names the database for logs without its password.
func describeDB(url string) string {
	c, err := pgx.ParseConfig(url)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}
