package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixture is a small project that passes every rule; each case edits one
// file of it.
var fixture = map[string]string{
	"compose.yaml": `name: fixture
services:
  postgres:
    image: postgres:15
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U postgres"]
  recorder:
    build: {context: ., dockerfile: build/Dockerfile}
    command: ["-listen", ":9102", "-shutdown-grace", "30s"]
    stop_grace_period: 40s
    depends_on: [postgres]
  prober:
    build: {context: ., dockerfile: build/Dockerfile}
    command: ["-config", "/etc/sitewatch/targets/${TARGETS_FILE:-targets.yaml}", "-flush-timeout=15s"]
    stop_grace_period: 41s
    volumes:
      - type: bind
        source: ./targets
        target: /etc/sitewatch/targets
        read_only: true
`,
	"targets/targets.yaml": `defaults:
  timeout: 10s
targets:
  - id: a
    url: http://127.0.0.1:1/
  - id: b
    url: http://127.0.0.1:2/
    timeout: 20s
`,
	"build/Dockerfile": "# syntax=docker/dockerfile:1\nFROM golang:1.26.8 AS build\nRUN true\nFROM scratch\n",
	"go.work":          "go 1.26.7\n\nuse (\n\t./a\n\t./b\n)\n",
	"a/go.mod":         "module a\n\ngo 1.26.7\n",
	"b/go.mod":         "module b\n\ngo 1.26.8\n",
}

func writeFixture(t *testing.T, edit func(files map[string]string)) string {
	t.Helper()
	files := map[string]string{}
	for k, v := range fixture {
		files[k] = v
	}
	if edit != nil {
		edit(files)
	}
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// replace edits one fixture file, failing the test when old is not there.
func replace(t *testing.T, file, old, new string) func(map[string]string) {
	return func(files map[string]string) {
		if !strings.Contains(files[file], old) {
			t.Fatalf("fixture %s has no %q", file, old)
		}
		files[file] = strings.Replace(files[file], old, new, 1)
	}
}

// addGrafana adds a grafana service to the fixture.
func addGrafana(t *testing.T, profiles, image, readOnly, port string) func(map[string]string) {
	return func(files map[string]string) {
		files["compose.yaml"] += `  grafana:
    profiles: ` + profiles + `
    image: ` + image + `
    volumes:
      - type: bind
        source: ./grafana/provisioning
        target: /etc/grafana/provisioning
        read_only: ` + readOnly + `
    ports:
      - "` + port + `"
`
		files["grafana/provisioning/datasources/sitewatch.yaml"] = "apiVersion: 1\n"
	}
}

// fleet turns the fixture's prober into a fleet prober, with a one-shot
// service that applies the targets file first, as compose.yaml runs it.
func fleet(t *testing.T) func(map[string]string) {
	return func(files map[string]string) {
		replace(t, "compose.yaml", `  prober:
    build: {context: ., dockerfile: build/Dockerfile}
    command: ["-config", "/etc/sitewatch/targets/${TARGETS_FILE:-targets.yaml}", "-flush-timeout=15s"]
    stop_grace_period: 41s
    volumes:
      - type: bind
        source: ./targets
        target: /etc/sitewatch/targets
        read_only: true
`, `  kafka:
    image: apache/kafka:4.4.0
  registry:
    image: apicurio/apicurio-registry:3.3.3
  targets:
    build: {context: ., dockerfile: build/Dockerfile}
    command: ["targets", "apply", "/etc/sitewatch/targets/${TARGETS_FILE:-targets.yaml}"]
    volumes:
      - type: bind
        source: ./targets
        target: /etc/sitewatch/targets
        read_only: true
    depends_on:
      registry: {condition: service_healthy}
      kafka: {condition: service_healthy}
    restart: "no"
  prober:
    build: {context: ., dockerfile: build/Dockerfile}
    command: ["-fleet", "-region", "local", "-instance", "local-1", "-flush-timeout=15s"]
    stop_grace_period: 41s
    depends_on:
      targets: {condition: service_completed_successfully}
`)(files)
	}
}

// chain applies edits in order.
func chain(edits ...func(map[string]string)) func(map[string]string) {
	return func(files map[string]string) {
		for _, e := range edits {
			e(files)
		}
	}
}

func TestCheck(t *testing.T) {
	const f = "$DIR/compose.yaml: "
	tests := []struct {
		name string
		edit func(map[string]string)
		want []string // one line per defect; $DIR is the fixture's directory
	}{
		{name: "valid"},
		{
			name: "schema: unknown key",
			edit: replace(t, "compose.yaml", "stop_grace_period: 40s", "stop_grace_seconds: 40"),
			want: []string{
				f + "Compose Specification schema: services.recorder additional properties 'stop_grace_seconds' not allowed",
				f + "compose-go loader: validating $DIR/compose.yaml: services.recorder additional properties 'stop_grace_seconds' not allowed",
			},
		},
		{
			name: "loader: depends_on a service that does not exist",
			edit: replace(t, "compose.yaml", "depends_on: [postgres]", "depends_on: [kafka]"),
			want: []string{f + `compose-go loader: service "recorder" depends on undefined service "kafka": invalid compose project`},
		},
		{
			name: "postgres healthcheck over the socket",
			edit: replace(t, "compose.yaml", "pg_isready -h 127.0.0.1 -U postgres", "pg_isready -U postgres"),
			want: []string{f + `services.postgres.healthcheck.test: "CMD-SHELL pg_isready -U postgres": want pg_isready -h 127.0.0.1 (over TCP: on a fresh volume the socket answers before TCP does)`},
		},
		{
			name: "targets file mounted as a single file",
			edit: func(files map[string]string) {
				replace(t, "compose.yaml", "source: ./targets\n        target: /etc/sitewatch/targets\n",
					"source: ./targets/targets.yaml\n        target: /etc/sitewatch/targets/targets.yaml\n")(files)
			},
			want: []string{f + "services.prober.volumes: $DIR/targets/targets.yaml is mounted as a single file at /etc/sitewatch/targets/targets.yaml: an editor's rename-save replaces the file, and the container keeps the old one; mount its directory"},
		},
		{
			name: "-config outside every mount",
			edit: replace(t, "compose.yaml", "/etc/sitewatch/targets/${TARGETS_FILE:-targets.yaml}", "/srv/targets.yaml"),
			want: []string{f + "services.prober.volumes: no bind mount holds -config /srv/targets.yaml"},
		},
		{
			name: "prober stop_grace_period equal to its shutdown time",
			edit: replace(t, "compose.yaml", "stop_grace_period: 41s", "stop_grace_period: 40s"),
			want: []string{f + "services.prober.stop_grace_period: 40s does not exceed the prober's shutdown time 40s (the longest target timeout 20s + -flush-timeout 15s + 5s for the metrics listener); after it, SIGKILL loses what is in hand"},
		},
		{
			name: "recorder with Compose's default stop_grace_period",
			edit: replace(t, "compose.yaml", "    stop_grace_period: 40s\n", ""),
			want: []string{f + "services.recorder.stop_grace_period: 10s does not exceed the recorder's shutdown time 35s (-shutdown-grace 30s + 5s for the metrics listener); after it, SIGKILL loses what is in hand"},
		},
		{
			name: "recorder without -shutdown-grace",
			edit: replace(t, "compose.yaml", `, "-shutdown-grace", "30s"`, ""),
			want: []string{f + "services.recorder.command: no -shutdown-grace: set it, so that stop_grace_period can be checked against it"},
		},
		{
			name: "a target without any timeout",
			edit: replace(t, "targets/targets.yaml", "defaults:\n  timeout: 10s\n", ""),
			want: []string{f + `services.prober.command: -config /etc/sitewatch/targets/targets.yaml: target "a" has no timeout and the file no defaults.timeout: set one, so that stop_grace_period can be checked against it`},
		},
		{
			name: "grafana as the repository runs it",
			edit: addGrafana(t, "[grafana]", "grafana/grafana:13.1.0", "true", "127.0.0.1:3000:3000"),
		},
		{
			name: "grafana without its profile, floating, writable, on every address",
			edit: addGrafana(t, "[app]", "grafana/grafana:latest", "false", "3000:3000"),
			want: []string{
				f + `services.grafana.profiles: ["app"]: want the profile grafana, so that only ` + "`docker compose --profile grafana`" + ` starts it`,
				f + `services.grafana.image: "grafana/grafana:latest" is not pinned to a full version (such as grafana/grafana:13.1.0)`,
				f + "services.grafana.volumes: $DIR/grafana/provisioning is mounted writable at /etc/grafana/provisioning: mount provisioning read_only, the files are the source",
				f + `services.grafana.ports: 3000:3000 published on "": publish on 127.0.0.1 (the first login is admin/admin)`,
			},
		},
		{
			name: "grafana provisioning that does not exist",
			edit: func(files map[string]string) {
				addGrafana(t, "[grafana]", "grafana/grafana:13.1.0", "true", "127.0.0.1:3000:3000")(files)
				delete(files, "grafana/provisioning/datasources/sitewatch.yaml")
			},
			want: []string{f + "services.grafana.volumes: stat $DIR/grafana/provisioning: no such file or directory"},
		},
		{
			name: "floating golang tag",
			edit: replace(t, "build/Dockerfile", "golang:1.26.8 AS", "golang:1.26 AS"),
			want: []string{f + "services.prober.build: build/Dockerfile:2: golang:1.26 is not pinned to a full Go version (such as golang:1.26.8)"},
		},
		{
			name: "golang image below a module's go directive",
			edit: replace(t, "build/Dockerfile", "golang:1.26.8 AS", "golang:1.26.7-bookworm AS"),
			want: []string{f + "services.prober.build: build/Dockerfile:2: golang:1.26.7-bookworm is below the workspace's go directive 1.26.8"},
		},
		{name: "fleet: valid", edit: fleet(t)},
		{
			name: "fleet: no apply step",
			edit: chain(fleet(t), replace(t, "compose.yaml", "    depends_on:\n      targets: {condition: service_completed_successfully}\n", "")),
			want: []string{f + "services.prober.depends_on: -fleet, but no service it depends on (condition: service_completed_successfully) runs `prober targets apply FILE`: a fleet prober refuses to start before the targets topic exists"},
		},
		{
			name: "fleet: apply step only started",
			edit: chain(fleet(t), replace(t, "compose.yaml", "targets: {condition: service_completed_successfully}", "targets: {condition: service_started}")),
			want: []string{f + "services.prober.depends_on: -fleet, but no service it depends on (condition: service_completed_successfully) runs `prober targets apply FILE`: a fleet prober refuses to start before the targets topic exists"},
		},
		{
			name: "fleet: without -region and -instance, with -config",
			edit: chain(fleet(t), replace(t, "compose.yaml", `"-region", "local", "-instance", "local-1"`, `"-config", "/t.yaml"`)),
			want: []string{f + "services.prober.command: -config and -fleet: the prober refuses both"},
		},
		{
			name: "fleet: without -instance",
			edit: chain(fleet(t), replace(t, "compose.yaml", `, "-instance", "local-1"`, "")),
			want: []string{f + "services.prober.command: -fleet without -instance"},
		},
		{
			name: "fleet: apply before kafka is healthy, restarted",
			edit: chain(fleet(t), replace(t, "compose.yaml", "kafka: {condition: service_healthy}\n    restart: \"no\"", "kafka: {condition: service_started}\n    restart: on-failure")),
			want: []string{
				f + "services.targets.depends_on: kafka: want condition service_healthy (apply publishes to Kafka, registering the schema)",
				f + `services.targets.restart: "on-failure": want "no" (a one-shot step; restarted, it would apply the file in a loop)`,
			},
		},
		{
			name: "fleet: applied file mounted as a single file",
			edit: chain(fleet(t), replace(t, "compose.yaml", "source: ./targets\n        target: /etc/sitewatch/targets\n",
				"source: ./targets/targets.yaml\n        target: /etc/sitewatch/targets/targets.yaml\n")),
			want: []string{f + "services.targets.volumes: $DIR/targets/targets.yaml is mounted as a single file at /etc/sitewatch/targets/targets.yaml: an editor's rename-save replaces the file, and the container keeps the old one; mount its directory"},
		},
		{
			name: "fleet: stop_grace_period from the applied file's timeouts",
			edit: chain(fleet(t), replace(t, "targets/targets.yaml", "timeout: 20s", "timeout: 21s")),
			want: []string{f + "services.prober.stop_grace_period: 41s does not exceed the prober's shutdown time 41s (the longest target timeout 21s + -flush-timeout 15s + 5s for the metrics listener); after it, SIGKILL loses what is in hand"},
		},
		{
			name: "fleet: applied file without timeouts",
			edit: chain(fleet(t), replace(t, "targets/targets.yaml", "defaults:\n  timeout: 10s\n", "")),
			want: []string{f + `services.targets.command: targets apply /etc/sitewatch/targets/targets.yaml: target "a" has no timeout and the file no defaults.timeout: set one, so that stop_grace_period can be checked against it`},
		},
		{
			name: "prober in neither mode",
			edit: replace(t, "compose.yaml", `"-config", "/etc/sitewatch/targets/${TARGETS_FILE:-targets.yaml}", `, ""),
			want: []string{f + "services.prober.command: neither -config (file mode) nor -fleet (fleet mode)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFixture(t, tt.edit)
			errs := check(context.Background(), filepath.Join(dir, "compose.yaml"))
			var got []string
			for _, err := range errs {
				got = append(got, strings.ReplaceAll(err.Error(), dir, "$DIR"))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// The repository's own compose.yaml passes.
func TestRepositoryComposeFile(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"-f", "../../compose.yaml"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if want := "../../compose.yaml: valid (Compose Specification schema, compose-go loader, sitewatch's rules)\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
}

func TestHasFlag(t *testing.T) {
	for _, tt := range []struct {
		cmd  []string
		want bool
	}{
		{[]string{"-fleet"}, true},
		{[]string{"-region", "a", "--fleet"}, true},
		{[]string{"-fleet=true"}, true},
		{[]string{"-fleet=false"}, false},
		{[]string{"fleet"}, false},
		{[]string{"-fleets"}, false},
	} {
		if got := hasFlag(tt.cmd, "fleet"); got != tt.want {
			t.Errorf("hasFlag(%q) = %v, want %v", tt.cmd, got, tt.want)
		}
	}
}

func TestFlagValue(t *testing.T) {
	tests := []struct {
		cmd   []string
		value string
		ok    bool
	}{
		{[]string{"-config", "a.yaml"}, "a.yaml", true},
		{[]string{"--config", "a.yaml"}, "a.yaml", true},
		{[]string{"-config=a.yaml"}, "a.yaml", true},
		{[]string{"-listen", ":1", "-config"}, "", false},
		{[]string{"config", "a.yaml"}, "", false},
		{[]string{"-configs", "a.yaml"}, "", false},
	}
	for _, tt := range tests {
		v, ok := flagValue(tt.cmd, "config")
		if v != tt.value || ok != tt.ok {
			t.Errorf("flagValue(%q) = %q, %v; want %q, %v", tt.cmd, v, ok, tt.value, tt.ok)
		}
	}
}
