package store

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vatio-energy/vatio/internal/crypt"
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

// ParseArchiveName returns the month of a name made by ArchiveName for
// meterID.
func ParseArchiveName(meterID, name string) (time.Time, bool) { return archiveMonthOf(meterID, name) }
