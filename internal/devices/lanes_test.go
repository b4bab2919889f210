package devices_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/broker"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/devices"
	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
	"github.com/vatio-energy/vatio/store"
)

// No device is named after a family's prefix, Vatio's own topic levels,
// a configured input's first level, or a Shelly device id: its default
// topics (NAME/#) would cover every device of that family.
func TestReservedNames(t *testing.T) {
	reg := newRegistry(t, devices.WithReserved("factory/+/telemetry", "power/in", "+/wild"))
	for _, tc := range []struct{ name, word string }{
		{"energy", `"energy"`}, {"Tele", `"tele"`}, {"stat", `"stat"`}, {"cmnd", `"cmnd"`}, {"shellies", `"shellies"`},
		{"shellyplus1pm-a8032ab12345", `"shelly"`}, {"ShellyPro3EM", `"shelly"`}, {"emon", `"emon"`},
		{"zigbee2mqtt", `"zigbee2mqtt"`}, {"dsmr", `"dsmr"`}, {"vatio", `"vatio"`}, {"HomeAssistant", `"homeassistant"`},
		{"tasmotas", `"tasmotas"`}, {"factory", `"factory"`}, {"power", `"power"`},
	} {
		_, _, err := reg.Add(tc.name, nil, nil)
		if !errors.Is(err, devices.ErrInvalid) || !strings.Contains(err.Error(), tc.word) {
			t.Errorf("Add(%q) = %v, want devices.ErrInvalid naming %s", tc.name, err, tc.word)
		}
	}
	for _, ok := range []string{"kitchen-plug", "energymeter", "tele2", "wild"} {
		if _, _, err := reg.Add(ok, nil, nil); err != nil {
			t.Errorf("Add(%q) = %v", ok, err)
		}
	}
}

// A device's topic filters may not reach into another device's topics:
// no wildcard where a family's topics name a device, and no filter under
// another device's name. A name a gateway's filters use cannot be taken
// by a new device afterwards.
func TestTopicFiltersStayInTheirLane(t *testing.T) {
	reg := newRegistry(t)
	if _, _, err := reg.Add("plug", nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"#", "+/status", "+", "energy/#", "energy/+/plug", "energy/consumption/#", "energy/consumption/+",
		"tele/+/SENSOR", "tele/#", "stat/+", "cmnd/#", "cmnd/+/POWER", "shellies/+/relay/0/power", "emon/#",
		"tele/plug/SENSOR", "plug/status/switch:0", "shellies/plug/#", "energy/consumption/plug", "plug"} {
		for _, publish := range []bool{true, false} {
			pub, sub := []string{f}, []string(nil)
			if !publish {
				pub, sub = nil, []string{f}
			}
			if _, _, err := reg.Add("gw", pub, sub); !errors.Is(err, devices.ErrInvalid) {
				t.Errorf("Add(gw, publish %v, subscribe %v) = %v, want devices.ErrInvalid", pub, sub, err)
			}
		}
	}
	gw := []string{"factory/+/telemetry", "zigbee2mqtt/#", "homeassistant/status", "vatio/#", "energy/consumption/meter7",
		"energy/consumption", "emon/emontx4/#", "tele/gw/#", "gw/#", "dsmr/#"}
	if _, _, err := reg.Add("gw", gw, []string{"homeassistant/#", "cmnd/gw/#"}); err != nil {
		t.Fatalf("a gateway's own lanes: %v", err)
	}
	for _, claimed := range []string{"emontx4", "meter7", "factory"} {
		_, _, err := reg.Add(claimed, nil, nil)
		if !errors.Is(err, devices.ErrInvalid) || !strings.Contains(err.Error(), `"gw"`) {
			t.Errorf("Add(%q), a name in gw's topics: %v, want devices.ErrInvalid naming gw", claimed, err)
		}
	}
}

// Devices stored before the lane rules keep working as far as the rules
// allow: one with a reserved name is refused at connect, with a log
// line; a filter reaching into other devices' topics is dropped, and the
// device's other topics still work.
func TestStoredDevicesOutOfLane(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	put := func(name, password string, publish []string) {
		v, _ := json.Marshal(devices.Device{Name: name, Hash: auth.HashPassword(password), Publish: publish,
			Subscribe: []string{"cmnd/" + name + "/#"}, Created: time.Now()})
		if err := st.PutDoc("devices", name, v); err != nil {
			t.Fatal(err)
		}
	}
	put("tele", "tele-password", []string{"tele/#"})
	put("emonhub", "emonhub-password", []string{"emon/#", "emon/emontx4/#"})
	var mu sync.Mutex
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	reg, b := startOn(t, st, broker.Options{Addr: "127.0.0.1:0"}, nil, devices.WithLogger(logger))
	addr := b.Addr().String()
	mu.Lock()
	startLogs := logs.String()
	mu.Unlock()
	for _, want := range []string{"device=tele", `filter=emon/#`} {
		if !strings.Contains(startLogs, want) {
			t.Errorf("the start-up logs do not name %s:\n%s", want, startLogs)
		}
	}
	if c, code := connect5ID(t, addr, "t1", "tele", "tele-password"); c != nil || code < 0x80 {
		t.Errorf("a stored device with a reserved name connected (reason code %#x)", code)
	}
	mu.Lock()
	if !strings.Contains(logs.String(), "device refused") {
		t.Errorf("its refusal was not logged:\n%s", logs.String())
	}
	mu.Unlock()
	c, code := connect5ID(t, addr, "e1", "emonhub", "emonhub-password")
	if c == nil {
		t.Fatalf("emonhub: reason code %#x", code)
	}
	if code := mqtttest.Publish5(t, c, "emon/emontx4/P1", 1, "120"); code != 0 {
		t.Errorf("emonhub on its own node's topic: reason code %#x", code)
	}
	if code := mqtttest.Publish5(t, c, "emon/emonpi/P1", 1, "120"); code != 0x87 {
		t.Errorf("emonhub on a topic only its dropped emon/# allowed: reason code %#x, want 0x87", code)
	}
	for _, d := range reg.List() {
		if d.Name == "emonhub" && strings.Join(d.Publish, " ") != "emon/emontx4/#" {
			t.Errorf("emonhub's topics in force: %v, want [emon/emontx4/#]", d.Publish)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// newRegistry returns a device registry on a new store of its own.
func newRegistry(t *testing.T, opts ...devices.Option) *devices.Registry {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg, err := devices.New(st, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}
