package modbus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/testutil/modbustest"
)

// cpu is the process's user and system CPU time so far.
func cpu(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHundredMeters polls 100 SDM630s at 1 s, the plant: ten
// gateways (pymodbus, each its own process) of ten meters each, ten lines
// polled in parallel, each meter's readings given to a callback as they
// would be to the pipeline. It reports the poller's CPU per poll (this
// process's, the simulators' apart) against a baseline measured in the
// same run: the same reads made directly with the Modbus library, one
// request a meter, without the poller's scheduling, decoding and readings.
func BenchmarkHundredMeters(b *testing.B) {
	const gateways, perGateway = 10, 10
	units := map[int][]modbustest.Value{}
	for u := 1; u <= perGateway; u++ {
		var vs []modbustest.Value
		for _, r := range Profiles["sdm630"].Registers {
			vs = append(vs, modbustest.Value{Function: string(r.Function), Address: r.Address, Type: string(r.Type), Value: 230})
		}
		units[u] = vs
	}
	var addrs []string
	for range gateways {
		addrs = append(addrs, modbustest.Start(b, "tcp", "127.0.0.1:0", nil, units).Addr)
	}

	// The baseline: each meter's registers read with the library alone,
	// in the runs the poller settles on (the simulator has only the map's
	// registers).
	runs := plan(Profiles["sdm630"].Registers, 0, 0)
	base := func(polls int) time.Duration {
		var wg sync.WaitGroup
		start := cpu(b)
		for _, addr := range addrs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := modbus.NewClient(&modbus.ClientConfiguration{URL: "tcp://" + addr, Timeout: time.Second})
				if err != nil || c.Open() != nil {
					b.Error("connect", err)
					return
				}
				defer c.Close()
				for i := range polls / gateways {
					c.SetUnitId(uint8(i%perGateway + 1))
					for _, r := range runs {
						if _, err := c.ReadRawBytes(r.address, 2*r.words, modbus.INPUT_REGISTER); err != nil {
							b.Error(err)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		return cpu(b) - start
	}

	var devices []Device
	for g, addr := range addrs {
		for u := 1; u <= perGateway; u++ {
			devices = append(devices, Device{Name: fmt.Sprintf("m%d-%d", g, u), URL: "tcp://" + addr, Unit: uint8(u), Profile: "sdm630",
				Interval: time.Second, Timeout: time.Second})
		}
	}
	var polls, readings atomic.Int64
	p, err := New(devices, func(_ string, rs []meter.Reading) { polls.Add(1); readings.Add(int64(len(rs))) }, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// Past the first polls, which learn the runs.
	for polls.Load() < 2*int64(len(devices)) {
		time.Sleep(10 * time.Millisecond)
	}

	b.ResetTimer()
	start, polled, began := cpu(b), polls.Load(), time.Now()
	for polls.Load()-polled < int64(b.N) {
		time.Sleep(10 * time.Millisecond)
	}
	used, n, took := cpu(b)-start, polls.Load()-polled, time.Since(began)
	b.StopTimer()
	baseline := base(int(n))
	b.ReportMetric(float64(used.Microseconds())/float64(n), "cpu-µs/poll")
	b.ReportMetric(float64(baseline.Microseconds())/float64(n), "baseline-cpu-µs/poll")
	b.ReportMetric(float64(used)/float64(max(baseline, 1)), "x-baseline")
	b.ReportMetric(float64(n)/took.Seconds(), "polls/s")
	b.ReportMetric(100*float64(used)/float64(took), "cpu-%")
	if st := p.Status(); len(st) != len(devices) {
		b.Fatalf("%d statuses", len(st))
	}
	for _, st := range p.Status() {
		if !st.Online {
			b.Errorf("%s: %s", st.Name, st.LastError)
		}
	}
}
