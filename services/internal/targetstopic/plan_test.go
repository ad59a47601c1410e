package targetstopic

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	sitewatchv1 "github.com/sitewatch/sitewatch/gen/sitewatch/v1"
)

func TestPlan(t *testing.T) {
	tg := func(id, url string, interval time.Duration, regions ...string) *sitewatchv1.Target {
		return &sitewatchv1.Target{Id: id, Url: url, Interval: durationpb.New(interval), Regions: regions}
	}
	st := &State{
		Targets: map[string]*sitewatchv1.Target{
			"same":    tg("same", "http://127.0.0.1/", time.Minute),
			"moved":   tg("moved", "http://127.0.0.1/", time.Minute, "eu-west"),
			"labeled": {Id: "labeled", Labels: map[string]string{"team": "a"}},
			"gone":    tg("gone", "http://127.0.0.1/", time.Minute),
		},
		Bad: map[string]error{"corrupt": errors.New("x"), "corrupt-gone": errors.New("y")},
	}
	want := []*sitewatchv1.Target{
		tg("same", "http://127.0.0.1/", time.Minute),
		tg("moved", "http://127.0.0.1/2", 30*time.Second, "eu-west", "us-east"),
		{Id: "labeled", Labels: map[string]string{"team": "b"}},
		tg("corrupt", "http://127.0.0.1/", time.Minute),
		tg("new", "http://127.0.0.1/", time.Minute),
	}
	got := NewPlan(want, st).String()
	const plan = "+ new\n" +
		"~ corrupt (unreadable)\n" +
		"~ labeled (labels)\n" +
		"~ moved (url, interval, regions)\n" +
		"- corrupt-gone\n" +
		"- gone\n" +
		"1 to add, 3 to change, 2 to remove\n"
	if got != plan {
		t.Errorf("plan:\n%s\nwant:\n%s", got, plan)
	}
	if p := NewPlan(want[:1], &State{Targets: map[string]*sitewatchv1.Target{"same": tg("same", "http://127.0.0.1/", time.Minute)}}); !p.Empty() {
		t.Errorf("the same targets: plan %s", p)
	}
}
