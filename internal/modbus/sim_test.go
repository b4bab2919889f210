package modbus

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// simValue is one value a simulated meter serves (testdata/meter_sim.py).
type simValue struct {
	Unit      int      `json:"unit,omitempty"`
	Function  Function `json:"function"`
	Address   uint16   `json:"address"`
	Type      Type     `json:"type"`
	WordOrder Order    `json:"word_order,omitempty"`
	ByteOrder Order    `json:"byte_order,omitempty"`
	Value     float64  `json:"value"`
}

// sim is a Modbus meter served by Debian's pymodbus, not by our code.
type sim struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	addr  string // host:port, for TCP
	mu    sync.Mutex
	spec  string
	args  []string
	ready chan string
}

// startSim serves units' values over kind (tcp, rtuovertcp: where is
// host:port, port 0 choosing one; rtu: where is a serial device, serial its
// settings).
func startSim(t *testing.T, kind, where string, serial []string, units map[int][]simValue) *sim {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatal("the tests need Debian's python3 with python3-pymodbus (apt-get install python3-pymodbus python3-serial-asyncio)")
	}
	spec := map[string]map[string][]simValue{"units": {}}
	for u, vs := range units {
		spec["units"][itoa(u)] = vs
	}
	b, _ := json.Marshal(spec)
	path := filepath.Join(t.TempDir(), "spec.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"testdata/meter_sim.py", kind, where}, serial...)
	s := &sim{t: t, spec: path, args: append(args, path)}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func (s *sim) start() {
	s.t.Helper()
	cmd := exec.Command("/usr/bin/python3", s.args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
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
			s.addr = "127.0.0.1:" + port
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		s.t.Fatalf("the simulator did not start: %s", stderr.String())
	}
	s.mu.Lock()
	s.cmd, s.in = cmd, stdin
	s.mu.Unlock()
}

// set changes a value the meter serves.
func (s *sim) set(v simValue) {
	s.t.Helper()
	b, _ := json.Marshal(v)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.in.Write(append(b, '\n')); err != nil {
		s.t.Fatal(err)
	}
}

// stop kills the meter, as a meter whose power or cable is cut.
func (s *sim) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// restart serves the meter again where it served, as a meter back on.
func (s *sim) restart() {
	s.t.Helper()
	if s.addr != "" {
		s.args[2] = s.addr
	}
	s.start()
}

// startProcess runs a helper program until the test ends.
func startProcess(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v (the tests need Debian's %s)", name, err, name)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// waitFor waits for paths to exist.
func waitFor(t *testing.T, paths ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range paths {
		for {
			if _, err := os.Stat(p); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not appear", p)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
