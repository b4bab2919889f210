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

// ReadCSV reads a history of one meter, one reading a line:
//
//	timestamp,power_w[,energy_wh]
//
// timestamp is RFC 3339 with an offset or Unix seconds or milliseconds;
// power_w is the power in watts; energy_wh, optional, the device's energy
// counter in watt-hours. A first line that is not a reading (a header such
// as "timestamp,power_w") is skipped; so are blank lines. Every reading is
// validated as a published one would be, at now, and the device timestamp
// is required. The first bad line stops the read with a *LineError naming
// it. progress, if not nil, is called every 100,000 lines.
func (d *Decoder) ReadCSV(r io.Reader, meterID string, now time.Time, progress func(lines int)) ([]Reading, error) {
	if !ValidID(meterID) {
		return nil, reject(ReasonBadMeterID, "meter id %q: use 1 to %d letters, digits, '.', '_', ':' or '-'", truncate(meterID), MaxIDLength)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, MaxCSVLineBytes), MaxCSVLineBytes)
	var out []Reading
	line := 0
	for sc.Scan() {
		line++
		if progress != nil && line%100000 == 0 {
			progress(line)
		}
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		rd, err := d.csvReading(meterID, text, now)
		if err != nil {
			if line == 1 && !startsLikeNumber(text) && strings.Contains(strings.ToLower(text), "power") {
				continue // a header
			}
			return nil, &LineError{Line: line, Err: err}
		}
		out = append(out, rd)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &LineError{Line: line + 1, Err: fmt.Errorf("longer than %d bytes", MaxCSVLineBytes)}
		}
		return nil, fmt.Errorf("read CSV: %w", err)
	}
	if progress != nil {
		progress(line)
	}
	return out, nil
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
