package offsite

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vatio-energy/vatio/store"
)

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
