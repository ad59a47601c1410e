package targets

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch calls changed when the file at path may have changed, at most once
// per debounce period, until ctx ends.
//
// It watches the file's directory, not the file: editors save by writing a
// new file and renaming it over the old one, which a watch on the old inode
// would miss. Of the directory's events it takes those of the file's name
// (a write, or the create of a rename over it), and no others: a log
// written beside the file must not reload it twice a second. Kubernetes
// swaps a ConfigMap's files without an event of the file's name: the file
// is a symlink through `..data`, itself a symlink that is replaced by a
// rename (kubernetes/kubernetes pkg/volume/util/atomic_writer.go). So on an
// event of another name, the file's path is resolved through its symlinks,
// and a path that differs from the last one resolved is a change; so is an
// event of the file the path resolves to, when the targets file is a
// symlink to another file of the directory (targets.yaml -> prod.yaml).
//
// The watch is on the directory's inode: when the directory itself is
// removed or renamed (a deploy that renames a new directory over it, or
// rm -r and mkdir), the watch goes with it. Then the directory's path is
// watched again as soon as it exists, checked once per debounce period,
// and that is a change.
func Watch(ctx context.Context, path string, debounce time.Duration, changed func(), onError func(error)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	name := filepath.Clean(path)
	dir := filepath.Dir(name)
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	// "" while the file cannot be resolved (missing, a dangling symlink).
	resolve := func() string {
		r, _ := filepath.EvalSymlinks(name)
		return r
	}
	resolved := resolve()
	go func() {
		defer w.Close()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		defer timer.Stop()
		// Ticks while the directory is not watched; nil otherwise.
		var rewatch <-chan time.Time
		var reported bool
		watchAgain := func() {
			if err := w.Add(dir); err != nil {
				// Not there yet (or not readable): try again later,
				// saying why once, not at every try.
				if !errors.Is(err, fs.ErrNotExist) && !reported {
					onError(fmt.Errorf("watch %s again: %w", dir, err))
					reported = true
				}
				rewatch = time.After(debounce)
				return
			}
			rewatch, reported = nil, false
			resolved = resolve()
			timer.Reset(debounce)
		}
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if filepath.Clean(ev.Name) == dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
					// The directory itself: its watch is gone.
					timer.Reset(debounce)
					watchAgain()
					continue
				}
				now := resolve()
				if filepath.Clean(ev.Name) != name && now == resolved && !sameFile(ev.Name, name) {
					continue
				}
				resolved = now
				timer.Reset(debounce)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				onError(err)
			case <-rewatch:
				watchAgain()
			case <-timer.C:
				changed()
			}
		}
	}()
	return nil
}

// sameFile reports whether the paths a and b, their symlinks followed, are
// one file.
func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}
