package api_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

// download GETs /api/v1/backup into a file in dir named as the server says.
func download(t *testing.T, h *harness, dir string) (path string, header http.Header) {
	t.Helper()
	resp, err := http.Get(h.url + "/api/v1/backup")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /api/v1/backup: %d %s", resp.StatusCode, b)
	}
	m := regexp.MustCompile(`^attachment; filename="(vatio-\d{8}T\d{6}Z\.db)"$`).FindStringSubmatch(resp.Header.Get("Content-Disposition"))
	if m == nil {
		t.Fatalf("Content-Disposition = %q", resp.Header.Get("Content-Disposition"))
	}
	path = filepath.Join(dir, m[1])
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(f, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if cl, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64); err != nil || cl != n {
		t.Errorf("Content-Length %q, body %d bytes", resp.Header.Get("Content-Length"), n)
	}
	return path, resp.Header
}

func TestBackupDownload(t *testing.T) {
	h := start(t)
	var rs []meter.Reading
	for i := range 3000 {
		rs = append(rs, at(fmt.Sprint("m", i%3), i, float64(i)))
	}
	h.add(t, rs...)

	path, header := download(t, h, t.TempDir())
	if ct := header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	if err := store.Verify(path); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Rename(path, filepath.Join(dir, store.FileName)); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ms := st.Meters()
	if len(ms) != 3 || ms[0].ID != "m0" || ms[0].Readings != 1000 || ms[2].LastPowerW != 2999 {
		t.Errorf("the downloaded database's meters = %+v, want m0, m1, m2 with 1000 readings each", ms)
	}
	got, _, err := st.Range("m1", t0, t0.Add(time.Hour), 5000)
	if err != nil || len(got) != 1000 || got[0].PowerW != 1 || got[999].PowerW != 2998 {
		t.Errorf("the downloaded database has %d readings of m1 (%v), want 1000 from 1 W to 2998 W", len(got), err)
	}
}

// Downloads in parallel with ingest, and clients that leave early, leave the
// store working and closable (a read transaction left open would hang Close).
func TestBackupDownloadsWhileIngesting(t *testing.T) {
	h := start(t)
	h.add(t, at("m", 0, 1))
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(h.url + "/api/v1/backup")
			if err != nil {
				t.Error(err)
				return
			}
			if c%2 == 0 {
				io.ReadAll(resp.Body)
			} else {
				io.ReadFull(resp.Body, make([]byte, 100)) // then hang up
			}
			resp.Body.Close()
		}()
	}
	for i := 1; i <= 500; i++ {
		if err := h.store.Append(at("m", i, float64(i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if err := h.store.Flush(); err != nil {
		t.Fatal(err)
	}
	path, _ := download(t, h, t.TempDir())
	if err := store.Verify(path); err != nil {
		t.Fatal(err)
	}
}
