package homeassistant_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vatio-energy/vatio/internal/homeassistant"
)

// Home Assistant's MQTT sensor discovery schema, as home-assistant/core
// (2025.10 and later, where object_id gave way to default_entity_id; 2026.4
// removed object_id) validates it:
//
//   - homeassistant/components/mqtt/sensor.py: _PLATFORM_SCHEMA_BASE
//     (device_class, expire_after, force_update, last_reset_value_template,
//     name, options, suggested_display_precision, state_class,
//     unit_of_measurement), extended with MQTT_RO_SCHEMA and
//     MQTT_ENTITY_COMMON_SCHEMA; its DISCOVERY_SCHEMA drops unknown keys
//     without a word (vol.REMOVE_EXTRA), so a misspelt key is lost: this
//     test refuses any key it does not know.
//   - homeassistant/components/mqtt/config.py: MQTT_RO_SCHEMA (state_topic
//     required, value_template, qos, encoding).
//   - homeassistant/components/mqtt/schemas.py: MQTT_ENTITY_COMMON_SCHEMA
//     (availability list or availability_topic, exclusive; availability_mode
//     all, any or latest; device, origin, enabled_by_default,
//     entity_category, entity_picture, icon, json_attributes_topic and
//     _template, default_entity_id, unique_id), MQTT_ENTITY_DEVICE_INFO_SCHEMA
//     (at least one identifier or connection) and MQTT_ORIGIN_INFO_SCHEMA
//     (name required).
//   - homeassistant/components/sensor/const.py: DEVICE_CLASS_UNITS and
//     DEVICE_CLASS_STATE_CLASSES for the device classes Vatio uses; a
//     device class not encoded here fails the test until it is.
//   - homeassistant/core.py: VALID_ENTITY_ID, which default_entity_id must
//     match, in the sensor domain.
var (
	haStringKeys = []string{"state_topic", "value_template", "encoding", "name", "device_class", "state_class",
		"unit_of_measurement", "last_reset_value_template", "availability_topic", "availability_template",
		"payload_available", "payload_not_available", "availability_mode", "entity_category", "entity_picture",
		"icon", "json_attributes_topic", "json_attributes_template", "default_entity_id", "unique_id"}
	haOtherKeys       = []string{"qos", "expire_after", "force_update", "options", "suggested_display_precision", "availability", "device", "origin", "enabled_by_default"}
	haAvailabilityKey = []string{"topic", "payload_available", "payload_not_available", "value_template"}
	haDeviceKeys      = []string{"identifiers", "connections", "manufacturer", "model", "model_id", "name", "hw_version",
		"serial_number", "sw_version", "via_device", "suggested_area", "configuration_url"}
	haOriginKeys        = []string{"name", "sw_version", "support_url"}
	haAvailabilityModes = []string{"all", "any", "latest"}
	haStateClasses      = []string{"measurement", "measurement_angle", "total", "total_increasing"}
	// haUnits and haStateClassesOf: sensor/const.py's DEVICE_CLASS_UNITS
	// and DEVICE_CLASS_STATE_CLASSES, for power and energy.
	haUnits = map[string][]string{
		"power":  {"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"},
		"energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal", "Mcal", "Gcal"},
	}
	haStateClassesOf = map[string][]string{
		"power":  {"measurement"},
		"energy": {"total", "total_increasing"},
	}
)

// validEntityID is Home Assistant's VALID_ENTITY_ID
// (^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$), which Go's
// regexp cannot say: two parts of lower case letters, digits and '_', none
// starting or ending with '_', and no "__" after the first character.
func validEntityID(id string) bool {
	domain, object, ok := strings.Cut(id, ".")
	part := func(s string) bool {
		if s == "" || s[0] == '_' || s[len(s)-1] == '_' {
			return false
		}
		for _, r := range s {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
				return false
			}
		}
		return true
	}
	return ok && part(domain) && part(object) && !strings.Contains(id[1:], "__")
}

// validSubscribeTopic is mqtt/util.py's valid_subscribe_topic: a UTF-8
// topic of 1 to 65535 bytes, no NUL, wildcards only as whole levels, '#'
// last.
func validSubscribeTopic(t string) bool {
	if t == "" || len(t) > 65535 || strings.ContainsRune(t, 0) {
		return false
	}
	levels := strings.Split(t, "/")
	for i, l := range levels {
		if strings.ContainsAny(l, "+#") && len(l) != 1 || l == "#" && i != len(levels)-1 {
			return false
		}
	}
	return true
}

// checkSensorConfig returns what Home Assistant would refuse, or lose, in
// the discovery payload of an MQTT sensor.
func checkSensorConfig(payload []byte) []string {
	var cfg map[string]any
	if err := json.Unmarshal(payload, &cfg); err != nil {
		return []string{"not a JSON object: " + err.Error()}
	}
	var bad []string
	fail := func(format string, a ...any) { bad = append(bad, fmt.Sprintf(format, a...)) }
	str := func(m map[string]any, k string) (string, bool) {
		v, ok := m[k]
		if !ok {
			return "", false
		}
		s, isStr := v.(string)
		if !isStr {
			fail("%s: %v is not a string", k, v)
		}
		return s, isStr
	}
	for k := range cfg {
		if k == "object_id" {
			fail("object_id: deprecated in 2025.10, removed in 2026.4; use default_entity_id")
		} else if !slices.Contains(haStringKeys, k) && !slices.Contains(haOtherKeys, k) {
			fail("%s: not a key of the MQTT sensor schema (Home Assistant drops it)", k)
		}
	}
	for _, k := range haStringKeys {
		if k != "name" || cfg[k] != nil { // name may be null
			str(cfg, k)
		}
	}
	if t, ok := str(cfg, "state_topic"); !ok || !validSubscribeTopic(t) {
		fail("state_topic: required, a valid topic; got %q", t)
	}
	if id, ok := str(cfg, "unique_id"); !ok || id == "" {
		fail("unique_id: wanted, so that the entity can be managed from the UI")
	}
	if id, ok := str(cfg, "default_entity_id"); ok && (!validEntityID(id) || !strings.HasPrefix(id, "sensor.")) {
		fail("default_entity_id %q: not a valid entity id of the sensor domain", id)
	}
	if mode, ok := str(cfg, "availability_mode"); ok && !slices.Contains(haAvailabilityModes, mode) {
		fail("availability_mode %q: not one of %v", mode, haAvailabilityModes)
	}
	if _, both := cfg["availability_topic"]; both && cfg["availability"] != nil {
		fail("availability and availability_topic are exclusive")
	}
	if v, ok := cfg["availability"]; ok {
		list, isList := v.([]any)
		if !isList || len(list) == 0 {
			fail("availability: %v is not a list of topics", v)
		}
		for _, e := range list {
			a, isMap := e.(map[string]any)
			if !isMap {
				fail("availability entry %v is not an object", e)
				continue
			}
			for k := range a {
				if !slices.Contains(haAvailabilityKey, k) {
					fail("availability entry key %s: unknown", k)
				}
			}
			for _, k := range haAvailabilityKey {
				str(a, k)
			}
			if t, ok := str(a, "topic"); !ok || !validSubscribeTopic(t) {
				fail("availability entry: topic required and valid, got %q", t)
			}
		}
	}
	if v, ok := cfg["device"]; ok {
		d, isMap := v.(map[string]any)
		if !isMap {
			fail("device: %v is not an object", v)
		} else {
			for k := range d {
				if !slices.Contains(haDeviceKeys, k) {
					fail("device key %s: unknown", k)
				}
			}
			ids, _ := d["identifiers"].([]any)
			for _, id := range ids {
				if _, ok := id.(string); !ok {
					fail("device identifier %v is not a string", id)
				}
			}
			if len(ids) == 0 && d["connections"] == nil {
				fail("device: at least one identifier or connection is required")
			}
		}
	}
	if v, ok := cfg["origin"]; ok {
		o, isMap := v.(map[string]any)
		if !isMap {
			fail("origin: %v is not an object", v)
		} else {
			for k := range o {
				if !slices.Contains(haOriginKeys, k) {
					fail("origin key %s: unknown", k)
				}
			}
			if n, ok := str(o, "name"); !ok || n == "" {
				fail("origin: name is required")
			}
		}
	}
	class, _ := str(cfg, "device_class")
	stateClass, hasStateClass := str(cfg, "state_class")
	unit, hasUnit := str(cfg, "unit_of_measurement")
	if hasStateClass && !slices.Contains(haStateClasses, stateClass) {
		fail("state_class %q: not one of %v", stateClass, haStateClasses)
	}
	if class != "" {
		units, known := haUnits[class]
		if !known {
			fail("device_class %q: not encoded in this test; add its units and state classes from sensor/const.py", class)
		} else {
			if hasUnit && !slices.Contains(units, unit) {
				fail("unit_of_measurement %q: not one of device class %s's %v", unit, class, units)
			}
			if hasStateClass && !slices.Contains(haStateClassesOf[class], stateClass) {
				fail("state_class %q: not one of device class %s's %v", stateClass, class, haStateClassesOf[class])
			}
		}
	}
	return bad
}

// Every discovery payload Vatio publishes, for meters with ids of every
// shape it takes, passes Home Assistant's MQTT sensor schema, and the
// unique ids and entity ids are unique.
func TestDiscoveryMatchesHomeAssistantSchema(t *testing.T) {
	h := start(t, false)
	ids := []string{"kitchen", "Kitchen", "kitchen:1", "kitchen_1", "a-b", "a_b", "Casa.Main-2", "a", "9", strings.Repeat("x", 64), "A__b..c"}
	c, _ := connect5(t, h.addr, "", "")
	w := watch(t, h.addr, "homeassistant/#")
	for i, id := range ids {
		publishReading(t, c, id, float64(i))
	}
	for _, id := range ids {
		for _, kind := range []string{"power", "energy"} {
			w.wait(t, "homeassistant/sensor/"+homeassistant.ObjectID(id)+"/"+kind+"/config", "", 1)
		}
	}
	uniq, entities := map[string]string{}, map[string]string{}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.got {
		if !strings.HasSuffix(p.Topic, "/config") {
			continue
		}
		for _, why := range checkSensorConfig(p.Payload) {
			t.Errorf("%s: %s\n%s", p.Topic, why, p.Payload)
		}
		var cfg struct {
			UniqueID        string `json:"unique_id"`
			DefaultEntityID string `json:"default_entity_id"`
		}
		if err := json.Unmarshal(p.Payload, &cfg); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			seen map[string]string
			id   string
		}{{uniq, cfg.UniqueID}, {entities, cfg.DefaultEntityID}} {
			if other, dup := c.seen[c.id]; dup && other != p.Topic {
				t.Errorf("%s and %s both use %s", other, p.Topic, c.id)
			}
			c.seen[c.id] = p.Topic
		}
	}
	if len(uniq) != 2*len(ids) {
		t.Errorf("%d configs, want %d", len(uniq), 2*len(ids))
	}
}

// The schema check refuses what Home Assistant refuses or loses: it is no
// test if it cannot fail.
func TestSensorSchemaCheckRefuses(t *testing.T) {
	good := `{"name":"Power","unique_id":"u","default_entity_id":"sensor.vatio_x_power","state_topic":"vatio/meters/x/state",
		"value_template":"{{ value_json.power_w }}","unit_of_measurement":"W","device_class":"power","state_class":"measurement",
		"availability":[{"topic":"vatio/meters/status"}],"availability_mode":"all","device":{"identifiers":["vatio_x"],"name":"x"},
		"origin":{"name":"Vatio"}}`
	if bad := checkSensorConfig([]byte(good)); len(bad) != 0 {
		t.Fatalf("a good config refused: %v", bad)
	}
	for _, c := range []struct{ from, to, want string }{
		{`"unique_id":"u"`, `"unique_id":"u","object_id":"vatio_x_power"`, "object_id"},
		{`"unique_id":"u"`, `"unique_id":"u","state_clas":"total"`, "state_clas"},
		{`"state_topic":"vatio/meters/x/state",`, ``, "state_topic"},
		{`"vatio/meters/x/state"`, `"vatio/+x/state"`, "state_topic"},
		{`"sensor.vatio_x_power"`, `"vatio_x_power"`, "default_entity_id"},
		{`"sensor.vatio_x_power"`, `"sensor.Vatio-x"`, "default_entity_id"},
		{`"sensor.vatio_x_power"`, `"sensor.vatio__x"`, "default_entity_id"},
		{`"sensor.vatio_x_power"`, `"light.vatio_x"`, "default_entity_id"},
		{`"availability_mode":"all"`, `"availability_mode":"every"`, "availability_mode"},
		{`[{"topic":"vatio/meters/status"}]`, `[{"payload_available":"up"}]`, "topic"},
		{`"availability_mode":"all"`, `"availability_mode":"all","availability_topic":"a"`, "exclusive"},
		{`"unit_of_measurement":"W"`, `"unit_of_measurement":"kWh"`, "unit_of_measurement"},
		{`"state_class":"measurement"`, `"state_class":"total_increasing"`, "state_class"},
		{`"device_class":"power"`, `"device_class":"wattage"`, "device_class"},
		{`"identifiers":["vatio_x"]`, `"identifiers":[]`, "identifier"},
		{`"origin":{"name":"Vatio"}`, `"origin":{"sw_version":"1"}`, "origin"},
		{`"unique_id":"u"`, `"unique_id":7`, "unique_id"},
	} {
		payload := strings.Replace(good, c.from, c.to, 1)
		bad := checkSensorConfig([]byte(payload))
		if !slices.ContainsFunc(bad, func(s string) bool { return strings.Contains(s, c.want) }) {
			t.Errorf("%s -> %s: got %v, want a complaint about %s", c.from, c.to, bad, c.want)
		}
	}
}

// EntityID gives Home Assistant a valid sensor entity id for any ObjectID.
func TestEntityID(t *testing.T) {
	for _, id := range []string{"kitchen", "kitchen:1", "Casa.Main-2", "__x__", "A__b..c", "9", "-", ":"} {
		oid := homeassistant.ObjectID(id)
		for _, kind := range []string{"power", "energy"} {
			if e := homeassistant.EntityID(oid, kind); !validEntityID(e) || !strings.HasPrefix(e, "sensor.vatio_") || !strings.HasSuffix(e, "_"+kind) {
				t.Errorf("EntityID(%q, %q) = %q", oid, kind, e)
			}
		}
	}
	if got := homeassistant.EntityID(homeassistant.ObjectID("kitchen"), "power"); got != "sensor.vatio_kitchen_power" {
		t.Errorf("kitchen's power: %s", got)
	}
}
