package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vatio-energy/vatio/internal/config"
	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
)

// TestBackupAndRestore takes a backup over HTTP from a running Vatio,
// restores it with `vatio restore` once Vatio is stopped (and not before),
// and finds in the restarted Vatio exactly what the backup held.
func TestBackupAndRestore(t *testing.T) {
	dir := t.TempDir()
	v := startVatio(t, dir)
	c := mqtttest.V3(t, v.mqtt)
	for _, p := range []string{`{"power_w": 1000, "ts": 1764064800}`, `{"power_w": 2000, "ts": 1764064801}`} {
		mqtttest.Publish3(t, c, "energy/consumption/plant", 1, false, p) // QoS 1: stored when acknowledged
	}

	resp, err := apiClient.Get("http://" + v.http + "/api/v1/backup")
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(backup)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(f, resp.Body)
	resp.Body.Close()
	f.Close()
	if err != nil || resp.StatusCode != 200 || strconv.FormatInt(n, 10) != resp.Header.Get("Content-Length") {
		t.Fatalf("GET /api/v1/backup: %d, %d bytes of %s (%v)", resp.StatusCode, n, resp.Header.Get("Content-Length"), err)
	}
	mqtttest.Publish3(t, c, "energy/consumption/plant", 1, false, `{"power_w": 3000, "ts": 1764064802}`) // not in the backup
	c.Disconnect(0)

	noEnv := func(string) string { return "" }
	restore := func(getenv func(string) string, args ...string) (string, error) {
		var out strings.Builder
		args = append([]string{"restore", "-config", emptyConfig(t)}, args...)
		err := run(context.Background(), args, getenv, &out, io.Discard)
		return out.String(), err
	}

	// Refused while Vatio runs on the data directory, which is left as it was.
	before := files(t, dir)
	if out, err := restore(noEnv, "-data-dir", dir, backup); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("vatio restore while vatio runs = %v (%q), want an error saying the database is in use", err, out)
	}
	if after := files(t, dir); !slices.Equal(before, after) {
		t.Errorf("a refused restore changed the data dir: %v, was %v", after, before)
	}
	v.stop(t)

	out, err := restore(noEnv, "-data-dir", dir, backup)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "restored "+backup+" to "+filepath.Join(dir, "vatio.db")) ||
		!strings.Contains(out, "previous database is kept as "+filepath.Join(dir, "vatio.db.before-restore-")) {
		t.Errorf("vatio restore printed %q", out)
	}
	powers := func(v *instance) string {
		var got []legacyReading
		getJSON(t, "http://"+v.http+"/api/energy?meter=plant", &got)
		var kW []string
		for _, r := range got {
			kW = append(kW, fmt.Sprint(r.Consumption))
		}
		return strings.Join(kW, " ")
	}
	if got := powers(startVatio(t, dir)); got != "2 1" {
		t.Errorf("after the restore, plant's readings are %q kW, want \"2 1\" (the backup's)", got)
	}

	// The data directory comes from the environment as for the server.
	fresh := filepath.Join(t.TempDir(), "data")
	out, err = restore(func(k string) string {
		if k == config.EnvDataDir {
			return fresh
		}
		return ""
	}, backup)
	if err != nil || !strings.Contains(out, "no previous database") {
		t.Fatalf("vatio restore into a new VATIO_DATA_DIR = %v, printed %q", err, out)
	}
	if got := powers(startVatio(t, fresh)); got != "2 1" {
		t.Errorf("restored into a new data dir, plant's readings are %q kW, want \"2 1\"", got)
	}

	bad := filepath.Join(t.TempDir(), "bad.db")
	os.WriteFile(bad, []byte("not a database"), 0o600)
	for _, args := range [][]string{{"-data-dir", t.TempDir(), bad}, {"-data-dir", t.TempDir()}, {backup, "extra"}} {
		if _, err := restore(noEnv, args...); err == nil {
			t.Errorf("vatio restore %v = nil, want an error", args)
		}
	}
}

// files lists dir's files with their sizes.
func files(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(e.Name(), " ", info.Size()))
	}
	return out
}
