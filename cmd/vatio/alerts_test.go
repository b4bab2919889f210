package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/vatio-energy/vatio/internal/homeassistant"
	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
)

// TestAlertRuleEndToEnd runs Vatio with an alert rule in its config file:
// a reading over the threshold fires an alert that the API and the
// dashboard's alerts page show as active, and a reading back under it
// resolves the alert.
func TestAlertRuleEndToEnd(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	err := os.WriteFile(cfgPath, []byte(`alerts:
  evaluate_every: 1s
  rules:
    - id: kettle-on
      name: Kettle on
      kind: power_above
      meter: kettle
      threshold_w: 1500
      severity: warning
      enabled: true
      actions:
        - {topic: cmnd/kettle/POWER, payload: "OFF"}
        - {url: "http://127.0.0.1:1/hook/s3cret?key=s3cret", payload: "{}"}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	v := startVatioWith(t, t.TempDir(), cfgPath)
	origin := "http://" + v.http
	c := mqtttest.V3(t, v.mqtt)
	mqtttest.Publish3(t, c, "energy/consumption/kettle", 1, false, `{"power_w": 2200}`)
	type alertJSON struct {
		Rule    string `json:"rule"`
		State   string `json:"state"`
		Message string `json:"message"`
	}
	waitAlerts := func(what string, ok func([]alertJSON) bool) []alertJSON {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var body struct{ Alerts []alertJSON }
			getJSON(t, origin+"/api/v1/alerts", &body)
			if ok(body.Alerts) {
				return body.Alerts
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: alerts %+v", what, body.Alerts)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	as := waitAlerts("the rule firing", func(as []alertJSON) bool { return len(as) == 1 && as[0].State == "firing" })
	if as[0].Rule != "kettle-on" || !strings.Contains(as[0].Message, "kettle: power 2.20 kW above 1.50 kW") {
		t.Errorf("alert = %+v", as[0])
	}
	resp, err := apiClient.Get(origin + "/alerts")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	active := string(page)[:strings.Index(string(page), `id="history-heading"`)]
	if !strings.Contains(active, `<span class="badge state-firing">firing</span>`) || !strings.Contains(active, "above 1.50 kW") {
		t.Errorf("the alerts page does not show the firing alert as active:\n%s", page)
	}
	mqtttest.Publish3(t, c, "energy/consumption/kettle", 1, false, `{"power_w": 5}`)
	waitAlerts("the alert resolved", func(as []alertJSON) bool {
		return len(as) == 2 && as[0].State == "resolved" && as[1].State == "resolved"
	})
	var rules struct {
		Rules []struct {
			ID     string   `json:"id"`
			Source string   `json:"source"`
			Firing []string `json:"firing"`
		} `json:"rules"`
	}
	getJSON(t, origin+"/api/v1/rules", &rules)
	if len(rules.Rules) != 1 || rules.Rules[0].Source != "config" || len(rules.Rules[0].Firing) != 0 {
		t.Errorf("rules = %+v", rules.Rules)
	}

	// Every command a rule sent is in the audit log, without the keys of
	// a webhook's URL.
	var audit struct {
		Entries []struct{ Who, Action, Target, Detail string }
	}
	getJSON(t, origin+"/api/v1/audit?limit=1000", &audit)
	var sent, failed bool
	for _, e := range audit.Entries {
		if e.Action != "command" || e.Who != "system" {
			continue
		}
		if strings.Contains(e.Target+e.Detail, "s3cret") {
			t.Errorf("the audit log shows a webhook's key: %+v", e)
		}
		sent = sent || (e.Target == "cmnd/kettle/POWER" && e.Detail == "")
		failed = failed || (e.Target == "webhook http://127.0.0.1:1" && e.Detail != "")
	}
	if !sent || !failed {
		t.Errorf("audit log lacks the rule's commands (sent %v, failed webhook %v): %+v", sent, failed, audit.Entries)
	}
}

// TestAlertsPublishedOverMQTT checks that an alert raised through the
// original POST /api/alert reaches an MQTT subscriber of vatio/alerts/#,
// and that no client but Vatio publishes there.
func TestAlertsPublishedOverMQTT(t *testing.T) {
	v := startVatio(t, t.TempDir())
	got := make(chan *paho.Publish, 4)
	sub := mqtttest.V5(t, v.mqtt, func(p *paho.Publish) { got <- p })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "vatio/alerts/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	resp, err := apiClient.Post("http://"+v.http+"/api/alert", "application/json",
		strings.NewReader(`{"message": "Consumo excesivo en la planta", "severity": "warning", "meter": "plant-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case p := <-got:
		if p.Topic != "vatio/alerts/plant-1" || !strings.Contains(string(p.Payload), `"message":"Consumo excesivo en la planta"`) {
			t.Errorf("got %s %s", p.Topic, p.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no alert on vatio/alerts/plant-1")
	}
	// Automations act on these alerts: a client (trusted for readings)
	// may not forge one.
	if code := mqtttest.Publish5(t, sub, "vatio/alerts/plant-1", 1, `{"message":"forged"}`); code != 0x87 {
		t.Errorf("a client publishing an alert: reason code %#x, want 0x87", code)
	}
	select {
	case p := <-got:
		t.Errorf("a forged alert was delivered: %s %s", p.Topic, p.Payload)
	case <-time.After(500 * time.Millisecond):
	}
}

// TestHomeAssistantDiscovery checks that a meter is announced to Home
// Assistant: retained discovery configs for its power and energy (with
// default_entity_id, no object_id, and available while Vatio and the meter
// both are), Vatio's status and the meter's availability online, and its
// state, received by a real MQTT client subscribing afterwards; and that
// no client but Vatio publishes under the discovery prefix.
func TestHomeAssistantDiscovery(t *testing.T) {
	v := startVatio(t, t.TempDir())
	c := mqtttest.V3(t, v.mqtt)
	mqtttest.Publish3(t, c, "energy/consumption/kitchen:1", 1, false, `{"power_w": 1234.5, "energy_wh": 1000}`)
	oid := homeassistant.ObjectID("kitchen:1")
	if !strings.HasPrefix(oid, "vatio_kitchen_1_") || oid == homeassistant.ObjectID("kitchen_1") {
		t.Errorf("object ids: %s and %s", oid, homeassistant.ObjectID("kitchen_1"))
	}
	got := make(chan *paho.Publish, 16)
	sub := mqtttest.V5(t, v.mqtt, func(p *paho.Publish) { got <- p })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The announcement follows the reading: wait for it on the live topics,
	// then check the retained configs as a newcomer gets them.
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "homeassistant/sensor/" + oid + "/+/config", QoS: 1}, {Topic: "vatio/meters/kitchen:1/+", QoS: 1},
		{Topic: "vatio/meters/status", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	deadline := time.After(10 * time.Second)
	for len(seen) < 5 {
		select {
		case p := <-got:
			seen[p.Topic] = string(p.Payload)
		case <-deadline:
			t.Fatalf("got %v\nvatio logs:\n%s", seen, v.logs)
		}
	}
	power := seen["homeassistant/sensor/"+oid+"/power/config"]
	energy := seen["homeassistant/sensor/"+oid+"/energy/config"]
	avail := `"availability":[{"topic":"vatio/meters/status","payload_available":"online","payload_not_available":"offline"},` +
		`{"topic":"vatio/meters/kitchen:1/availability","payload_available":"online","payload_not_available":"offline"}],"availability_mode":"all"`
	for _, want := range []string{`"device_class":"power"`, `"state_class":"measurement"`, `"unit_of_measurement":"W"`, `"state_topic":"vatio/meters/kitchen:1/state"`,
		`"unique_id":"` + oid + `_power"`, `"default_entity_id":"` + homeassistant.EntityID(oid, "power") + `"`, avail} {
		if !strings.Contains(power, want) {
			t.Errorf("power config lacks %s: %s", want, power)
		}
	}
	for _, want := range []string{`"device_class":"energy"`, `"state_class":"total_increasing"`, `"unit_of_measurement":"kWh"`, `"value_template":"{{ value_json.energy_kwh }}"`, avail} {
		if !strings.Contains(energy, want) {
			t.Errorf("energy config lacks %s: %s", want, energy)
		}
	}
	if strings.Contains(power+energy, "object_id") {
		t.Errorf("object_id, which Home Assistant 2026.4 no longer reads, in %s %s", power, energy)
	}
	if s := seen["vatio/meters/kitchen:1/state"]; !strings.Contains(s, `"power_w":1234.5`) || !strings.Contains(s, `"energy_kwh":0`) {
		t.Errorf("state = %s", s)
	}
	if a, s := seen["vatio/meters/kitchen:1/availability"], seen["vatio/meters/status"]; a != "online" || s != "online" {
		t.Errorf("meter availability %q, Vatio's status %q; want online and online", a, s)
	}
	// Only Vatio publishes under the discovery prefix: a local client
	// (trusted for readings) is refused, but for Home Assistant's status.
	if code := mqtttest.Publish5(t, sub, "homeassistant/sensor/"+oid+"/power/config", 1, ""); code != 0x87 {
		t.Errorf("a client clearing Vatio's config: reason code %#x, want 0x87", code)
	}
	if code := mqtttest.Publish5(t, sub, "homeassistant/status", 1, "online"); code != 0 {
		t.Errorf("Home Assistant's birth: reason code %#x, want 0", code)
	}
	// which makes Vatio announce the meter again (each config was
	// published once before).
	deadline = time.After(10 * time.Second)
	for again := false; !again; {
		select {
		case p := <-got:
			again = p.Topic == "homeassistant/sensor/"+oid+"/power/config" && string(p.Payload) == power
		case <-deadline:
			t.Fatalf("the power config was not published again after Home Assistant's birth\nvatio logs:\n%s", v.logs)
		}
	}
}

// TestLoadSheddingEndToEnd runs Vatio with load shedding: a site over its
// cap gets its load switched off by an MQTT command a real client
// receives, and back on once under the cap.
func TestLoadSheddingEndToEnd(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	err := os.WriteFile(cfgPath, []byte(`shedding:
  enabled: true
  site: default
  cap_w: 5000
  hysteresis_w: 1000
  min_off: 0s
  every: 1s
  loads:
    - name: water-heater
      meter: heater
      off: {topic: cmnd/heater/POWER, payload: "OFF"}
      on: {topic: cmnd/heater/POWER, payload: "ON"}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	v := startVatioWith(t, t.TempDir(), cfgPath)
	got := make(chan *paho.Publish, 4)
	sub := mqtttest.V5(t, v.mqtt, func(p *paho.Publish) { got <- p })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "cmnd/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	c := mqtttest.V3(t, v.mqtt)
	mqtttest.Publish3(t, c, "energy/consumption/main", 1, false, `{"power_w": 7000}`)
	expect := func(payload string) {
		t.Helper()
		select {
		case p := <-got:
			if p.Topic != "cmnd/heater/POWER" || string(p.Payload) != payload {
				t.Errorf("got %s %s, want %s", p.Topic, p.Payload, payload)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s command", payload)
		}
	}
	expect("OFF")
	var st struct {
		Enabled bool `json:"enabled"`
		Status  struct {
			Shed    []string `json:"shed"`
			Actions []struct {
				Action string  `json:"action"`
				SiteW  float64 `json:"site_power_w"`
			} `json:"actions"`
		} `json:"status"`
	}
	getJSON(t, "http://"+v.http+"/api/v1/shedding", &st)
	if !st.Enabled || len(st.Status.Shed) != 1 || len(st.Status.Actions) != 1 || st.Status.Actions[0].SiteW != 7000 {
		t.Errorf("shedding = %+v", st)
	}
	mqtttest.Publish3(t, c, "energy/consumption/main", 1, false, `{"power_w": 1000}`)
	expect("ON")
}

// TestTokenCommand makes a token with vatio token and uses it against a
// Vatio started afterwards on the same data.
func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	var out, errOut strings.Builder
	err := run(context.Background(), []string{"token", "-config", emptyConfig(t), "-data-dir", dir, "-name", "grafana", "-role", "viewer"}, testEnv, &out, &errOut)
	if err != nil {
		t.Fatalf("vatio token: %v\n%s", err, errOut.String())
	}
	tok := strings.TrimSpace(out.String())
	if !strings.HasPrefix(tok, "vat_") || !strings.Contains(errOut.String(), "not shown again") {
		t.Fatalf("printed %q / %q", tok, errOut.String())
	}
	v := startVatio(t, dir)
	req, _ := http.NewRequest(http.MethodGet, "http://"+v.http+"/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"role":"viewer"`) {
		t.Errorf("GET /api/v1/me with the token: %d %s", resp.StatusCode, b)
	}
	req, _ = http.NewRequest(http.MethodPatch, "http://"+v.http+"/api/v1/meters/x", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := apiClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a viewer's PATCH: %v %v", resp.StatusCode, err)
	}
	// Without a token, the API answers 401 and pages go to the setup.
	resp, err = http.DefaultTransport.RoundTrip(mustPlainRequest(t, "http://"+v.http+"/api/v1/meters"))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %v %v", resp.StatusCode, err)
	}
	resp, err = http.DefaultTransport.RoundTrip(mustPlainRequest(t, "http://"+v.http+"/"))
	if err != nil || resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/setup" {
		t.Errorf("a page without a session on a first start: %v %v", resp.Header.Get("Location"), err)
	}
}

func mustPlainRequest(t *testing.T, url string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestDeviceCommandAndCredentials gives a device credentials with vatio
// device add, and the device publishes a reading with them.
func TestDeviceCommandAndCredentials(t *testing.T) {
	dir := t.TempDir()
	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"device", "add", "-config", emptyConfig(t), "-data-dir", dir, "-host", "vatio.lan", "kitchen"}, testEnv, &out, &errOut); err != nil {
		t.Fatalf("vatio device add: %v\n%s", err, errOut.String())
	}
	var password string
	for _, line := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "password: "); ok {
			password = strings.TrimSpace(v)
		}
	}
	if password == "" || !strings.Contains(out.String(), "Host vatio.lan, Port 1883, User kitchen") {
		t.Fatalf("printed:\n%s", out.String())
	}
	// A reserved name, or a topic reaching other devices', is refused;
	// a gateway's own topics are given with -publish.
	for _, args := range [][]string{{"zigbee2mqtt"}, {"-publish", "emon/#", "emonhub"}} {
		err := run(context.Background(), append([]string{"device", "add", "-config", emptyConfig(t), "-data-dir", dir}, args...), testEnv, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "invalid") {
			t.Errorf("vatio device add %v: %v, want it refused", args, err)
		}
	}
	if err := run(context.Background(), []string{"device", "add", "-config", emptyConfig(t), "-data-dir", dir, "-publish", "zigbee2mqtt/#, dsmr/#", "-subscribe", "zigbee2mqtt/#", "z2m"}, testEnv, io.Discard, io.Discard); err != nil {
		t.Errorf("vatio device add -publish ... z2m: %v", err)
	}
	// With an external broker, credentials are that broker's.
	ext := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(ext, []byte("broker:\n  mode: external\n  urls: [\"mqtt://broker.lan:1883\"]\n"), 0o600)
	if err := run(context.Background(), []string{"device", "add", "-config", ext, "-data-dir", t.TempDir(), "oven"}, testEnv, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "external") {
		t.Errorf("vatio device add with an external broker: %v", err)
	}
	v := startVatio(t, dir)
	opts := paho3.NewClientOptions().AddBroker("tcp://" + v.mqtt).SetClientID("kitchen").SetUsername("kitchen").SetPassword(password).SetAutoReconnect(false)
	dev := paho3.NewClient(opts)
	if tok := dev.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	defer dev.Disconnect(50)
	if tok := dev.Publish("energy/consumption/kitchen", 1, false, "1.5"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	var got []legacyReading
	getJSON(t, "http://"+v.http+"/api/energy?meter=kitchen", &got)
	if len(got) != 1 || got[0].Consumption != 1.5 {
		t.Errorf("readings = %+v", got)
	}
}
