package browser

import (
	"os"
	"strings"
	"testing"
)

// A browser's test leaves nothing behind: no chromium process that still
// names its profile, nothing in the temporary directory (chromium's
// org.chromium.Chromium.* singleton directory, which it removes only when
// closed, not killed).
func TestStopsCleanly(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var profile string
	t.Run("browser", func(t *testing.T) {
		srv := server(t)
		b := Start(t)
		profile = b.profile
		b.Open(t, srv.URL+"/chart").NoErrors()
	})
	if profile == "" {
		t.Fatal("no profile directory")
	}
	if _, err := os.Stat(profile); !os.IsNotExist(err) {
		t.Errorf("profile %s: %v, want removed", profile, err)
	}
	if left := chromiums(t, profile); len(left) != 0 {
		t.Errorf("processes left with the profile %s: %q", profile, left)
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 0 {
		t.Errorf("left in TMPDIR: %q, want nothing", names)
	}
}

// chromiums lists the command lines of the processes naming dir.
func chromiums(t *testing.T, dir string) []string {
	t.Helper()
	procs, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var out []string
	for _, p := range procs {
		raw, err := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		if err != nil || len(raw) == 0 {
			continue
		}
		if cmd := strings.ReplaceAll(string(raw), "\x00", " "); strings.Contains(cmd, dir) {
			out = append(out, p.Name()+": "+cmd)
		}
	}
	return out
}
