// Package offsite ships backups and archive files to S3-compatible object
// storage (AWS S3, MinIO, Backblaze B2, Wasabi, ...), so that they survive
// the loss of the machine and its SD card, and fetches them back for a
// restore.
//
// Every object is encrypted on this machine with AES-256-GCM (package
// crypt) before it leaves: the storage provider holds only ciphertext. A
// file already encrypted with the key goes as it is; a plain one (written
// before the key was set) is encrypted as it streams. The bucket keeps its
// own retention: the newest KeepBackups backups, and archives for
// KeepArchives after their month; the archives of an erased meter are
// deleted there too.
//
// Layout under Prefix:
//
//	backups/vatio-20261125T101500Z.db.enc
//	archive/<meter>/<meter>-2026-01.csv.gz.enc
package offsite

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vatio-energy/vatio/internal/crypt"
	"github.com/vatio-energy/vatio/store"
)

// Options configure the remote.
type Options struct {
	// Endpoint is the storage's host[:port]; Insecure speaks plain HTTP
	// to it (a MinIO on the LAN).
	Endpoint string
	Insecure bool
	Region   string
	Bucket   string
	// Prefix starts every object's name, as a folder: "vatio/".
	Prefix               string
	AccessKey, SecretKey string
	// Key encrypts every object; it is required.
	Key *crypt.Key
	// KeepBackups is how many backups the bucket keeps (the newest); 0
	// keeps them all. KeepArchives is how long after its month an archive
	// is kept there; 0 keeps them for ever.
	KeepBackups  int
	KeepArchives time.Duration
	// Attempts is how many times a failed request is tried (default 5),
	// Backoff the wait before the first retry, doubling (default 2 s).
	Attempts int
	Backoff  time.Duration
	// Transport, if set, carries the requests (tests).
	Transport http.RoundTripper
	Logger    *slog.Logger
	Now       func() time.Time
}

// errForeignKey is a local file encrypted with a key other than ours.
var errForeignKey = errors.New("not our key")

// Remote is the bucket.
type Remote struct {
	cl   *minio.Client
	opts Options
}

// New returns the remote of opts; it does not connect yet.
func New(opts Options) (*Remote, error) {
	if opts.Key == nil {
		return nil, errors.New("offsite: copies are encrypted here first: set encryption.key")
	}
	if opts.Endpoint == "" || opts.Bucket == "" {
		return nil, errors.New("offsite: endpoint and bucket are required")
	}
	opts.Prefix = strings.TrimPrefix(opts.Prefix, "/")
	if opts.Prefix != "" && !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	opts.Attempts = cmp.Or(opts.Attempts, 5)
	opts.Backoff = cmp.Or(opts.Backoff, 2*time.Second)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cl, err := minio.New(opts.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(opts.AccessKey, opts.SecretKey, ""),
		Secure:     !opts.Insecure,
		Region:     opts.Region,
		Transport:  opts.Transport,
		MaxRetries: 1, // retries are ours (retry), with a backoff fit for a flaky uplink
	})
	if err != nil {
		return nil, fmt.Errorf("offsite: %w", err)
	}
	return &Remote{cl: cl, opts: opts}, nil
}

// retry runs fn until it succeeds, ctx ends or the attempts run out,
// waiting Backoff, then twice as long, between tries.
func (r *Remote) retry(ctx context.Context, what string, fn func() error) error {
	wait := r.opts.Backoff
	var err error
	for i := range r.opts.Attempts {
		if err = fn(); err == nil {
			return nil
		}
		var resp minio.ErrorResponse
		if errors.Is(err, errForeignKey) {
			break
		}
		if errors.As(err, &resp) && (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound ||
			resp.Code == "NoSuchBucket" || resp.Code == "NoSuchKey" || resp.Code == "AccessDenied" || resp.Code == "InvalidAccessKeyId" || resp.Code == "SignatureDoesNotMatch") {
			break // retrying would not help
		}
		if i == r.opts.Attempts-1 {
			break
		}
		r.opts.Logger.Debug("offsite: retrying", slog.String("what", what), slog.Any("error", err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
	return fmt.Errorf("offsite: %s: %w", what, err)
}

// put uploads the file at local as object name, encrypted.
func (r *Remote) put(ctx context.Context, local, name string) error {
	return r.retry(ctx, "upload "+name, func() error {
		f, err := os.Open(local)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		br := bufio.NewReaderSize(f, 64<<10)
		var body io.Reader = br
		size := st.Size()
		if id, ok := crypt.KeyID(br); ok {
			if id != r.opts.Key.ID() {
				return fmt.Errorf("%s is encrypted with another key (%s): %w", local, id, errForeignKey)
			}
		} else {
			// Plain on disk (written before the key was set): encrypt
			// as it streams, with the length known in advance.
			pr, pw := io.Pipe()
			go func() {
				cw, err := crypt.NewWriter(pw, r.opts.Key)
				if err == nil {
					_, err = io.Copy(cw, br)
				}
				if err == nil {
					err = cw.Close()
				}
				pw.CloseWithError(err)
			}()
			defer pr.Close()
			body, size = pr, crypt.SealedSize(size)
		}
		_, err = r.cl.PutObject(ctx, r.opts.Bucket, r.opts.Prefix+name, body, size,
			minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: size < 512<<20, PartSize: 64 << 20})
		return err
	})
}

// Object is a file in the bucket.
type Object struct {
	// Name is relative to the prefix: backups/..., archive/<meter>/...
	Name     string
	Size     int64
	Modified time.Time
}

// list returns the objects under the prefix and dir ("backups/" or
// "archive/").
func (r *Remote) list(ctx context.Context, dir string) ([]Object, error) {
	var out []Object
	err := r.retry(ctx, "list "+dir, func() error {
		out = out[:0]
		for o := range r.cl.ListObjects(ctx, r.opts.Bucket, minio.ListObjectsOptions{Prefix: r.opts.Prefix + dir, Recursive: true}) {
			if o.Err != nil {
				return o.Err
			}
			out = append(out, Object{Name: strings.TrimPrefix(o.Key, r.opts.Prefix), Size: o.Size, Modified: o.LastModified})
		}
		return nil
	})
	return out, err
}

func (r *Remote) remove(ctx context.Context, name string) error {
	return r.retry(ctx, "delete "+name, func() error {
		return r.cl.RemoveObject(ctx, r.opts.Bucket, r.opts.Prefix+name, minio.RemoveObjectOptions{})
	})
}

// markerName is the object that says whose copies the prefix holds.
const markerName = "VATIO-OWNER"

// claim makes sure the prefix holds this key's copies: it writes the
// marker (the key's id, which reveals nothing of the key) when there is
// none, and refuses a prefix another Vatio (another key) uses, whose
// backups the retention here would otherwise delete.
func (r *Remote) claim(ctx context.Context) error {
	var owner []byte
	err := r.retry(ctx, "read "+markerName, func() error {
		o, err := r.cl.GetObject(ctx, r.opts.Bucket, r.opts.Prefix+markerName, minio.GetObjectOptions{})
		if err != nil {
			return err
		}
		defer o.Close()
		owner, err = io.ReadAll(io.LimitReader(o, 256))
		return err
	})
	var resp minio.ErrorResponse
	switch {
	case err == nil && strings.TrimSpace(string(owner)) == r.opts.Key.ID():
		return nil
	case err == nil:
		return fmt.Errorf("offsite: %s%s holds another Vatio's copies (key %s): give this one its own offsite.prefix",
			r.opts.Bucket+"/", r.opts.Prefix, strings.TrimSpace(string(owner)))
	case errors.As(err, &resp) && resp.Code == "NoSuchKey":
	default:
		return err
	}
	id := r.opts.Key.ID() + "\n"
	return r.retry(ctx, "write "+markerName, func() error {
		_, err := r.cl.PutObject(ctx, r.opts.Bucket, r.opts.Prefix+markerName, strings.NewReader(id), int64(len(id)),
			minio.PutObjectOptions{ContentType: "text/plain"})
		return err
	})
}

// Backups lists the backups in the bucket, newest first.
func (r *Remote) Backups(ctx context.Context) ([]Object, error) {
	objs, err := r.list(ctx, "backups/")
	if err != nil {
		return nil, err
	}
	var out []Object
	for _, o := range objs {
		if _, ok := store.ParseBackupName(strings.TrimSuffix(path.Base(o.Name), store.EncryptedSuffix)); ok {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b Object) int { return strings.Compare(b.Name, a.Name) })
	return out, nil
}

// Fetch writes the decrypted content of the backup name (as Backups
// lists it, or just its file name; "latest" for the newest) to w, and
// returns its name. A damaged or cut object fails with crypt.ErrDamaged.
func (r *Remote) Fetch(ctx context.Context, name string, w io.Writer) (string, error) {
	if name == "latest" {
		bs, err := r.Backups(ctx)
		if err != nil {
			return "", err
		}
		if len(bs) == 0 {
			return "", errors.New("offsite: the bucket holds no backup")
		}
		name = bs[0].Name
	}
	if !strings.Contains(name, "/") {
		name = "backups/" + name
	}
	var obj *minio.Object
	err := r.retry(ctx, "download "+name, func() error {
		o, err := r.cl.GetObject(ctx, r.opts.Bucket, r.opts.Prefix+name, minio.GetObjectOptions{})
		if err != nil {
			return err
		}
		if _, err := o.Stat(); err != nil {
			o.Close()
			return err
		}
		obj = o
		return nil
	})
	if err != nil {
		return "", err
	}
	defer obj.Close()
	cr, err := crypt.NewReader(obj, r.opts.Key)
	if err != nil {
		return "", fmt.Errorf("offsite: %s: %w", name, err)
	}
	if _, err := io.Copy(w, cr); err != nil {
		return "", fmt.Errorf("offsite: %s: %w", name, err)
	}
	return name, nil
}

// Shipper keeps the bucket in step with a store's backups and archives.
type Shipper struct {
	remote *Remote
	st     *store.Store
	log    *slog.Logger

	mu sync.Mutex // one Sync at a time

	uploads, failures prometheus.Counter
	lastOK            prometheus.Gauge
}

// stateKind is the store document kind that records what was shipped.
const stateKind = "offsite"

// shipped is what was uploaded of a local file: its size and time when it
// was, so that an archive rewritten since (late readings) goes again.
type shipped struct {
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

// NewShipper returns the shipper of st's files to r.
func NewShipper(r *Remote, st *store.Store) *Shipper {
	return &Shipper{remote: r, st: st, log: r.opts.Logger,
		uploads:  prometheus.NewCounter(prometheus.CounterOpts{Name: "vatio_offsite_uploads_total", Help: "Backups and archive files shipped to object storage."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "vatio_offsite_sync_failures_total", Help: "Off-site syncs that failed (retried at the next)."}),
		lastOK:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "vatio_offsite_last_success_timestamp_seconds", Help: "When the last off-site sync succeeded (Unix time)."}),
	}
}

// Describe implements prometheus.Collector.
func (s *Shipper) Describe(ch chan<- *prometheus.Desc) {
	s.uploads.Describe(ch)
	s.failures.Describe(ch)
	s.lastOK.Describe(ch)
}

// Collect implements prometheus.Collector.
func (s *Shipper) Collect(ch chan<- prometheus.Metric) {
	s.uploads.Collect(ch)
	s.failures.Collect(ch)
	s.lastOK.Collect(ch)
}

// Stats say what one Sync did.
type Stats struct {
	Uploaded, Deleted int
}

// Sync uploads the backups and archive files that are new or changed
// since they were last shipped, then applies the bucket's retention and
// deletes the archives of erased meters there. It stops at the first
// error; what was done before it is recorded and not done again.
func (s *Shipper) Sync(ctx context.Context) (Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.sync(ctx)
	if err != nil {
		s.failures.Inc()
		return st, err
	}
	s.lastOK.Set(float64(s.remote.opts.Now().Unix()))
	return st, nil
}

func (s *Shipper) sync(ctx context.Context) (Stats, error) {
	var stats Stats
	if err := s.remote.claim(ctx); err != nil {
		return stats, err
	}
	n, err := s.eraseTombstoned(ctx)
	stats.Deleted += n
	if err != nil {
		return stats, err
	}
	docs, err := s.st.Docs(stateKind)
	if err != nil {
		return stats, err
	}
	done := map[string]shipped{}
	for k, v := range docs {
		var sh shipped
		if json.Unmarshal(v, &sh) == nil {
			done[k] = sh
		}
	}
	files, err := s.localFiles()
	if err != nil {
		return stats, err
	}
	for _, f := range files {
		if prev, ok := done[f.name]; ok && prev.Size == f.size && prev.ModTime.Equal(f.mod) {
			continue
		}
		if err := s.remote.put(ctx, f.path, f.name); errors.Is(err, errForeignKey) {
			// Written under a key since replaced: it cannot be read with
			// this one either, and must not hold the others back.
			s.log.Warn("offsite: not shipped", slog.Any("error", err))
			continue
		} else if err != nil {
			return stats, err
		}
		b, _ := json.Marshal(shipped{Size: f.size, ModTime: f.mod})
		if err := s.st.PutDoc(stateKind, f.name, b); err != nil {
			return stats, err
		}
		stats.Uploaded++
		s.uploads.Inc()
		s.log.Info("offsite: shipped", slog.String("object", f.name))
	}
	local := map[string]bool{}
	for _, f := range files {
		local[f.name] = true
	}
	n, err = s.prune(ctx, local)
	stats.Deleted += n
	return stats, err
}

// eraseTombstoned deletes in the bucket the archives of the meters erased
// here since the last sync (the store's ErasedKind records), with the
// records of their shipping, then the tombstones. Archives written since
// the erasure (the meter came back) are local files: they go again.
func (s *Shipper) eraseTombstoned(ctx context.Context) (int, error) {
	tombs, err := s.st.Docs(store.ErasedKind)
	if err != nil || len(tombs) == 0 {
		return 0, err
	}
	deleted := 0
	for meterID := range tombs {
		objs, err := s.remote.list(ctx, "archive/"+meterID+"/")
		if err != nil {
			return deleted, err
		}
		for _, o := range objs {
			if err := s.remote.remove(ctx, o.Name); err != nil {
				return deleted, err
			}
			if err := s.st.DeleteDoc(stateKind, o.Name); err != nil {
				return deleted, err
			}
			deleted++
			s.log.Info("offsite: deleted an erased meter's archive", slog.String("object", o.Name))
		}
		if err := s.st.DeleteDoc(store.ErasedKind, meterID); err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

type localFile struct {
	path, name string
	size       int64
	mod        time.Time
}

// localFiles lists the backups and archive files, with their object names.
func (s *Shipper) localFiles() ([]localFile, error) {
	var out []localFile
	add := func(p, name string) error {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		out = append(out, localFile{path: p, name: name, size: fi.Size(), mod: fi.ModTime().UTC()})
		return nil
	}
	backups, err := os.ReadDir(s.st.BackupDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range backups {
		if _, ok := store.ParseBackupName(e.Name()); ok && e.Type().IsRegular() {
			name := "backups/" + strings.TrimSuffix(e.Name(), store.EncryptedSuffix) + store.EncryptedSuffix
			if err := add(filepath.Join(s.st.BackupDir(), e.Name()), name); err != nil {
				return nil, err
			}
		}
	}
	meters, err := os.ReadDir(s.st.ArchiveDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, m := range meters {
		if !m.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(s.st.ArchiveDir(), m.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range files {
			if _, ok := store.ParseArchiveName(m.Name(), e.Name()); ok && e.Type().IsRegular() {
				if err := add(filepath.Join(s.st.ArchiveDir(), m.Name(), e.Name()), "archive/"+m.Name()+"/"+e.Name()+store.EncryptedSuffix); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// prune applies the bucket's retention. The record of a deleted object goes too, unless its
// file is still here (kept longer here than there): it is not shipped again.
func (s *Shipper) prune(ctx context.Context, local map[string]bool) (int, error) {
	opts := s.remote.opts
	now := opts.Now()
	var drop []string
	backups, err := s.remote.Backups(ctx)
	if err != nil {
		return 0, err
	}
	if opts.KeepBackups > 0 && len(backups) > opts.KeepBackups {
		for _, o := range backups[opts.KeepBackups:] {
			drop = append(drop, o.Name)
		}
	}
	archives, err := s.remote.list(ctx, "archive/")
	if err != nil {
		return 0, err
	}
	for _, o := range archives {
		meterID, file, ok := strings.Cut(strings.TrimPrefix(o.Name, "archive/"), "/")
		if !ok {
			continue
		}
		month, ok := store.ParseArchiveName(meterID, strings.TrimSuffix(file, store.EncryptedSuffix))
		if !ok {
			continue
		}
		if opts.KeepArchives > 0 && now.Sub(month.AddDate(0, 1, 0)) > opts.KeepArchives {
			drop = append(drop, o.Name)
		}
	}
	for i, name := range drop {
		if err := s.remote.remove(ctx, name); err != nil {
			return i, err
		}
		if !local[name] {
			if err := s.st.DeleteDoc(stateKind, name); err != nil {
				return i + 1, err
			}
		}
		s.log.Info("offsite: deleted", slog.String("object", name))
	}
	return len(drop), nil
}

// Run syncs a minute after it starts, then every interval, until ctx
// ends. A failed sync is logged, and onFailure (if set) is told of the
// third failure in a row.
func (s *Shipper) Run(ctx context.Context, every time.Duration, onFailure func(error)) {
	wait := time.Minute
	failed := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = every
		st, err := s.Sync(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failed++
			s.log.Warn("offsite: sync failed; retried at the next", slog.Any("error", err), slog.Int("in_a_row", failed))
			if failed == 3 && onFailure != nil {
				onFailure(err)
			}
			continue
		}
		failed = 0
		if st.Uploaded+st.Deleted > 0 {
			s.log.Info("offsite: synced", slog.Int("uploaded", st.Uploaded), slog.Int("deleted", st.Deleted))
		}
	}
}
