package main

import (
	"bytes"
	"testing"
	"time"
)

func TestSpoolFlags(t *testing.T) {
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		dir     string
		max     int64
		sync    time.Duration
		wantErr string
	}{
		{name: "defaults under XDG_STATE_HOME", args: []string{"-instance", "p1"}, env: map[string]string{"XDG_STATE_HOME": "/var/lib/x", "HOME": "/home/u"},
			dir: "/var/lib/x/sitewatch/prober/p1/spool", max: 1 << 30, sync: time.Second},
		// systemd's StateDirectory= (several are separated by colons): the
		// unit's own, writable even with DynamicUser=, whose HOME is not.
		{name: "defaults under systemd's STATE_DIRECTORY", args: []string{"-instance", "p1"},
			env: map[string]string{"STATE_DIRECTORY": "/var/lib/sitewatch-prober:/var/lib/other", "XDG_STATE_HOME": "/var/lib/x", "HOME": "/"},
			dir: "/var/lib/sitewatch-prober/spool", max: 1 << 30, sync: time.Second},
		{name: "defaults under HOME", args: []string{"-instance", "p1"}, env: map[string]string{"HOME": "/home/u"},
			dir: "/home/u/.local/state/sitewatch/prober/p1/spool", max: 1 << 30, sync: time.Second},
		{name: "explicit", args: []string{"-instance", "p1", "-spool-dir", "/data/spool", "-spool-max-bytes", "500MB", "-spool-sync", "100ms"},
			dir: "/data/spool", max: 500_000_000, sync: 100 * time.Millisecond},
		{name: "no home", args: []string{"-instance", "p1"}, wantErr: "-spool-dir: required when neither XDG_STATE_HOME nor HOME is set"},
		{name: "bad size", args: []string{"-instance", "p1", "-spool-max-bytes", "lots"}, wantErr: `-spool-max-bytes: "lots" is not a size such as 1GiB or 500MB`},
		{name: "zero sync", args: []string{"-instance", "p1", "-spool-sync", "0s"}, wantErr: "-spool-sync: more than 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseFlags(tc.args, &bytes.Buffer{})
			var dir string
			if err == nil {
				dir, err = spoolDir(f, env(tc.env))
			}
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if dir != tc.dir || f.spoolMaxB != tc.max || f.spoolSync != tc.sync {
				t.Errorf("dir %s, max %d, sync %s; want %s, %d, %s", dir, f.spoolMaxB, f.spoolSync, tc.dir, tc.max, tc.sync)
			}
		})
	}
}
