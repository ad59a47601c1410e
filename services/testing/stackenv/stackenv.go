package stackenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sitewatch/sitewatch/services/internal/kafkaenv"
)

// Lookup returns a getenv that falls back, for what getenv leaves empty, to
// the .stack/env of the first directory at or above the working directory
// that has a go.work file (the repository's top).
func Lookup(getenv func(string) string) func(string) string {
	file := File()
	return func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return file[name]
	}
}

// Top returns the repository's top: the first directory at or above the
// working directory that has a go.work file; "" when there is none.
func Top() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// File reads the `export NAME=value` lines of .stack/env; nil when there is
// none.
func File() map[string]string {
	dir := Top()
	if dir == "" {
		return nil
	}
	f, err := os.Open(filepath.Join(dir, ".stack", "env"))
	if err != nil {
		return nil
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
		name, value, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		env[strings.TrimSpace(name)] = strings.Trim(strings.TrimSpace(value), `"'`)
	}
	return env
}

// RemoveTopic deletes a run's topic, its dead-letter topic if there is one,
// and its schema subject, so that repeated runs do not fill the stack.
func RemoveTopic(ctx context.Context, cfg kafkaenv.Config, topic string) error {
	var errs []error
	opts, err := cfg.ClientOpts()
	if err == nil {
		var cl *kgo.Client
		if cl, err = kgo.NewClient(opts...); err == nil {
			var resps kadm.DeleteTopicResponses
			resps, err = kadm.NewClient(cl).DeleteTopics(ctx, topic, kafkaenv.DLQ(topic))
			cl.Close()
			for _, r := range resps {
				if r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
					errs = append(errs, fmt.Errorf("delete topic %s: %w", r.Topic, r.Err))
				}
			}
		}
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("delete topic %s: %w", topic, err))
	}
	registry, err := cfg.Registry()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	subject := kafkaenv.Subject(topic)
	if _, err := registry.DeleteSubject(ctx, subject, sr.SoftDelete); err == nil {
		_, err = registry.DeleteSubject(ctx, subject, sr.HardDelete)
		if err != nil {
			errs = append(errs, fmt.Errorf("delete subject %s: %w", subject, err))
		}
	}
	return errors.Join(errs...)
}
