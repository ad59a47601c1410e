package targets

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

func TestWatchSeesTheDirectoryReplaced(t *testing.T) {
	for _, tt := range []struct {
		name    string
		replace func(t *testing.T, dir, fresh string)
	}{
		// A deploy that prepares a new directory and renames it over
		// the old one (rename(2) of directories: the old one first).
		{"renamed over", func(t *testing.T, dir, fresh string) {
			if err := os.Rename(dir, dir+".old"); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(fresh, dir); err != nil {
				t.Fatal(err)
			}
		}},
		// rm -r conf; mkdir conf; cp ... conf/
		{"removed and made again", func(t *testing.T, dir, fresh string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			settle() // the watch notices the directory is gone
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, "targets.yaml"), "b")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "conf")
			fresh := dir + ".new"
			for _, d := range []string{dir, fresh} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, "targets.yaml")
			writeFile(t, path, "a")
			writeFile(t, filepath.Join(fresh, "targets.yaml"), "b")
			calls := watch(t, path)

			tt.replace(t, dir, fresh)
			settle()
			if n := calls.Load(); n < 1 {
				t.Fatalf("%d calls after the directory was replaced, want at least 1", n)
			}
			// The new directory is watched: an edit there is seen.
			before := calls.Load()
			writeFile(t, path, "c")
			settle()
			if n := calls.Load() - before; n != 1 {
				t.Errorf("%d calls after the file in the new directory was written, want 1", n)
			}
		})
	}
}

func TestWatchSeesTheFileASymlinkPointsTo(t *testing.T) {
	// targets.yaml -> prod.yaml, beside it: the file edited is prod.yaml.
	dir := t.TempDir()
	real := filepath.Join(dir, "prod.yaml")
	writeFile(t, real, "a")
	if err := os.Symlink("prod.yaml", filepath.Join(dir, "targets.yaml")); err != nil {
		t.Fatal(err)
	}
	calls := watch(t, filepath.Join(dir, "targets.yaml"))

	writeFile(t, real, "b") // in place
	settle()
	if n := calls.Load(); n != 1 {
		t.Errorf("%d calls after the file pointed to was written, want 1", n)
	}
	writeFile(t, filepath.Join(dir, ".prod.yaml.swp"), "c") // by rename
	if err := os.Rename(filepath.Join(dir, ".prod.yaml.swp"), real); err != nil {
		t.Fatal(err)
	}
	settle()
	if n := calls.Load(); n != 2 {
		t.Errorf("%d calls after the file pointed to was saved by rename, want 2", n)
	}
}

func TestWatchSeesAConfigMapSwapOfANestedPath(t *testing.T) {
	// A ConfigMap item with path conf/targets.yaml: conf -> ..data/conf,
	// so the directory watched is the old version's, which the kubelet
	// removes after the swap.
	dir := t.TempDir()
	version := func(name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, name, "conf"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name, "conf", "targets.yaml"), content)
	}
	symlink := func(target, link string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	version("..v1", "a")
	symlink("..v1", "..data")
	symlink("..data/conf", "conf")
	path := filepath.Join(dir, "conf", "targets.yaml")
	calls := watch(t, path)

	version("..v2", "b")
	symlink("..v2", "..data_tmp")
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..v1")); err != nil {
		t.Fatal(err)
	}
	settle()
	if n := calls.Load(); n < 1 {
		t.Fatalf("%d calls for a ConfigMap update, want at least 1", n)
	}
	// The next update is seen too: the new version's directory is watched.
	before := calls.Load()
	version("..v3", "c")
	symlink("..v3", "..data_tmp")
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..v2")); err != nil {
		t.Fatal(err)
	}
	settle()
	if n := calls.Load() - before; n < 1 {
		t.Errorf("%d calls for the second ConfigMap update, want at least 1", n)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "c" {
		t.Fatalf("the test's swap is wrong: %q, %v", b, err)
	}
}
