package checkevent_test

import (
	"slices"
	"testing"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
	"github.com/sitewatch/sitewatch/services/internal/checkevent"
)

func TestNames(t *testing.T) {
	var got []string
	for _, k := range checkevent.Kinds() {
		got = append(got, checkevent.KindName(k))
	}
	want := []string{"dns", "connect", "tls", "timeout", "http_status", "content_mismatch", "other"}
	if !slices.Equal(got, want) {
		t.Errorf("kinds %q, want %q", got, want)
	}
	for _, tc := range []struct{ got, want string }{
		{checkevent.KindName(sitewatchv1.FailureKind_FAILURE_KIND_UNSPECIFIED), "unspecified"},
		{checkevent.OutcomeName(sitewatchv1.Outcome_OUTCOME_UP), "up"},
		{checkevent.OutcomeName(sitewatchv1.Outcome_OUTCOME_DOWN), "down"},
		{checkevent.OutcomeName(sitewatchv1.Outcome_OUTCOME_UNSPECIFIED), "unspecified"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
