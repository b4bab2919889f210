package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vatio-energy/vatio/internal/mqtttest"
	"github.com/vatio-energy/vatio/internal/pgtest"
)

// TestScaleOutOnPostgres runs two Vatio instances on one PostgreSQL
// database and one Mosquitto, in its share group: readings published by a
// real client are split between them and stored once in the shared
// database, which both answer from. One instance is killed (SIGKILL)
// mid-ingest and started again: every reading is then stored, and none
// twice.
func TestScaleOutOnPostgres(t *testing.T) {
	dsn := pgtest.Database(t)
	brokerAddr, _, _ := startMosquitto(t)
	start := func(id string) (*exec.Cmd, string) {
		t.Helper()
		cfg := filepath.Join(t.TempDir(), "config.yaml")
		err := os.WriteFile(cfg, fmt.Appendf(nil, "broker:\n  mode: external\n  urls: [\"mqtt://%s\"]\n  client_id: %s\nstore:\n  driver: postgres\n", brokerAddr, id), 0o600)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "VATIO_TEST_CHILD=1", "VATIO_ADMIN_TOKEN="+testAdminToken, "VATIO_STORE_DSN="+dsn,
			"VATIO_TEST_ARGS=-config "+cfg+" -http-addr 127.0.0.1:0 -data-dir "+t.TempDir())
		logs := &logBuffer{}
		cmd.Stderr = logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		for deadline := time.Now().Add(30 * time.Second); ; {
			l := logs.String()
			if m := httpLine.FindStringSubmatch(l); m != nil && strings.Contains(l, "subscribed to the MQTT broker") {
				return cmd, m[1]
			}
			if time.Now().After(deadline) {
				t.Fatalf("vatio %s did not start:\n%s", id, l)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	// stored returns the rows of meter k and their distinct times.
	stored := func() (rows, distinct int) {
		err := db.QueryRow(context.Background(), `SELECT count(*), count(DISTINCT ts) FROM readings WHERE meter = 'k'`).Scan(&rows, &distinct)
		if err != nil {
			t.Fatal(err)
		}
		return rows, distinct
	}

	cmdA, _ := start("vatio-a")
	_, httpB := start("vatio-b")
	publisher := mqtttest.V3(t, brokerAddr)
	const n = 3000
	published := make(chan struct{})
	go func() {
		defer close(published)
		publishReadings(t, publisher, "k", 0, n)
	}()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if rows, _ := stored(); rows >= 300 {
			break
		}
	}
	cmdA.Process.Kill()
	cmdA.Wait()
	before, _ := stored()
	<-published
	t.Logf("instance a killed with %d of %d readings stored", before, n)
	if before >= n {
		t.Fatalf("all %d readings were stored before the kill: the test proves nothing", n)
	}
	// What the broker holds for a's session arrives when a is back.
	_, httpA := start("vatio-a")
	deadline := time.Now().Add(60 * time.Second)
	for rows, _ := stored(); rows < n && time.Now().Before(deadline); rows, _ = stored() {
		time.Sleep(50 * time.Millisecond)
	}
	if rows, distinct := stored(); rows != n || distinct != n {
		t.Fatalf("after the kill and a restart: %d rows, %d distinct times; want %d of each", rows, distinct, n)
	}
	// Both instances answer from the shared database, registry included.
	for _, addr := range []string{httpA, httpB} {
		var m struct {
			Readings int
			Source   string
		}
		getJSON(t, "http://"+addr+"/api/v1/meters/k", &m)
		if m.Readings != n {
			t.Errorf("%s: meter k has %d readings, want %d", addr, m.Readings, n)
		}
		if got := storedCount(t, addr, "k"); got != 1000 {
			t.Errorf("%s: /api/energy?meter=k&limit=1000 gave %d readings", addr, got)
		}
	}
}
