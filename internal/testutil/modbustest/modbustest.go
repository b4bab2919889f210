// Package modbustest runs Modbus meters for tests: Debian's pymodbus
// (python3-pymodbus, run with /usr/bin/python3) serving typed register
// values over Modbus TCP, RTU over TCP, or RTU on a serial device (one end
// of a socat pseudo-terminal pair). The values are encoded by Python's
// struct, apart from Vatio's own decoding.
package modbustest

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Value is one value a meter serves.
type Value struct {
	Unit      int     `json:"unit,omitempty"` // for Set
	Function  string  `json:"function"`       // input or holding
	Address   uint16  `json:"address"`        // 0-based
	Type      string  `json:"type"`           // int16 ... float64
	WordOrder string  `json:"word_order,omitempty"`
	ByteOrder string  `json:"byte_order,omitempty"`
	Value     float64 `json:"value"`
}

// Meter is a running simulator.
type Meter struct {
	// Addr is where a TCP meter listens (host:port).
	Addr string

	t    testing.TB
	args []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	in   io.WriteCloser
}

// script is meter_sim.py, beside this file.
func script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "meter_sim.py")
}

// Start serves units' values over kind: tcp or rtuovertcp, where being
// host:port (port 0 chooses one); or rtu, where being a serial device and
// serial its settings (baud, parity N|E|O, stop bits). Only the registers
// given exist: a read of any other is answered with exception 2; a unit
// not given is not answered. It stops when the test ends.
func Start(t testing.TB, kind, where string, serial []string, units map[int][]Value) *Meter {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatal("the tests need Debian's python3 with python3-pymodbus (apt-get install python3-pymodbus python3-serial-asyncio)")
	}
	spec := map[string]map[string][]Value{"units": {}}
	for u, vs := range units {
		spec["units"][strconv.Itoa(u)] = vs
	}
	b, _ := json.Marshal(spec)
	path := filepath.Join(t.TempDir(), "spec.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{script(), kind, where}, serial...)
	m := &Meter{t: t, args: append(args, path)}
	m.start()
	t.Cleanup(m.Stop)
	return m
}

func (m *Meter) start() {
	m.t.Helper()
	cmd := exec.Command("/usr/bin/python3", m.args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		m.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		m.t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "ready") {
				ready <- strings.TrimSpace(strings.TrimPrefix(line, "ready"))
			}
		}
	}()
	select {
	case port := <-ready:
		if port != "" {
			m.Addr = "127.0.0.1:" + port
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		m.t.Fatalf("the Modbus simulator did not start: %s", stderr.String())
	}
	m.mu.Lock()
	m.cmd, m.in = cmd, stdin
	m.mu.Unlock()
}

// Set changes a value the meter serves (v.Unit names its unit).
func (m *Meter) Set(v Value) {
	m.t.Helper()
	b, _ := json.Marshal(v)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.in == nil {
		m.t.Fatal("the meter is stopped")
	}
	if _, err := m.in.Write(append(b, '\n')); err != nil {
		m.t.Fatal(err)
	}
}

// Stop kills the meter, as a meter whose power or cable is cut.
func (m *Meter) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		m.cmd.Process.Kill()
		m.cmd.Wait()
		m.cmd, m.in = nil, nil
	}
}

// Restart serves the meter again where it served, as a meter back on.
func (m *Meter) Restart() {
	m.t.Helper()
	if m.Addr != "" {
		m.args[2] = m.Addr
	}
	m.start()
}

// PTYPair links two pseudo-terminals with socat, as the two ends of an
// RS-485 line: Vatio opens one, the meter the other. It returns their
// paths; socat stops when the test ends.
func PTYPair(t testing.TB) (vatio, meter string) {
	t.Helper()
	dir := t.TempDir()
	vatio, meter = filepath.Join(dir, "vatio"), filepath.Join(dir, "meter")
	cmd := exec.Command("socat", "pty,raw,echo=0,link="+vatio, "pty,raw,echo=0,link="+meter)
	if err := cmd.Start(); err != nil {
		t.Fatalf("socat: %v (the tests need Debian's socat)", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range []string{vatio, meter} {
		for {
			if _, err := os.Stat(p); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("socat made no %s", p)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return vatio, meter
}
