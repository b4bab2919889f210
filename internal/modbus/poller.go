package modbus

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/vatio-energy/vatio/internal/meter"
)

// Poller reads devices over Modbus, each at its interval: the devices of
// one line (a serial port, or one TCP host and port) one request at a
// time, different lines in parallel. A device that stops answering is
// tried less and less often, up to once a minute (or once an interval, if
// longer), so that it holds up the others on its line as little as
// possible; its meter gives no readings meanwhile, which is what the
// `silent` alert and the meter's "last heard" go by.
type Poller struct {
	log *slog.Logger
	// take is given each poll's readings.
	take  func(device string, rs []meter.Reading)
	lines []*line
	now   func() time.Time

	mu sync.Mutex // guards each device's status
}

// gap is how far apart (in registers) two registers may be for one
// request to read both, the registers between them included.
const gap = 32

// New returns the poller of devices (each passed Check), which gives the
// readings of each poll to take. It polls once Run is called.
func New(devices []Device, take func(device string, rs []meter.Reading), logger *slog.Logger) (*Poller, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Poller{log: logger, take: take, now: time.Now}
	byURL := map[string]*line{}
	names := map[string]bool{}
	for _, d := range devices {
		if err := d.Check(); err != nil {
			return nil, fmt.Errorf("modbus device %q: %v", d.Name, err)
		}
		if names[d.Name] {
			return nil, fmt.Errorf("modbus device %q: two devices of that name", d.Name)
		}
		names[d.Name] = true
		scheme, addr, _ := parseURL(d.URL)
		key := scheme + "://" + addr
		l := byURL[key]
		if l == nil {
			l = &line{url: key, scheme: scheme, serial: d.Serial, timeout: d.Timeout, log: logger.With("line", key)}
			byURL[key] = l
			p.lines = append(p.lines, l)
		} else if scheme == "rtu" && d.Serial != l.serial {
			return nil, fmt.Errorf("modbus device %q: its serial settings (%d %s %d) are not those of the other devices on %s (%d %s %d): a line has one speed, parity and stop bits",
				d.Name, d.Serial.Speed, d.Serial.Parity, d.Serial.StopBits, key, l.serial.Speed, l.serial.Parity, l.serial.StopBits)
		}
		l.timeout = max(l.timeout, d.Timeout)
		for _, o := range l.devices {
			if o.Unit == d.Unit {
				return nil, fmt.Errorf("modbus device %q: unit %d on %s is device %q's", d.Name, d.Unit, key, o.Name)
			}
		}
		regs, most := d.registers()
		l.devices = append(l.devices, &device{Device: d, regs: regs, most: most, requests: plan(regs, gap, most),
			status: Status{Name: d.Name, URL: d.URL, Unit: d.Unit, Profile: d.Profile, Interval: d.Interval}})
	}
	return p, nil
}

// Status is what a device last did.
type Status struct {
	Name     string        `json:"name"`
	URL      string        `json:"url"`
	Unit     uint8         `json:"unit"`
	Profile  string        `json:"profile,omitempty"`
	Interval time.Duration `json:"-"`
	// Online is whether its last poll was answered.
	Online bool `json:"online"`
	// LastAnswer is when it last answered; LastError why its last poll
	// failed, Failures how many polls in a row have.
	LastAnswer time.Time `json:"last_answer,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	Failures   int       `json:"failures"`
	NextPoll   time.Time `json:"next_poll,omitzero"`
	// Values are what its last answer held.
	Values Values `json:"values,omitempty"`
}

// Status returns the status of each device, by name.
func (p *Poller) Status() []Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Status
	for _, l := range p.lines {
		for _, d := range l.devices {
			s := d.status
			s.Values = Values{}
			for ph, qs := range d.status.Values {
				s.Values[ph] = maps.Clone(qs)
			}
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Run polls until ctx is done, then closes the connections.
func (p *Poller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, l := range p.lines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.runLine(ctx, l)
		}()
	}
	wg.Wait()
}

// line is a serial port or a TCP host and port, and the devices on it.
type line struct {
	url     string // scheme://address
	scheme  string
	serial  Serial
	timeout time.Duration
	log     *slog.Logger
	devices []*device
	client  *modbus.ModbusClient // nil until connected, and after a connection's error
}

// device is a Device and what its polls have done.
type device struct {
	Device
	regs     []Register // its profile's or its own
	most     int        // the most registers it answers a request for
	requests []request
	// exact is set once a meter refused a request that read registers
	// between its own: its registers are then read only in runs that
	// touch.
	exact  bool
	next   time.Time
	status Status // guarded by Poller.mu
}

// maxBackoff is the longest a device that does not answer waits between
// tries, unless its interval is longer.
const maxBackoff = time.Minute

// backoff is how long a device waits after failures polls in a row
// failed: its interval, doubled with each failure after the first, up to
// maxBackoff.
func backoff(interval time.Duration, failures int) time.Duration {
	d := interval
	for i := 1; i < failures && d < maxBackoff; i++ {
		d *= 2
	}
	return max(min(d, maxBackoff), interval)
}

func (p *Poller) runLine(ctx context.Context, l *line) {
	defer l.close()
	now := p.now()
	for _, d := range l.devices {
		d.next = now
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		d := slices.MinFunc(l.devices, func(a, b *device) int { return a.next.Compare(b.next) })
		timer.Reset(d.next.Sub(p.now()))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		p.pollDevice(l, d)
	}
}

// pollDevice polls d, gives its readings, and sets when it is polled next.
func (p *Poller) pollDevice(l *line, d *device) {
	start := p.now()
	v, err := l.read(d)
	end := p.now()
	p.mu.Lock()
	s := &d.status
	wasOnline, failures := s.Online, s.Failures
	if err == nil {
		s.Online, s.LastAnswer, s.LastError, s.Failures, s.Values = true, end, "", 0, v
		d.next = d.next.Add(d.Interval)
		if !d.next.After(end) {
			d.next = end.Add(d.Interval)
		}
	} else {
		s.Online, s.LastError = false, err.Error()
		s.Failures++
		d.next = end.Add(backoff(d.Interval, s.Failures))
	}
	s.NextPoll = d.next
	p.mu.Unlock()
	switch {
	case err != nil && (wasOnline || failures == 0):
		l.log.Warn("modbus device not answering", slog.String("device", d.Name), slog.Int("unit", int(d.Unit)),
			slog.String("error", err.Error()), slog.Duration("next_try_in", d.next.Sub(end)))
	case err == nil && failures > 0:
		l.log.Info("modbus device answering again", slog.String("device", d.Name), slog.Int("unit", int(d.Unit)), slog.Int("failed_polls", failures))
	}
	if err == nil {
		if rs := Readings(d.Name, v, start); len(rs) > 0 {
			p.take(d.Name, rs)
		}
	}
}

// read reads d's registers.
func (l *line) read(d *device) (Values, error) {
	if l.client == nil {
		if err := l.connect(); err != nil {
			return nil, err
		}
	}
	if err := l.client.SetUnitId(d.Unit); err != nil {
		return nil, err
	}
	v := Values{}
	for _, req := range d.requests {
		kind := modbus.HOLDING_REGISTER
		if req.function == Input {
			kind = modbus.INPUT_REGISTER
		}
		raw, err := l.client.ReadRawBytes(req.address, 2*req.words, kind)
		if err != nil {
			if errors.Is(err, modbus.ErrIllegalDataAddress) && !d.exact && len(req.regs) > 1 {
				// The meter has no registers between some of ours:
				// read ours only, from now on.
				d.exact = true
				d.requests = plan(d.regs, 0, d.most)
				l.log.Info("modbus device refuses reads across unmapped registers; reading its registers in runs", slog.String("device", d.Name))
				return l.read(d)
			}
			if !isException(err) && (l.scheme != "rtu" || !errors.Is(err, modbus.ErrRequestTimedOut)) {
				l.close() // the connection's state is unknown
			}
			return nil, fmt.Errorf("unit %d, %s registers %d to %d: %v", d.Unit, req.function, req.address, int(req.address)+int(req.words)-1, err)
		}
		if err := req.decode(raw, v); err != nil {
			return nil, fmt.Errorf("unit %d, %s registers %d to %d: %v", d.Unit, req.function, req.address, int(req.address)+int(req.words)-1, err)
		}
	}
	return v, nil
}

// isException reports whether err is a Modbus exception: the device
// answered, refusing the request; the connection is sound.
func isException(err error) bool {
	for _, e := range []error{modbus.ErrIllegalFunction, modbus.ErrIllegalDataAddress, modbus.ErrIllegalDataValue,
		modbus.ErrServerDeviceFailure, modbus.ErrAcknowledge, modbus.ErrServerDeviceBusy, modbus.ErrMemoryParityError,
		modbus.ErrGWPathUnavailable, modbus.ErrGWTargetFailedToRespond} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// connect opens l's connection.
func (l *line) connect() error {
	_, addr, _ := parseURL(l.url)
	conf := &modbus.ClientConfiguration{
		URL:     l.scheme + "://" + addr,
		Timeout: l.timeout,
		// The library's own lines (at its error level) go to our log at
		// debug level.
		Logger: log.New(slogWriter{l.log}, "", 0),
	}
	if l.scheme == "rtu" {
		conf.Speed, conf.StopBits, conf.DataBits = l.serial.Speed, l.serial.StopBits, 8
		conf.Parity = map[string]uint{"none": modbus.PARITY_NONE, "even": modbus.PARITY_EVEN, "odd": modbus.PARITY_ODD}[l.serial.Parity]
	}
	c, err := modbus.NewClient(conf)
	if err != nil {
		return fmt.Errorf("%s: %v", l.url, err)
	}
	if err := c.Open(); err != nil {
		return fmt.Errorf("connect to %s: %v", l.url, err)
	}
	l.client = c
	return nil
}

func (l *line) close() {
	if l.client != nil {
		l.client.Close()
		l.client = nil
	}
}

// slogWriter writes the library's log lines to a slog.Logger at debug
// level.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Debug(string(trimNewline(p)))
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}
