package outbox_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/sitewatch/sitewatch/services/alerter/internal/notify"
	"github.com/sitewatch/sitewatch/services/alerter/internal/outbox"
	"github.com/sitewatch/sitewatch/services/internal/targets"
	"github.com/sitewatch/sitewatch/services/testing/receivers"
)

// gettableAlert is what GET /api/v2/alerts lists (the fields the test
// reads).
type gettableAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

func alertsOf(t *testing.T, base, incident string) []gettableAlert {
	t.Helper()
	q := url.Values{"filter": {`incident_id="` + incident + `"`}}
	resp, err := http.Get(base + "/api/v2/alerts?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v2/alerts: %s", resp.Status)
	}
	var alerts []gettableAlert
	if err := json.NewDecoder(resp.Body).Decode(&alerts); err != nil {
		t.Fatal(err)
	}
	return alerts
}

// Through the outbox to a real Alertmanager: the opened incident is an
// active alert labelled with its incident ID; once resolved it is gone.
func TestAlertmanagerReceivesAndResolves(t *testing.T) {
	am := receivers.Alertmanager(t)
	pool := database(t)
	s, err := notify.New(targets.Channel{Name: "am", Type: targets.ChannelAlertmanager, URL: targets.NewSecret("", am)}, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	run(t, outbox.New(pool, map[string]notify.Sender{"am": s}, fast("a", nil)))

	enqueue(t, pool, "inc-am", []int{0}, map[string]string{"am": "alertmanager"})
	waitSettled(t, pool, 30*time.Second)
	alerts := alertsOf(t, am, "inc-am")
	if len(alerts) != 1 {
		t.Fatalf("%d alerts with incident_id inc-am, want 1: %+v", len(alerts), alerts)
	}
	a := alerts[0]
	wantLabels := map[string]string{"alertname": "SitewatchDown", "incident_id": "inc-am", "kind": "down",
		"severity": "critical", "target_id": "t-inc-am"}
	if len(a.Labels) != len(wantLabels) || a.Status.State != "active" || !a.StartsAt.Equal(t0) ||
		a.Annotations["summary"] != "t-inc-am is down: connection refused" {
		t.Errorf("alert %+v", a)
	}
	for k, v := range wantLabels {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, a.Labels[k], v)
		}
	}

	// Delivered twice (at least once): still one alert.
	if err := s.Send(context.Background(), notification("inc-am", 0), "again"); err != nil {
		t.Fatal(err)
	}
	if n := len(alertsOf(t, am, "inc-am")); n != 1 {
		t.Errorf("%d alerts after a repeat, want 1", n)
	}

	enqueue(t, pool, "inc-am", []int{1}, map[string]string{"am": "alertmanager"})
	waitSettled(t, pool, 30*time.Second)
	if alerts := alertsOf(t, am, "inc-am"); len(alerts) != 0 {
		t.Errorf("alerts after resolved: %+v", alerts)
	}
}
