package offsite

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"

	"github.com/vatio-energy/vatio/internal/crypt"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

// s3 is an S3-protocol server in the test's process (gofakes3), with a
// bucket "vatio"; failPuts makes that many PUTs answer 503 first.
type s3 struct {
	url      string
	failPuts atomic.Int64
	puts     atomic.Int64
}

func startS3(t *testing.T) *s3 {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket("vatio"); err != nil {
		t.Fatal(err)
	}
	fake := gofakes3.New(backend).Server()
	s := &s3{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			s.puts.Add(1)
			if s.failPuts.Add(-1) >= 0 {
				io.Copy(io.Discard, r.Body)
				http.Error(w, "<Error><Code>SlowDown</Code></Error>", http.StatusServiceUnavailable)
				return
			}
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.url = strings.TrimPrefix(srv.URL, "http://")
	return s
}

func testKey(t *testing.T) *crypt.Key {
	t.Helper()
	k, err := crypt.NewKey(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func remote(t *testing.T, s *s3, keep int) *Remote {
	t.Helper()
	r, err := New(Options{Endpoint: s.url, Insecure: true, Bucket: "vatio", Prefix: "pi", AccessKey: "a", SecretKey: "b",
		Key: testKey(t), KeepBackups: keep, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// raw returns an object's bytes as the bucket holds them.
func raw(t *testing.T, r *Remote, name string) []byte {
	t.Helper()
	o, err := r.cl.GetObject(context.Background(), "vatio", r.opts.Prefix+name, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

func names(objs []Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Name)
	}
	return out
}

var jan = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// A store with a January archive (written plain, before a key was set)
// and three backups.
func fixture(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{Retention: store.Retention{Raw: 30 * 24 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var rs []meter.Reading
	for ts := jan; ts.Before(jan.AddDate(0, 2, 0)); ts = ts.Add(time.Hour) {
		rs = append(rs, meter.Reading{Meter: "m", Time: ts, PowerW: 100, Stamped: true})
	}
	if _, err := st.Import(rs, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ApplyRetention(context.Background(), time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := st.BackupTo(st.BackupDir(), 10, time.Date(2026, 11, 20+i, 3, 0, 0, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// Sync ships every backup and archive encrypted, keeps the bucket's own
// retention without shipping again what it pruned, gives a backup back
// for a restore, and deletes an erased meter's archives there too.
func TestSync(t *testing.T) {
	s := startS3(t)
	st := fixture(t)
	r := remote(t, s, 2)
	sh := NewShipper(r, st)
	stats, err := sh.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if stats.Uploaded != 4 || stats.Deleted != 1 {
		t.Errorf("first sync = %+v, want 4 uploaded (3 backups, 1 archive) and the oldest backup deleted there", stats)
	}
	backups, err := r.Backups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := names(backups); !slices.Equal(got, []string{"backups/vatio-20261122T030000Z.db.enc", "backups/vatio-20261121T030000Z.db.enc"}) {
		t.Errorf("backups there: %v", got)
	}
	archive := "archive/m/" + store.ArchiveName("m", jan) + store.EncryptedSuffix
	for _, name := range []string{backups[0].Name, archive} {
		b := raw(t, r, name)
		if !bytes.HasPrefix(b, []byte(crypt.Magic)) {
			t.Errorf("%s is not encrypted there", name)
		}
	}
	cr, err := crypt.NewReader(bytes.NewReader(raw(t, r, archive)), testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(cr)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := bufio.NewReader(zr).ReadString('\n')
	if first != "timestamp,power_w,energy_wh\n" {
		t.Errorf("the archive decrypts to %q", first)
	}

	if stats, err := sh.Sync(context.Background()); err != nil || stats != (Stats{}) {
		t.Errorf("second sync = %+v, %v; want nothing to do", stats, err)
	}

	var got bytes.Buffer
	name, err := r.Fetch(context.Background(), "latest", &got)
	if err != nil {
		t.Fatal(err)
	}
	local, _ := os.ReadFile(filepath.Join(st.BackupDir(), "vatio-20261122T030000Z.db"))
	if name != "backups/vatio-20261122T030000Z.db.enc" || !bytes.Equal(got.Bytes(), local) {
		t.Errorf("Fetch(latest) = %s, %d bytes; want the newest backup, %d bytes", name, got.Len(), len(local))
	}

	// A new, empty machine on the same bucket and key (a restore yet to
	// come, a volume not mounted) deletes none of the archives there.
	empty, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	if stats, err := NewShipper(r, empty).Sync(context.Background()); err != nil || stats.Deleted != 0 {
		t.Errorf("an empty store's sync = %+v, %v; want nothing deleted", stats, err)
	}
	// Another Vatio (another key) may not use the same prefix.
	stranger, _ := crypt.NewKey(bytes.Repeat([]byte{2}, 32))
	r2, _ := New(Options{Endpoint: s.url, Insecure: true, Bucket: "vatio", Prefix: "pi", Key: stranger, Backoff: time.Millisecond})
	if _, err := NewShipper(r2, empty).Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "another Vatio") {
		t.Errorf("a second Vatio on the same prefix: %v", err)
	}

	// Erasing the meter erases its archives there too, even when it
	// comes back at once.
	if _, err := st.DeleteMeter("m"); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(meter.Reading{Meter: "m", Time: time.Now(), PowerW: 5}, nil); err != nil {
		t.Fatal(err)
	}
	st.Flush()
	if stats, err := sh.Sync(context.Background()); err != nil || stats.Deleted != 1 {
		t.Errorf("sync after erasing the meter = %+v, %v; want its archive deleted there", stats, err)
	}
	objs, _ := r.list(context.Background(), "archive/")
	if len(objs) != 0 {
		t.Errorf("the erased meter's archives are still there: %v", names(objs))
	}
	if tombs, _ := st.Docs(store.ErasedKind); len(tombs) != 0 {
		t.Errorf("the tombstone is still there after the erasure was carried out: %v", tombs)
	}
}

// A flaky uplink: failed uploads are retried with a backoff; when they
// keep failing the sync fails, records nothing, and the next one ships.
func TestSyncRetries(t *testing.T) {
	s := startS3(t)
	st := fixture(t)
	r := remote(t, s, 0)
	sh := NewShipper(r, st)
	s.failPuts.Store(3)
	if stats, err := sh.Sync(context.Background()); err != nil || stats.Uploaded != 4 {
		t.Fatalf("sync through 3 failed PUTs = %+v, %v", stats, err)
	}
	if n := s.puts.Load(); n != 8 {
		t.Errorf("%d PUTs, want 4 files, the owner marker, and 3 retries", n)
	}

	st2 := fixture(t)
	r2 := remote(t, s, 0)
	r2.opts.Attempts = 2
	sh2 := NewShipper(r2, st2)
	s.failPuts.Store(1000)
	if _, err := sh2.Sync(context.Background()); err == nil {
		t.Fatal("a sync whose uploads all fail succeeded")
	}
	if docs, _ := st2.Docs(stateKind); len(docs) != 0 {
		t.Errorf("a failed upload was recorded as shipped: %v", docs)
	}
	s.failPuts.Store(0)
	if stats, err := sh2.Sync(context.Background()); err != nil || stats.Uploaded != 4 {
		t.Errorf("the sync after the uplink came back = %+v, %v", stats, err)
	}
}

func TestNeedsKeyAndBucket(t *testing.T) {
	if _, err := New(Options{Endpoint: "s3.example.com", Bucket: "b"}); err == nil || !strings.Contains(err.Error(), "encryption.key") {
		t.Errorf("no key: %v", err)
	}
	if _, err := New(Options{Endpoint: "s3.example.com", Key: testKey(t)}); err == nil {
		t.Error("no bucket was accepted")
	}
}

// A backup left encrypted under a former key is skipped, with a warning,
// and holds nothing else back.
func TestSyncSkipsAForeignKey(t *testing.T) {
	s := startS3(t)
	st := fixture(t)
	other, _ := crypt.NewKey(bytes.Repeat([]byte{1}, 32))
	var sealed bytes.Buffer
	w, _ := crypt.NewWriter(&sealed, other)
	w.Write([]byte("an old database"))
	w.Close()
	if err := os.WriteFile(filepath.Join(st.BackupDir(), "vatio-20261101T030000Z.db.enc"), sealed.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	r := remote(t, s, 0)
	if stats, err := NewShipper(r, st).Sync(context.Background()); err != nil || stats.Uploaded != 4 {
		t.Errorf("sync with a backup under another key = %+v, %v; want the 4 others shipped", stats, err)
	}
	if bs, _ := r.Backups(context.Background()); len(bs) != 3 {
		t.Errorf("backups there: %v", names(bs))
	}
}
