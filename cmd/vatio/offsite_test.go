package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

// TestOffsiteEndToEnd: a Vatio with off-site copies ships its backup to
// an S3 server (in the test's process) when asked, encrypted; the machine
// is then lost, and `vatio restore -offsite latest` brings the data back on
// a new one.
func TestOffsiteEndToEnd(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket("vatio-backups"); err != nil {
		t.Fatal(err)
	}
	s3 := httptest.NewServer(gofakes3.New(backend).Server())
	defer s3.Close()
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	err := os.WriteFile(cfg, fmt.Appendf(nil, `offsite:
  enabled: true
  endpoint: %q
  insecure: true
  bucket: vatio-backups
  prefix: home/
`, strings.TrimPrefix(s3.URL, "http://")), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"VATIO_ENCRYPTION_KEY": key, "VATIO_OFFSITE_ACCESS_KEY": "AKIA", "VATIO_OFFSITE_SECRET_KEY": "s3cr3t-offsite",
		"VATIO_ADMIN_TOKEN": testAdminToken}
	getenv := func(k string) string { return env[k] }

	// The old machine: a reading, and a scheduled backup of it.
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Append(meter.Reading{Meter: "house", Time: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), PowerW: 2500, Stamped: true}, nil); err != nil {
		t.Fatal(err)
	}
	st.Flush()
	if _, err := st.BackupTo(st.BackupDir(), 7, time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	st.Close()

	v := startVatioEnv(t, dir, cfg, getenv, "")
	resp, err := apiClient.Post("http://"+v.http+"/api/v1/offsite/sync", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var synced struct{ Uploaded, Deleted int }
	json.NewDecoder(resp.Body).Decode(&synced)
	resp.Body.Close()
	if resp.StatusCode != 200 || synced.Uploaded != 1 {
		t.Errorf("POST /api/v1/offsite/sync = %d %+v, want the backup uploaded", resp.StatusCode, synced)
	}
	v.stop(t)
	if l := v.logs.String(); strings.Contains(l, "s3cr3t-offsite") || strings.Contains(l, key) {
		t.Errorf("a secret is in the logs:\n%s", l)
	}
	obj, err := backend.GetObject("vatio-backups", "home/backups/vatio-20261125T110000Z.db.enc", nil)
	if err != nil {
		t.Fatalf("the backup is not in the bucket: %v", err)
	}
	sealed, _ := io.ReadAll(obj.Contents)
	obj.Contents.Close()
	if !bytes.HasPrefix(sealed, []byte("VATIOENC")) {
		t.Error("the backup in the bucket is not encrypted")
	}

	// The new machine: an empty data directory.
	fresh := filepath.Join(t.TempDir(), "data")
	var out strings.Builder
	if err := run(context.Background(), []string{"restore", "-config", cfg, "-data-dir", fresh, "-offsite", "-list"}, getenv, &out, io.Discard); err != nil ||
		!strings.HasPrefix(out.String(), "vatio-20261125T110000Z.db.enc\t") {
		t.Errorf("vatio restore -offsite -list = %v, %q", err, out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"restore", "-config", cfg, "-data-dir", fresh, "-offsite", "latest"}, getenv, &out, io.Discard); err != nil {
		t.Fatalf("vatio restore -offsite latest: %v", err)
	}
	if !strings.Contains(out.String(), "restored offsite:backups/vatio-20261125T110000Z.db.enc") {
		t.Errorf("vatio restore printed %q", out.String())
	}
	v = startVatio(t, fresh)
	var got []legacyReading
	getJSON(t, "http://"+v.http+"/api/energy?meter=house", &got)
	if len(got) != 1 || got[0].Consumption != 2.5 {
		t.Errorf("after the restore from off-site: %+v", got)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(fresh, ".vatio-restore-*")); len(leftovers) != 0 {
		t.Errorf("the downloaded copy was left behind: %v", leftovers)
	}
	// Without the key, nothing is restored.
	delete(env, "VATIO_ENCRYPTION_KEY")
	if err := run(context.Background(), []string{"restore", "-config", cfg, "-data-dir", t.TempDir(), "-offsite", "latest"}, getenv, io.Discard, io.Discard); err == nil {
		t.Error("a restore from off-site without the key succeeded")
	}
}
