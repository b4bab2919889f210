package modbus

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/testutil/modbustest"
	"github.com/vatio-energy/vatio/internal/testutil/pgtest"
	"github.com/vatio-energy/vatio/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestSetWhileRunning changes the devices of a running poller: a device
// added is polled at once; a line whose devices did not change goes on
// without a new connection, its device keeping its status; a device
// removed is polled no more.
func TestSetWhileRunning(t *testing.T) {
	a := modbustest.Start(t, "tcp", "127.0.0.1:0", nil, map[int][]modbustest.Value{1: sdm630Values()})
	b := modbustest.Start(t, "tcp", "127.0.0.1:0", nil, map[int][]modbustest.Value{1: sdm630Values(), 2: sdm630Values()})
	one := tcpDevice("one", a.Addr, 1, "sdm630")
	p, c := run(t, one)
	c.wait(t, "one", 3, 4)
	p.run.Lock()
	lineA := p.lines[0]
	p.run.Unlock()

	two, three := tcpDevice("two", b.Addr, 1, "sdm630"), tcpDevice("three", b.Addr, 2, "sdm630")
	if err := p.Set([]Device{one, two, three}); err != nil {
		t.Fatal(err)
	}
	c.wait(t, "two", 2, 4)
	c.wait(t, "three", 2, 4)
	p.run.Lock()
	kept := p.lines[0] == lineA
	p.run.Unlock()
	if !kept {
		t.Error("the line of a device that did not change was started again")
	}
	if st := p.Status(); len(st) != 3 || !st[0].Online || st[0].Name != "one" {
		t.Fatalf("status after adding: %+v", st)
	}

	// Two devices of one unit on a line cannot be polled: nothing changes.
	clash := tcpDevice("four", b.Addr, 2, "sdm630")
	if err := p.Set([]Device{one, two, three, clash}); err == nil || !strings.Contains(err.Error(), `unit 2`) {
		t.Fatalf("a second device of unit 2 on a line: %v", err)
	}
	if len(p.Status()) != 3 {
		t.Fatal("a refused Set changed the devices")
	}

	// Removing three restarts b's line; two keeps its status.
	before := p.Status()[2] // two
	if err := p.Set([]Device{one, two}); err != nil {
		t.Fatal(err)
	}
	st := p.Status()
	if len(st) != 2 || st[1].Name != "two" || st[1].LastAnswer.Before(before.LastAnswer) {
		t.Fatalf("status after removing three: %+v (two before: %+v)", st, before)
	}
	time.Sleep(300 * time.Millisecond) // a poll in flight when three was removed is given
	n := c.count("three")
	c.wait(t, "two", c.count("two")/4+3, 4)
	if c.count("three") != n {
		t.Error("a device removed is still polled")
	}
}

// openStore opens a bbolt store in a temporary directory, closed when the
// test ends.
func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestDevicesSavedAndConfig keeps devices saved through the API in the
// store beside config.yaml's: both are polled, config.yaml's cannot be
// changed or shadowed, a device that does not fit is refused with why,
// and what was saved is polled again after a restart.
func TestDevicesSavedAndConfig(t *testing.T) {
	sim := modbustest.Start(t, "tcp", "127.0.0.1:0", nil, map[int][]modbustest.Value{1: sdm630Values(), 2: sdm630Values()})
	dir := t.TempDir()
	st := openStore(t, dir)
	config := []Spec{{Name: "plant-main", URL: "tcp://" + sim.Addr, Unit: 1, Profile: "sdm630", Interval: Duration(100 * time.Millisecond)}}
	c := &collector{}
	p, err := New(nil, c.take, nil)
	if err != nil {
		t.Fatal(err)
	}
	devs, err := NewDevices(st, config, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

	if _, _, err := devs.Put(Spec{Name: "plant-main", URL: "tcp://" + sim.Addr, Unit: 2, Profile: "sdm630"}, "ana", now); !errors.Is(err, ErrConfigDevice) {
		t.Errorf("saving config.yaml's device: %v, want ErrConfigDevice", err)
	}
	var ie *InvalidError
	if _, _, err := devs.Put(Spec{Name: "press", URL: "tcp://" + sim.Addr, Unit: 1, Profile: "sdm630"}, "ana", now); !errors.As(err, &ie) ||
		!strings.Contains(err.Error(), `unit 1`) {
		t.Errorf("a second device on unit 1: %v", err)
	}
	// A name that sorts first takes no unit from a device polled now.
	if _, _, err := devs.Put(Spec{Name: "aaa", URL: "tcp://" + sim.Addr, Unit: 1, Profile: "sdm630"}, "ana", now); !errors.As(err, &ie) ||
		!strings.Contains(err.Error(), `unit 1`) {
		t.Errorf("a device named aaa on plant-main's unit: %v", err)
	}
	if _, _, err := devs.Put(Spec{Name: "press", URL: "tcp://" + sim.Addr, Unit: 2, Profile: "nope"}, "ana", now); !errors.As(err, &ie) ||
		!strings.Contains(err.Error(), `profile "nope"`) {
		t.Errorf("an unknown profile: %v", err)
	}
	if _, _, err := devs.Put(Spec{Name: "bad/name", URL: "tcp://" + sim.Addr, Unit: 2, Profile: "sdm630"}, "ana", now); !errors.As(err, &ie) {
		t.Errorf("a name that is no meter id: %v", err)
	}
	e, created, err := devs.Put(Spec{Name: "press", URL: "tcp://" + sim.Addr, Unit: 2, Profile: "sdm630", Interval: Duration(100 * time.Millisecond)}, "ana", now)
	if err != nil || !created || e.Source != FromDatabase || e.SavedBy != "ana" {
		t.Fatalf("saving press: %+v %v %v", e, created, err)
	}

	// Both are polled, by a poller already running or started later.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	c.wait(t, "plant-main", 2, 4)
	c.wait(t, "press", 2, 4)
	list := devs.List()
	if len(list) != 2 || list[0].Name != "plant-main" || list[0].Source != FromConfig || list[1].Name != "press" || list[1].Source != FromDatabase {
		t.Fatalf("list: %+v", list)
	}
	if _, created, err := devs.Put(Spec{Name: "press", URL: "tcp://" + sim.Addr, Unit: 2, Profile: "sdm630", Interval: Duration(200 * time.Millisecond)}, "ana", now); err != nil || created {
		t.Fatalf("changing press: %v %v", created, err)
	}
	if st := p.Status(); len(st) != 2 || st[1].Interval != 200*time.Millisecond {
		t.Fatalf("status after the change: %+v", st)
	}
	// Nor from a saved one: aaa on press's unit is refused, press kept.
	if _, _, err := devs.Put(Spec{Name: "aaa", URL: "tcp://" + sim.Addr, Unit: 2, Profile: "sdm630"}, "ana", now); !errors.As(err, &ie) {
		t.Errorf("a device named aaa on press's unit: %v", err)
	}
	if list := devs.List(); len(list) != 2 || list[1].Problem != "" {
		t.Errorf("after refusing aaa: %+v", list)
	}
	if err := devs.Delete("plant-main"); !errors.Is(err, ErrConfigDevice) {
		t.Errorf("deleting config.yaml's device: %v", err)
	}
	if err := devs.Delete("nothing"); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("deleting a device that is not: %v", err)
	}
	cancel()
	<-done
	st.Close()

	// After a restart, press is read from the store; config.yaml now
	// names a device press too, which wins, and the saved one says why it
	// is not polled.
	st = openStore(t, dir)
	config = append(config, Spec{Name: "press", URL: "tcp://" + sim.Addr, Unit: 2, Profile: "sdm630"})
	p2, _ := New(nil, c.take, nil)
	devs, err = NewDevices(st, config, p2, nil)
	if err != nil {
		t.Fatal(err)
	}
	list = devs.List()
	if len(list) != 3 || list[2].Source != FromDatabase || !strings.Contains(list[2].Problem, "config.yaml has a device of this name") {
		t.Fatalf("list after the restart: %+v", list)
	}
	if got, err := devs.Get("press"); err != nil || got.Source != FromConfig {
		t.Errorf("Get press: %+v %v, want config.yaml's", got, err)
	}
	if len(p2.Status()) != 2 {
		t.Errorf("polled after the restart: %+v", p2.Status())
	}
	// The saved one can still be deleted.
	if err := devs.Delete("press"); err != nil {
		t.Fatal(err)
	}
	if list = devs.List(); len(list) != 2 {
		t.Fatalf("list after deleting the saved press: %+v", list)
	}

	// A document that cannot be read is listed with why, and polled not.
	if err := st.PutDoc(docDevices, "junk", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	p3, _ := New(nil, c.take, nil)
	devs, err = NewDevices(st, config[:1], p3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := devs.Get("junk"); err != nil || !strings.HasPrefix(got.Problem, "not readable") {
		t.Errorf("an unreadable device: %+v %v", got, err)
	}
	if len(p3.Status()) != 1 {
		t.Errorf("polled with an unreadable device saved: %+v", p3.Status())
	}
}

// TestDevicesBounded refuses a device past MaxDevices.
func TestDevicesBounded(t *testing.T) {
	st := openStore(t, t.TempDir())
	var config []Spec
	for i := range MaxDevices {
		config = append(config, Spec{Name: "m" + strconv.Itoa(i), URL: "tcp://10.0.0." + strconv.Itoa(i/200+1) + ":502", Unit: i%200 + 1, Profile: "sdm120"})
	}
	p, _ := New(nil, func(string, []meter.Reading) {}, nil)
	devs, err := NewDevices(st, config, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := devs.Put(Spec{Name: "one-more", URL: "tcp://10.0.1.1:502", Profile: "sdm120"}, "ana", time.Now()); !errors.Is(err, ErrTooMany) {
		t.Errorf("device %d: %v, want ErrTooMany", MaxDevices+1, err)
	}
}

// TestDevicesSharedStore runs two instances' devices on one PostgreSQL
// database: a device saved on one is read by the other on its next
// Refresh (the leader's every RefreshEvery) or listing, and a deletion
// too.
func TestDevicesSharedStore(t *testing.T) {
	dsn := pgtest.Database(t)
	open := func() (*Poller, *Devices) {
		st, err := store.OpenPostgres(dsn, t.TempDir(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		p, _ := New(nil, func(string, []meter.Reading) {}, nil)
		devs, err := NewDevices(st, nil, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p, devs
	}
	_, a := open()
	leader, b := open()
	if _, _, err := a.Put(Spec{Name: "press", URL: "tcp://10.0.0.9:502", Profile: "em24"}, "ana", time.Now()); err != nil {
		t.Fatal(err)
	}
	b.Refresh()
	if st := leader.Status(); len(st) != 1 || st[0].Name != "press" || st[0].Profile != "em24" {
		t.Fatalf("the leader's devices after a Refresh: %+v", st)
	}
	if err := a.Delete("press"); err != nil {
		t.Fatal(err)
	}
	if list := b.List(); len(list) != 0 {
		t.Errorf("the other instance lists %+v after the deletion", list)
	}
	if st := leader.Status(); len(st) != 0 {
		t.Errorf("the leader still polls %+v", st)
	}
}

// blackHole accepts connections and never answers.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// TestSilentDeviceHoldsNothingUp: a device that never answers, with a long
// timeout and many requests a poll, is removed and changed without Set,
// Status or List waiting for its poll: its line stops at its next request.
func TestSilentDeviceHoldsNothingUp(t *testing.T) {
	addr := blackHole(t)
	var regs []Register
	for i := range 20 {
		regs = append(regs, Register{Function: Holding, Address: uint16(i * 100), Type: Uint16, Quantity: PowerW})
	}
	silent := Device{Name: "silent", URL: "tcp://" + addr, Unit: 1, Registers: regs[:1], Interval: time.Second, Timeout: MaxTimeout}
	p, _ := run(t, silent)
	// Its first poll is under way, waiting MaxTimeout for an answer.
	time.Sleep(300 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- p.Set(nil) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(MaxTimeout / 2):
		t.Fatalf("Set waited for a poll in flight (%s timeout)", MaxTimeout)
	}
	if st := p.Status(); len(st) != 0 {
		t.Errorf("status after removing it: %+v", st)
	}
}

// TestNotMeasuredValues: NaN and infinite values (a meter's "not
// measured") are left out of the status, and a power factor out of range
// out of the reading, whose power is kept.
func TestNotMeasuredValues(t *testing.T) {
	f := func(addr uint16, x float64) modbustest.Value {
		return modbustest.Value{Function: "input", Address: addr, Type: "float32", Value: x}
	}
	u := func(addr uint16, x uint16) modbustest.Value {
		return modbustest.Value{Function: "input", Address: addr, Type: "uint16", Value: float64(x)}
	}
	// A float32 NaN is 0x7FC00000, +Inf 0x7F800000, high word first.
	s := modbustest.Start(t, "tcp", "127.0.0.1:0", nil, map[int][]modbustest.Value{1: {
		u(0x00, 0x7FC0), u(0x01, 0), u(0x06, 0x7F80), u(0x07, 0), f(0x0C, 750), f(0x1E, 1500), f(0x46, 50), f(0x48, 10), f(0x4A, 0)}})
	p, c := run(t, tcpDevice("plug", s.Addr, 1, "sdm120"))
	rs := c.wait(t, "plug", 1, 1)
	if rs[0].PowerW != 750 || rs[0].HasPF {
		t.Errorf("reading %+v: want 750 W, no power factor", rs[0])
	}
	st := p.Status()
	if _, ok := st[0].Values[Total][VoltageV]; ok {
		t.Errorf("a NaN voltage is in the status: %+v", st[0].Values)
	}
	if _, ok := st[0].Values[Total][CurrentA]; ok {
		t.Errorf("an infinite current is in the status: %+v", st[0].Values)
	}
	if _, err := json.Marshal(st); err != nil {
		t.Errorf("the status is no JSON: %v", err)
	}
}

// TestSerialPaths: a serial device is under /dev (or a link to one), and
// two spellings of one port are one line.
func TestSerialPaths(t *testing.T) {
	for _, bad := range []string{"rtu:///etc/passwd", "rtu:///dev/../etc/shadow", "rtu://host/dev/ttyUSB0", "rtu:///dev/" + strings.Repeat("a", 300)} {
		d := Device{Name: "x", URL: bad, Unit: 1, Profile: "sdm120", Interval: time.Second, Timeout: time.Second, Serial: Serial{Speed: 9600, Parity: "none", StopBits: 1}}
		if err := d.Check(); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	// A link is grouped by the port it names, and opened as the link: a
	// replugged adapter's link names its new port at the next opening.
	link := filepath.Join(t.TempDir(), "ttyMeter")
	if err := os.Symlink("/dev/null", link); err != nil {
		t.Fatal(err)
	}
	l1 := NewLayout()
	if err := l1.Add(Device{Name: "m", URL: "rtu://" + link, Unit: 1, Profile: "sdm120", Interval: time.Second, Timeout: time.Second,
		Serial: Serial{Speed: 9600, Parity: "none", StopBits: 1}}); err != nil {
		t.Fatal(err)
	}
	if l := l1.lines[0]; l.url != "rtu:///dev/null" || l.dial != link {
		t.Errorf("a link's line: key %s, opened as %s", l.url, l.dial)
	}
	// TCP: localhost is 127.0.0.1, a port's leading zeros nothing.
	tl := NewLayout()
	tdev := func(name, url string) Device {
		return Device{Name: name, URL: url, Unit: 1, Profile: "sdm630", Interval: time.Second, Timeout: time.Second}
	}
	if err := tl.Add(tdev("a", "tcp://127.0.0.1:15020")); err != nil {
		t.Fatal(err)
	}
	for _, alias := range []string{"tcp://localhost:15020", "tcp://127.0.0.1:015020", "tcp://LOCALHOST:15020"} {
		if err := tl.Add(tdev("b", alias)); err == nil || !strings.Contains(err.Error(), `unit 1`) {
			t.Errorf("%s beside tcp://127.0.0.1:15020, unit 1: %v", alias, err)
		}
	}
	lay := NewLayout()
	dev := func(name, url string, speed uint) Device {
		return Device{Name: name, URL: url, Unit: 1, Profile: "sdm120", Interval: time.Second, Timeout: time.Second, Serial: Serial{Speed: speed, Parity: "none", StopBits: 1}}
	}
	if err := lay.Add(dev("a", "rtu:///dev/ttyUSB0", 9600)); err != nil {
		t.Fatal(err)
	}
	for _, alias := range []string{"rtu:///dev//ttyUSB0", "rtu:///dev/serial/../ttyUSB0"} {
		if err := lay.Add(dev("b", alias, 19200)); err == nil || !strings.Contains(err.Error(), "serial settings") {
			t.Errorf("%s beside rtu:///dev/ttyUSB0: %v, want one line's settings refused", alias, err)
		}
	}
}

// TestNameOfAnotherFamilysMeter: a device may not take the name of a
// meter MQTT feeds, nor one of its phases'; an imported meter's it may.
func TestNameOfAnotherFamilysMeter(t *testing.T) {
	st := openStore(t, t.TempDir())
	p, _ := New(nil, func(string, []meter.Reading) {}, nil)
	devs, err := NewDevices(st, nil, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{"plant": "tasmota", "hall:L2": "shelly", "history": "import", "mixed": "live readings"}
	devs.MeterSource = func(id string) (string, bool) { s, ok := sources[id]; return s, ok }
	var ie *InvalidError
	for _, name := range []string{"plant", "hall", "mixed"} {
		if _, _, err := devs.Put(Spec{Name: name, URL: "tcp://10.0.0.5:502", Unit: len(name), Profile: "sdm630"}, "ana", time.Now()); !errors.As(err, &ie) || !strings.Contains(err.Error(), "fed by") {
			t.Errorf("a device named %s: %v", name, err)
		}
	}
	if _, _, err := devs.Put(Spec{Name: "history", URL: "tcp://10.0.0.5:502", Unit: 9, Profile: "sdm630"}, "ana", time.Now()); err != nil {
		t.Errorf("a device for an imported meter: %v", err)
	}
	// Once polled, its meter is fed live: changing the device is no clash.
	sources["history"] = "live readings"
	if _, _, err := devs.Put(Spec{Name: "history", URL: "tcp://10.0.0.5:502", Unit: 9, Profile: "sdm630", Interval: Duration(time.Minute)}, "ana", time.Now()); err != nil {
		t.Errorf("changing the device of a meter it feeds: %v", err)
	}
}
