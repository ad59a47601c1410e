package cmdline_test

import (
	"bytes"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sitewatch/sitewatch/services/internal/cmdline"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantErrs []string // lines of the error, in order
		wantArgs []string
		usages   int
	}{
		{"good", []string{"-n", "3", "-d", "1s", "cmd", "x"}, nil, []string{"cmd", "x"}, 0},
		{"every bad flag", []string{"-n", "x", "-unknown", "-d", "forever", "-n", "4", "-=", "cmd"}, []string{
			`invalid value "x" for flag -n: parse error`,
			`flag provided but not defined: -unknown`,
			`invalid value "forever" for flag -d: parse error`,
			`bad flag syntax: -=`,
		}, []string{"cmd"}, 1},
		{"a flag without its value", []string{"-n", "2", "-d"}, []string{"flag needs an argument: -d"}, []string{}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(&out)
			usages := 0
			fs.Usage = func() { usages++; out.WriteString("usage\n") }
			fs.Int("n", 1, "")
			fs.Duration("d", time.Second, "")
			err := cmdline.Parse(fs, tc.args)
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if !slices.Equal(got, tc.wantErrs) {
				t.Errorf("errors %q, want %q", got, tc.wantErrs)
			}
			if !slices.Equal(fs.Args(), tc.wantArgs) {
				t.Errorf("args %q, want %q", fs.Args(), tc.wantArgs)
			}
			if usages != tc.usages || out.String() != strings.Repeat("usage\n", tc.usages) {
				t.Errorf("output %q (%d usages), want the usage %d times and nothing else", out.String(), usages, tc.usages)
			}
		})
	}
	t.Run("help", func(t *testing.T) {
		var out bytes.Buffer
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(&out)
		fs.Int("n", 1, "the n")
		if err := cmdline.Parse(fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("-h: %v, want flag.ErrHelp", err)
		}
		if !strings.Contains(out.String(), "the n") {
			t.Errorf("-h printed %q, want the usage", out.String())
		}
	})
}

// A value its flag refuses leaves the flag as it was: package flag's own
// numbers and durations store a zero first (-n x makes n 0), which the
// command's checks would then report as a second, false error
// ("-concurrency: at least 1" after "invalid value \"x\" for flag
// -concurrency"). The flags keep their kinds: -b alone is a bool, and the
// usage names int, duration and bool.
func TestParseKeepsWhatAFlagRefuses(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	fs.Usage = func() {}
	n := fs.Int("n", 7, "the n")
	d := fs.Duration("d", time.Second, "the d")
	b := fs.Bool("b", true, "the b")
	u := fs.Uint("u", 3, "the u")
	err := cmdline.Parse(fs, []string{"-n", "x", "-d", "forever", "-b=maybe", "-u", "-1", "cmd"})
	if err == nil || len(strings.Split(err.Error(), "\n")) != 4 {
		t.Fatalf("error %v, want four lines", err)
	}
	if *n != 7 || *d != time.Second || !*b || *u != 3 {
		t.Errorf("after refused values n=%d d=%v b=%v u=%d, want the defaults 7 1s true 3", *n, *d, *b, *u)
	}
	if !slices.Equal(fs.Args(), []string{"cmd"}) {
		t.Errorf("args %q, want [cmd]", fs.Args())
	}

	if err := cmdline.Parse(fs, []string{"-n", "5", "-b", "cmd"}); err != nil || *n != 5 || !*b || !slices.Equal(fs.Args(), []string{"cmd"}) {
		t.Errorf("-n 5 -b cmd: err %v, n=%d b=%v args %q; want nil, 5, true, [cmd] (-b takes no value)", err, *n, *b, fs.Args())
	}
	var usage bytes.Buffer
	fs.SetOutput(&usage)
	fs.PrintDefaults()
	for _, want := range []string{"-n int", "-d duration", "-u uint", "  -b\tthe b"} {
		if !strings.Contains(usage.String(), want) {
			t.Errorf("usage %q lacks %q", usage.String(), want)
		}
	}
}
