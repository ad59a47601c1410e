package consume

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
)

// decode takes any record value: it never panics, and what it accepts has
// an event ID, a target and a check time.
func FuzzDecode(f *testing.F) {
	var h sr.ConfluentHeader
	valid, _ := h.AppendEncode(nil, 7, []int{0})
	valid, _ = proto.MarshalOptions{}.MarshalAppend(valid, &sitewatchv1.CheckResult{
		EventId: "e1", Target: &sitewatchv1.Target{Id: "web"}, StartedAt: timestamppb.New(time.Unix(1e9, 0)),
		Outcome: sitewatchv1.Outcome_OUTCOME_DOWN, FailureKind: sitewatchv1.FailureKind_FAILURE_KIND_DNS,
	})
	other, _ := h.AppendEncode(nil, 7, []int{1, 2})
	for _, seed := range [][]byte{valid, other, nil, {0}, {0, 0, 0, 0, 7}, []byte("garbage")} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		ev, err := decode(value)
		if err != nil {
			return
		}
		if ev.EventID == "" || ev.TargetID == "" || ev.CheckedAt.IsZero() {
			t.Errorf("accepted %+v", ev)
		}
	})
}
