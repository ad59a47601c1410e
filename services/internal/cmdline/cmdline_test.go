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
