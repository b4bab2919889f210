package config

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestDefaultsValidate checks the defaults Vatio starts with when there is
// no config file. What the shipped config.yaml must hold (every key, with a
// comment; not its values, which are the user's) is checked in cmd/vatio by
// TestShippedConfigDocumentsEveryKey.
func TestDefaultsValidate(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

func TestParseErrorsNameTheKey(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"mqtt:\n  adr: \":1\"\n", `line 2: unknown key "mqtt.adr"`},
		{"colour: red\n", `unknown key "colour"`},
		{"mqtt:\n  max_packet_bytes: lots\n", `mqtt.max_packet_bytes: "lots" is not a valid whole number`},
		{"ingest:\n  max_future: soon\n", `ingest.max_future: "soon" is not a valid duration`},
		{"mqtt: 5\n", "mqtt must be a mapping"},
		{"http:\n  addr: [1, 2]\n", "http.addr must be a single value"},
		{"data_dir: a\ndata_dir: b\n", `key "data_dir" is set twice`},
	}
	for _, tt := range tests {
		cfg := Default()
		err := Parse([]byte(tt.yaml), &cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tt.yaml, err, tt.want)
		}
	}
}

func TestParseKeepsDefaultsForMissingKeys(t *testing.T) {
	cfg := Default()
	if err := Parse([]byte("mqtt:\n  addr: 127.0.0.1:1884\ningest:\n  max_future: 1m\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.MQTT.Addr = "127.0.0.1:1884"
	want.Ingest.MaxFuture = time.Minute
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %+v, want %+v", cfg, want)
	}
}

func TestValidateNamesEveryBadKey(t *testing.T) {
	cfg := Default()
	cfg.MQTT.Addr = "1883"
	cfg.Ingest.MinPowerW = 20e6
	cfg.Alerts.Webhook.URL = "ftp://x"
	cfg.Log.Level = "loud"
	cfg.Sources.Tasmota.Prefix = "tele/#"
	cfg.Dashboard.TimeZone = "Mars/Olympus"
	cfg.MQTT.MaxConnectionsPerDevice = -1
	cfg.MQTT.MaxRetainedMessageBytes = 32 << 20 // more than max_retained_bytes
	cfg.Alerts.Rules = []Rule{{ID: "quiet", Kind: "silent", Meter: "*", Severity: "info", SilentFor: time.Second}, {ID: "quiet", Kind: "nope"}}
	cfg.GCPercent = 5
	cfg.Offsite.Enabled = true // without encryption.key
	cfg.Auth.PasswordChecks = -5
	err := cfg.Validate()
	for _, key := range []string{"mqtt.addr", "ingest.min_power_w", "alerts.webhook.url", "log.level", "sources.tasmota.prefix", "dashboard.timezone",
		"mqtt.max_connections_per_device", "mqtt.max_retained_message_bytes", "alerts.rules[1].id", "gc_percent", "offsite.enabled", "auth.password_checks"} {
		if err == nil || !strings.Contains(err.Error(), key+":") {
			t.Errorf("Validate() = %v, want it to name %s", err, key)
		}
	}
}

func TestDashboardTimeZone(t *testing.T) {
	d := Dashboard{TimeZone: "Europe/Madrid"}
	loc, err := d.Location()
	if err != nil || loc.String() != "Europe/Madrid" {
		t.Errorf("Location() = %v, %v", loc, err)
	}
	// The machine's, by its name (TestLocalZone checks which).
	if loc, err := (Dashboard{}).Location(); err != nil || loc.String() == "Local" || loc.String() == "" {
		t.Errorf("empty Location() = %v, %v; want the machine's zone by its IANA name", loc, err)
	}
}

func TestApplyEnv(t *testing.T) {
	env := map[string]string{EnvMQTTAddr: ":1", EnvHTTPAddr: ":2", EnvDataDir: "/d"}
	cfg := Default()
	cfg.ApplyEnv(func(k string) string { return env[k] })
	if cfg.MQTT.Addr != ":1" || cfg.HTTP.Addr != ":2" || cfg.DataDir != "/d" {
		t.Errorf("ApplyEnv: got %+v", cfg)
	}
	// Every variable of Environment sets its key, and only that key: the
	// table the configuration reference prints is the one ApplyEnv reads.
	for _, e := range Environment {
		cfg := Default()
		cfg.ApplyEnv(func(k string) string {
			if k == e.Name {
				return "from-env"
			}
			return ""
		})
		want := Default()
		field(reflect.ValueOf(&want).Elem(), e.Key).SetString("from-env")
		if !reflect.DeepEqual(cfg, want) {
			t.Errorf("%s did not set %s alone", e.Name, e.Key)
		}
	}
}

func TestValidateBackup(t *testing.T) {
	tests := []struct {
		interval time.Duration
		keep     int
		bad      string // the key named in the error, "" for valid
	}{
		{0, 7, ""},
		{time.Minute, 1, ""},
		{24 * time.Hour, 1000, ""},
		{59 * time.Second, 7, "backup.interval"},
		{-time.Hour, 7, "backup.interval"},
		{time.Hour, 0, "backup.keep"},
		{time.Hour, 1001, "backup.keep"},
	}
	for _, tt := range tests {
		cfg := Default()
		cfg.Backup = Backup{Interval: tt.interval, Keep: tt.keep}
		err := cfg.Validate()
		switch {
		case tt.bad == "" && err != nil:
			t.Errorf("Validate(backup interval %s keep %d) = %v, want nil", tt.interval, tt.keep, err)
		case tt.bad != "" && (err == nil || !strings.Contains(err.Error(), tt.bad+":")):
			t.Errorf("Validate(backup interval %s keep %d) = %v, want an error naming %s", tt.interval, tt.keep, err, tt.bad)
		}
	}
}

func TestValidateRetention(t *testing.T) {
	const d = 24 * time.Hour
	tests := []struct {
		retention Retention
		keep      time.Duration
		bad       string // the key named in the error, "" for valid
	}{
		{Retention{Raw: 30 * d, Minute: 365 * d}, 730 * d, ""},
		{Retention{}, 0, ""}, // everything forever
		{Retention{Raw: d, Minute: d, Hourly: d, Daily: d}, d, ""},
		{Retention{Raw: 30 * d}, 0, ""},
		{Retention{Raw: 23 * time.Hour}, 0, "retention.raw"},
		{Retention{Raw: -d}, 0, "retention.raw"},
		{Retention{Raw: 30 * d, Minute: 10 * d}, 0, "retention.minute"},
		{Retention{Minute: 365 * d}, 0, "retention.minute"},
		{Retention{Raw: 30 * d, Hourly: 365 * d}, 0, "retention.hourly"},
		{Retention{Raw: 30 * d, Minute: 365 * d, Hourly: 400 * d, Daily: 300 * d}, 0, "retention.daily"},
		{Retention{Raw: 30 * d}, time.Hour, "archive.keep"},
	}
	for _, tt := range tests {
		cfg := Default()
		cfg.Retention, cfg.Archive.Keep = tt.retention, tt.keep
		err := cfg.Validate()
		switch {
		case tt.bad == "" && err != nil:
			t.Errorf("Validate(retention %+v, archive keep %s) = %v, want nil", tt.retention, tt.keep, err)
		case tt.bad != "" && (err == nil || !strings.Contains(err.Error(), tt.bad+":")):
			t.Errorf("Validate(retention %+v, archive keep %s) = %v, want an error naming %s", tt.retention, tt.keep, err, tt.bad)
		}
	}
}

func TestParseRetention(t *testing.T) {
	cfg := Default()
	if err := Parse([]byte("retention:\n  raw: 2160h\n  hourly: 87600h\narchive:\n  keep: 0s\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Retention.Raw, want.Retention.Hourly, want.Archive.Keep = 90*24*time.Hour, 3650*24*time.Hour, 0
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %+v, want %+v", cfg, want)
	}
	if err := Parse([]byte("retention:\n  raw: 30d\n"), &cfg); err == nil || !strings.Contains(err.Error(), "retention.raw") {
		t.Errorf("Parse(raw: 30d) = %v, want an error naming retention.raw", err)
	}
}

func TestInputsList(t *testing.T) {
	cfg := Default()
	yml := "inputs:\n  - name: gw\n    topic: factory/+/power\n    format: plain\n    unit: kW\n    meter: \"line-{2}\"\n  - name: gw\n    topic: a/#/b\n    format: json\n    unit: W\n    meter: \"{1}\"\n    colour: red\n"
	err := Parse([]byte(yml), &cfg)
	if err == nil || !strings.Contains(err.Error(), `unknown key "inputs[1].colour"`) {
		t.Fatalf("Parse = %v, want the unknown key named with its index", err)
	}
	cfg = Default()
	if err := Parse([]byte(strings.Replace(yml, "    colour: red\n", "", 1)), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Inputs) != 2 || cfg.Inputs[0].Meter != "line-{2}" || cfg.Inputs[0].Unit != "kW" {
		t.Fatalf("inputs = %+v", cfg.Inputs)
	}
	err = cfg.Validate() // the topic is the meter package's to judge (cmd/vatio's TestSettingsNameTheKey)
	for _, key := range []string{"inputs[1].name"} {
		if err == nil || !strings.Contains(err.Error(), key+":") {
			t.Errorf("Validate() = %v, want it to name %s", err, key)
		}
	}
	if err := Parse([]byte("inputs: 5\n"), &cfg); err == nil || !strings.Contains(err.Error(), "inputs must be a list") {
		t.Errorf("inputs: 5 = %v", err)
	}
}

func TestTariff(t *testing.T) {
	cfg := Default()
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
	if err := Parse([]byte(yaml), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Default()
	bad.Tariff = Tariff{Currency: "euro", PriceKWh: math.NaN(), Periods: []Period{{Name: "", Days: []string{"funday"}, From: "10", To: "10:00"}, {Name: "x", Days: []string{"all"}, From: "10:00", To: "10:00"}},
		Holidays: []string{"2026-13-01"}}
	// The whole section is the tariff package's to judge, as it judges a
	// tariff saved on the dashboard (cmd/vatio's TestSettingsNameTheKey).
	if err := bad.Validate(); err != nil {
		t.Errorf("Validate() = %v: the tariff is judged when the command builds it", err)
	}
	cfg = Default()
	if err := Parse([]byte("tariff:\n  holidays: 2026-12-25\n"), &cfg); err == nil || !strings.Contains(err.Error(), "tariff.holidays must be a list") {
		t.Errorf("a date for a list: %v", err)
	}
	if err := Parse([]byte("tariff:\n  periods:\n    - days: [[mon]]\n"), &cfg); err == nil || !strings.Contains(err.Error(), "list of single values") {
		t.Errorf("a nested list: %v", err)
	}
}

func TestValidateStore(t *testing.T) {
	tests := []struct {
		driver, dsn string
		bad         string // the key named in the error, "" for valid
	}{
		{"bbolt", "", ""},
		{"postgres", "postgres://vatio@db.lan:5432/vatio?sslmode=verify-full", ""},
		{"postgres", "host=db.lan user=vatio dbname=vatio", ""},
		{"postgres", "", "store.dsn"},
		{"postgres", "postgres://vatio:secret@db.lan:notaport/vatio", "store.dsn"},
		{"sqlite", "", "store.driver"},
		{"", "", "store.driver"},
	}
	for _, tt := range tests {
		cfg := Default()
		cfg.Store.Driver, cfg.Store.DSN = tt.driver, tt.dsn
		err := cfg.Validate()
		switch {
		case tt.bad == "" && err != nil:
			t.Errorf("Validate(store %q %q) = %v, want nil", tt.driver, tt.dsn, err)
		case tt.bad != "" && (err == nil || !strings.Contains(err.Error(), tt.bad+":")):
			t.Errorf("Validate(store %q %q) = %v, want an error naming %s", tt.driver, tt.dsn, err, tt.bad)
		case err != nil && strings.Contains(err.Error(), "secret"):
			t.Errorf("Validate(store %q) = %v: the error shows the password", tt.dsn, err)
		}
	}
	env := map[string]string{EnvStoreDSN: "postgres://vatio:pw@db/vatio"}
	cfg := Default()
	cfg.ApplyEnv(func(k string) string { return env[k] })
	if cfg.Store.DSN != env[EnvStoreDSN] {
		t.Errorf("%s: store.dsn = %q", EnvStoreDSN, cfg.Store.DSN)
	}
}

// Readings' topics may not lie under Home Assistant's discovery prefix or
// state topic, or the alerts' prefix, where only Vatio may publish: every
// reading would be refused.
func TestHomeAssistantTopicsKeptFromReadings(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func(*Config)
		key  string // "" for none
	}{
		{"state topic above the ingest topic", func(c *Config) { c.HomeAssistant.StateTopic = "energy" }, "ingest.topic"},
		{"input under the discovery prefix", func(c *Config) {
			c.Inputs = []Input{{Name: "x", Topic: "homeassistant/sensor/+/state", Format: "plain"}}
		}, "inputs[0].topic"},
		{"source prefix equal to the state topic", func(c *Config) { c.HomeAssistant.StateTopic = "tele" }, "sources.tasmota.prefix"},
		{"input that only may reach there", func(c *Config) { c.Inputs = []Input{{Name: "x", Topic: "+/SENSOR", Format: "plain"}} }, ""},
		{"Home Assistant off", func(c *Config) { c.HomeAssistant.Enabled = false; c.HomeAssistant.StateTopic = "energy" }, ""},
		{"input under the alerts' prefix", func(c *Config) {
			c.Alerts.MQTT.Enabled = true
			c.Inputs = []Input{{Name: "x", Topic: "vatio/alerts/+", Format: "plain"}}
		}, "inputs[0].topic"},
		{"alerts not sent by MQTT", func(c *Config) {
			c.Alerts.MQTT.Enabled = false
			c.Inputs = []Input{{Name: "x", Topic: "vatio/alerts/+", Format: "plain"}}
		}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Default()
			c.edit(&cfg)
			err := cfg.Validate()
			switch {
			case c.key == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case c.key != "" && (err == nil || !strings.Contains(err.Error(), c.key+":") || !strings.Contains(err.Error(), "only Vatio")):
				t.Errorf("Validate() = %v, want it to name %s", err, c.key)
			}
		})
	}
}

// TestLocalZone names the machine's zone as Go finds it: from TZ, else
// /etc/localtime (a link to its zone file, or a copy of it), else
// /etc/timezone; UTC under any of its names is "UTC".
func TestLocalZone(t *testing.T) {
	zoneinfo := "/usr/share/zoneinfo"
	madrid, err := os.ReadFile(filepath.Join(zoneinfo, "Europe/Madrid"))
	if err != nil {
		t.Skipf("no zoneinfo on this machine: %v", err)
	}
	// A root of its own, with the machine's zone files.
	setup := func(t *testing.T, localtime func(root string) error, timezone string) string {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(root, "usr/share"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(zoneinfo, filepath.Join(root, "usr/share/zoneinfo")); err != nil {
			t.Fatal(err)
		}
		if localtime != nil {
			if err := localtime(root); err != nil {
				t.Fatal(err)
			}
		}
		if timezone != "" {
			if err := os.WriteFile(filepath.Join(root, "etc/timezone"), []byte(timezone+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	link := func(target string) func(string) error {
		return func(root string) error { return os.Symlink(target, filepath.Join(root, "etc/localtime")) }
	}
	tests := []struct {
		name      string
		tz        string
		set       bool
		localtime func(root string) error
		timezone  string
		want      string
	}{
		{name: "TZ", tz: "America/New_York", set: true, localtime: link("/usr/share/zoneinfo/Europe/Madrid"), want: "America/New_York"},
		{name: "TZ with a colon", tz: ":Asia/Tokyo", set: true, want: "Asia/Tokyo"},
		{name: "TZ a path", tz: "/usr/share/zoneinfo/Australia/Sydney", set: true, want: "Australia/Sydney"},
		{name: "TZ empty is UTC", tz: "", set: true, localtime: link("/usr/share/zoneinfo/Europe/Madrid"), want: "UTC"},
		{name: "TZ Etc/UTC", tz: "Etc/UTC", set: true, want: "UTC"},
		{name: "localtime a link", localtime: link("/usr/share/zoneinfo/Europe/Madrid"), timezone: "Asia/Tokyo", want: "Europe/Madrid"},
		{name: "localtime a relative link", localtime: link("../usr/share/zoneinfo/America/Argentina/Buenos_Aires"), want: "America/Argentina/Buenos_Aires"},
		{name: "localtime a link to UTC", localtime: link("/usr/share/zoneinfo/Etc/UTC"), want: "UTC"},
		{name: "timezone file", localtime: func(root string) error {
			return os.WriteFile(filepath.Join(root, "etc/localtime"), []byte("not a zone"), 0o644)
		}, timezone: "Europe/Lisbon", want: "Europe/Lisbon"},
		{name: "localtime a copy", localtime: func(root string) error {
			return os.WriteFile(filepath.Join(root, "etc/localtime"), madrid, 0o644)
		}, want: "Europe/Madrid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := setup(t, tt.localtime, tt.timezone)
			got := LocalZone(tt.tz, tt.set, root)
			if got.String() != tt.want {
				t.Errorf("LocalZone(%q, %v) = %q, want %q", tt.tz, tt.set, got, tt.want)
			}
		})
	}
}
