package main

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestParseList(t *testing.T) {
	out := "github.com/a/x v1.2.0\n" +
		"github.com/a/x v1.2.0\n" + // one line per package
		"github.com/sitewatch/sitewatch/gen v0.0.0 ../../gen\n" +
		"github.com/sitewatch/sitewatch/services/internal \n" + // a workspace module
		"github.com/b/y v0.3.0 github.com/b/fork\n" + // replaced by another module: compared
		"\n"
	want := map[string]string{"github.com/a/x": "v1.2.0", "github.com/b/y": "v0.3.0"}
	if got := parseList(out); !reflect.DeepEqual(got, want) {
		t.Errorf("parseList = %v, want %v", got, want)
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		name        string
		work, alone map[string]string
		want        []diff
	}{
		{name: "same", work: map[string]string{"a": "v1"}, alone: map[string]string{"a": "v1"}},
		{name: "only the workspace loads it", work: map[string]string{"a": "v1", "tool": "v9"}, alone: map[string]string{"a": "v1"}},
		{
			name:  "raised by the workspace, in path order",
			work:  map[string]string{"z": "v2", "a": "v0.50.0", "same": "v1"},
			alone: map[string]string{"z": "v1", "a": "v0.48.0", "same": "v1"},
			want:  []diff{{path: "a", work: "v0.50.0", alone: "v0.48.0"}, {path: "z", work: "v2", alone: "v1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := compare(tt.work, tt.alone); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("compare = %v, want %v", got, tt.want)
			}
		})
	}
}

// The repository's service modules resolve the same versions both ways.
func TestRepositoryModules(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the workspace")
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"../../services/prober", "../../services/recorder"}, &out); err != nil {
		t.Fatal(err)
	}
	want := "../../services/prober: GOWORK=off resolves the same versions as the workspace\n" +
		"../../services/recorder: GOWORK=off resolves the same versions as the workspace\n"
	if out.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out.String(), want)
	}
}
