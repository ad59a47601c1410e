package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// `prober targets apply` refuses a bad file with exactly the errors of
// `prober -validate`, before it connects to anything (the environment
// points at no Kafka).
func TestTargetsApplyValidatesAsValidate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "targets.yaml")
	bad := "defaults:\n  regions: [eu-west, eu-west]\ntargets:\n  - id: a\n    url: ftp://x/\n    labels: {__x: y}\n  - id: a\n    url: http://127.0.0.1/\n"
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	validate := run(context.Background(), []string{"-config", path, "-validate"}, noEnv, &bytes.Buffer{}, &bytes.Buffer{})
	for _, args := range [][]string{{"targets", "apply", path}, {"targets", "apply", "-dry-run", path}} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr)
		if err == nil || validate == nil || err.Error() != validate.Error() || stdout.Len() != 0 || stderr.Len() != 0 {
			t.Errorf("%v: %v (output %q %q)\nwant the errors of -validate:\n%v", args, err, stdout.String(), stderr.String(), validate)
		}
	}
	want := path + `:5: target "a": url: "ftp://x/" is not an http:// or https:// URL` + "\n" +
		path + `:2: target "a": regions: "eu-west" given twice` + "\n" +
		path + `:6: target "a": labels: "__x" is not a label name (letters, digits and _, not starting with a digit or __, at most 63)` + "\n" +
		path + `:7: target "a": id: duplicate: already used by the target at line 4` + "\n" +
		path + `:2: target "a": regions: "eu-west" given twice`
	if validate == nil || validate.Error() != want {
		t.Errorf("-validate: %v\nwant:\n%s", validate, want)
	}
}

func TestTargetsUsage(t *testing.T) {
	const usage = "usage: prober targets apply FILE [-dry-run] [-topic T] [-partitions N] | prober targets list [-topic T]"
	for _, args := range [][]string{{"targets"}, {"targets", "remove"}, {"targets", "apply"}, {"targets", "list", "extra"}} {
		err := run(context.Background(), args, noEnv, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || err.Error() != usage {
			t.Errorf("%v: %v, want %s", args, err, usage)
		}
	}
}
