package main

import (
	"bufio"
	"encoding/json"
	goversion "go/version"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
)

// need returns the path of a tool the test needs: outside CI a machine
// without it skips the test; in CI (CI=true), where .ci/run installs it,
// the test fails.
func need(t testing.TB, tool, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found: .ci/run must install Debian's %s package", tool, pkg)
		}
		t.Skipf("%s not found: apt-get install %s to run this test", tool, pkg)
	}
	return path
}

// TestRaspberryPiBuildsUnderQEMU builds the static binaries of the
// Raspberry Pi (arm64; armv7 for 32-bit Raspberry Pi OS; armv6 for a Pi
// Zero or 1) as make release does, and runs each under qemu-user far enough to ingest a
// reading over MQTT, answer /healthz and stop cleanly on SIGTERM.
func TestRaspberryPiBuildsUnderQEMU(t *testing.T) {
	for _, arch := range []struct{ name, goarch, goarm, qemu string }{
		{"arm64", "arm64", "", "qemu-aarch64-static"},
		{"armv7", "arm", "7", "qemu-arm-static"},
		{"armv6", "arm", "6", "qemu-arm-static"}, // a Pi Zero or 1
	} {
		t.Run(arch.name, func(t *testing.T) {
			qemu := need(t, arch.qemu, "qemu-user-static")
			bin := filepath.Join(t.TempDir(), "vatio-linux-"+arch.name)
			build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=qemu-test", "-o", bin, ".")
			build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch.goarch, "GOARM="+arch.goarm)
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build for %s: %v\n%s", arch.name, err, out)
			}
			dir := t.TempDir()
			cmd := exec.Command(qemu, bin, "-config", emptyConfig(t), "-data-dir", dir, "-mqtt-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0")
			cmd.Env = append(os.Environ(), "VATIO_ADMIN_TOKEN="+testAdminToken)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			t.Cleanup(func() {
				if cmd.ProcessState == nil {
					cmd.Process.Kill()
					<-done
				}
			})
			logs := &logBuffer{}
			ready := make(chan []string, 1)
			go func() {
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					logs.Write(append(sc.Bytes(), '\n'))
					if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
						ready <- m
					}
				}
				done <- cmd.Wait()
			}()
			var mqttAddr, httpAddr string
			select {
			case m := <-ready:
				mqttAddr, httpAddr = m[1], m[2]
			case <-time.After(60 * time.Second):
				t.Fatalf("vatio under %s did not become ready\n%s", arch.qemu, logs)
			}
			if !strings.Contains(logs.String(), "version=qemu-test") {
				t.Errorf("the version stamp is not in the ready line:\n%s", logs)
			}

			c := mqtttest.V3(t, mqttAddr)
			mqtttest.Publish3(t, c, "energy/consumption/pi", 1, false, `{"power_w": 1500}`) // acknowledged once stored
			c.Disconnect(100)
			resp, err := apiClient.Get("http://" + httpAddr + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("healthz under %s: %d", arch.qemu, resp.StatusCode)
			}
			var got []legacyReading
			resp, err = apiClient.Get("http://" + httpAddr + "/api/energy?meter=pi")
			if err != nil {
				t.Fatal(err)
			}
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if err != nil || len(got) != 1 || got[0].Consumption != 1.5 {
				t.Errorf("the reading under %s: %+v, %v", arch.qemu, got, err)
			}

			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("vatio under %s stopped with %v\n%s", arch.qemu, err, logs)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("vatio under %s did not stop on SIGTERM\n%s", arch.qemu, logs)
			}
			if !strings.Contains(logs.String(), "stopped cleanly") {
				t.Errorf("no clean stop under %s:\n%s", arch.qemu, logs)
			}
		})
	}
}

// TestSystemdUnit checks deploy/vatio.service as systemd reads it, and
// that its sandbox stays tight: systemd-analyze security rates its
// exposure 2.0 at most (of 10; lower is safer; --threshold counts tenths).
func TestSystemdUnit(t *testing.T) {
	analyze := need(t, "systemd-analyze", "systemd")
	raw, err := os.ReadFile(repoPath("deploy/vatio.service"))
	if err != nil {
		t.Fatal(err)
	}
	// The unit's ExecStart must exist for verify: point it at a binary
	// that does.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "vatio.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(raw), "/usr/local/bin/vatio", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", unit).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.Command(analyze, "security", "--offline=yes", "--threshold=20", unit).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: %v\n%s", err, out)
	}
	for _, want := range []string{"DynamicUser=yes", "ProtectSystem=strict", "StateDirectory=vatio", "NoNewPrivileges=yes"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("the unit lacks %s", want)
		}
	}
}

// TestDockerfile keeps the Dockerfile in step with the build it copies:
// no Docker engine runs here to build it, so this checks what can drift.
// The Go image must be at least go.mod's Go; the asset stage copies the
// files make assets copies and compresses them as it does; the data directory is a volume the image's
// user owns; build leftovers stay out of the context.
func TestDockerfile(t *testing.T) {
	docker := string(mustReadFile(t, repoPath("Dockerfile")))
	gomod := string(mustReadFile(t, repoPath("go.mod")))
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	image := regexp.MustCompile(`FROM golang:(\d+\.\d+)`).FindStringSubmatch(docker)
	if goVersion == nil || image == nil || goversion.Compare("go"+image[1], "go"+goVersion[1]) < 0 { // "1.9" < "1.26" as versions, not strings
		t.Errorf("the Dockerfile's Go image %v is older than go.mod's %v", image, goVersion)
	}
	makefile := string(mustReadFile(t, repoPath("Makefile")))
	for _, f := range []string{"echarts/dist/echarts.min.js", "echarts/LICENSE", "echarts/NOTICE"} {
		if !strings.Contains(makefile, "node_modules/"+f) || !strings.Contains(docker, "node_modules/"+f) {
			t.Errorf("make assets and the Dockerfile do not both copy %s", f)
		}
	}
	// Both compress every served file beside itself with the same script.
	if !strings.Contains(makefile, "node internal/asset/precompress.mjs") || !strings.Contains(docker, "node internal/asset/precompress.mjs") {
		t.Errorf("make assets and the Dockerfile do not both run internal/asset/precompress.mjs")
	}
	for _, want := range []string{"ENV VATIO_DATA_DIR=/data", `VOLUME ["/data"]`, "WORKDIR /etc/vatio", "--chown=nonroot:nonroot /out/data /data", "STOPSIGNAL SIGTERM", "EXPOSE 1883 5000 8883"} {
		if !strings.Contains(docker, want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
	ignore := string(mustReadFile(t, repoPath(".dockerignore")))
	for _, want := range []string{"node_modules", "data", ".git", "*.test"} {
		if !strings.Contains(ignore, want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
