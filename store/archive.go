package store

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vatio-energy/vatio/crypt"
)

// An archive file holds one meter's raw readings of one calendar month
// (UTC), as gzip-compressed CSV that `zcat` reads and that
// meter.(*Decoder).ReadCSV (and so the import API) takes back:
//
//	timestamp,power_w,energy_wh
//	2026-01-01T00:00:07.25Z,1234.5,
//	2026-01-01T00:00:17Z,1240,8812345.5
//
// one reading a line in time order: the time in RFC 3339 with nanoseconds
// (UTC), the power in watts and the device's energy counter in Wh (empty
// when it sent none), numbers in their shortest exact form. Reading ids are
// not kept.

// archiveHeader is an archive file's first line.
const archiveHeader = "timestamp,power_w,energy_wh\n"

// archiveMonthLayout is the month in an archive file's name.
const archiveMonthLayout = "2006-01"

// ArchiveName returns the name of the archive file of meterID's readings of
// the calendar month (UTC) holding month: <meter>-YYYY-MM.csv.gz. It lives
// in the directory <archive dir>/<meter>.
func ArchiveName(meterID string, month time.Time) string {
	return meterID + "-" + month.UTC().Format(archiveMonthLayout) + ".csv.gz"
}

// archiveMonthOf parses a name made by ArchiveName for meterID.
func archiveMonthOf(meterID, name string) (time.Time, bool) {
	s, ok := strings.CutPrefix(name, meterID+"-")
	if !ok {
		return time.Time{}, false
	}
	if s, ok = strings.CutSuffix(s, ".csv.gz"); !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(archiveMonthLayout, s)
	return t, err == nil
}

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
func (s *Store) archiveMonth(ctx context.Context, meterID string, month time.Time) (*archived, error) {
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
		err := s.db.View(func(tx *bolt.Tx) error {
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
					if d.n >= s.retireLimit {
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

// appendArchiveLine appends p as an archive file's line.
func appendArchiveLine(b []byte, p point) []byte {
	b = time.Unix(0, p.ns).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, ',')
	b = strconv.AppendFloat(b, p.powerW, 'g', -1, 64)
	b = append(b, ',')
	if p.hasEnergy {
		b = strconv.AppendFloat(b, p.energyWh, 'g', -1, 64)
	}
	return append(b, '\n')
}

// archiveReader reads an existing archive file, one reading at a time.
type archiveReader struct {
	path string
	f    *os.File
	sc   *bufio.Scanner
	line int
	p    point // the current reading, when ok
	ok   bool
	read bool // a reading was read
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

// readArchive reads an archive file's content from src, named path in
// errors, and reads its first reading.
func readArchive(path string, src io.Reader, key *crypt.Key) (*archiveReader, error) {
	r := &archiveReader{path: path}
	br := bufio.NewReader(src)
	src = br
	if crypt.IsEncrypted(br) {
		if key == nil {
			return nil, fmt.Errorf("archive: %s is encrypted: set encryption.key (or %s) to the key it was written with", path, "VATIO_ENCRYPTION_KEY")
		}
		var err error
		if src, err = crypt.NewReader(src, key); err != nil {
			return nil, fmt.Errorf("archive: %s: %w", path, err)
		}
	}
	gz, err := gzip.NewReader(src)
	if err != nil {
		return nil, fmt.Errorf("archive: read %s: %w (move it away to have it written anew)", path, err)
	}
	r.sc = bufio.NewScanner(gz)
	if err := r.next(); err != nil {
		return nil, err
	}
	return r, nil
}

// archiveWriter writes an archive file's content: CSV lines, gzip, sealed
// when there is a key.
type archiveWriter struct {
	dst    *bufio.Writer
	sealed *crypt.Writer
	gz     *gzip.Writer
	w      *bufio.Writer
	line   []byte
}

func newArchiveWriter(dst io.Writer, key *crypt.Key) (*archiveWriter, error) {
	a := &archiveWriter{dst: bufio.NewWriterSize(dst, 64<<10)}
	var sink io.Writer = a.dst
	if key != nil {
		var err error
		if a.sealed, err = crypt.NewWriter(a.dst, key); err != nil {
			return nil, fmt.Errorf("archive: %w", err)
		}
		sink = a.sealed
	}
	a.gz = gzip.NewWriter(sink) // no name nor time in the header: the same readings give the same plain file
	a.w = bufio.NewWriterSize(a.gz, 64<<10)
	a.w.WriteString(archiveHeader)
	return a, nil
}

func (a *archiveWriter) write(p point) {
	a.line = appendArchiveLine(a.line[:0], p)
	a.w.Write(a.line)
}

// close ends the content; the destination is flushed, not closed.
func (a *archiveWriter) close() error {
	err := a.w.Flush()
	if err == nil {
		err = a.gz.Close()
	}
	if err == nil && a.sealed != nil {
		err = a.sealed.Close()
	}
	if err == nil {
		err = a.dst.Flush()
	}
	return err
}

// next reads the next reading; ok is false past the last.
func (r *archiveReader) next() error {
	r.ok = false
	if r.sc == nil {
		return nil
	}
	for r.sc.Scan() {
		r.line++
		text := r.sc.Text()
		if text == "" || (r.line == 1 && strings.HasPrefix(text, "timestamp,")) {
			continue
		}
		p, err := parseArchiveLine(text)
		if err != nil {
			return fmt.Errorf("archive: %s line %d: %w (move the file away to have it written anew)", r.path, r.line, err)
		}
		if r.read && p.ns <= r.p.ns {
			return fmt.Errorf("archive: %s line %d: not after the line before (move the file away to have it written anew)", r.path, r.line)
		}
		r.p, r.ok, r.read = p, true, true
		return nil
	}
	if err := r.sc.Err(); err != nil {
		return fmt.Errorf("archive: read %s: %w (move it away to have it written anew)", r.path, err)
	}
	return nil
}

func (r *archiveReader) close() {
	if r.f != nil {
		r.f.Close()
	}
}

// parseArchiveLine parses a line written by appendArchiveLine.
func parseArchiveLine(text string) (point, error) {
	fields := strings.Split(text, ",")
	if len(fields) != 3 {
		return point{}, fmt.Errorf("%d fields, want timestamp,power_w,energy_wh", len(fields))
	}
	t, err := time.Parse(time.RFC3339Nano, fields[0])
	if err != nil {
		return point{}, err
	}
	p := point{ns: t.UnixNano()}
	if p.powerW, err = strconv.ParseFloat(fields[1], 64); err != nil {
		return point{}, err
	}
	if fields[2] != "" {
		if p.energyWh, err = strconv.ParseFloat(fields[2], 64); err != nil {
			return point{}, err
		}
		p.hasEnergy = true
	}
	return p, nil
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

// ParseArchiveName returns the month of a name made by ArchiveName for
// meterID.
func ParseArchiveName(meterID, name string) (time.Time, bool) { return archiveMonthOf(meterID, name) }
