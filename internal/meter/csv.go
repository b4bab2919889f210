package meter

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// LineError is a bad line of a CSV history file.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// MaxCSVLineBytes is the longest line ReadCSV accepts.
const MaxCSVLineBytes = 4096

// ReadCSV reads a whole history of one meter (see CSVReader) and returns
// its readings. progress, if not nil, is called every 100,000 lines.
func (d *Decoder) ReadCSV(r io.Reader, meterID string, now time.Time, progress func(lines int)) ([]Reading, error) {
	cr, err := d.NewCSVReader(r, meterID, now)
	if err != nil {
		return nil, err
	}
	cr.Progress = progress
	var out []Reading
	for {
		rd, err := cr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rd)
	}
}

// CSVReader reads a history of one meter, one reading a line, a line at a
// time, so that a history of any size takes the memory of one line:
//
//	timestamp,power_w[,energy_wh]
//
// timestamp is RFC 3339 with an offset or Unix seconds or milliseconds;
// power_w is the power in watts; energy_wh, optional, the device's energy
// counter in watt-hours. A first line that is not a reading (a header such
// as "timestamp,power_w") is skipped; so are blank lines. Every reading is
// validated as a published one would be, at now, and the device timestamp
// is required. A bad line is a *LineError naming it; a failure to read
// (a stalled upload, a body past its limit) is that error, never taken for
// a bad line.
type CSVReader struct {
	// Progress, if not nil, is called every 100,000 lines and at the end.
	Progress func(lines int)

	d       *Decoder
	meterID string
	now     time.Time
	src     *errReader
	sc      *bufio.Scanner
	line    int
	done    bool
}

// NewCSVReader returns a CSVReader of meterID's history in r.
func (d *Decoder) NewCSVReader(r io.Reader, meterID string, now time.Time) (*CSVReader, error) {
	if !ValidID(meterID) {
		return nil, reject(ReasonBadMeterID, "meter id %q: use 1 to %d letters, digits, '.', '_', ':' or '-'", truncate(meterID), MaxIDLength)
	}
	src := &errReader{r: r}
	sc := bufio.NewScanner(src)
	sc.Buffer(make([]byte, 0, MaxCSVLineBytes), MaxCSVLineBytes)
	return &CSVReader{d: d, meterID: meterID, now: now, src: src, sc: sc}, nil
}

// ReadErr returns the error that reading failed with (other than io.EOF),
// or nil: the body of an upload that stalled or passed its limit, told
// apart from a bad line.
func (cr *CSVReader) ReadErr() error { return cr.src.err }

// Lines returns how many lines were read so far.
func (cr *CSVReader) Lines() int { return cr.line }

// Next returns the next reading, or io.EOF after the last.
func (cr *CSVReader) Next() (Reading, error) {
	if cr.done {
		return Reading{}, io.EOF
	}
	for cr.sc.Scan() {
		cr.line++
		if cr.Progress != nil && cr.line%100000 == 0 {
			cr.Progress(cr.line)
		}
		if cr.src.err != nil {
			// The scanner hands over what it had when the read failed
			// as a last line: a cut line, not a bad one.
			break
		}
		text := strings.TrimSpace(cr.sc.Text())
		if text == "" {
			continue
		}
		rd, err := cr.d.csvReading(cr.meterID, text, cr.now)
		if err != nil {
			if cr.line == 1 && !startsLikeNumber(text) && strings.Contains(strings.ToLower(text), "power") {
				continue // a header
			}
			return Reading{}, &LineError{Line: cr.line, Err: err}
		}
		return rd, nil
	}
	cr.done = true
	if cr.src.err != nil {
		return Reading{}, fmt.Errorf("read CSV after line %d: %w", max(cr.line-1, 0), cr.src.err)
	}
	if err := cr.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Reading{}, &LineError{Line: cr.line + 1, Err: fmt.Errorf("longer than %d bytes", MaxCSVLineBytes)}
		}
		return Reading{}, fmt.Errorf("read CSV: %w", err)
	}
	if cr.Progress != nil {
		cr.Progress(cr.line)
	}
	return Reading{}, io.EOF
}

// errReader keeps the first error of r other than io.EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

func startsLikeNumber(s string) bool {
	return s != "" && (s[0] >= '0' && s[0] <= '9')
}

func (d *Decoder) csvReading(meterID, text string, now time.Time) (Reading, error) {
	fields := strings.Split(text, ",")
	if len(fields) < 2 || len(fields) > 3 {
		return Reading{}, fmt.Errorf("want timestamp,power_w[,energy_wh], got %d fields", len(fields))
	}
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	t, err := ParseTime(fields[0])
	if err != nil {
		return Reading{}, err
	}
	w, err := parseNumber([]byte(fields[1]))
	if err != nil {
		return Reading{}, fmt.Errorf("power_w: %w", err)
	}
	r := Reading{Source: "import", Meter: meterID, Time: t.UTC(), PowerW: w, Stamped: true}
	if len(fields) == 3 && fields[2] != "" {
		wh, err := parseNumber([]byte(fields[2]))
		if err != nil {
			return Reading{}, fmt.Errorf("energy_wh: %w", err)
		}
		r.EnergyWh, r.HasEnergy = wh, true
	}
	if err := d.Validate(r, now); err != nil {
		return Reading{}, err
	}
	return r, nil
}
