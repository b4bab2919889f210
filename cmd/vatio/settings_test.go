package main

import (
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/config"
	"github.com/vatio-energy/vatio/internal/meter"
)

// TestSettingsNameTheKey: what the domain packages refuse when the command
// builds its objects is reported at load time, each naming its key, with
// what config.Validate reports.
func TestSettingsNameTheKey(t *testing.T) {
	cfg := config.Default()
	cfg.Tariff.Currency, cfg.Tariff.PriceKWh = "euro", math.NaN()
	cfg.Tariff.Periods = []config.Period{{Name: "", Days: []string{"funday"}, From: "10", To: "10:00"}, {Name: "x", Days: []string{"all"}, From: "10:00", To: "10:00"}}
	cfg.Tariff.Holidays = []string{"2026-13-01"}
	cfg.Alerts.Rules = []config.Rule{{ID: "quiet", Kind: "silent", Meter: "*", Severity: "info", SilentFor: time.Second}, {ID: "other", Kind: "nope"}}
	cfg.Alerts.Webhook.Body = "{{ .Nope"
	cfg.Inputs = []config.Input{{Name: "gw", Topic: "a/#/b", Format: "json", Unit: "W", Meter: "{1}"}}
	cfg.Shedding = config.Shedding{Enabled: true, Site: "default", CapW: 5000, Every: time.Second,
		Loads: []config.ShedLoad{{Name: "heater", Meter: "../x", Off: config.Action{Topic: "heater/off/#"}, On: config.Action{Topic: "heater/on"}}}}
	cfg.Encryption.Key = "not a key"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() = %v: the config's own checks should pass", err)
	}
	err := checkSettings(cfg)
	for _, key := range []string{"tariff.currency", "tariff.price_kwh", "tariff.periods[0].name", "tariff.periods[0].days", "tariff.periods[0].from", "tariff.periods[1].to", "tariff.holidays[0]",
		"alerts.rules[0].silent_for", "alerts.rules[1].kind", "alerts.webhook.body", "inputs[0].topic",
		"shedding.loads[0].meter", "shedding.loads[0].off", "encryption.key"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("checkSettings() = %v, want it to name %s", err, key)
		}
	}
	if err != nil && strings.Contains(err.Error(), "not a key") {
		t.Errorf("checkSettings() = %v: the error shows the key", err)
	}
	if err := checkSettings(config.Default()); err != nil {
		t.Errorf("checkSettings(Default()) = %v", err)
	}
}

func TestBuildTariff(t *testing.T) {
	cfg := config.Default()
	yaml := `
tariff:
  currency: EUR
  price_kwh: 0.08
  periods:
    - name: punta
      price_kwh: 0.25
      days: [weekdays]
      from: "10:00"
      to: "14:00"
    - name: night
      price_kwh: 0.05
      days: [all]
      from: "22:00"
      to: "06:00"
  holidays: ["2026-12-25"]
`
	if err := config.Parse([]byte(yaml), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tr, err := buildTariff(cfg.Tariff, time.UTC)
	if err != nil || len(tr.Periods) != 2 || tr.Periods[0].From != 600 || len(tr.Periods[0].Days) != 5 || len(tr.Holidays) != 1 {
		t.Fatalf("buildTariff = %+v, %v", tr, err)
	}
	if p := tr.Price(time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)); p != 0.25 {
		t.Errorf("Wednesday 11:00 = %g", p)
	}
	if p := tr.Price(time.Date(2026, 12, 25, 11, 0, 0, 0, time.UTC)); p != 0.08 {
		t.Errorf("Christmas 11:00 = %g, want the base price of a holiday", p)
	}
}

// The configuration's default limits are the meter package's: config
// does not import meter, so this holds them together.
func TestDefaultIngestLimitsAreTheMeters(t *testing.T) {
	if got, want := ingestLimits(config.Default().Ingest), meter.DefaultLimits(); got != want {
		t.Errorf("config.Default() limits = %+v, meter.DefaultLimits() = %+v", got, want)
	}
}

// A config file whose tariff hours are wrong is refused when it is loaded,
// before anything starts, with the key and the file named.
func TestLoadConfigRefusesWhatTheBuildersRefuse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	yml := "tariff:\n  periods:\n    - name: peak\n      price_kwh: 0.3\n      days: [weekdays]\n      from: \"25:00\"\n      to: \"14:00\"\n"
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := loadConfig([]string{"-config", path}, func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "tariff.periods[0].from") || !strings.Contains(err.Error(), path) {
		t.Errorf("loadConfig = %v, want it to refuse tariff.periods[0].from of %s", err, path)
	}
}

// TestConfigErrorsInKeyOrder: the errors of a config file come in the
// order of its keys, one item's together, whichever check found them.
func TestConfigErrorsInKeyOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	yml := `gc_percent: 5
tariff:
  currency: euro
  periods:
    - {name: "", price_kwh: 0.3, days: [funday], from: "25:00", to: "14:00"}
    - {name: night, price_kwh: 0.1, days: [all], from: "22:00", to: "22:00"}
  holidays: ["2026-13-01"]
encryption:
  key: short
`
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := loadConfig([]string{"-config", path}, func(string) string { return "" }, io.Discard)
	if err == nil {
		t.Fatal("loadConfig accepted a config with errors")
	}
	var keys []string
	for _, line := range strings.Split(err.Error(), "\n")[1:] {
		key, _, _ := strings.Cut(line, ":")
		key, _, _ = strings.Cut(key, " ")
		keys = append(keys, key)
	}
	want := []string{"gc_percent", "tariff.currency", "tariff.periods[0].name", "tariff.periods[0].days", "tariff.periods[0].from",
		"tariff.periods[1].to", "tariff.holidays[0]", "encryption.key"}
	if !slices.Equal(keys, want) {
		t.Errorf("errors in the order %q, want %q:\n%v", keys, want, err)
	}
}
