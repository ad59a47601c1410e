package checkevent

import (
	"slices"
	"strings"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
)

// MaxTargetID is the longest target ID, in bytes. The prober's targets file
// refuses a longer one and the recorder dead-letters an event with one: the
// ID is indexed, and PostgreSQL refuses a btree entry over about 2.7 KB.
const MaxTargetID = 200

// KindName is failure kind k's name in metric labels and in the database:
// the enum value's name without its FAILURE_KIND_ prefix, in lower case
// (FAILURE_KIND_HTTP_STATUS is "http_status", 0 "unspecified").
func KindName(k sitewatchv1.FailureKind) string {
	return enumName(k.String(), "FAILURE_KIND_")
}

// OutcomeName is outcome o's name in metric labels and in the database:
// OUTCOME_UP is "up", OUTCOME_DOWN "down", 0 "unspecified".
func OutcomeName(o sitewatchv1.Outcome) string {
	return enumName(o.String(), "OUTCOME_")
}

func enumName(name, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(name, prefix))
}

// Kinds lists every failure kind but FAILURE_KIND_UNSPECIFIED, in the
// order of their numbers: the columns failures_<kind> of the hourly rollup
// come in this order.
func Kinds() []sitewatchv1.FailureKind {
	kinds := make([]sitewatchv1.FailureKind, 0, len(sitewatchv1.FailureKind_name))
	for n := range sitewatchv1.FailureKind_name {
		if k := sitewatchv1.FailureKind(n); k != sitewatchv1.FailureKind_FAILURE_KIND_UNSPECIFIED {
			kinds = append(kinds, k)
		}
	}
	slices.Sort(kinds)
	return kinds
}
