// Command prober checks the websites of a targets file on a schedule and
// publishes each result as a CheckResult event to Kafka.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "prober:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("prober", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "targets.yaml", "targets file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	_ = ctx
	_ = getenv
	_ = stdout
	return errors.New("checking " + *configPath + " is not built yet (issue 3)")
}
