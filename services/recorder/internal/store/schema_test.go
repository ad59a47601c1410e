package store_test

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/checkevent"
	"github.com/sitewatch/sitewatch/services/recorder/internal/store"
)

// The migrated schema agrees with the enums of check_result.proto: the
// check constraints of check_results accept exactly the outcome and failure
// kind names, and the hourly rollup and the views over it have a column
// failures_<kind> for exactly the failure kinds. A failure kind added to
// the proto fails here until a migration adds its column and name.
func TestSchemaMatchesTheEnums(t *testing.T) {
	_, conn := openStore(t, store.Config{})
	ctx := context.Background()

	var kinds, failureColumns []string
	for _, k := range checkevent.Kinds() {
		kinds = append(kinds, checkevent.KindName(k))
		failureColumns = append(failureColumns, "failures_"+checkevent.KindName(k))
	}
	outcomes := []string{
		checkevent.OutcomeName(sitewatchv1.Outcome_OUTCOME_UP),
		checkevent.OutcomeName(sitewatchv1.Outcome_OUTCOME_DOWN),
	}

	rows, err := conn.Query(ctx, `SELECT pg_get_constraintdef(oid) FROM pg_constraint
		WHERE conrelid = 'check_results'::regclass AND contype = 'c'`)
	if err != nil {
		t.Fatal(err)
	}
	constraints := map[string][]string{} // column -> the text values it accepts
	quoted := regexp.MustCompile(`'([^']*)'::text`)
	for rows.Next() {
		var def string
		if err := rows.Scan(&def); err != nil {
			t.Fatal(err)
		}
		col, _, _ := strings.Cut(strings.TrimPrefix(def, "CHECK (("), " ")
		for _, m := range quoted.FindAllStringSubmatch(def, -1) {
			constraints[col] = append(constraints[col], m[1])
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for col, want := range map[string][]string{"failure_kind": kinds, "outcome": outcomes} {
		got := slices.Sorted(slices.Values(constraints[col]))
		if want := slices.Sorted(slices.Values(want)); !slices.Equal(got, want) {
			t.Errorf("check constraint of check_results.%s accepts %q, the enum has %q: add a migration", col, got, want)
		}
	}

	for _, rel := range []string{"check_results_hourly", "availability_hourly", "availability_daily"} {
		var got []string
		rows, err := conn.Query(ctx, `SELECT column_name FROM information_schema.columns
			WHERE table_schema = 'public' AND table_name = $1 AND column_name LIKE 'failures\_%'
			ORDER BY ordinal_position`, rel)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				t.Fatal(err)
			}
			got = append(got, c)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(failureColumns))) {
			t.Errorf("%s has the columns %q, the enum's failure kinds want %q: add a migration", rel, got, failureColumns)
		}
	}
}
