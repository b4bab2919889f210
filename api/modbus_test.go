package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/vatio-energy/vatio/api"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/modbus"
	"github.com/vatio-energy/vatio/store"
)

// modbusOn returns a poller (not polling) and its devices, saved in st,
// config.yaml giving one.
func modbusOn(t *testing.T, st *store.Store) (*modbus.Poller, *modbus.Devices) {
	t.Helper()
	p, err := modbus.New(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	devs, err := modbus.NewDevices(st, []modbus.Spec{{Name: "plant-main", URL: "tcp://127.0.0.1:1502", Profile: "sdm630"}}, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, devs
}

type modbusEntry struct {
	Name      string `json:"name"`
	URL       string `json:"url"`
	Unit      int    `json:"unit"`
	Profile   string `json:"profile"`
	Interval  string `json:"interval"`
	Source    string `json:"source"`
	SavedBy   string `json:"saved_by"`
	Problem   string `json:"problem"`
	Registers []struct {
		Address  int    `json:"address"`
		Quantity string `json:"quantity"`
	} `json:"registers"`
}

// TestModbusDevicesAPI adds, changes, lists and deletes Modbus devices
// through the API, as an admin: config.yaml's stays read-only, bad bodies
// are refused saying why, the poller polls what is saved, and each change
// is in the audit log.
func TestModbusDevicesAPI(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p, devs := modbusOn(t, st)
	h, tokens, _, _ := securedOn(t, st, api.Options{Modbus: p, ModbusDevices: devs})
	admin := tokens[auth.Admin]

	body := `{"url": "tcp://192.168.1.60:502", "unit": 3, "profile": "SDM120", "interval": "2s"}`
	var e modbusEntry
	if code := request(t, h, admin, "PUT", "/api/v1/modbus/devices/press", body, &e); code != http.StatusCreated ||
		e.Name != "press" || e.Source != "database" || e.SavedBy != "token:admin token" || e.Profile != "sdm120" || e.Interval != "2s" {
		t.Fatalf("PUT press: %d %+v", code, e)
	}
	if code := request(t, h, admin, "PUT", "/api/v1/modbus/devices/press", strings.Replace(body, `"2s"`, `"10s"`, 1), &e); code != http.StatusOK || e.Interval != "10s" {
		t.Fatalf("PUT press again: %d %+v", code, e)
	}
	if st := p.Status(); len(st) != 2 || st[1].Name != "press" || st[1].Unit != 3 || st[1].Profile != "sdm120" {
		t.Fatalf("the poller's devices: %+v", st)
	}
	// Any other meter, by its registers.
	regs := `{"url": "rtu:///dev/ttyUSB0", "unit": 7, "speed": 19200, "parity": "even", "registers": [
		{"function": "holding", "address": 100, "type": "int32", "word_order": "low_first", "scale": 0.1, "quantity": "power_w"},
		{"function": "holding", "address": 200, "type": "uint32", "scale": 1000, "quantity": "import_wh"}]}`
	if code := request(t, h, admin, "PUT", "/api/v1/modbus/devices/boiler", regs, &e); code != http.StatusCreated || len(e.Registers) != 2 || e.Registers[1].Quantity != "import_wh" {
		t.Fatalf("PUT boiler: %d %+v", code, e)
	}

	var list struct {
		Devices  []modbusEntry `json:"devices"`
		Profiles []string      `json:"profiles"`
	}
	if code := request(t, h, tokens[auth.Viewer], "GET", "/api/v1/modbus/devices", "", &list); code != 200 || len(list.Devices) != 3 ||
		list.Devices[0].Source != "config" || list.Devices[1].Name != "boiler" || list.Devices[2].Name != "press" || len(list.Profiles) < 9 {
		t.Fatalf("GET /api/v1/modbus/devices: %d %+v", code, list)
	}
	if code := request(t, h, tokens[auth.Viewer], "GET", "/api/v1/modbus/devices/boiler", "", &e); code != 200 || e.Unit != 7 {
		t.Errorf("GET boiler: %d %+v", code, e)
	}

	type errorAnswer struct {
		Error  string `json:"error"`
		Detail string `json:"detail"`
	}
	for _, c := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"plant-main", body, http.StatusConflict, "config.yaml"},
		{"press2", `{"url": "tcp://192.168.1.60:502", "unit": 3, "profile": "sdm630"}`, http.StatusBadRequest, `unit 3 on tcp://192.168.1.60:502 is device "press"'s`},
		{"x", `{"url": "http://example.com", "profile": "sdm630"}`, http.StatusBadRequest, `url "http://example.com"`},
		{"x", `{"url": "tcp://h:502", "profile": "sdm9999"}`, http.StatusBadRequest, `profile "sdm9999": use one of`},
		{"x", `{"url": "tcp://h:502"}`, http.StatusBadRequest, "give a profile"},
		{"x", `{"url": "tcp://h:502", "profile": "sdm630", "interval": "1ms"}`, http.StatusBadRequest, "interval 1ms"},
		{"x", `{"url": "tcp://h:502", "profile": "sdm630", "interval": 5}`, http.StatusBadRequest, "a duration is a string"},
		{"x", `{"url": "tcp://h:502", "profile": "sdm630", "colour": "red"}`, http.StatusBadRequest, `unknown field "colour"`},
		{"x", `{"name": "y", "url": "tcp://h:502", "profile": "sdm630"}`, http.StatusBadRequest, "the body's name is not the path's"},
		{"x", `{"url": "tcp://h:502", "unit": 300, "profile": "sdm630"}`, http.StatusBadRequest, "unit 300"},
		{"x", `{"url": "tcp://h:502", "registers": [{"function": "holding", "address": 1, "type": "int16", "quantity": "voltage_v"}]}`, http.StatusBadRequest, "no register of power_w"},
		{"x:L1", `{"url": "tcp://h:502", "profile": "sdm630"}`, http.StatusBadRequest, "name"},
		{"boiler2", `{"url": "rtu:///dev/ttyUSB0", "unit": 8, "speed": 9600, "profile": "sdm630"}`, http.StatusBadRequest, "a line has one speed"},
	} {
		var a errorAnswer
		code := request(t, h, admin, "PUT", "/api/v1/modbus/devices/"+c.name, c.body, &a)
		if code != c.code || !strings.Contains(a.Error+" "+a.Detail, c.want) {
			t.Errorf("PUT %s %s: %d %+v, want %d saying %q", c.name, c.body, code, a, c.code, c.want)
		}
	}
	if len(p.Status()) != 3 {
		t.Errorf("refused devices changed the poller's: %+v", p.Status())
	}

	if code := request(t, h, admin, "DELETE", "/api/v1/modbus/devices/plant-main", "", nil); code != http.StatusConflict {
		t.Errorf("DELETE config.yaml's device: %d, want 409", code)
	}
	if code := request(t, h, admin, "DELETE", "/api/v1/modbus/devices/press", "", nil); code != http.StatusNoContent {
		t.Errorf("DELETE press: %d, want 204", code)
	}
	if code := request(t, h, admin, "DELETE", "/api/v1/modbus/devices/press", "", nil); code != http.StatusNotFound {
		t.Errorf("DELETE press again: %d, want 404", code)
	}
	if code := request(t, h, admin, "GET", "/api/v1/modbus/devices/press", "", nil); code != http.StatusNotFound {
		t.Errorf("GET press once deleted: %d, want 404", code)
	}
	if len(p.Status()) != 2 {
		t.Errorf("press is still polled: %+v", p.Status())
	}

	var audit struct {
		Entries []struct{ Action, Target, Detail string }
	}
	request(t, h, admin, "GET", "/api/v1/audit", "", &audit)
	notes := map[string]bool{}
	for _, e := range audit.Entries {
		notes[e.Detail] = true
	}
	for _, want := range []string{"modbus device press created: tcp://192.168.1.60:502 unit 3, sdm120",
		"modbus device press saved: tcp://192.168.1.60:502 unit 3, sdm120",
		"modbus device boiler created: rtu:///dev/ttyUSB0 unit 7, 2 registers", "modbus device press deleted"} {
		if !notes[want] {
			t.Errorf("no audit entry %q in %+v", want, audit.Entries)
		}
	}
}
