package grafana

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Range is what Grafana fills in for a query: the dashboard's time range and
// the panel's interval ($__interval).
type Range struct {
	From, To time.Time
	Interval time.Duration
}

// Var is a template variable's value as a query sees it: its selected
// values, and Multi where the variable is multi-value or has "include all"
// (Grafana then quotes each value itself).
type Var struct {
	Values []string
	Multi  bool
}

// Expand returns sql as Grafana's PostgreSQL data source sends it to the
// server, in Grafana's order:
//
//  1. the dashboard's template variables, $name and ${name}, from vars; a
//     variable that is neither multi-value nor "include all" is written as
//     its value with each ' doubled and no quotes around it, so a query
//     writes '$target'; one that is either is written as each value
//     quoted as a literal, joined by commas, so a query writes
//     IN ($targets) (packages/grafana-sql, SqlDatasource.interpolateVariable);
//  2. the global substitutions of every SQL data source: $__interval_ms,
//     $__interval, $__unixEpochFrom(), $__unixEpochTo() (pkg/tsdb sqleng,
//     Interpolate);
//  3. the PostgreSQL macros, $__name(args), with the expansions of the
//     table "Macros" of
//     https://grafana.com/docs/grafana/latest/datasources/postgres/query-editor/
//     ($__timeFilter(c) is c BETWEEN 'from' AND 'to' in RFC 3339 UTC with
//     nanoseconds, $__timeGroup(c, '5m') is floor(extract(epoch from
//     c)/300)*300, $__timeGroupAlias adds AS "time", ...), without
//     TimescaleDB.
//
// Grafana's own code is AGPL: this is written from the documented
// behaviour, not copied. An unknown macro, a macro with wrong arguments or
// a $name left over (an unknown variable) is an error, as a panel showing
// "macro_error()" would be.
func Expand(sql string, r Range, vars map[string]Var) (string, error) {
	sql = templateVar.ReplaceAllStringFunc(sql, func(m string) string {
		name := strings.Trim(m, "${}")
		v, ok := vars[name]
		if !ok {
			return m
		}
		if !v.Multi {
			return strings.ReplaceAll(strings.Join(v.Values, ","), "'", "''")
		}
		quoted := make([]string, len(v.Values))
		for i, s := range v.Values {
			quoted[i] = "'" + strings.ReplaceAll(s, "'", "''") + "'"
		}
		return strings.Join(quoted, ",")
	})

	sql = strings.ReplaceAll(sql, "$__interval_ms", strconv.FormatInt(r.Interval.Milliseconds(), 10))
	sql = strings.ReplaceAll(sql, "$__interval", FormatInterval(r.Interval))
	sql = strings.ReplaceAll(sql, "$__unixEpochFrom()", strconv.FormatInt(r.From.Unix(), 10))
	sql = strings.ReplaceAll(sql, "$__unixEpochTo()", strconv.FormatInt(r.To.Unix(), 10))

	var errs []error
	var b strings.Builder
	last := 0
	for _, m := range macroCall.FindAllStringSubmatchIndex(sql, -1) {
		b.WriteString(sql[last:m[0]])
		last = m[1]
		name, rawArgs := sql[m[2]:m[3]], sql[m[4]:m[5]]
		// Before Grafana 5.3, $__timeGroup(...) followed by a comma added
		// AS "time" itself; Grafana still reads it that way.
		if name == "__timeGroup" && m[1] < len(sql) && sql[m[1]] == ',' {
			name = "__timeGroupAlias"
		}
		var args []string
		for a := range strings.SplitSeq(rawArgs, ",") {
			args = append(args, strings.TrimSpace(a))
		}
		s, err := macro(name, args, r)
		if err != nil {
			errs = append(errs, err)
			s = "macro_error()"
		}
		b.WriteString(s)
	}
	b.WriteString(sql[last:])
	if len(errs) > 0 {
		return "", errs[0]
	}
	out := b.String()
	if m := leftover.FindString(out); m != "" {
		return "", fmt.Errorf("%s: unknown template variable or macro", m)
	}
	return out, nil
}

var (
	// $name, ${name} (Grafana's variable syntax; [[name]] is deprecated
	// and not used here).
	templateVar = regexp.MustCompile(`\$\{\w+\}|\$\w+`)
	// The macro syntax of Grafana's SQL data sources: arguments up to the
	// first closing parenthesis, so no macro takes a call as argument.
	macroCall = regexp.MustCompile(`\$([_a-zA-Z0-9]+)\(([^)]*)\)`)
	leftover  = regexp.MustCompile(`\$\{?[_a-zA-Z]\w*\}?(\([^)]*\))?`)
)

func macro(name string, args []string, r Range) (string, error) {
	from := r.From.UTC().Format(time.RFC3339Nano)
	to := r.To.UTC().Format(time.RFC3339Nano)
	col := func() (string, error) {
		if len(args) == 0 || args[0] == "" {
			return "", fmt.Errorf("$%s: missing time column argument", name)
		}
		return args[0], nil
	}
	group := func(expr func(c, secs string) string) (string, error) {
		if len(args) < 2 || len(args) > 3 || args[0] == "" {
			return "", fmt.Errorf("$%s(%s): want a time column, an interval and an optional fill value", name, strings.Join(args, ","))
		}
		d, err := ParseInterval(strings.Trim(args[1], "'"))
		if err != nil {
			return "", fmt.Errorf("$%s: %w", name, err)
		}
		// Grafana writes the seconds with Go's %v of a float64.
		return expr(args[0], fmt.Sprintf("%v", d.Seconds())), nil
	}
	switch name {
	case "__time":
		c, err := col()
		return c + ` AS "time"`, err
	case "__timeEpoch":
		c, err := col()
		return `extract(epoch from ` + c + `) as "time"`, err
	case "__timeFilter":
		c, err := col()
		return fmt.Sprintf("%s BETWEEN '%s' AND '%s'", c, from, to), err
	case "__timeFrom":
		return "'" + from + "'", nil
	case "__timeTo":
		return "'" + to + "'", nil
	case "__timeGroup", "__timeGroupAlias":
		s, err := group(func(c, secs string) string { return "floor(extract(epoch from " + c + ")/" + secs + ")*" + secs })
		if name == "__timeGroupAlias" {
			s += ` AS "time"`
		}
		return s, err
	case "__unixEpochFilter":
		c, err := col()
		return fmt.Sprintf("%s >= %d AND %s <= %d", c, r.From.Unix(), c, r.To.Unix()), err
	case "__unixEpochNanoFilter":
		c, err := col()
		return fmt.Sprintf("%s >= %d AND %s <= %d", c, r.From.UnixNano(), c, r.To.UnixNano()), err
	case "__unixEpochNanoFrom":
		return strconv.FormatInt(r.From.UnixNano(), 10), nil
	case "__unixEpochNanoTo":
		return strconv.FormatInt(r.To.UnixNano(), 10), nil
	case "__unixEpochGroup", "__unixEpochGroupAlias":
		s, err := group(func(c, secs string) string { return "floor((" + c + ")/" + secs + ")*" + secs })
		if name == "__unixEpochGroupAlias" {
			s += ` AS "time"`
		}
		return s, err
	}
	return "", fmt.Errorf("$%s: unknown macro", name)
}

var intervalSyntax = regexp.MustCompile(`^(\d+)(ms|s|m|h|d|w)$`)

// ParseInterval reads an interval as Grafana writes them: a whole number and
// one unit of ms, s, m, h, d (24 h) or w (7 d). Grafana's months and years
// are calendar units, which no sitewatch dashboard groups by.
func ParseInterval(s string) (time.Duration, error) {
	m := intervalSyntax.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("interval %q: want a whole number and one of ms, s, m, h, d, w", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("interval %q: want a positive whole number", s)
	}
	unit := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute,
		"h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[2]]
	return time.Duration(n) * unit, nil
}

// FormatInterval writes d as $__interval reads: the largest unit of y
// (365 d), d, h, m, s and ms that d reaches, with the count rounded down
// (grafana-plugin-sdk-go, backend/gtime.FormatInterval).
func FormatInterval(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{365 * 24 * time.Hour, "y"}, {24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d >= u.d {
			return fmt.Sprintf("%d%s", d/u.d, u.name)
		}
	}
	return "1ms"
}
