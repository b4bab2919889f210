package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vatio-energy/vatio/store"
)

// clientIDFile keeps, in the data directory, the MQTT client id this
// instance uses at an external broker when broker.client_id is empty.
const clientIDFile = "mqtt-client-id"

// sessionFile records, in the data directory, the client id whose session
// the broker should still hold from an earlier run: a broker that answers
// "no session" for it has lost what it queued (see bridge.Options).
const sessionFile = "mqtt-session"

// defaultClientID returns the client id kept in dataDir, choosing one on
// the first start: vatio-<host>-<8 hex digits>, unique per instance even
// with several on one host. A data directory from before the file existed
// keeps vatio-<host>, the id its session at the broker is under.
func defaultClientID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, clientIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if id == "" || len(id) > 128 || strings.ContainsAny(id, "/+#\x00") {
			return "", fmt.Errorf("%s: %q is not a usable MQTT client id; delete the file to choose a new one", path, id)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	host := strings.Map(func(r rune) rune {
		if r < 0x80 && (r == '-' || r == '.' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '-'
	}, hostname())
	id := "vatio-" + host
	if !legacyDataDir(dataDir) {
		var r [4]byte
		_, _ = rand.Read(r[:])
		id += "-" + hex.EncodeToString(r[:])
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("keep the MQTT client id: %w", err)
	}
	return id, nil
}

// legacyDataDir reports whether dataDir holds the database of a Vatio from
// before the client id was kept there.
func legacyDataDir(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, store.FileName))
	return err == nil
}

// expectSession reports whether an earlier run left a session at the
// broker under id.
func expectSession(dataDir, id string) bool {
	b, err := os.ReadFile(filepath.Join(dataDir, sessionFile))
	return err == nil && strings.TrimSpace(string(b)) == id
}

// noteSession records that the broker holds a session under id ("" for
// none left).
func noteSession(dataDir, id string) error {
	path := filepath.Join(dataDir, sessionFile)
	if id == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return os.WriteFile(path, []byte(id+"\n"), 0o600)
}

// brokerStartFile keeps, in the data directory, when the external broker
// started, as Vatio last saw it: a broker that started since restarted
// while Vatio was away (see bridge.Options).
const brokerStartFile = "mqtt-broker-start"

// brokerStart returns the broker's start kept in dataDir (zero: none).
func brokerStart(dataDir string) time.Time {
	b, err := os.ReadFile(filepath.Join(dataDir, brokerStartFile))
	if err != nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
	if err != nil {
		return time.Time{}
	}
	return t
}

// noteBrokerStart keeps the broker's start t in dataDir.
func noteBrokerStart(dataDir string, t time.Time) error {
	return os.WriteFile(filepath.Join(dataDir, brokerStartFile), []byte(t.UTC().Format(time.RFC3339)+"\n"), 0o600)
}
