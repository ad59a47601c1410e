package grafana

import (
	"testing"
	"time"
)

func TestExpand(t *testing.T) {
	r := Range{
		From:     time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC),
		To:       time.Date(2026, 11, 30, 10, 0, 0, 500_000_000, time.FixedZone("CET", 3600)),
		Interval: 10 * time.Minute,
	}
	vars := map[string]Var{"target": {Values: []string{"it's"}},
		"targets": {Values: []string{"alpha", "it's"}, Multi: true}, "one": {Values: []string{"alpha"}, Multi: true}}
	tests := []struct {
		name, sql, want, err string
	}{
		{name: "time filter, from and to in UTC with nanoseconds",
			sql:  "WHERE $__timeFilter(hour) AND x < $__timeTo()::timestamptz AND y > $__timeFrom()",
			want: "WHERE hour BETWEEN '2026-11-23T10:00:00Z' AND '2026-11-30T09:00:00.5Z' AND x < '2026-11-30T09:00:00.5Z'::timestamptz AND y > '2026-11-23T10:00:00Z'"},
		{name: "time group with a quoted interval",
			sql:  "SELECT $__timeGroupAlias(hour, '1h'), $__timeGroup( hour ,'5m') FROM t",
			want: `SELECT floor(extract(epoch from hour)/3600)*3600 AS "time", floor(extract(epoch from hour)/300)*300 FROM t`},
		{name: "time group with $__interval and a fill value",
			sql:  "SELECT $__timeGroupAlias(checked_at, $__interval, 0)",
			want: `SELECT floor(extract(epoch from checked_at)/600)*600 AS "time"`},
		{name: "time group followed by a comma takes the alias (before Grafana 5.3)",
			sql:  "SELECT $__timeGroup(hour, 1d), n",
			want: `SELECT floor(extract(epoch from hour)/86400)*86400 AS "time", n`},
		{name: "seconds as Go's %v of a float64",
			sql:  "$__timeGroup(c, 2w) $__timeGroup(c, 500ms)",
			want: "floor(extract(epoch from c)/1.2096e+06)*1.2096e+06 floor(extract(epoch from c)/0.5)*0.5"},
		{name: "interval and epochs",
			sql:  "$__interval_ms $__interval $__unixEpochFrom() $__unixEpochTo() $__unixEpochFilter(e)",
			want: "600000 10m 1795428000 1796029200 e >= 1795428000 AND e <= 1796029200"},
		{name: "time column, epoch, nanoseconds",
			sql:  "$__time(t), $__timeEpoch(t), $__unixEpochNanoFrom(), $__unixEpochGroupAlias(e, 1m)",
			want: `t AS "time", extract(epoch from t) as "time", 1795428000000000000, floor((e)/60)*60 AS "time"`},
		{name: "a single-value variable: its quotes doubled, none added",
			sql:  "WHERE target_id = '$target' OR target_id = '${target}'",
			want: "WHERE target_id = 'it''s' OR target_id = 'it''s'"},
		{name: "a multi-value or include-all variable: each value quoted, joined by commas",
			sql:  "WHERE target_id IN ($targets) OR target_id IN (${one})",
			want: "WHERE target_id IN ('alpha','it''s') OR target_id IN ('alpha')"},
		{name: "a multi-value variable written in quotes as a single one is: broken SQL, as in Grafana",
			sql:  "WHERE target_id = '$one'",
			want: "WHERE target_id = ''alpha''"},
		{name: "unknown macro", sql: "WHERE $__timeFilterr(hour)", err: "$__timeFilterr: unknown macro"},
		{name: "macro without its column", sql: "WHERE $__timeFilter()", err: "$__timeFilter: missing time column argument"},
		{name: "time group without an interval", sql: "$__timeGroup(hour)", err: "$__timeGroup(hour): want a time column, an interval and an optional fill value"},
		{name: "time group with a bad interval", sql: "$__timeGroup(hour, '1 hour')", err: `$__timeGroup: interval "1 hour": want a whole number and one of ms, s, m, h, d, w`},
		{name: "unknown variable", sql: "WHERE target_id = '$region'", err: "$region: unknown template variable or macro"},
		{name: "unknown variable in braces", sql: "WHERE target_id = '${region}'", err: "${region}: unknown template variable or macro"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Expand(tt.sql, r, vars)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("Expand(%q) error %v, want %q", tt.sql, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Expand(%q): %v", tt.sql, err)
			}
			if got != tt.want {
				t.Errorf("Expand(%q)\n got %s\nwant %s", tt.sql, got, tt.want)
			}
		})
	}
}

func TestFormatInterval(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "1ms", 1500 * time.Microsecond: "1ms", 90 * time.Second: "1m", 604800 * time.Millisecond: "10m",
		time.Hour: "1h", 36 * time.Hour: "1d", 400 * 24 * time.Hour: "1y",
	} {
		if got := FormatInterval(d); got != want {
			t.Errorf("FormatInterval(%s) = %q, want %q", d, got, want)
		}
	}
}
