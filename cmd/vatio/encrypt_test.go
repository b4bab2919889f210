package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vatio-energy/vatio/internal/config"
	"github.com/vatio-energy/vatio/internal/crypt"
	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
	"github.com/vatio-energy/vatio/store"
)

// With encryption.key set, the backup download is encrypted; vatio
// restore takes it back with the key (and refuses it without, or with
// another, changing nothing); vatio decrypt gives the database file. The
// key appears in no log line.
func TestEncryptedBackupRestore(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 32))
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5b}, 32))
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("encryption:\n  key: \""+key+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	v := startVatioWith(t, dir, cfg)
	c := mqtttest.V3(t, v.mqtt)
	mqtttest.Publish3(t, c, "energy/consumption/plant", 1, false, `{"power_w": 1000, "ts": 1764064800}`)
	resp, err := apiClient.Get("http://" + v.http + "/api/v1/backup")
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.HasPrefix(sealed, []byte(crypt.Magic)) ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), `.db.enc"`) {
		t.Fatalf("backup: %d, %q, encrypted %v", resp.StatusCode, resp.Header.Get("Content-Disposition"), bytes.HasPrefix(sealed, []byte(crypt.Magic)))
	}
	backup := filepath.Join(t.TempDir(), "vatio.db.enc")
	os.WriteFile(backup, sealed, 0o600)
	mqtttest.Publish3(t, c, "energy/consumption/plant", 1, false, `{"power_w": 3000, "ts": 1764064802}`) // not in the backup
	c.Disconnect(0)
	v.stop(t)
	if logs := v.logs.String(); strings.Contains(logs, key) || !strings.Contains(logs, "backups and archives are encrypted") {
		t.Errorf("logs show the key, or do not say backups are encrypted:\n%s", logs)
	}

	cmd := func(env map[string]string, args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), args, func(k string) string { return env[k] }, &out, io.Discard)
		return out.String(), err
	}
	before := files(t, dir)
	for name, env := range map[string]map[string]string{"no key": nil, "another key": {config.EnvEncryptionKey: other}} {
		_, err := cmd(env, "restore", "-config", emptyConfig(t), "-data-dir", dir, backup)
		if err == nil {
			t.Errorf("%s: the encrypted backup was restored", name)
		} else if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), other) {
			t.Errorf("%s: the error shows a key: %v", name, err)
		}
		if after := files(t, dir); !slices.Equal(before, after) {
			t.Errorf("%s: a refused restore changed the data dir: %v, was %v", name, after, before)
		}
	}
	if _, err := cmd(map[string]string{config.EnvEncryptionKey: key}, "restore", "-config", emptyConfig(t), "-data-dir", dir, backup); err != nil {
		t.Fatalf("restore with the key: %v", err)
	}
	var got []legacyReading
	getJSON(t, "http://"+startVatioWith(t, dir, cfg).http+"/api/energy?meter=plant", &got)
	if len(got) != 1 || got[0].Consumption != 1 {
		t.Errorf("after the restore: %+v, want the backup's one reading", got)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".vatio-restore-*")); len(leftovers) != 0 {
		t.Errorf("the decrypted copy was left behind: %v", leftovers)
	}

	out, err := cmd(nil, "decrypt", "-config", cfg, backup)
	if err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(t.TempDir(), "plain.db")
	os.WriteFile(plain, []byte(out), 0o600)
	if err := store.Verify(plain); err != nil {
		t.Errorf("vatio decrypt's output is not the database: %v", err)
	}
	if _, err := cmd(nil, "decrypt", "-config", cfg, plain); err == nil {
		t.Error("vatio decrypt of a plain file did not fail")
	}
}

// An invalid key stops the start with an error naming the key's setting,
// not the key.
func TestBadEncryptionKey(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfg, []byte("encryption:\n  key: \"my-secret-passphrase\"\n"), 0o600)
	err := run(context.Background(), []string{"-config", cfg, "-data-dir", t.TempDir()}, testEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "encryption.key") || strings.Contains(err.Error(), "my-secret-passphrase") {
		t.Errorf("start with a bad key: %v", err)
	}
}
