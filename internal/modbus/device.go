package modbus

import (
	"cmp"
	"fmt"
	"math"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

// Device is one meter polled over Modbus.
type Device struct {
	// Name is the meter's id (meter.ValidID); a three-phase meter's phases
	// are the meters Name:L1, Name:L2 and Name:L3.
	Name string
	// URL is where the meter answers: tcp://host:port (Modbus TCP),
	// rtu:///dev/ttyUSB0 (RTU on a serial line) or rtuovertcp://host:port
	// (RTU frames through a TCP gateway). Devices with one URL share it,
	// one request at a time.
	URL string
	// Unit is the meter's Modbus address (unit id), 1 to 247 (0 and 255
	// reach a TCP device that ignores it).
	Unit uint8
	// Profile names the register map of the meter's model (Profiles);
	// Registers are its own registers instead, for any other meter.
	Profile   string
	Registers []Register
	// Interval is how often it is read.
	Interval time.Duration
	// Timeout bounds each request to it.
	Timeout time.Duration
	// Serial is the line's settings, for rtu:// only.
	Serial Serial
}

// Serial is a serial line's settings.
type Serial struct {
	Speed    uint   // baud, such as 9600
	Parity   string // none, even or odd
	StopBits uint   // 1 or 2
}

// Limits of a device's settings.
const (
	MinInterval = 100 * time.Millisecond
	MaxInterval = time.Hour
	MinTimeout  = 10 * time.Millisecond
	// MaxTimeout keeps a line's stop (a change, a shutdown) within
	// seconds: it waits for the request in flight.
	MaxTimeout = 10 * time.Second
	// MaxRegisters bounds a register list.
	MaxRegisters = 256
	// MaxURL bounds a device's URL.
	MaxURL = 256
)

// same reports whether d and o are the same settings.
func (d Device) same(o Device) bool {
	return d.Name == o.Name && d.URL == o.URL && d.Unit == o.Unit && d.Profile == o.Profile && slices.Equal(d.Registers, o.Registers) &&
		d.Interval == o.Interval && d.Timeout == o.Timeout && d.Serial == o.Serial
}

// registers returns d's registers, its profile's or its own, and the most
// it reads in one request (0: Modbus's 125).
func (d *Device) registers() ([]Register, int) {
	if p, ok := Profiles[strings.ToLower(d.Profile)]; ok && d.Profile != "" {
		return p.Registers, p.MaxWords
	}
	return d.Registers, 0
}

// Check says what is wrong with d, naming the setting; nil when nothing
// is.
func (d *Device) Check() error {
	if !meter.ValidID(d.Name) || strings.Contains(d.Name, ":") {
		return problemf("name %q: use 1 to %d letters, digits, '.', '_' or '-' (it becomes the meter's id; its phases are name:L1 to name:L3)", d.Name, meter.MaxIDLength-3)
	}
	if len(d.Name) > meter.MaxIDLength-3 {
		return problemf("name %q: at most %d characters, so that name:L1 is a meter id", d.Name, meter.MaxIDLength-3)
	}
	if len(d.URL) > MaxURL {
		return problemf("url: at most %d characters", MaxURL)
	}
	if _, _, err := parseURL(d.URL); err != nil {
		return err
	}
	if d.Unit > 247 && d.Unit != 255 {
		return problemf("unit %d: use 1 to 247 (or 0 or 255 for a TCP device that ignores it)", d.Unit)
	}
	switch {
	case d.Profile != "" && len(d.Registers) > 0:
		return problemf("give profile or registers, not both")
	case d.Profile != "":
		if _, ok := Profiles[strings.ToLower(d.Profile)]; !ok {
			return problemf("profile %q: use one of %s, or give registers", d.Profile, strings.Join(ProfileNames(), ", "))
		}
	case len(d.Registers) == 0:
		return problemf("give a profile (%s) or registers", strings.Join(ProfileNames(), ", "))
	case len(d.Registers) > MaxRegisters:
		return problemf("%d registers: at most %d", len(d.Registers), MaxRegisters)
	}
	power := false
	regs, _ := d.registers()
	for i, r := range regs {
		if err := r.Check(); err != nil {
			return problemf("registers[%d]: %v", i, err)
		}
		power = power || r.Quantity == PowerW
	}
	if !power {
		return problemf("no register of power_w: a reading needs the meter's active power")
	}
	if d.Interval < MinInterval || d.Interval > MaxInterval {
		return problemf("interval %s: use %s to %s", d.Interval, MinInterval, MaxInterval)
	}
	if d.Timeout < MinTimeout || d.Timeout > MaxTimeout {
		return problemf("timeout %s: use %s to %s", d.Timeout, MinTimeout, MaxTimeout)
	}
	if scheme, _, _ := parseURL(d.URL); scheme == "rtu" {
		switch d.Serial.Parity {
		case "none", "even", "odd":
		default:
			return problemf("parity %q: use none, even or odd", d.Serial.Parity)
		}
		if d.Serial.Speed < 300 || d.Serial.Speed > 921600 {
			return problemf("speed %d: use the line's baud rate, such as 9600 or 19200", d.Serial.Speed)
		}
		if d.Serial.StopBits != 1 && d.Serial.StopBits != 2 {
			return problemf("stop_bits %d: use 1 or 2", d.Serial.StopBits)
		}
	}
	return nil
}

// parseURL splits a device's URL into its scheme and address (host:port,
// or a serial device's path, cleaned), and says what is wrong with it.
func parseURL(s string) (scheme, addr string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", problemf("url %q: use tcp://host:port, rtu:///dev/ttyUSB0 or rtuovertcp://host:port", s)
	}
	switch u.Scheme {
	case "tcp", "rtuovertcp":
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil || host == "" || port == "" || u.Path != "" {
			return "", "", problemf("url %q: give host:port, such as %s://192.168.1.50:502", s, u.Scheme)
		}
		return u.Scheme, u.Host, nil
	case "rtu":
		p := path.Clean(u.Path)
		if u.Host != "" || !strings.HasPrefix(port(p), "/dev/") {
			return "", "", problemf("url %q: give the serial device's path under /dev, such as rtu:///dev/ttyUSB0 (or a link to one)", s)
		}
		return u.Scheme, p, nil
	}
	return "", "", problemf("url %q: use tcp://host:port, rtu:///dev/ttyUSB0 or rtuovertcp://host:port", s)
}

// port is the serial port the path p names now: the link's target for a
// link (/dev/serial/by-id/..., socat's), else p.
func port(p string) string {
	if real, err := filepath.EvalSymlinks(p); err == nil {
		return real
	}
	return p
}

// lineKey names the line of a device at scheme and addr, one name per
// line whatever the URL's spelling: a serial port by the port a link
// names now, a TCP host by its address written one way (localhost as
// 127.0.0.1, ports without leading zeros). Other names of one host stay
// different lines.
func lineKey(scheme, addr string) string {
	if scheme == "rtu" {
		return scheme + "://" + port(addr)
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return scheme + "://" + addr
	}
	host = strings.ToLower(host)
	if host == "localhost" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	if n, err := strconv.Atoi(p); err == nil {
		p = strconv.Itoa(n)
	}
	return scheme + "://" + net.JoinHostPort(host, p)
}

// request is one read of a run of registers of one function.
type request struct {
	function Function
	address  uint16
	words    uint16
	// regs are the registers it reads.
	regs []Register
}

// maxWords is the most registers one request reads (Modbus's 125).
const maxWords = 125

// plan returns the requests that read regs: registers of one function
// no further than gap registers apart are read together, up to most (0:
// maxWords) a request. A gap of 0 reads only registers that touch.
func plan(regs []Register, gap, most int) []request {
	if most <= 0 || most > maxWords {
		most = maxWords
	}
	sorted := slices.Clone(regs)
	slices.SortStableFunc(sorted, func(a, b Register) int {
		return cmp.Or(strings.Compare(string(a.Function), string(b.Function)), cmp.Compare(a.Address, b.Address))
	})
	var out []request
	for _, r := range sorted {
		end := int(r.Address) + r.Type.Words()
		if n := len(out); n > 0 {
			last := &out[n-1]
			lastEnd := int(last.address) + int(last.words)
			if last.function == r.Function && int(r.Address) <= lastEnd+gap && max(end, lastEnd)-int(last.address) <= most {
				last.words = uint16(max(end, lastEnd) - int(last.address))
				last.regs = append(last.regs, r)
				continue
			}
		}
		out = append(out, request{function: r.Function, address: r.Address, words: uint16(r.Type.Words()), regs: []Register{r}})
	}
	return out
}

// Values are what one poll read: per phase (Total for the meter's own),
// the value of each quantity.
type Values map[Phase]map[Quantity]float64

func (v Values) set(p Phase, q Quantity, x float64) {
	if v[p] == nil {
		v[p] = map[Quantity]float64{}
	}
	v[p][q] = x
}

// decode returns the values of req's registers in raw, the bytes its
// answer held.
func (req request) decode(raw []byte, into Values) error {
	if len(raw) != 2*int(req.words) {
		return fmt.Errorf("%d bytes in the answer, want %d", len(raw), 2*int(req.words))
	}
	for _, r := range req.regs {
		off := 2 * int(r.Address-req.address)
		v, missing, err := r.decode(raw[off : off+2*r.Type.Words()])
		if err != nil {
			return err
		}
		// NaN and infinities are what meters send for a value they do
		// not measure: not available, as the all-ones mark.
		if !missing && !math.IsNaN(v) && !math.IsInf(v, 0) {
			into.set(r.Phase, r.Quantity, v)
		}
	}
	return nil
}

// Readings returns the readings of one poll of the meter name at t: the
// meter's, and one per phase it gave the power of. The meter's power is
// its total register's, or else the sum of its phases'. Its energy counter
// is the import register's while the meter has sent nothing (export
// counter 0 or none): the store keeps one counter per meter, so a meter
// that exports has its energy integrated from its power, which splits
// import and export.
func Readings(name string, v Values, t time.Time) []meter.Reading {
	var out []meter.Reading
	total := v[Total]
	w, ok := total[PowerW]
	if !ok {
		n := 0
		for _, p := range Phases {
			if pw, ok := v[p][PowerW]; ok {
				w += pw
				n++
			}
		}
		ok = n > 0
	}
	if ok {
		r := meter.Reading{Meter: name, Time: t, PowerW: w, Source: "modbus"}
		if wh, ok := total[ImportWh]; ok {
			if sent, ok := total[ExportWh]; !ok || sent == 0 {
				r.EnergyWh, r.HasEnergy = wh, true
			}
		}
		if pf, ok := total[PowerFactor]; ok && pf >= -1 && pf <= 1 {
			r.PowerFactor, r.HasPF = pf, true // one out of range is left out, the power kept
		}
		out = append(out, r)
	}
	for _, p := range Phases {
		pw, ok := v[p][PowerW]
		if !ok {
			continue
		}
		r := meter.Reading{Meter: name + ":" + string(p), Time: t, PowerW: pw, Source: "modbus"}
		if pf, ok := v[p][PowerFactor]; ok && pf >= -1 && pf <= 1 {
			r.PowerFactor, r.HasPF = pf, true
		}
		out = append(out, r)
	}
	return out
}

// Imbalance returns the imbalance of three phases' values of q (currents,
// or powers): meter.Imbalance; ok is false without three phases or with a
// mean of zero.
func Imbalance(v Values, q Quantity) (pct float64, ok bool) {
	var xs [3]float64
	for i, p := range Phases {
		x, ok := v[p][q]
		if !ok {
			return 0, false
		}
		xs[i] = x
	}
	if xs[0] == 0 && xs[1] == 0 && xs[2] == 0 {
		return 0, false
	}
	return meter.Imbalance(xs[0], xs[1], xs[2]), true
}
