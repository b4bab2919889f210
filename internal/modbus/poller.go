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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/simonvetter/modbus"

	"github.com/vatio-energy/vatio/internal/meter"
)

// Poller reads devices over Modbus, each at its interval: the devices of
// one line (a serial port, or one TCP host and port) one request at a
// time, different lines in parallel. A device that stops answering is
// tried less and less often, up to once a minute (or once an interval, if
// longer), so that it holds up the others on its line as little as
// possible; its meter gives no readings meanwhile, which is what the
// `silent` alert and the meter's "last heard" go by. Its devices can be
// changed while it polls (Set): only the lines whose devices changed are
// stopped and started again.
type Poller struct {
	log *slog.Logger
	// take is given each poll's readings.
	take func(device string, rs []meter.Reading)
	now  func() time.Time

	// run guards lines and, while Run runs, ctx: the lines polling.
	run   sync.Mutex
	lines []*line
	ctx   context.Context

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
	if err := p.Set(devices); err != nil {
		return nil, err
	}
	return p, nil
}

// Layout groups devices into the lines they are polled on, refusing what
// cannot be polled together: two devices of one name, two of one unit on
// a line, or a serial line given two speeds.
type Layout struct {
	log   *slog.Logger
	byURL map[string]*line
	lines []*line
	names map[string]bool
}

// NewLayout returns an empty layout.
func NewLayout() *Layout {
	return &Layout{log: slog.New(slog.DiscardHandler), byURL: map[string]*line{}, names: map[string]bool{}}
}

// Add adds d to the layout, or says why it cannot be polled with the
// devices added before; the layout is then as it was.
func (lay *Layout) Add(d Device) error {
	if err := d.Check(); err != nil {
		return problemf("modbus device %q: %v", d.Name, err)
	}
	if lay.names[d.Name] {
		return problemf("modbus device %q: two devices of that name", d.Name)
	}
	scheme, addr, _ := parseURL(d.URL)
	key := lineKey(scheme, addr)
	l := lay.byURL[key]
	if l != nil {
		if scheme == "rtu" && d.Serial != l.serial {
			return problemf("modbus device %q: its serial settings (%d %s %d) are not those of the other devices on %s (%d %s %d): a line has one speed, parity and stop bits",
				d.Name, d.Serial.Speed, d.Serial.Parity, d.Serial.StopBits, key, l.serial.Speed, l.serial.Parity, l.serial.StopBits)
		}
		for _, o := range l.devices {
			if o.Unit == d.Unit {
				return problemf("modbus device %q: unit %d on %s is device %q's", d.Name, d.Unit, key, o.Name)
			}
		}
	} else {
		l = &line{url: key, dial: addr, scheme: scheme, serial: d.Serial, timeout: d.Timeout, log: lay.log.With("line", key)}
		lay.byURL[key] = l
		lay.lines = append(lay.lines, l)
	}
	lay.names[d.Name] = true
	l.timeout = max(l.timeout, d.Timeout)
	regs, most := d.registers()
	l.devices = append(l.devices, &device{Device: d, regs: regs, most: most, requests: plan(regs, gap, most),
		status: Status{Name: d.Name, URL: d.URL, Unit: d.Unit, Profile: d.Profile, Interval: d.Interval}})
	return nil
}

// Set makes devices the ones polled, or says why they cannot be polled
// together and changes nothing. While the poller runs, the lines whose
// devices did not change go on as they were; the others are stopped
// (their request in flight answered or timed out) and started again, a
// device that was polled before keeping its status.
func (p *Poller) Set(devices []Device) error {
	lay := NewLayout()
	lay.log = p.log
	for _, d := range devices {
		if err := lay.Add(d); err != nil {
			return err
		}
	}
	p.run.Lock()
	defer p.run.Unlock()
	old := map[string]*line{}
	for _, l := range p.lines {
		old[l.url] = l
	}
	next := make([]*line, 0, len(lay.lines))
	for _, l := range lay.lines {
		if o := old[l.url]; o != nil && o.same(l) {
			next = append(next, o)
			delete(old, l.url)
			continue
		}
		next = append(next, l)
	}
	// The lines changed or gone are stopped, not waited for: a poll in
	// flight ends at its next request. A line's successor waits for it
	// before opening its port (one opener of a serial port at a time).
	before := map[string]*device{}
	for _, o := range old {
		if o.stop != nil {
			o.stop()
		}
		for _, d := range o.devices {
			before[d.Name] = d
		}
	}
	p.mu.Lock()
	for _, l := range next {
		if o := old[l.url]; o != nil {
			l.after = o.done
		}
		for _, d := range l.devices {
			if b := before[d.Name]; b != nil && slices.Equal(b.regs, d.regs) && b.Device.same(d.Device) {
				d.status, d.exact = b.status, b.exact
				if d.exact {
					d.requests = plan(d.regs, 0, d.most)
				}
			}
		}
	}
	p.mu.Unlock()
	p.lines = next
	if p.ctx != nil {
		for _, l := range next {
			if l.stop == nil {
				p.start(l)
			}
		}
	}
	return nil
}

// start polls l until its stop is called; p.run is held.
func (p *Poller) start(l *line) {
	ctx, cancel := context.WithCancel(p.ctx)
	l.stop, l.done = cancel, make(chan struct{})
	after := l.after
	go func() {
		defer close(l.done)
		if after != nil {
			select {
			case <-after: // the line it replaces has let go of the port
			case <-ctx.Done():
				return
			}
		}
		p.runLine(ctx, l)
	}()
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
	// Polls and Failed count its polls and those that failed, since the
	// device was set (changing it starts them again).
	Polls, Failed uint64 `json:"-"`
	// Values are what its last answer held.
	Values Values `json:"values,omitempty"`
}

// Status returns the status of each device, by name.
func (p *Poller) Status() []Status {
	p.run.Lock()
	lines := p.lines
	p.run.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Status
	for _, l := range lines {
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

// Run polls until ctx is done, then closes the connections. It may be
// called again once it has returned (when this instance leads again).
func (p *Poller) Run(ctx context.Context) {
	p.run.Lock()
	if p.ctx != nil {
		p.run.Unlock()
		panic("modbus: Run called while running")
	}
	p.ctx = ctx
	for _, l := range p.lines {
		p.start(l)
	}
	p.run.Unlock()
	<-ctx.Done()
	p.run.Lock()
	defer p.run.Unlock()
	for _, l := range p.lines {
		if l.stop != nil {
			l.stop()
			<-l.done
			l.stop, l.done = nil, nil
		}
	}
	p.ctx = nil
}

// line is a serial port or a TCP host and port, and the devices on it.
type line struct {
	url string // scheme://address, one per line (lineKey)
	// dial is the address opened: the first device's host:port, or its
	// serial path as given (a link is followed at each opening, so that a
	// replugged adapter's link names its new port).
	dial    string
	scheme  string
	serial  Serial
	timeout time.Duration
	log     *slog.Logger
	devices []*device
	client  *modbus.ModbusClient // nil until connected, and after a connection's error
	// stop ends the goroutine polling it, which closes done; both nil
	// while it is not polled. after, when not nil, is closed once the
	// line it replaces has stopped: it opens its port only then.
	stop  context.CancelFunc
	done  chan struct{}
	after <-chan struct{}
}

// same reports whether m polls what l does: the same settings and devices.
func (l *line) same(m *line) bool {
	if l.url != m.url || l.dial != m.dial || l.serial != m.serial || l.timeout != m.timeout || len(l.devices) != len(m.devices) {
		return false
	}
	for i, d := range l.devices {
		if !d.Device.same(m.devices[i].Device) {
			return false
		}
	}
	return true
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
		p.pollDevice(ctx, l, d)
	}
}

// pollDevice polls d, gives its readings, and sets when it is polled next.
func (p *Poller) pollDevice(ctx context.Context, l *line, d *device) {
	start := p.now()
	v, err := l.read(ctx, d)
	end := p.now()
	if ctx.Err() != nil {
		return // stopped mid-poll: nothing to record
	}
	p.mu.Lock()
	s := &d.status
	wasOnline, failures := s.Online, s.Failures
	s.Polls++
	if err == nil {
		s.Online, s.LastAnswer, s.LastError, s.Failures, s.Values = true, end, "", 0, v
		d.next = d.next.Add(d.Interval)
		if !d.next.After(end) {
			d.next = end.Add(d.Interval)
		}
	} else {
		s.Online, s.LastError = false, err.Error()
		s.Failures++
		s.Failed++
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
func (l *line) read(ctx context.Context, d *device) (Values, error) {
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
		if err := ctx.Err(); err != nil {
			return nil, err // stopped: the line is changed or gone
		}
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
				return l.read(ctx, d)
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
	conf := &modbus.ClientConfiguration{
		URL:     l.scheme + "://" + l.dial,
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

// The poller's metrics, per device.
var (
	upDesc = prometheus.NewDesc("vatio_modbus_device_up",
		"Whether the Modbus device answered its last poll (1) or not (0); a device never polled yet is not listed.", []string{"device"}, nil)
	pollsDesc = prometheus.NewDesc("vatio_modbus_polls_total",
		"Polls of the Modbus device, by result: ok or failed.", []string{"device", "result"}, nil)
)

// Describe implements prometheus.Collector.
func (p *Poller) Describe(ch chan<- *prometheus.Desc) {
	ch <- upDesc
	ch <- pollsDesc
}

// Collect implements prometheus.Collector: each device polled so far.
func (p *Poller) Collect(ch chan<- prometheus.Metric) {
	for _, s := range p.Status() {
		if s.Polls == 0 {
			continue
		}
		up := 0.0
		if s.Online {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, s.Name)
		ch <- prometheus.MustNewConstMetric(pollsDesc, prometheus.CounterValue, float64(s.Polls-s.Failed), s.Name, "ok")
		ch <- prometheus.MustNewConstMetric(pollsDesc, prometheus.CounterValue, float64(s.Failed), s.Name, "failed")
	}
}
