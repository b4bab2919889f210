package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/vatio-energy/vatio/internal/crypt"
	"github.com/vatio-energy/vatio/internal/testutil/pgtest"
	"github.com/vatio-energy/vatio/store"
)

// TestCommandsOnPostgres runs each command that acts on the store with
// store.driver postgres while an instance runs on that database: token,
// device add and import act on PostgreSQL, and the running instance takes
// what they made at its first use; restore and compact, which act on a
// bbolt file, refuse and say what to do instead; decrypt reads a file, as
// on bbolt. None writes a bbolt file into the data directory.
func TestCommandsOnPostgres(t *testing.T) {
	dsn := pgtest.Database(t)
	key := strings.Repeat("5a", 32)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("store:\n  driver: postgres\nencryption:\n  key: "+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == "VATIO_STORE_DSN" {
			return dsn
		}
		return testEnv(k)
	}
	v := startVatioEnv(t, t.TempDir(), cfg, getenv, "")
	cdir := t.TempDir() // the commands' data directory: nothing goes there
	command := func(args ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		n := 1 // the command's words: "device add", "token"
		if args[0] == "device" {
			n = 2
		}
		args = append(append(args[:n:n], "-config", cfg, "-data-dir", cdir), args[n:]...)
		err := run(context.Background(), args, getenv, &out, &errOut)
		if err != nil {
			return out.String(), fmt.Errorf("%w\n%s", err, errOut.String())
		}
		return out.String(), nil
	}

	// vatio token: the running instance takes it at its first use.
	out, err := command("token", "-role", "admin", "-name", "ops")
	if err != nil {
		t.Fatalf("vatio token: %v", err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+v.http+"/api/v1/tokens", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(out))
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a token made by vatio token on PostgreSQL: the running instance answers %d", resp.StatusCode)
	}

	// vatio device add: the device connects to the running instance's
	// broker with the password printed.
	out, err = command("device", "add", "meter7")
	if err != nil {
		t.Fatalf("vatio device add: %v", err)
	}
	m := regexp.MustCompile(`(?m)^password:\s+(\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("vatio device add printed no password:\n%s", out)
	}
	opts := paho3.NewClientOptions().AddBroker("tcp://" + v.mqtt).SetClientID("meter7").SetUsername("meter7").SetPassword(m[1]).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
	c := paho3.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
		t.Errorf("a device added by vatio device add on PostgreSQL cannot connect: %v", tok.Error())
	} else {
		c.Disconnect(100)
	}

	// vatio import: the readings are the running instance's.
	csv := filepath.Join(t.TempDir(), "history.csv")
	var b strings.Builder
	t0 := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	for i := range 60 {
		fmt.Fprintf(&b, "%d,%d\n", t0.Add(time.Duration(i)*time.Minute).Unix(), 400+i)
	}
	if err := os.WriteFile(csv, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := command("import", "-meter", "imported", csv); err != nil {
		t.Fatalf("vatio import: %v", err)
	}
	// The running instance hears of the commit through PostgreSQL's
	// notification, a moment after the command ends.
	var meterInfo struct{ Readings int }
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code := getJSON(t, "http://"+v.http+"/api/v1/meters/imported", &meterInfo)
		if code == http.StatusOK && meterInfo.Readings == 60 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after vatio import on PostgreSQL the running instance has %+v (%d), want 60 readings", meterInfo, code)
			break
		}
	}

	// vatio restore and vatio compact act on a bbolt file: they refuse.
	for _, args := range [][]string{{"restore", filepath.Join(t.TempDir(), "backup.db")}, {"compact"}} {
		_, err := command(args...)
		if err == nil || !strings.Contains(err.Error(), "store.driver is postgres") || !strings.Contains(err.Error(), "nothing was changed") {
			t.Errorf("vatio %s on PostgreSQL: %v; want a refusal that says why", args[0], err)
		}
	}

	// vatio decrypt reads a file, whatever the store.
	k, err := crypt.ParseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed := filepath.Join(t.TempDir(), "archive.csv.gz.enc")
	var enc bytes.Buffer
	w, err := crypt.NewWriter(&enc, k)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("plain text"))
	w.Close()
	if err := os.WriteFile(sealed, enc.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := command("decrypt", sealed); err != nil || out != "plain text" {
		t.Errorf("vatio decrypt with store.driver postgres: %q, %v", out, err)
	}

	if _, err := os.Stat(filepath.Join(cdir, store.FileName)); err == nil {
		t.Errorf("a command wrote %s into the data directory with store.driver postgres", store.FileName)
	}
}
