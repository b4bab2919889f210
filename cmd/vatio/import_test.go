package main

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/store"
)

func TestImportCommand(t *testing.T) {
	dir := t.TempDir()
	csvPath := filepath.Join(t.TempDir(), "history.csv.gz")
	f, err := os.Create(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	fmt.Fprintln(zw, "timestamp,power_w,energy_wh")
	t0 := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(zw, "%d,%d,%d\n", t0.Add(time.Duration(i)*time.Minute).Unix(), 500+i%100, i*10)
	}
	zw.Close()
	f.Close()

	noEnv := func(string) string { return "" }
	var out, errOut strings.Builder
	args := []string{"import", "-config", emptyConfig(t), "-data-dir", dir, "-meter", "plant-1", csvPath}
	if err := run(context.Background(), args, noEnv, &out, &errOut); err != nil {
		t.Fatalf("vatio import: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "imported 1000 readings of meter plant-1") || !strings.Contains(errOut.String(), "read 1001 lines") || !strings.Contains(errOut.String(), "stored 1000 of 1000") {
		t.Errorf("output %q, progress %q", out.String(), errOut.String())
	}

	bad := filepath.Join(t.TempDir(), "bad.csv")
	os.WriteFile(bad, []byte("2026-11-01T00:00:00Z,100\n2026-11-01T00:01:00Z,oops\n"), 0o600)
	err = run(context.Background(), []string{"import", "-config", emptyConfig(t), "-data-dir", dir, "-meter", "plant-1", bad}, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad file: %v, want an error naming line 2", err)
	}

	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.Meter("plant-1")
	if err != nil || m.Readings != 1000 || !m.First.Equal(t0) {
		t.Errorf("after import Meter = %+v, %v; want the 1000 readings of the good file only", m, err)
	}
	if err := st.CheckRollups("plant-1"); err != nil {
		t.Error(err)
	}
	// While the database is in use, import says how to reach the server.
	err = run(context.Background(), args, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "/api/v1/meters/plant-1/import") {
		t.Errorf("import while in use: %v", err)
	}
	st.Close()
}
