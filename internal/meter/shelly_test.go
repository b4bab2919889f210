package meter

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestShellyFiles(t *testing.T) {
	tests := []struct {
		file, topic string
		want        []Reading
	}{
		{"plus1pm_switch.json", "shellyplus1pm-abc/status/switch:0", []Reading{
			{Meter: "shellyplus1pm-abc:0", Time: now, PowerW: 25.7, EnergyWh: 913.252, HasEnergy: true}}},
		{"pmmini_pm1.json", "home/pmmini/status/pm1:0", []Reading{
			{Meter: "home_pmmini:0", Time: now, PowerW: 42.3, EnergyWh: 1234.567, HasEnergy: true}}},
		// Three-phase meter: the total only, no counter.
		{"pro3em_em.json", "shellypro3em-a1/status/em:0", []Reading{
			{Meter: "shellypro3em-a1:0", Time: now, PowerW: 790, PowerFactor: 790 / 1310.2, HasPF: true}}},
		// A counter with no power received yet: no reading.
		{"pro3em_emdata.json", "shellypro3em-a1/status/emdata:0", nil},
		{"gen1_energy.txt", "shellies/shelly1pm-ABC123/relay/0/energy", nil},
		{"gen1_power.txt", "shellies/shelly1pm-ABC123/relay/0/power", []Reading{
			{Meter: "shelly1pm-ABC123:0", Time: now, PowerW: 23.45}}},
		// Availability: no reading.
		{"gen2_online.txt", "shellyplus1pm-abc/online", nil},
		{"gen1_offline.txt", "shellies/shelly1pm-ABC123/online", nil},
		// Partial NotifyStatus: stamped with params.ts.
		{"notify_partial.json", "shellyplus1pm-abc/events/rpc", []Reading{
			{Meter: "shellyplus1pm-abc:0", Time: time.Unix(1795600795, 430000000), PowerW: 8.9, Stamped: true}}},
		// A partial update without power: no reading.
		{"notify_aenergy_only.json", "shellyplus1pm-abc/events/rpc", nil},
		// Several components in one update, in component order.
		{"notify_two_components.json", "shellypro2pm-ec62608840a4/events/rpc", []Reading{
			{Meter: "shellypro2pm-ec62608840a4:0", Time: time.Unix(1795600799, 10000000), PowerW: 12, EnergyWh: 55.5, HasEnergy: true, Stamped: true},
			{Meter: "shellypro2pm-ec62608840a4:1", Time: time.Unix(1795600799, 10000000), PowerW: 301.5, Stamped: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			src := NewShelly(DefaultLimits())
			if !src.Match(tt.topic) {
				t.Fatalf("Match(%q) = false", tt.topic)
			}
			got, err := src.Decode(tt.topic, loadPayload(t, "shelly", tt.file), now)
			if err != nil || !sameReadings(got, tt.want) {
				t.Errorf("Decode(%q, %s) = %v, %v; want %v, nil", tt.topic, tt.file, got, err, tt.want)
			}
		})
	}
}

func TestShellyInline(t *testing.T) {
	tests := []struct {
		name, topic, payload string
		want                 []Reading
		reason               Reason
	}{
		{"gen1 power", "shellies/shelly1pm-ABC123/relay/0/power", "23.45",
			[]Reading{{Meter: "shelly1pm-ABC123:0", Time: now, PowerW: 23.45}}, ""},
		{"gen1 power newline", "shellies/shellyplug-s-1/relay/0/power", "0.00\n",
			[]Reading{{Meter: "shellyplug-s-1:0", Time: now, PowerW: 0}}, ""},
		{"gen1 energy", "shellies/shelly1pm-ABC123/relay/0/energy", "81293", nil, ""},
		{"gen1 energy not a number", "shellies/s/relay/0/energy", "81,293", nil, ReasonNotANumber},
		{"gen1 energy negative", "shellies/s/relay/0/energy", "-60", nil, ReasonOutOfRange},
		{"gen1 energy empty", "shellies/s/relay/0/energy", " ", nil, ReasonEmpty},
		{"gen1 energy no usable id", "shellies/%%%/relay/0/energy", "60", nil, ReasonBadMeterID},
		{"emdata string total", "p/status/emdata:0", `{"total_act":"731033.66"}`, nil, ReasonNotANumber},
		{"emdata overflow", "p/status/emdata:0", `{"total_act":1e400}`, nil, ReasonNotFinite},
		{"emdata beyond any meter", "p/status/emdata:0", `{"total_act":1e14}`, nil, ReasonOutOfRange},
		{"emdata without total_act", "p/status/emdata:0", `{"id":0,"a_total_act_energy":1}`, nil, ""},
		{"online junk", "p/online", "maybe", nil, ""},
		{"online too large", "p/online", strings.Repeat("x", DefaultLimits().MaxPayloadBytes+1), nil, ""},
		{"gen1 power not a number", "shellies/s/relay/0/power", "on", nil, ReasonNotANumber},
		{"gen1 power empty", "shellies/s/relay/0/power", "", nil, ReasonEmpty},
		{"gen1 power nan", "shellies/s/relay/0/power", "NaN", nil, ReasonNotFinite},
		{"switch without metering", "shellyplus1-x/status/switch:0", `{"id":0,"source":"button","output":true,"temperature":{"tC":40.1}}`, nil, ""},
		{"switch string apower", "shellyplus1pm-abc/status/switch:0", string(loadPayload(t, "shelly", "string_apower.json")), nil, ReasonNotANumber},
		{"switch string counter", "p/status/switch:0", `{"apower":1,"aenergy":{"total":"9"}}`, nil, ReasonNotANumber},
		{"em string total", "p/status/em:0", `{"total_act_power":"790"}`, nil, ReasonNotANumber},
		{"malformed switch", "p/status/switch:0", `{"apower":`, nil, ReasonBadJSON},
		{"malformed emdata", "p/status/emdata:0", `{"total_act":`, nil, ReasonBadJSON},
		{"malformed rpc", "p/events/rpc", `[`, nil, ReasonBadJSON},
		{"other rpc method", "p/events/rpc", `{"src":"p","method":"NotifyEvent","params":{"ts":1795600795,"events":[{"component":"input:0","event":"single_push"}]}}`, nil, ""},
		{"rpc clock unset", "p/events/rpc", `{"method":"NotifyStatus","params":{"ts":12.5,"pm1:0":{"apower":3}}}`,
			[]Reading{{Meter: "p:0", Time: now, PowerW: 3}}, ""},
		{"rpc without ts", "p/events/rpc", `{"method":"NotifyStatus","params":{"em:0":{"total_act_power":-1500}}}`,
			[]Reading{{Meter: "p:0", Time: now, PowerW: -1500}}, ""},
		{"rpc string apower", "p/events/rpc", `{"method":"NotifyStatus","params":{"switch:0":{"apower":"8.9"}}}`, nil, ReasonNotANumber},
		{"rpc full status", "p/events/rpc", `{"method":"NotifyFullStatus","params":{"ts":1795600790,"switch:0":{"apower":4,"aenergy":{"total":7}},"wifi":{"rssi":-60}}}`,
			[]Reading{{Meter: "p:0", Time: time.Unix(1795600790, 0), PowerW: 4, EnergyWh: 7, HasEnergy: true, Stamped: true}}, ""},
		{"power out of range", "p/status/pm1:0", `{"apower":2e7}`, nil, ReasonOutOfRange},
		{"no usable id", "%%%/status/switch:0", `{"apower":1}`, nil, ReasonBadMeterID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewShelly(DefaultLimits()).Decode(tt.topic, []byte(tt.payload), now)
			if ReasonOf(err) != tt.reason || (err == nil) != (tt.reason == "") || !sameReadings(got, tt.want) {
				t.Errorf("Decode(%q, %q) = %v, %v; want %v, reason %q", tt.topic, tt.payload, got, err, tt.want, tt.reason)
			}
		})
	}
}

func TestShellyMatch(t *testing.T) {
	tests := []struct {
		topic string
		want  bool
	}{
		{"shellyplus1pm-abc/status/switch:0", true},
		{"home/garage/status/pm1:1", true},
		{"shellypro3em-a1/status/em:0", true},
		{"shellypro3em-a1/status/emdata:0", true},
		{"shellyplus1pm-abc/events/rpc", true},
		{"shellies/shelly1pm-ABC123/relay/0/power", true},
		{"shellies/shelly1pm-ABC123/relay/0/energy", true},
		{"shellies/shelly1pm-ABC123/online", true},
		{"shellyplus1pm-abc/online", true},
		{"home/garage/online", true},
		{"/online", false},
		{"shellyplus1pm-abc/online/x", false},
		{"shellies/shelly1pm-ABC123/relay/0", false},
		{"shellies//relay/0/power", false},
		{"shellies/x/relay/a/power", false},
		{"shellyplus1pm-abc/status/sys", false},
		{"shellyplus1pm-abc/status/switch:", false},
		{"shellyplus1pm-abc/status/switch:x", false},
		{"shellyplus1pm-abc/status/input:0", false},
		{"/status/switch:0", false},
		{"/events/rpc", false},
		{"tele/pow1/SENSOR", false},
		{"energy/consumption", false},
	}
	src := NewShelly(DefaultLimits())
	for _, tt := range tests {
		if got := src.Match(tt.topic); got != tt.want {
			t.Errorf("Match(%q) = %v, want %v", tt.topic, got, tt.want)
		}
	}
}

func FuzzShelly(f *testing.F) {
	seeds := []struct{ topic, file string }{
		{"shellyplus1pm-abc/status/switch:0", "plus1pm_switch.json"},
		{"shellyplus1pm-abc/status/pm1:0", "pmmini_pm1.json"},
		{"shellypro3em-a1/status/em:0", "pro3em_em.json"},
		{"shellypro3em-a1/status/emdata:0", "pro3em_emdata.json"},
		{"shellyplus1pm-abc/events/rpc", "notify_partial.json"},
		{"shellyplus1pm-abc/events/rpc", "notify_aenergy_only.json"},
		{"shellypro2pm-1/events/rpc", "notify_two_components.json"},
		{"shellyplus1pm-abc/status/switch:0", "string_apower.json"},
		{"shellypro3em-a1/status/emdata:0", "pro3em_emdata_later.json"},
		{"shellypro3em-a1/events/rpc", "notify_pro3em_em.json"},
		{"shellies/shelly1pm-ABC123/relay/0/power", "gen1_power.txt"},
		{"shellies/shelly1pm-ABC123/relay/0/energy", "gen1_energy.txt"},
		{"shellies/shelly1pm-ABC123/online", "gen1_online.txt"},
		{"shellies/shelly1pm-ABC123/online", "gen1_offline.txt"},
		{"shellyplus1pm-abc/online", "gen2_online.txt"},
		{"home/pm mini/online", "gen2_offline.txt"},
	}
	for _, s := range seeds {
		f.Add(s.topic, loadPayload(f, "shelly", s.file))
	}
	f.Add("shellies/shelly1pm-ABC123/relay/0/energy", []byte("-1"))
	f.Add("shellies/shelly1pm-ABC123/online", []byte("1"))
	f.Add("p/status/emdata:1", []byte(`{"total_act":1e13}`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		// A Source of its own, with the power of the meter a counter
		// topic names already received, so that counters pair.
		src := NewShelly(DefaultLimits())
		if prime, ok := shellyPowerTopic(topic); ok {
			if _, err := src.Decode(prime.topic, []byte(prime.payload), now.Add(-time.Second)); err != nil {
				t.Fatalf("priming %q: %v", prime.topic, err)
			}
		}
		for i := range 2 {
			at := now.Add(time.Duration(i) * time.Second)
			readings, err := src.Decode(topic, payload, at)
			if !src.Match(topic) && err == nil {
				t.Fatalf("Decode(%q) of a topic that does not Match: no error", topic)
			}
			checkSourceOutput(t, src, topic, payload, readings, err)
			checkAvailability(t, src, topic, payload, readings, err)
		}
	})
}

// shellyPowerTopic returns a publish of the power that the counter on
// topic pairs with, if topic is a counter topic with a usable meter id.
func shellyPowerTopic(topic string) (prime struct{ topic, payload string }, ok bool) {
	t, ok := parseShellyTopic(topic)
	if !ok || SubMeterID(t.device, t.channel) == "" {
		return prime, false
	}
	switch t.kind {
	case "energy":
		prime.topic, prime.payload = "shellies/"+t.device+"/relay/"+t.channel+"/power", "100"
	case "emdata":
		prime.topic, prime.payload = t.device+"/status/em:"+t.channel, `{"total_act_power":100}`
	default:
		return prime, false
	}
	return prime, true
}

// shellyStep is one publish to a shelly Source, after a delay since now,
// and the readings it must give or the reason it must be rejected for.
type shellyStep struct {
	after          time.Duration
	topic, payload string
	want           []Reading
	reason         Reason
}

func TestShellyCounters(t *testing.T) {
	const (
		g1Power  = "shellies/shelly1pm-ABC123/relay/0/power"
		g1Energy = "shellies/shelly1pm-ABC123/relay/0/energy"
		g1Meter  = "shelly1pm-ABC123:0"
		em       = "shellypro3em-a1/status/em:0"
		emdata   = "shellypro3em-a1/status/emdata:0"
		rpc      = "shellypro3em-a1/events/rpc"
		emMeter  = "shellypro3em-a1:0"
	)
	file := func(name string) string { return string(loadPayload(t, "shelly", name)) }
	at := func(d time.Duration) time.Time { return now.Add(d) }
	tests := []struct {
		name  string
		steps []shellyStep
	}{
		{"gen1 power then energy", []shellyStep{
			{0, g1Power, file("gen1_power.txt"), []Reading{{Meter: g1Meter, Time: at(0), PowerW: 23.45}}, ""},
			{time.Second, g1Energy, file("gen1_energy.txt"),
				[]Reading{{Meter: g1Meter, Time: at(time.Second), PowerW: 23.45, EnergyWh: 81293.0 / 60, HasEnergy: true}}, ""},
			// Counting now: a power alone is no reading.
			{30 * time.Second, g1Power, "30.5", nil, ""},
			{31 * time.Second, g1Energy, "81300", []Reading{{Meter: g1Meter, Time: at(31 * time.Second), PowerW: 30.5, EnergyWh: 1355, HasEnergy: true}}, ""},
			// The power of 30 s is stale 5 min later.
			{30*time.Second + shellyPowerMaxAge + time.Second, g1Energy, "81400", nil, ""},
			{6 * time.Minute, g1Power, "0", nil, ""},
			{6*time.Minute + time.Second, g1Energy, "81400", []Reading{{Meter: g1Meter, Time: at(6*time.Minute + time.Second), PowerW: 0, EnergyWh: 81400.0 / 60, HasEnergy: true}}, ""},
		}},
		{"gen1 energy before power", []shellyStep{
			{0, g1Energy, "120", nil, ""},
			{time.Second, g1Power, "7", nil, ""},
			{2 * time.Second, g1Energy, "120", []Reading{{Meter: g1Meter, Time: at(2 * time.Second), PowerW: 7, EnergyWh: 2, HasEnergy: true}}, ""},
		}},
		{"gen1 rejected numbers leave nothing behind", []shellyStep{
			{0, g1Energy, "abc", nil, ReasonNotANumber},
			{0, g1Energy, "NaN", nil, ReasonNotFinite},
			{0, g1Energy, "-60", nil, ReasonOutOfRange},
			{0, g1Power, "on", nil, ReasonNotANumber},
			{0, g1Power, "2e7", nil, ReasonOutOfRange},
			// No counter was taken: the power is a reading of its own.
			{time.Second, g1Power, "10", []Reading{{Meter: g1Meter, Time: at(time.Second), PowerW: 10}}, ""},
			{2 * time.Second, g1Energy, "600", []Reading{{Meter: g1Meter, Time: at(2 * time.Second), PowerW: 10, EnergyWh: 10, HasEnergy: true}}, ""},
		}},
		{"gen1 relays are meters of their own", []shellyStep{
			{0, g1Power, "5", []Reading{{Meter: g1Meter, Time: at(0), PowerW: 5}}, ""},
			{0, "shellies/shelly1pm-ABC123/relay/1/energy", "60", nil, ""},
			{time.Second, g1Power, "6", []Reading{{Meter: g1Meter, Time: at(time.Second), PowerW: 6}}, ""},
			{time.Second, "shellies/other/relay/0/energy", "60", nil, ""},
		}},
		{"gen1 odd device id", []shellyStep{
			{0, "shellies/garage plug.2/relay/0/power", "5", []Reading{{Meter: "garage_plug.2:0", Time: at(0), PowerW: 5}}, ""},
			{0, "shellies/garage plug.2/relay/0/energy", "60", []Reading{{Meter: "garage_plug.2:0", Time: at(0), PowerW: 5, EnergyWh: 1, HasEnergy: true}}, ""},
		}},
		{"pro3em em then emdata", []shellyStep{
			{0, em, file("pro3em_em.json"), []Reading{{Meter: emMeter, Time: at(0), PowerW: 790, PowerFactor: 790 / 1310.2, HasPF: true}}, ""},
			{10 * time.Second, emdata, file("pro3em_emdata.json"),
				[]Reading{{Meter: emMeter, Time: at(10 * time.Second), PowerW: 790, EnergyWh: 731033.66, HasEnergy: true}}, ""},
			{60 * time.Second, em, `{"id":0,"total_act_power":-120.5}`, nil, ""},
			// events/rpc em updates the same meter's power.
			{61 * time.Second, rpc, file("notify_pro3em_em.json"), nil, ""},
			{70 * time.Second, emdata, file("pro3em_emdata_later.json"),
				[]Reading{{Meter: emMeter, Time: at(70 * time.Second), PowerW: 800, EnergyWh: 731042.5, HasEnergy: true}}, ""},
			// A rejected update leaves the remembered power as it was.
			{80 * time.Second, rpc, `{"method":"NotifyStatus","params":{"em:0":{"total_act_power":5},"switch:1":{"apower":"x"}}}`, nil, ReasonNotANumber},
			{90 * time.Second, emdata, `{"total_act":731043}`,
				[]Reading{{Meter: emMeter, Time: at(90 * time.Second), PowerW: 800, EnergyWh: 731043, HasEnergy: true}}, ""},
			// Other components of an update are still readings.
			{100 * time.Second, rpc, `{"method":"NotifyStatus","params":{"em:0":{"total_act_power":5},"switch:1":{"apower":3}}}`,
				[]Reading{{Meter: "shellypro3em-a1:1", Time: at(100 * time.Second), PowerW: 3}}, ""},
			{110 * time.Second, emdata, `{"total_act":731044}`,
				[]Reading{{Meter: emMeter, Time: at(110 * time.Second), PowerW: 5, EnergyWh: 731044, HasEnergy: true}}, ""},
		}},
		{"pro3em emdata without total_act does not count", []shellyStep{
			{0, emdata, `{"id":0}`, nil, ""},
			{time.Second, em, `{"total_act_power":1}`, []Reading{{Meter: emMeter, Time: at(time.Second), PowerW: 1}}, ""},
		}},
		{"pro3em stale power", []shellyStep{
			{0, em, `{"total_act_power":1}`, []Reading{{Meter: emMeter, Time: at(0), PowerW: 1}}, ""},
			{shellyPowerMaxAge + time.Second, emdata, file("pro3em_emdata.json"), nil, ""},
			{shellyPowerMaxAge + 2*time.Second, em, `{"total_act_power":2}`, nil, ""},
		}},
		{"pro3em emdata before em", []shellyStep{
			{0, emdata, file("pro3em_emdata.json"), nil, ""},
			{time.Second, em, file("pro3em_em.json"), nil, ""},
			{2 * time.Second, emdata, file("pro3em_emdata.json"),
				[]Reading{{Meter: emMeter, Time: at(2 * time.Second), PowerW: 790, EnergyWh: 731033.66, HasEnergy: true}}, ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runShellySteps(t, NewShelly(DefaultLimits()), tt.steps)
		})
	}
}

func runShellySteps(t *testing.T, src Source, steps []shellyStep) {
	t.Helper()
	for i, st := range steps {
		got, err := src.Decode(st.topic, []byte(st.payload), now.Add(st.after))
		if ReasonOf(err) != st.reason || (err == nil) != (st.reason == "") || !sameReadings(got, st.want) {
			t.Errorf("step %d: Decode(%q, %q) = %v, %v; want %v, reason %q", i, st.topic, truncate(st.payload), got, err, st.want, st.reason)
		}
	}
}

// TestShellyRemembersBoundedMeters checks the real bound: past 10000
// meters, a new meter is decoded as if it never sent a counter, until the
// silent meters are forgotten.
func TestShellyRemembersBoundedMeters(t *testing.T) {
	src := NewShelly(DefaultLimits())
	for i := range maxRemembered {
		topic := fmt.Sprintf("shellies/s%d/relay/0/power", i)
		if rs, err := src.Decode(topic, []byte("1"), now); err != nil || len(rs) != 1 {
			t.Fatalf("Decode(%q) = %v, %v", topic, rs, err)
		}
	}
	const power, energy, meter = "shellies/new/relay/0/power", "shellies/new/relay/0/energy", "new:0"
	runShellySteps(t, src, []shellyStep{
		{time.Second, power, "5", []Reading{{Meter: meter, Time: now.Add(time.Second), PowerW: 5}}, ""},
		{2 * time.Second, energy, "60", nil, ""},
		{3 * time.Second, power, "5", []Reading{{Meter: meter, Time: now.Add(3 * time.Second), PowerW: 5}}, ""},
		// A known meter is still remembered.
		{4 * time.Second, "shellies/s7/relay/0/energy", "60",
			[]Reading{{Meter: "s7:0", Time: now.Add(4 * time.Second), PowerW: 1, EnergyWh: 1, HasEnergy: true}}, ""},
		// The others have been silent long enough to be forgotten.
		{shellyPowerMaxAge + 2*time.Second, power, "6", []Reading{{Meter: meter, Time: now.Add(shellyPowerMaxAge + 2*time.Second), PowerW: 6}}, ""},
		{shellyPowerMaxAge + 3*time.Second, energy, "120",
			[]Reading{{Meter: meter, Time: now.Add(shellyPowerMaxAge + 3*time.Second), PowerW: 6, EnergyWh: 2, HasEnergy: true}}, ""},
	})
	if n := len(src.(*shelly).powers.entries); n != 2 {
		t.Errorf("%d meters remembered, want 2 (s7:0 and new:0)", n)
	}
}
