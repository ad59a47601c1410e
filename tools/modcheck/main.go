package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "modcheck:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dirs []string, stdout io.Writer) error {
	if len(dirs) == 0 {
		return errors.New("usage: modcheck MODULE_DIR [MODULE_DIR ...]")
	}
	var errs []error
	for _, dir := range dirs {
		path, err := goOut(ctx, dir, []string{"GOWORK=off"}, "list", "-m", "-f", "{{.Path}}")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		path = strings.TrimSpace(path)
		// In the workspace, from the workspace's root; alone, from the
		// module's directory.
		inWork, err := goOut(ctx, ".", nil, "list", "-deps", "-test", "-f", listFormat, path+"/...")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		alone, err := goOut(ctx, dir, []string{"GOWORK=off"}, "list", "-deps", "-test", "-f", listFormat, "./...")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		diffs := compare(parseList(inWork), parseList(alone))
		for _, d := range diffs {
			errs = append(errs, fmt.Errorf("%s: %s is %s with GOWORK=off but %s in the workspace: align it with `cd %s && GOWORK=off go get %s@%s`",
				dir, d.path, d.alone, d.work, dir, d.path, d.work))
		}
		if len(diffs) == 0 {
			fmt.Fprintf(stdout, "%s: GOWORK=off resolves the same versions as the workspace\n", dir)
		}
	}
	return errors.Join(errs...)
}

// listFormat prints the module of each package: path, version, and the
// replacement's path (local modules of the workspace are replaced by a
// directory and carry no version of their own).
const listFormat = `{{with .Module}}{{.Path}} {{.Version}}{{with .Replace}} {{.Path}}{{end}}{{end}}`

// parseList maps module path to version, leaving out modules without a
// version (the workspace's own, or replaced by a directory).
func parseList(out string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || (len(f) == 3 && (strings.HasPrefix(f[2], ".") || filepath.IsAbs(f[2]))) {
			continue
		}
		m[f[0]] = f[1]
	}
	return m
}

type diff struct{ path, work, alone string }

// compare lists the modules both builds load at different versions, by path.
func compare(work, alone map[string]string) []diff {
	var out []diff
	for path, v := range alone {
		if w, ok := work[path]; ok && w != v {
			out = append(out, diff{path: path, work: w, alone: v})
		}
	}
	slices.SortFunc(out, func(a, b diff) int { return strings.Compare(a.path, b.path) })
	return out
}

func goOut(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %s go %s: %w\n%s", dir, strings.Join(env, " "), strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}
