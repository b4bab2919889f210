package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

// TestCompactCommand runs `vatio compact`: refused while the database is
// open, then it compacts and reports the sizes.
func TestCompactCommand(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 100 {
		st.Append(meter.Reading{Meter: "m", Time: t0.Add(time.Duration(i) * time.Second), PowerW: 1, Stamped: true}, nil)
	}
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	compact := func() (string, error) {
		var out strings.Builder
		err := run(context.Background(), []string{"compact", "-config", emptyConfig(t), "-data-dir", dir},
			func(string) string { return "" }, &out, io.Discard)
		return out.String(), err
	}
	if out, err := compact(); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("vatio compact while the database is open = %v (%q), want an error saying it is in use", err, out)
	}
	st.Close()
	out, err := compact()
	if err != nil || !strings.HasPrefix(out, "compacted "+filepath.Join(dir, "vatio.db")+": ") || !strings.Contains(out, " -> ") {
		t.Errorf("vatio compact = %v, printed %q", err, out)
	}
	st, err = store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if m, err := st.Meter("m"); err != nil || m.Readings != 100 {
		t.Errorf("after vatio compact, Meter(m) = %+v, %v; want 100 readings", m, err)
	}
	if err := run(context.Background(), []string{"compact", "extra"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Error("vatio compact extra = nil, want an error")
	}
}
