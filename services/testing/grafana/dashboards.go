package grafana

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Dashboard is the part of a dashboard's JSON model that sitewatch checks
// (https://grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/).
type Dashboard struct {
	File       string
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []Panel `json:"panels"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Datasource *DatasourceRef `json:"datasource"`
			Target     *Target        `json:"target"`
		} `json:"list"`
	} `json:"annotations"`
}

// DatasourceRef names a data source by its uid.
type DatasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Panel is a panel, or a row holding panels.
type Panel struct {
	ID            int            `json:"id"`
	Type          string         `json:"type"`
	Title         string         `json:"title"`
	Datasource    *DatasourceRef `json:"datasource"`
	Targets       []Target       `json:"targets"`
	Panels        []Panel        `json:"panels"`
	Interval      string         `json:"interval"`
	MaxDataPoints int            `json:"maxDataPoints"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string         `json:"refId"`
	Datasource *DatasourceRef `json:"datasource"`
	Format     string         `json:"format"`
	RawSQL     string         `json:"rawSql"`
}

// Variable is a template variable; Query is its SQL for type "query".
type Variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *DatasourceRef  `json:"datasource"`
	Query      json.RawMessage `json:"query"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
}

// Query is one SQL text of a dashboard, named for error messages.
type Query struct {
	// Name is "dashboard uid / panel title / refId", or "dashboard uid /
	// variable name".
	Name       string
	Datasource *DatasourceRef
	Format     string
	SQL        string
	// MinInterval is the panel's lower bound of $__interval ("1h"), or "".
	MinInterval   string
	MaxDataPoints int
}

// Load reads every *.json file of dir as a dashboard.
func Load(dir string) ([]Dashboard, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no dashboard (*.json)", dir)
	}
	var out []Dashboard
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var d Dashboard
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		d.File = f
		out = append(out, d)
	}
	return out, nil
}

// Queries lists every SQL text of the dashboard: each panel's targets
// (rows' panels too), each query variable's, each annotation's.
func (d Dashboard) Queries() ([]Query, error) {
	var out []Query
	var walk func(ps []Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				ds := t.Datasource
				if ds == nil {
					ds = p.Datasource
				}
				out = append(out, Query{Name: d.UID + " / " + p.Title + " / " + t.RefID, Datasource: ds, Format: t.Format,
					SQL: t.RawSQL, MinInterval: p.Interval, MaxDataPoints: p.MaxDataPoints})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		// The query of a variable is a string, or an object with rawSql
		// (what the query editor saves since Grafana 10).
		var sql string
		if err := json.Unmarshal(v.Query, &sql); err != nil {
			var t Target
			if err := json.Unmarshal(v.Query, &t); err != nil {
				return nil, fmt.Errorf("%s: variable %s: query: %w", d.File, v.Name, err)
			}
			sql = t.RawSQL
		}
		out = append(out, Query{Name: d.UID + " / $" + v.Name, Datasource: v.Datasource, Format: "table", SQL: sql})
	}
	for i, a := range d.Annotations.List {
		if a.Target != nil && a.Target.RawSQL != "" {
			out = append(out, Query{Name: fmt.Sprintf("%s / annotation %d", d.UID, i), Datasource: a.Datasource, Format: "table", SQL: a.Target.RawSQL})
		}
	}
	return out, nil
}

// RawSQLCount counts the "rawSql" keys anywhere in a JSON document, so a
// test can tell that Queries missed none.
func RawSQLCount(raw []byte) (int, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, err
	}
	n := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "rawSql" {
					n++
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return n, nil
}

// IntervalFor is $__interval for a query over [from, to]: the range over
// the panel's data points (maxDataPoints, else 1000 as a panel about 1000
// pixels wide asks), and at least the panel's min interval, else the data
// source's (timeInterval). Grafana's front end then rounds to a "nice"
// interval; rounding down to whole units (FormatInterval) is what the
// server sees of it either way.
func IntervalFor(q Query, from, to time.Time, dsMin string) (time.Duration, error) {
	points := cmpOr(q.MaxDataPoints, 1000)
	d := to.Sub(from) / time.Duration(points)
	lower := dsMin
	if q.MinInterval != "" {
		lower = strings.TrimPrefix(q.MinInterval, ">")
	}
	if lower != "" {
		m, err := ParseInterval(lower)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", q.Name, err)
		}
		d = max(d, m)
	}
	return d, nil
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// Variables lists the dashboard's template variable names.
// Vars gives each of the dashboard's variables the values of values (a
// variable left out gets none) and Multi from its multi and includeAll
// settings, for Expand.
func (d Dashboard) Vars(values map[string][]string) map[string]Var {
	out := map[string]Var{}
	for _, v := range d.Templating.List {
		out[v.Name] = Var{Values: values[v.Name], Multi: v.Multi || v.IncludeAll}
	}
	return out
}

func (d Dashboard) Variables() []string {
	var out []string
	for _, v := range d.Templating.List {
		out = append(out, v.Name)
	}
	slices.Sort(out)
	return out
}
