package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vatio-energy/vatio/internal/crypt"
	bolt "go.etcd.io/bbolt"
)

// archived is one meter's month written to its archive file, with the parts
// for the writer to delete, a transaction each.
type archived struct {
	path     string
	readings int // readings of the database written
	parts    []*retireJob
}

// archiveMonth writes the archive file of meterID's readings in the month
// starting at month: the readings in the database, merged by time with
// those the file already holds (the database's win at equal times), so
// that archiving a month again, after a crash or for readings that came
// late, neither loses nor repeats any. The file is replaced atomically:
// written under a temporary name, synced, renamed, its directory synced.
//
// The database is read in parts of whole hours, each ending with the hour
// in which it reaches maxRetire readings, each in its own read
// transaction; each part records its readings' count and digest for
// retire.
func (eng *boltEngine) archiveMonth(ctx context.Context, meterID string, month time.Time) (*archived, error) {
	s := eng.s
	from, to := month.UnixNano(), month.AddDate(0, 1, 0).UnixNano()
	dir := filepath.Join(s.archiveDir, meterID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	name := ArchiveName(meterID, month)
	path := filepath.Join(dir, name)
	old, err := openArchive(path, s.key)
	if err != nil {
		return nil, err
	}
	defer old.close()
	tmp, err := os.CreateTemp(dir, "."+name+".*.tmp") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	aw, err := newArchiveWriter(tmp, s.key)
	if err != nil {
		return nil, err
	}
	write := aw.write

	a := &archived{path: path}
	for pos := from; pos < to; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		part := &retireJob{meter: meterID, from: pos, to: to}
		var d digest
		err := eng.db.View(func(tx *bolt.Tx) error {
			ser, ok := openSeries(tx, meterID)
			if !ok {
				return nil
			}
			hour := int64(math.MinInt64)
			for p, err := range ser.forward(pos) {
				if err != nil {
					return err
				}
				if p.ns >= to {
					break
				}
				if d.n%10000 == 9999 && ctx.Err() != nil { // Close waits for this run
					return ctx.Err()
				}
				if h := blockSpan.start(p.ns); h != hour {
					if d.n >= eng.retireLimit {
						part.to = h
						break
					}
					hour = h
				}
				for old.ok && old.p.ns <= p.ns {
					if old.p.ns < p.ns {
						write(old.p)
					}
					if err := old.next(); err != nil {
						return err
					}
				}
				write(p)
				d.add(p)
			}
			return nil
		})
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			return nil, fmt.Errorf("archive %s: %w", path, err)
		}
		part.n, part.sum = d.n, d.sum()
		a.readings += d.n
		if d.n > 0 {
			a.parts = append(a.parts, part)
		}
		pos = part.to
	}
	for old.ok {
		write(old.p)
		if err := old.next(); err != nil {
			return nil, err
		}
	}
	err = aw.close()
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", path, err)
	}
	tmp = nil
	// The file, then its directory and the archive directory's entries:
	// readings leave the database only once all are durable.
	for _, d := range []string{dir, s.archiveDir, filepath.Dir(s.archiveDir)} {
		if err := syncDir(d); err != nil {
			return nil, fmt.Errorf("archive %s: %w", path, err)
		}
	}
	return a, nil
}

// openArchive opens the archive file at path and reads its first reading.
// A file that does not exist reads as empty. An encrypted file is
// decrypted with key; without the key it is an error, so that no archive
// is ever rewritten without the readings it holds.
func openArchive(path string, key *crypt.Key) (*archiveReader, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &archiveReader{path: path}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	r, err := readArchive(path, f, key)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.f = f
	return r, nil
}

// digest fingerprints a run of readings: their count and a SHA-256 of their
// times and values, so that retire deletes readings only as archived. A
// count and the largest id would miss a reading corrected in place, which
// keeps its id.
type digest struct {
	n int
	h hash.Hash
}

func (d *digest) add(p point) {
	if d.h == nil {
		d.h = sha256.New()
	}
	var b [25]byte
	binary.BigEndian.PutUint64(b[0:], uint64(p.ns))
	binary.BigEndian.PutUint64(b[8:], math.Float64bits(p.powerW))
	if p.hasEnergy {
		binary.BigEndian.PutUint64(b[16:], math.Float64bits(p.energyWh))
		b[24] = 1
	}
	d.h.Write(b[:])
	d.n++
}

func (d *digest) sum() []byte {
	if d.h == nil {
		return nil
	}
	return d.h.Sum(nil)
}

// staleTemp is the age past which a temporary archive file is left over
// from an interrupted run.
const staleTemp = time.Hour

// pruneArchives deletes from dir the archive files whose month ended more
// than keep before now (none when keep is 0), and temporary files left by
// interrupted runs (an hour old by the clock); it leaves every other file
// alone. It returns how many
// archive files it deleted.
func pruneArchives(dir string, keep time.Duration, now time.Time) (int, error) {
	meters, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("prune archives: %w", err)
	}
	removed := 0
	var errs []error
	for _, m := range meters {
		if !m.IsDir() {
			continue
		}
		sub := filepath.Join(dir, m.Name())
		entries, err := os.ReadDir(sub)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			path := filepath.Join(sub, e.Name())
			if strings.HasSuffix(e.Name(), ".tmp") {
				if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTemp { // by the clock: the file's time is real

					if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
						errs = append(errs, err)
					}
				}
				continue
			}
			month, ok := archiveMonthOf(m.Name(), e.Name())
			if !ok || keep <= 0 || month.AddDate(0, 1, 0).After(now.Add(-keep)) {
				continue
			}
			if err := os.Remove(path); err != nil {
				errs = append(errs, err)
				continue
			}
			removed++
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("prune archives: %w", err)
	}
	return removed, nil
}

// archives returns the months of meterID's archive files, oldest first,
// and a function that opens one.
func (eng *boltEngine) archives(ctx context.Context, meterID string) ([]time.Time, func(time.Time) (*archiveReader, error), error) {
	s := eng.s
	dir := filepath.Join(s.archiveDir, meterID)
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	var months []time.Time
	for _, e := range entries {
		if m, ok := archiveMonthOf(meterID, e.Name()); ok && e.Type().IsRegular() {
			months = append(months, m)
		}
	}
	slices.SortFunc(months, func(a, b time.Time) int { return a.Compare(b) })
	open := func(m time.Time) (*archiveReader, error) {
		return openArchive(filepath.Join(dir, ArchiveName(meterID, m)), s.key)
	}
	return months, open, nil
}
