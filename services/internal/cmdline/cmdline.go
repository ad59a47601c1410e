package cmdline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Parse parses args into fs as fs.Parse does, but goes on after a bad flag
// (unknown, without its value, or with a value its Set refuses) and returns
// every such error, joined, after printing fs's usage once. For -h or -help
// it prints the usage and returns flag.ErrHelp. Afterwards fs.Args() holds
// the arguments after the flags.
func Parse(fs *flag.FlagSet, args []string) error {
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	unguard := guard(fs)
	restore := func() { unguard(); fs.Usage = usage; fs.SetOutput(out) }
	var errs []error
	for {
		err := fs.Parse(args)
		if err == nil {
			break
		}
		if errors.Is(err, flag.ErrHelp) {
			restore()
			fs.Usage()
			return err
		}
		errs = append(errs, err)
		args = fs.Args() // what follows the bad flag
		if len(args) > 0 && badSyntax(args[0]) {
			args = args[1:] // the flag package does not step over it
		}
	}
	restore()
	if len(errs) > 0 {
		fs.Usage()
	}
	return errors.Join(errs...)
}

// guard makes every flag of fs undo a value it refuses, until the returned
// func is called. Package flag's numbers, durations and bools store what
// they parsed (zero) before they return the error; going on past that
// error, a command's own checks would then report that zero as a second,
// false error about a value nobody gave.
func guard(fs *flag.FlagSet) (unguard func()) {
	var flags []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		flags = append(flags, f)
		f.Value = undoValue{f.Value}
	})
	return func() {
		for _, f := range flags {
			f.Value = f.Value.(undoValue).Value // usage tells the kinds by type
		}
	}
}

// undoValue is a flag.Value that puts the previous value back when Set
// fails, where the failure changed it and the value can say it (a Func
// flag's String is always "": there is nothing to put back).
type undoValue struct{ flag.Value }

func (u undoValue) Set(s string) error {
	before := u.String()
	err := u.Value.Set(s)
	if err != nil && u.String() != before {
		_ = u.Value.Set(before)
	}
	return err
}

// IsBoolFlag keeps a bool flag one that takes no value.
func (u undoValue) IsBoolFlag() bool {
	b, ok := u.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// badSyntax tells whether package flag refuses s as a flag's syntax ("-=x",
// "---x"), which it leaves in place.
func badSyntax(s string) bool {
	if len(s) < 2 || s[0] != '-' || s == "--" {
		return false
	}
	name := strings.TrimPrefix(s[1:], "-")
	return name[0] == '-' || name[0] == '='
}

// Main is the whole of a sitewatch command's main: it calls run with the
// process's arguments, environment and standard streams, under a context
// that SIGINT and SIGTERM cancel, and exits 1 with the error on stderr.
// run does the work and returns its error, so every deferred Close and Flush
// runs (Mat Ryer, "How I write HTTP services in Go after 13 years").
func Main(name string, run func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
