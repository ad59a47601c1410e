package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"github.com/sitewatch/sitewatch/services/internal/cmdline"
	"github.com/sitewatch/sitewatch/services/testing/benchhost"
)

func main() { cmdline.Main("benchhost", run) }

const usage = "usage: benchhost nginx -ports N | benchhost proc PID | benchhost addr"

func run(ctx context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "nginx":
		return serve(ctx, args[1:], stdout, stderr)
	case "addr":
		addr, err := benchhost.FreeAddr()
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(map[string]string{"addr": addr})
	case "proc":
		if len(args) != 2 {
			return errors.New(usage)
		}
		pid, err := strconv.Atoi(args[1])
		if err != nil || pid < 1 {
			return fmt.Errorf("proc: %q is not a process ID", args[1])
		}
		return proc(pid, stdout)
	default:
		return fmt.Errorf("unknown command %q; %s", args[0], usage)
	}
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("benchhost nginx", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ports := fs.Int("ports", 1, "ports to serve the page on, each a free one of 127.0.0.1")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if *ports < 1 {
		return fmt.Errorf("-ports %d: at least 1", *ports)
	}
	n, err := benchhost.StartNginx(ctx, *ports)
	if err != nil {
		return err
	}
	defer n.Stop()
	version := ""
	if bin, err := benchhost.NginxBinary(); err == nil {
		// nginx -v prints "nginx version: nginx/1.22.1" on stderr.
		out, _ := exec.Command(bin, "-v").CombinedOutput()
		_, version, _ = strings.Cut(strings.TrimSpace(string(out)), "nginx/")
	}
	if err := json.NewEncoder(stdout).Encode(map[string]any{
		"pid": n.PID, "page_bytes": len(benchhost.Page), "version": version, "urls": n.URLs,
	}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func proc(pid int, stdout io.Writer) error {
	user, sys, err := benchhost.CPU(pid)
	if err != nil {
		return err
	}
	rss, peak, err := benchhost.Memory(pid)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(map[string]any{
		"pid": pid, "cpu_s": (user + sys).Seconds(),
		"rss_mib": float64(rss) / (1 << 20), "peak_rss_mib": float64(peak) / (1 << 20),
	})
}
