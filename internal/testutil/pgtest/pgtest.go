// Package pgtest gives tests a real PostgreSQL database of their own.
//
// The server is the one VATIO_TEST_POSTGRES names (a connection URL of a
// role that may create databases; .ci/run starts Debian's cluster and sets
// it) or, without it, a private cluster that Main starts from Debian's
// postgresql package for the test binary and stops when it ends. Each
// Database is new and empty, and dropped when its test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvServer names the server tests use instead of a private cluster.
const EnvServer = "VATIO_TEST_POSTGRES"

var (
	mu      sync.Mutex
	server  string // admin URL
	why     string // why there is none
	stopper func()
)

// Main runs the tests of a package that uses Database, with a private
// cluster started on first use and stopped after them.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the private cluster, if one was started; a TestMain of its
// own calls it after the tests. A Database after it starts another.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if stopper != nil {
		stopper()
		stopper, server = nil, ""
	}
}

// Server returns the admin URL of the test server, starting a private
// cluster if needed; the test is skipped (failed under CI) when PostgreSQL
// is not installed.
func Server(t testing.TB) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if server == "" && why == "" {
		server = os.Getenv(EnvServer)
		if server == "" {
			server, why = start()
		}
	}
	if server == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("no PostgreSQL: %s (.ci/run must install Debian's postgresql package)", why)
		}
		t.Skipf("no PostgreSQL: %s (apt-get install postgresql, or set %s)", why, EnvServer)
	}
	return server
}

// Database creates an empty database for t and returns its URL; it is
// dropped when t ends.
func Database(t testing.TB) string {
	t.Helper()
	admin := Server(t)
	b := make([]byte, 6)
	rand.Read(b)
	name := "vatio_test_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("pgtest: connect %s: %v", admin, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvServer, err)
	}
	u.Path = "/" + name
	return u.String()
}

// start starts a private cluster in a temporary directory, listening on a
// free loopback port, and returns its admin URL or why it could not.
func start() (string, string) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		return "", "initdb not found under /usr/lib/postgresql"
	}
	bin := filepath.Dir(bins[len(bins)-1])
	dir, err := os.MkdirTemp("", "vatio-pgtest-")
	if err != nil {
		return "", err.Error()
	}
	// PostgreSQL refuses to run as root: as root, it runs as postgres.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", "running as root and no postgres user"
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", err.Error()
		}
	}
	run := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = dir
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := run("initdb", "-D", data, "-U", "vatio", "-A", "trust", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Sprintf("initdb: %v: %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err.Error()
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300", port, dir)
	if out, err := run("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		os.RemoveAll(dir)
		return "", fmt.Sprintf("pg_ctl start: %v: %s %s", err, out, log)
	}
	// A watchdog in a session of its own stops the cluster when this
	// process ends however it ends (a test's time-out panics past Stop, a
	// kill takes the process group): its standard input is a pipe only
	// this process holds, which the kernel closes when it exits.
	watchR, watchW, err := os.Pipe()
	if err != nil {
		_ = run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop").Run()
		os.RemoveAll(dir)
		return "", err.Error()
	}
	watchdog := run("sh", "-c", `read _; "$0" -D "$1" -m immediate -w stop >/dev/null 2>&1; rm -rf "$2"`,
		filepath.Join(bin, "pg_ctl"), data, dir)
	watchdog.Path = "/bin/sh"
	watchdog.SysProcAttr.Setsid = true
	watchdog.Stdin = watchR
	if err := watchdog.Start(); err != nil {
		_ = run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop").Run()
		os.RemoveAll(dir)
		return "", "watchdog: " + err.Error()
	}
	watchR.Close()
	stopper = func() {
		_ = run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop").Run()
		os.RemoveAll(dir)
		watchW.Close() // the watchdog finds it stopped, and goes
		_ = watchdog.Wait()
	}
	return fmt.Sprintf("postgres://vatio@127.0.0.1:%d/postgres?sslmode=disable", port), ""
}
