package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"go/version"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/schema"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/modfile"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
}

// opsShutdown bounds the shutdown of a service's metrics listener
// (services/internal/opshttp, Serve); it is part of each service's shutdown
// time.
const opsShutdown = 5 * time.Second

// composeStopDefault is Compose's stop_grace_period when none is set.
const composeStopDefault = 10 * time.Second

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("composecheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "compose.yaml", "the Compose file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if errs := check(ctx, *file); len(errs) > 0 {
		return errors.Join(errs...)
	}
	fmt.Fprintf(stdout, "%s: valid (Compose Specification schema, compose-go loader, sitewatch's rules)\n", *file)
	return nil
}

// check returns every defect of the Compose file at file.
func check(ctx context.Context, file string) []error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return []error{err}
	}
	var errs []error
	var dict map[string]any
	if err := yaml.Unmarshal(raw, &dict); err != nil {
		return []error{fmt.Errorf("%s: %w", file, err)}
	}
	// The file as written (before interpolation), as the specification
	// defines it.
	if err := schema.Validate(dict); err != nil {
		errs = append(errs, fmt.Errorf("%s: Compose Specification schema: %w", file, err))
	}
	// As `docker compose` reads it: every profile, no environment beyond the
	// file's own defaults, paths resolved against the file's directory.
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithProfiles([]string{"*"}),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return append(errs, err)
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return append(errs, fmt.Errorf("%s: compose-go loader: %w", file, err))
	}
	c := checker{file: file, p: p}
	c.postgres()
	c.prober()
	c.recorder()
	c.grafana()
	c.dockerfiles()
	return append(errs, c.errs...)
}

type checker struct {
	file string
	p    *types.Project
	errs []error
}

func (c *checker) errorf(service, field, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: services.%s.%s: %s", c.file, service, field, fmt.Sprintf(format, args...)))
}

func (c *checker) service(name string) (types.ServiceConfig, bool) {
	s, ok := c.p.Services[name]
	if !ok {
		c.errs = append(c.errs, fmt.Errorf("%s: services.%s: missing", c.file, name))
	}
	return s, ok
}

// postgres: on a fresh volume the image's entrypoint runs a temporary server
// on the Unix socket only; pg_isready over the socket says "ready" while TCP
// clients (every other service) are refused.
func (c *checker) postgres() {
	s, ok := c.service("postgres")
	if !ok {
		return
	}
	var test string
	if s.HealthCheck != nil {
		test = strings.Join(s.HealthCheck.Test, " ")
	}
	if !strings.Contains(test, "pg_isready") || !regexp.MustCompile(`(^|\s)-h\s*127\.0\.0\.1(\s|$)`).MatchString(test) {
		c.errorf("postgres", "healthcheck.test", "%q: want pg_isready -h 127.0.0.1 (over TCP: on a fresh volume the socket answers before TCP does)", test)
	}
}

// prober: the targets file's directory is bind-mounted, and the container
// has time to end its checks and flush. In file mode (-config) the prober
// reads the file; in fleet mode (-fleet) a one-shot service applies it to
// the targets topic before the prober starts, and the prober's checks are
// that file's.
func (c *checker) prober() {
	s, ok := c.service("prober")
	if !ok {
		return
	}
	var longest time.Duration
	if hasFlag(s.Command, "fleet") {
		if longest, ok = c.fleetProber(s); !ok {
			return
		}
	} else {
		config, ok := flagValue(s.Command, "config")
		if !ok {
			c.errorf("prober", "command", "neither -config (file mode) nor -fleet (fleet mode)")
			return
		}
		if longest, ok = c.targetsFile("prober", s, "-config", config); !ok {
			return
		}
	}
	flush, ok := c.durationFlag("prober", s.Command, "flush-timeout")
	if !ok {
		return
	}
	c.stopGrace("prober", s, longest+flush+opsShutdown,
		fmt.Sprintf("the longest target timeout %s + -flush-timeout %s + %s for the metrics listener", longest, flush, opsShutdown))
}

var fullTag = regexp.MustCompile(`:\d+\.\d+\.\d+$`)

// grafana (optional): only under its profile, so that `task stack:up` and
// `task up` never start it; an image of a full version; its provisioning
// mounted read-only from files that exist; reachable on loopback only (its
// first login is admin/admin).
func (c *checker) grafana() {
	s, ok := c.p.Services["grafana"]
	if !ok {
		return
	}
	if !slices.Contains(s.Profiles, "grafana") {
		c.errorf("grafana", "profiles", "%q: want the profile grafana, so that only `docker compose --profile grafana` starts it", s.Profiles)
	}
	if !fullTag.MatchString(s.Image) {
		c.errorf("grafana", "image", "%q is not pinned to a full version (such as grafana/grafana:13.1.0)", s.Image)
	}
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if !v.ReadOnly {
			c.errorf("grafana", "volumes", "%s is mounted writable at %s: mount provisioning read_only, the files are the source", v.Source, v.Target)
		}
		if _, err := os.Stat(v.Source); err != nil {
			c.errorf("grafana", "volumes", "%v", err)
		}
	}
	for _, p := range s.Ports {
		if p.HostIP != "127.0.0.1" {
			c.errorf("grafana", "ports", "%s:%s published on %q: publish on 127.0.0.1 (the first login is admin/admin)", p.Published, fmt.Sprint(p.Target), p.HostIP)
		}
	}
}

// fleetProber checks a -fleet prober: its region and a fixed instance (the
// default, the host name, is the container's ID: a new static member, and a
// new spool directory, at every re-creation), and the service that applies
// the targets file first, since a fleet prober refuses to start before the
// targets topic exists. It returns the longest timeout of that file.
func (c *checker) fleetProber(s types.ServiceConfig) (time.Duration, bool) {
	if _, ok := flagValue(s.Command, "config"); ok {
		c.errorf("prober", "command", "-config and -fleet: the prober refuses both")
		return 0, false
	}
	for _, name := range []string{"region", "instance"} {
		if _, ok := flagValue(s.Command, name); !ok {
			c.errorf("prober", "command", "-fleet without -%s", name)
		}
	}
	var apply, file string
	for _, dep := range slices.Sorted(maps.Keys(s.DependsOn)) {
		if f, ok := applyFile(c.p.Services[dep].Command); ok && s.DependsOn[dep].Condition == types.ServiceConditionCompletedSuccessfully {
			apply, file = dep, f
			break
		}
	}
	if apply == "" {
		c.errorf("prober", "depends_on", "-fleet, but no service it depends on (condition: service_completed_successfully) runs `prober targets apply FILE`: a fleet prober refuses to start before the targets topic exists")
		return 0, false
	}
	as := c.p.Services[apply]
	for _, dep := range []string{"kafka", "registry"} {
		if as.DependsOn[dep].Condition != types.ServiceConditionHealthy {
			c.errorf(apply, "depends_on", "%s: want condition service_healthy (apply publishes to Kafka, registering the schema)", dep)
		}
	}
	if as.Restart != "" && as.Restart != types.RestartPolicyNo {
		c.errorf(apply, "restart", "%q: want \"no\" (a one-shot step; restarted, it would apply the file in a loop)", as.Restart)
	}
	return c.targetsFile(apply, as, "targets apply", file)
}

// applyFile returns FILE of a command `targets apply [flags] FILE`.
func applyFile(cmd []string) (string, bool) {
	if len(cmd) < 3 || cmd[0] != "targets" || cmd[1] != "apply" {
		return "", false
	}
	last := cmd[len(cmd)-1]
	return last, !strings.HasPrefix(last, "-")
}

// targetsFile checks that the targets file at path in the container of
// service is on a bind mount of its directory, and returns the file's
// longest target timeout. what names the argument in errors.
func (c *checker) targetsFile(service string, s types.ServiceConfig, what, path string) (time.Duration, bool) {
	var mount *types.ServiceVolumeConfig
	for i, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && (v.Target == path || strings.HasPrefix(path, strings.TrimSuffix(v.Target, "/")+"/")) {
			mount = &s.Volumes[i]
		}
	}
	if mount == nil {
		c.errorf(service, "volumes", "no bind mount holds %s %s", what, path)
		return 0, false
	}
	st, err := os.Stat(mount.Source)
	if err != nil {
		c.errorf(service, "volumes", "%s: %v", mount.Source, err)
		return 0, false
	}
	if !st.IsDir() {
		c.errorf(service, "volumes", "%s is mounted as a single file at %s: an editor's rename-save replaces the file, and the container keeps the old one; mount its directory", mount.Source, mount.Target)
		return 0, false
	}
	host := filepath.Join(mount.Source, filepath.FromSlash(strings.TrimPrefix(path, strings.TrimSuffix(mount.Target, "/")+"/")))
	longest, err := longestTimeout(host)
	if err != nil {
		c.errorf(service, "command", "%s %s: %v", what, path, err)
		return 0, false
	}
	return longest, true
}

// recorder: the container has time to store the batch in hand.
func (c *checker) recorder() {
	s, ok := c.service("recorder")
	if !ok {
		return
	}
	grace, ok := c.durationFlag("recorder", s.Command, "shutdown-grace")
	if !ok {
		return
	}
	c.stopGrace("recorder", s, grace+opsShutdown,
		fmt.Sprintf("-shutdown-grace %s + %s for the metrics listener", grace, opsShutdown))
}

func (c *checker) durationFlag(service string, cmd types.ShellCommand, name string) (time.Duration, bool) {
	v, ok := flagValue(cmd, name)
	if !ok {
		c.errorf(service, "command", "no -%s: set it, so that stop_grace_period can be checked against it", name)
		return 0, false
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		c.errorf(service, "command", "-%s %q: %v", name, v, err)
		return 0, false
	}
	return d, true
}

func (c *checker) stopGrace(service string, s types.ServiceConfig, shutdown time.Duration, why string) {
	stop := composeStopDefault
	if s.StopGracePeriod != nil {
		stop = time.Duration(*s.StopGracePeriod)
	}
	if stop <= shutdown {
		c.errorf(service, "stop_grace_period", "%s does not exceed the %s's shutdown time %s (%s); after it, SIGKILL loses what is in hand", stop, service, shutdown, why)
	}
}

// hasFlag reports whether the boolean flag -name (or -name=true, or with two
// dashes) is set.
func hasFlag(cmd []string, name string) bool {
	for _, a := range cmd {
		b := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if len(b) < len(a) && (b == name || b == name+"=true") {
			return true
		}
	}
	return false
}

// flagValue finds -name VALUE, -name=VALUE or the same with two dashes.
func flagValue(cmd []string, name string) (string, bool) {
	for i, a := range cmd {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if len(a) == len(cmd[i]) {
			continue // not a flag
		}
		if a == name && i+1 < len(cmd) {
			return cmd[i+1], true
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// longestTimeout reads the timeouts of a targets file (docs/design.md, "Targets
// file"): each target's own, else the defaults'. A target with neither is
// an error here (the prober's built-in default is not visible from this
// file), so that the file states every check's bound.
func longestTimeout(file string) (time.Duration, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	var f struct {
		Defaults struct {
			Timeout string `yaml:"timeout"`
		} `yaml:"defaults"`
		Targets []struct {
			ID      string `yaml:"id"`
			Timeout string `yaml:"timeout"`
		} `yaml:"targets"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		return 0, err
	}
	var longest time.Duration
	for _, t := range f.Targets {
		v := cmpOr(t.Timeout, f.Defaults.Timeout)
		if v == "" {
			return 0, fmt.Errorf("target %q has no timeout and the file no defaults.timeout: set one, so that stop_grace_period can be checked against it", t.ID)
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, fmt.Errorf("target %q: timeout %q: %v", t.ID, v, err)
		}
		longest = max(longest, d)
	}
	return longest, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

var fromGolang = regexp.MustCompile(`^FROM\s+(?:--platform=\S+\s+)?golang:(\S+)`)

// dockerfiles: each service's Dockerfile builds with a golang image of a
// full version (a floating tag such as 1.26 changes under the same file) at
// or above the highest go directive of the workspace.
func (c *checker) dockerfiles() {
	minGo, err := workspaceGo(c.p.WorkingDir)
	if err != nil {
		c.errs = append(c.errs, fmt.Errorf("%s: %w", c.file, err))
		return
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range c.p.Services {
			if !yield(n) {
				return
			}
		}
	})
	seen := map[string]bool{}
	for _, name := range names {
		b := c.p.Services[name].Build
		if b == nil {
			continue
		}
		df := filepath.Join(b.Context, cmpOr(b.Dockerfile, "Dockerfile"))
		if seen[df] {
			continue
		}
		seen[df] = true
		c.dockerfile(name, df, minGo)
	}
}

func (c *checker) dockerfile(service, df, minGo string) {
	f, err := os.Open(df)
	if err != nil {
		c.errorf(service, "build", "%v", err)
		return
	}
	defer f.Close()
	rel, err := filepath.Rel(c.p.WorkingDir, df)
	if err != nil {
		rel = df
	}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		m := fromGolang.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		tag := m[1]
		full, _, _ := strings.Cut(tag, "-")
		if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(full) {
			c.errorf(service, "build", "%s:%d: golang:%s is not pinned to a full Go version (such as golang:%s)", rel, n, tag, minGo)
			continue
		}
		if version.Compare("go"+full, "go"+minGo) < 0 {
			c.errorf(service, "build", "%s:%d: golang:%s is below the workspace's go directive %s", rel, n, tag, minGo)
		}
	}
	if err := sc.Err(); err != nil {
		c.errorf(service, "build", "%s: %v", rel, err)
	}
}

// workspaceGo returns the highest go directive of the go.work in dir or
// above it and of every module it uses.
func workspaceGo(dir string) (string, error) {
	for {
		work := filepath.Join(dir, "go.work")
		raw, err := os.ReadFile(work)
		if errors.Is(err, os.ErrNotExist) {
			parent := filepath.Dir(dir)
			if parent == dir {
				return "", errors.New("no go.work in the Compose file's directory or above")
			}
			dir = parent
			continue
		}
		if err != nil {
			return "", err
		}
		wf, err := modfile.ParseWork(work, raw, nil)
		if err != nil {
			return "", err
		}
		highest := ""
		if wf.Go != nil {
			highest = wf.Go.Version
		}
		for _, u := range wf.Use {
			gomod := filepath.Join(dir, filepath.FromSlash(path.Clean(u.Path)), "go.mod")
			raw, err := os.ReadFile(gomod)
			if err != nil {
				return "", err
			}
			mf, err := modfile.ParseLax(gomod, raw, nil)
			if err != nil {
				return "", err
			}
			if mf.Go != nil && (highest == "" || version.Compare("go"+mf.Go.Version, "go"+highest) > 0) {
				highest = mf.Go.Version
			}
		}
		if highest == "" {
			return "", fmt.Errorf("%s: no go directive", work)
		}
		return highest, nil
	}
}
