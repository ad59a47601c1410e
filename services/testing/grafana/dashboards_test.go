package grafana

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The repository's deploy/grafana, from this package's directory.
var deployDir = filepath.Join("..", "..", "..", "deploy", "grafana")

// provisioned reads the data source of deploy/grafana/provisioning.
type provisioned struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name     string            `yaml:"name"`
		UID      string            `yaml:"uid"`
		Type     string            `yaml:"type"`
		URL      string            `yaml:"url"`
		User     string            `yaml:"user"`
		JSONData map[string]any    `yaml:"jsonData"`
		Secure   map[string]string `yaml:"secureJsonData"`
	} `yaml:"datasources"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func datasource(t *testing.T) (uid, typ, timeInterval string) {
	t.Helper()
	var p provisioned
	readYAML(t, filepath.Join(deployDir, "provisioning", "datasources", "sitewatch.yaml"), &p)
	if p.APIVersion != 1 || len(p.Datasources) != 1 {
		t.Fatalf("datasources/sitewatch.yaml: apiVersion %d with %d data sources, want 1 with 1", p.APIVersion, len(p.Datasources))
	}
	ds := p.Datasources[0]
	// Every connection setting comes from the environment (compose.yaml).
	for field, v := range map[string]any{"url": ds.URL, "user": ds.User, "jsonData.database": ds.JSONData["database"],
		"jsonData.sslmode": ds.JSONData["sslmode"], "secureJsonData.password": ds.Secure["password"]} {
		if s, _ := v.(string); !regexp.MustCompile(`^\$\{SITEWATCH_GRAFANA_DB_[A-Z]+\}$`).MatchString(s) {
			t.Errorf("datasources/sitewatch.yaml: %s %q, want ${SITEWATCH_GRAFANA_DB_...}", field, v)
		}
	}
	ti, _ := ds.JSONData["timeInterval"].(string)
	return ds.UID, ds.Type, ti
}

// The dashboards are the two the README lists, each panel, query and
// variable on the provisioned data source; every query is found, expands
// and reads the raw table for at most a day.
func TestDashboards(t *testing.T) {
	uid, typ, _ := datasource(t)
	if uid != "sitewatch-pg" || typ != "grafana-postgresql-datasource" {
		t.Errorf("data source uid %q type %q, want sitewatch-pg grafana-postgresql-datasource", uid, typ)
	}
	ds, err := Load(filepath.Join(deployDir, "dashboards"))
	if err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, d := range ds {
		titles = append(titles, d.UID+": "+d.Title)
		checkDashboard(t, d, uid, typ)
	}
	want := []string{"sitewatch-overview: sitewatch overview", "sitewatch-target: sitewatch target detail"}
	if !slices.Equal(titles, want) {
		t.Errorf("dashboards %q, want %q", titles, want)
	}
}

// rawTable is check_results itself, not check_results_hourly and the like.
var rawTable = regexp.MustCompile(`\bcheck_results\b([^_]|$)`)

// The bound every query of the raw table carries (with $__timeFilter).
const dayBound = "checked_at >= $__timeTo()::timestamptz - interval '1 day'"

func checkDashboard(t *testing.T, d Dashboard, dsUID, dsType string) {
	t.Helper()
	base := filepath.Base(d.File)
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: uid %q title %q, want both", base, d.UID, d.Title)
	}
	ids := map[int]bool{}
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Title == "" || p.ID == 0 || ids[p.ID] {
				t.Errorf("%s: panel %d %q: want a unique id and a title", base, p.ID, p.Title)
			}
			ids[p.ID] = true
			if p.Datasource == nil || p.Datasource.UID != dsUID || p.Datasource.Type != dsType {
				t.Errorf("%s: panel %q: datasource %+v, want uid %s type %s", base, p.Title, p.Datasource, dsUID, dsType)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", base, p.Title)
			}
			for _, q := range p.Targets {
				if q.Datasource == nil || q.Datasource.UID != dsUID || q.RefID == "" || q.RawSQL == "" {
					t.Errorf("%s: panel %q query %q: datasource %+v, want uid %s, a refId and rawSql", base, p.Title, q.RefID, q.Datasource, dsUID)
				}
			}
		}
	}
	walk(d.Panels)

	qs, err := d.Queries()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(d.File)
	if err != nil {
		t.Fatal(err)
	}
	n, err := RawSQLCount(raw)
	if err != nil {
		t.Fatal(err)
	}
	stringVars := 0
	for _, v := range d.Templating.List {
		if v.Type == "query" && strings.HasPrefix(string(v.Query), `"`) {
			stringVars++
		}
	}
	if n != len(qs)-stringVars {
		t.Errorf("%s: %d rawSql in the file, %d found by Queries: a query in a place Queries does not read", base, n, len(qs)-stringVars)
	}
	values := map[string][]string{}
	for _, name := range d.Variables() {
		values[name] = []string{"x"}
	}
	vars := d.Vars(values)
	to := time.Now()
	for _, q := range qs {
		if q.Datasource == nil || q.Datasource.UID != dsUID {
			t.Errorf("%s: datasource %+v, want uid %s", q.Name, q.Datasource, dsUID)
		}
		if _, err := Expand(q.SQL, Range{From: to.Add(-time.Hour), To: to, Interval: time.Minute}, vars); err != nil {
			t.Errorf("%s: %v", q.Name, err)
		}
		if rawTable.MatchString(q.SQL) && (!strings.Contains(q.SQL, dayBound) || !strings.Contains(q.SQL, "$__timeFilter(checked_at)")) {
			t.Errorf("%s reads the raw table check_results without $__timeFilter(checked_at) AND %s: use the rollups and views beyond a day", q.Name, dayBound)
		}
	}
}

// compose.yaml mounts the provisioning where Grafana reads it and the
// dashboards where the provider looks.
func TestComposeMounts(t *testing.T) {
	var provider struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(deployDir, "provisioning", "dashboards", "sitewatch.yaml"), &provider)
	if len(provider.Providers) != 1 {
		t.Fatalf("dashboards/sitewatch.yaml: %d providers, want 1", len(provider.Providers))
	}
	var compose struct {
		Services map[string]struct {
			Volumes []any `yaml:"volumes"`
		} `yaml:"services"`
	}
	readYAML(t, filepath.Join("..", "..", "..", "compose.yaml"), &compose)
	mounts := map[string]string{}
	for _, v := range compose.Services["grafana"].Volumes {
		if m, ok := v.(map[string]any); ok {
			mounts[m["target"].(string)] = m["source"].(string)
		}
	}
	want := map[string]string{
		"/etc/grafana/provisioning":        "./deploy/grafana/provisioning",
		provider.Providers[0].Options.Path: "./deploy/grafana/dashboards",
	}
	for target, source := range want {
		if mounts[target] != source {
			t.Errorf("compose.yaml: grafana mounts %q at %s, want %q", mounts[target], target, source)
		}
	}
}
