package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
)

// TestPowerRuleWaitsEndToEnd publishes over MQTT readings a meter stamped
// every 2 s: a power_above rule with for: 30s does not fire on 28 s of
// readings above its threshold, however many evaluations pass, and fires
// with the reading taken 30 s after the first. The readings carry their
// times, so the test does not wait 30 s.
func TestPowerRuleWaitsEndToEnd(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	err := os.WriteFile(cfgPath, []byte(`alerts:
  evaluate_every: 1s
  rules:
    - {id: hot, kind: power_above, meter: heater, threshold_w: 2000, for: 30s, severity: warning, enabled: true}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	v := startVatioWith(t, t.TempDir(), cfgPath)
	origin := "http://" + v.http
	c := mqtttest.V3(t, v.mqtt)
	t0 := time.Now().Add(-40 * time.Second).UTC().Truncate(time.Second)
	publish := func(i int) {
		ts := t0.Add(time.Duration(2*i) * time.Second).Format(time.RFC3339)
		mqtttest.Publish3(t, c, "energy/consumption/heater", 1, false, fmt.Sprintf(`{"power_w": 2400, "ts": %q}`, ts))
	}
	evaluations := func() int {
		resp, err := apiClient.Get(origin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^vatio_rule_evaluations_total (\d+)`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("no vatio_rule_evaluations_total in /metrics")
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	alerts := func() []struct{ Rule, State, Message string } {
		var body struct {
			Alerts []struct{ Rule, State, Message string }
		}
		getJSON(t, origin+"/api/v1/alerts", &body)
		return body.Alerts
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 15 s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for i := range 15 { // t0 .. t0+28s
		publish(i)
	}
	var heard struct{ Readings int }
	waitFor("15 readings stored", func() bool { getJSON(t, origin+"/api/v1/meters/heater", &heard); return heard.Readings == 15 })
	after := evaluations()
	waitFor("two rounds of evaluation", func() bool { return evaluations() >= after+2 })
	if as := alerts(); len(as) != 0 {
		t.Fatalf("fired on 28 s of readings above the threshold: %+v", as)
	}
	publish(15) // t0+30s
	waitFor("the rule firing", func() bool { as := alerts(); return len(as) == 1 && as[0].State == "firing" })
	if as := alerts(); as[0].Rule != "hot" || as[0].Message != "heater: power 2.40 kW above 2.00 kW for 30 s" {
		t.Errorf("alert = %+v", as[0])
	}
}
