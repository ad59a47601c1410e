package config

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

const debounce = 50 * time.Millisecond

// watch watches path and returns the number of calls so far.
func watch(t *testing.T, path string) *atomic.Int32 {
	t.Helper()
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := Watch(ctx, path, debounce, func() { calls.Add(1) }, func(err error) { t.Error(err) }); err != nil {
		t.Fatal(err)
	}
	return &calls
}

// settle waits until the calls due to what happened so far have been made:
// fsnotify delivers events asynchronously, then the debounce runs.
func settle() { time.Sleep(10 * debounce) }

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWatchIgnoresOtherFilesOfTheDirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "targets.yaml")
	writeFile(t, path, "a")
	calls := watch(t, path)

	// The prober's log beside the targets file, written for a while.
	log, err := os.Create(filepath.Join(dir, "prober.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	for range 40 {
		if _, err := log.WriteString("{\"level\":\"ERROR\",\"msg\":\"reload failed\"}\n"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(debounce / 2)
	}
	writeFile(t, filepath.Join(dir, "targets.yaml.bak"), "b")
	settle()
	if n := calls.Load(); n != 0 {
		t.Errorf("%d calls for writes to other files, want 0", n)
	}

	// The file itself, written in place.
	writeFile(t, path, "c")
	settle()
	if n := calls.Load(); n != 1 {
		t.Errorf("%d calls after the file was written, want 1", n)
	}
}

func TestWatchSeesASaveByRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "targets.yaml")
	writeFile(t, path, "a")
	calls := watch(t, path)
	// As vim and most editors save: a new file renamed over the old one.
	writeFile(t, filepath.Join(dir, ".targets.yaml.swp"), "b")
	if err := os.Rename(filepath.Join(dir, ".targets.yaml.swp"), path); err != nil {
		t.Fatal(err)
	}
	settle()
	if n := calls.Load(); n != 1 {
		t.Errorf("%d calls for a save by rename, want 1", n)
	}
}

func TestWatchSeesAConfigMapSymlinkSwap(t *testing.T) {
	// The layout of a ConfigMap volume: targets.yaml -> ..data/targets.yaml,
	// ..data -> ..2026_11_30_07_00_00.1, the directory of the files.
	dir := t.TempDir()
	version := func(name, content string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name, "targets.yaml"), content)
	}
	symlink := func(target, link string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_11_30_07_00_00.1", "a")
	symlink("..2026_11_30_07_00_00.1", "..data")
	symlink("..data/targets.yaml", "targets.yaml")
	calls := watch(t, filepath.Join(dir, "targets.yaml"))

	// The kubelet's update: a new directory, a new ..data symlink renamed
	// over the old one, the old directory removed.
	version("..2026_11_30_08_00_00.2", "b")
	symlink("..2026_11_30_08_00_00.2", "..data_tmp")
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..2026_11_30_07_00_00.1")); err != nil {
		t.Fatal(err)
	}
	settle()
	if n := calls.Load(); n != 1 {
		t.Errorf("%d calls for a ConfigMap update, want 1", n)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "targets.yaml")); err != nil || string(b) != "b" {
		t.Fatalf("the test's swap is wrong: %q, %v", b, err)
	}
}
