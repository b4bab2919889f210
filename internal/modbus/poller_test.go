package modbus

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/testutil/modbustest"
)

// sdm630Values are an SDM630's registers for a known state: three phases
// drawing 1000, 1500 and 500 W (3 kW in all) at 230 V, 12,345.6 kWh drawn,
// nothing sent.
func sdm630Values() []modbustest.Value {
	v := func(addr uint16, x float64) modbustest.Value {
		return modbustest.Value{Function: "input", Address: addr, Type: "float32", Value: x}
	}
	return []modbustest.Value{
		v(0x00, 230.1), v(0x02, 231.2), v(0x04, 229.8),
		v(0x06, 4.35), v(0x08, 6.49), v(0x0A, 2.18),
		v(0x0C, 1000), v(0x0E, 1500), v(0x10, 500),
		v(0x1E, 0.99), v(0x20, 0.98), v(0x22, 0.97),
		v(0x34, 3000), v(0x3E, 0.98), v(0x46, 50.01),
		v(0x48, 12345.6), v(0x4A, 0),
	}
}

// f32 is x as a float32 holds it, as a meter sends it.
func f32(x float64) float64 { return float64(float32(x)) }

// collector keeps the readings a poller gives.
type collector struct {
	mu sync.Mutex
	rs map[string][]meter.Reading
}

func (c *collector) take(device string, rs []meter.Reading) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rs == nil {
		c.rs = map[string][]meter.Reading{}
	}
	c.rs[device] = append(c.rs[device], rs...)
}

// wait waits for n polls' readings of device, and returns the last poll's.
func (c *collector) wait(t *testing.T, device string, polls, perPoll int) []meter.Reading {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		rs := c.rs[device]
		c.mu.Unlock()
		if len(rs) >= polls*perPoll {
			return rs[len(rs)-perPoll:]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: fewer than %d polls in 20 s", device, polls)
	return nil
}

func (c *collector) count(device string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.rs[device])
}

// run starts a poller of devices and stops it when the test ends.
func run(t *testing.T, devices ...Device) (*Poller, *collector) {
	t.Helper()
	c := &collector{}
	p, err := New(devices, c.take, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return p, c
}

func tcpDevice(name, addr string, unit uint8, profile string) Device {
	return Device{Name: name, URL: "tcp://" + addr, Unit: unit, Profile: profile, Interval: 100 * time.Millisecond, Timeout: 300 * time.Millisecond}
}

// TestSDM630OverTCP reads an SDM630 served by pymodbus over Modbus TCP:
// its total and three phases, with energy and power factors. The
// simulator has only the map's registers, so the first read across the
// ones between them is refused (exception 2) and the poller reads runs.
func TestSDM630OverTCP(t *testing.T) {
	s := modbustest.Start(t, "tcp", "127.0.0.1:0", nil, map[int][]modbustest.Value{1: sdm630Values()})
	p, c := run(t, tcpDevice("plant-main", s.Addr, 1, "sdm630"))
	rs := c.wait(t, "plant-main", 2, 4)
	want := []meter.Reading{
		{Meter: "plant-main", PowerW: 3000, EnergyWh: f32(12345.6) * 1000, HasEnergy: true, PowerFactor: f32(0.98), HasPF: true},
		{Meter: "plant-main:L1", PowerW: 1000, PowerFactor: f32(0.99), HasPF: true},
		{Meter: "plant-main:L2", PowerW: 1500, PowerFactor: f32(0.98), HasPF: true},
		{Meter: "plant-main:L3", PowerW: 500, PowerFactor: f32(0.97), HasPF: true},
	}
	for i, r := range rs {
		if r.Time.IsZero() || r.Stamped || r.Source != "modbus" {
			t.Errorf("reading %d: time %v, stamped %v, source %q", i, r.Time, r.Stamped, r.Source)
		}
		r.Time, r.Source = time.Time{}, ""
		if r != want[i] {
			t.Errorf("reading %d = %+v, want %+v", i, r, want[i])
		}
	}
	st := p.Status()
	if len(st) != 1 || !st[0].Online || st[0].Failures != 0 {
		t.Fatalf("status %+v, want plant-main online", st)
	}
	v := st[0].Values
	for ph, want := range map[Phase]float64{L1: 230.1, L2: 231.2, L3: 229.8} {
		if got := v[ph][VoltageV]; got != f32(want) {
			t.Errorf("%s voltage %g, want %g", ph, got, f32(want))
		}
	}
	if got := v[L2][CurrentA]; got != f32(6.49) {
		t.Errorf("L2 current %g", got)
	}
	if got := v[Total][FrequencyHz]; got != f32(50.01) {
		t.Errorf("frequency %g", got)
	}
	// 1000, 1500, 500 W: mean 1000, largest deviation 500: 50 %.
	if pct, ok := Imbalance(v, PowerW); !ok || math.Abs(pct-50) > 1e-9 {
		t.Errorf("power imbalance %g %v, want 50 %%", pct, ok)
	}

	// A new value is read at the next poll.
	s.Set(modbustest.Value{Unit: 1, Function: "input", Address: 0x34, Type: "float32", Value: -2500})
	s.Set(modbustest.Value{Unit: 1, Function: "input", Address: 0x4A, Type: "float32", Value: 12.5})
	deadline := time.Now().Add(10 * time.Second)
	for {
		rs = c.wait(t, "plant-main", 1, 4)
		if rs[0].PowerW == -2500 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new power was not read: %+v", rs[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rs[0].HasEnergy {
		t.Errorf("a meter that has sent energy gave its import counter, %+v: export would be lost", rs[0])
	}
}

// TestWordOrders reads a value of every type in each word and byte
// order, scaled, from holding and input registers: 32 meters behind one
// gateway (units 1 to 32 on one TCP line), read one request at a time.
func TestWordOrders(t *testing.T) {
	units := map[int][]modbustest.Value{}
	var devices []Device
	want := map[string]float64{}
	unit := 0
	for _, typ := range []Type{Int16, Uint16, Int32, Uint32, Int64, Uint64, Float32, Float64} {
		for _, wo := range []Order{HighFirst, LowFirst} {
			for _, bo := range []Order{HighFirst, LowFirst} {
				unit++
				fn := Holding
				if unit%2 == 1 {
					fn = Input
				}
				x := map[Type]float64{Int16: -1234, Uint16: 54321, Int32: -123456789, Uint32: 3456789012,
					Int64: -1234567890123, Uint64: 9876543210987, Float32: -0.5, Float64: 123456.789}[typ]
				addr := uint16(100 + unit)
				units[unit] = []modbustest.Value{{Function: string(fn), Address: addr, Type: string(typ), WordOrder: string(wo), ByteOrder: string(bo), Value: x}}
				name := fmt.Sprintf("%s-%s-%s", typ, wo, bo)
				d := tcpDevice(name, "", uint8(unit), "")
				d.Registers = []Register{{Function: fn, Address: addr, Type: typ, WordOrder: wo, ByteOrder: bo, Scale: 0.001, Quantity: PowerW}}
				devices = append(devices, d)
				want[name] = x * 0.001
			}
		}
	}
	s := modbustest.Start(t, "tcp", "127.0.0.1:0", nil, units)
	for i := range devices {
		devices[i].URL = "tcp://" + s.Addr
	}
	_, c := run(t, devices...)
	for name, w := range want {
		if rs := c.wait(t, name, 1, 1); rs[0].PowerW != w {
			t.Errorf("%s: %v W, want %v", name, rs[0].PowerW, w)
		}
	}
	if len(want) != 32 {
		t.Fatalf("%d combinations", len(want))
	}
}

// TestExceptionAndDisappearance: a register the meter lacks is refused
// with exception 2, which the status says; a meter that disappears is
// marked offline, tried less often, and read again when it returns; the
// other meter, on its own line, is read all along.
func TestExceptionAndDisappearance(t *testing.T) {
	good := modbustest.Start(t, "tcp", "127.0.0.1:0", nil, map[int][]modbustest.Value{1: sdm630Values(), 2: {{Function: "holding", Address: 10, Type: "int16", Value: 1}}})
	gone := modbustest.Start(t, "tcp", "127.0.0.1:0", nil, map[int][]modbustest.Value{1: sdm630Values()})
	lacking := tcpDevice("lacking", good.Addr, 2, "")
	lacking.Registers = []Register{{Function: Holding, Address: 4000, Type: Float32, Quantity: PowerW}}
	p, c := run(t, tcpDevice("good", good.Addr, 1, "sdm630"), lacking, tcpDevice("gone", gone.Addr, 1, "sdm630"))
	c.wait(t, "gone", 2, 4)
	status := func(name string) Status {
		for _, s := range p.Status() {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no status of %s", name)
		return Status{}
	}
	gone.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for s := status("gone"); s.Online || s.Failures < 3; s = status("gone") {
		if time.Now().After(deadline) {
			t.Fatalf("gone's status %+v, want offline after 3 failed polls", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := status("gone")
	if s.LastError == "" || !s.NextPoll.After(time.Now().Add(150*time.Millisecond)) {
		t.Errorf("gone: error %q, next poll in %s; want the error and a backed-off next try (3 failures: 4 x 100 ms)", s.LastError, time.Until(s.NextPoll))
	}
	before := c.count("good")
	time.Sleep(500 * time.Millisecond)
	if n := c.count("good") - before; n < 4*3 {
		t.Errorf("good gave %d readings in 500 ms while gone was away, want a poll each 100 ms", n)
	}
	l := status("lacking")
	if l.Online || !strings.Contains(l.LastError, "illegal data address") || !strings.Contains(l.LastError, "holding registers 4000 to 4001") {
		t.Errorf("lacking: %+v, want offline saying illegal data address at holding registers 4000 to 4001", l)
	}

	gone.Restart()
	deadline = time.Now().Add(30 * time.Second)
	for s := status("gone"); !s.Online; s = status("gone") {
		if time.Now().After(deadline) {
			t.Fatalf("gone did not come back: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rs := c.wait(t, "gone", 1, 4); rs[0].PowerW != 3000 {
		t.Errorf("gone, back: %+v", rs[0])
	}
}

// TestSDM630OverRTU reads the SDM630 through a pair of pseudo-terminals
// (socat), as through a USB RS-485 adapter, and over RTU framed in TCP, as
// through a serial gateway.
func TestSDM630OverRTU(t *testing.T) {
	a, b := modbustest.PTYPair(t)
	// A pseudo-terminal takes no parity (pyserial refuses even on one):
	// the line runs 8N1.
	modbustest.Start(t, "rtu", b, []string{"19200", "N", "1"}, map[int][]modbustest.Value{3: sdm630Values()})
	d := Device{Name: "line-meter", URL: "rtu://" + a, Unit: 3, Profile: "sdm630", Interval: 200 * time.Millisecond, Timeout: 500 * time.Millisecond,
		Serial: Serial{Speed: 19200, Parity: "none", StopBits: 1}}
	over := modbustest.Start(t, "rtuovertcp", "127.0.0.1:0", nil, map[int][]modbustest.Value{5: sdm630Values()})
	g := tcpDevice("gateway-meter", over.Addr, 5, "sdm630")
	g.URL = "rtuovertcp://" + over.Addr
	_, c := run(t, d, g)
	for _, name := range []string{"line-meter", "gateway-meter"} {
		rs := c.wait(t, name, 2, 4)
		if rs[0].PowerW != 3000 || rs[3].Meter != name+":L3" || rs[3].PowerW != 500 {
			t.Errorf("%s: %+v", name, rs)
		}
	}
}

func TestCheck(t *testing.T) {
	ok := tcpDevice("m", "127.0.0.1:502", 1, "sdm630")
	if err := ok.Check(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		change func(*Device)
		want   string
	}{
		{func(d *Device) { d.Name = "a b" }, "name"},
		{func(d *Device) { d.Name = "a:L1" }, "name"},
		{func(d *Device) { d.URL = "http://x:1" }, "url"},
		{func(d *Device) { d.URL = "tcp://x" }, "host:port"},
		{func(d *Device) { d.URL = "rtu://dev/ttyUSB0" }, "serial device's path"},
		{func(d *Device) { d.Unit = 250 }, "unit 250"},
		{func(d *Device) { d.Profile = "sdm999" }, `profile "sdm999"`},
		{func(d *Device) { d.Profile = "" }, "give a profile"},
		{func(d *Device) { d.Interval = time.Millisecond }, "interval"},
		{func(d *Device) { d.Timeout = time.Minute }, "timeout"},
		{func(d *Device) {
			d.Profile, d.Registers = "", []Register{{Function: "coil", Address: 1, Type: Int16, Quantity: PowerW}}
		}, `registers[0]: function "coil"`},
		{func(d *Device) {
			d.Profile, d.Registers = "", []Register{{Function: Input, Address: 65535, Type: Float32, Quantity: PowerW}}
		}, "runs past register 65535"},
		{func(d *Device) {
			d.Profile, d.Registers = "", []Register{{Function: Input, Address: 1, Type: Float32, Quantity: VoltageV}}
		}, "no register of power_w"},
		{func(d *Device) {
			d.Profile, d.Registers = "", []Register{{Function: Input, Address: 1, Type: Float32, Quantity: ImportWh, Phase: L1}}
		}, "not per phase"},
		{func(d *Device) {
			d.URL = "rtu:///dev/ttyUSB0"
			d.Serial = Serial{Speed: 9600, Parity: "mark", StopBits: 1}
		}, "parity"},
	} {
		d := ok
		tc.change(&d)
		if err := d.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error saying %q", d, err, tc.want)
		}
	}
}

func TestPlan(t *testing.T) {
	regs := []Register{
		{Function: Input, Address: 0, Type: Float32}, {Function: Input, Address: 2, Type: Float32},
		{Function: Input, Address: 10, Type: Float32}, {Function: Holding, Address: 0, Type: Int16},
		{Function: Input, Address: 200, Type: Float64},
	}
	describe := func(rs []request) string {
		var parts []string
		for _, r := range rs {
			parts = append(parts, fmt.Sprintf("%s %d+%d (%d)", r.function, r.address, r.words, len(r.regs)))
		}
		return strings.Join(parts, ", ")
	}
	if got := describe(plan(regs, 32, 0)); got != "holding 0+1 (1), input 0+12 (3), input 200+4 (1)" {
		t.Errorf("plan(gap 32) = %s", got)
	}
	if got := describe(plan(regs, 0, 0)); got != "holding 0+1 (1), input 0+4 (2), input 10+2 (1), input 200+4 (1)" {
		t.Errorf("plan(gap 0) = %s", got)
	}
	// No request reads more than 125 registers.
	var many []Register
	for a := uint16(0); a < 400; a += 2 {
		many = append(many, Register{Function: Input, Address: a, Type: Float32})
	}
	for _, r := range plan(many, 32, 0) {
		if r.words > maxWords {
			t.Errorf("a request of %d registers", r.words)
		}
	}
}
