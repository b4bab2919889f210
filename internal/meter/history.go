package meter

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Format names the layout of a history file.
type Format string

// The history formats ImportHistory reads.
const (
	// FormatAuto tells the format from the file's first bytes: XML is
	// Green Button, a first line with ';' naming CUPS is Datadis, anything
	// else is Vatio's CSV.
	FormatAuto Format = ""
	// FormatCSV is Vatio's CSV: power readings (timestamp,power_w
	// [,energy_wh]) or, under a header without power_w, energy per
	// interval (start or end, energy_wh or energy_kwh[, export_wh or
	// export_kwh]).
	FormatCSV Format = "csv"
	// FormatDatadis is the hourly consumption CSV of datadis.es (Spain).
	FormatDatadis Format = "datadis"
	// FormatGreenButton is a Green Button (NAESB ESPI) XML feed.
	FormatGreenButton Format = "greenbutton"
)

// ParseFormat parses auto (or ""), csv, datadis or greenbutton.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case "auto", FormatAuto:
		return FormatAuto, nil
	case FormatCSV, FormatDatadis, FormatGreenButton:
		return f, nil
	}
	return "", problemf("format %q: use auto, csv, datadis or greenbutton", truncate(s))
}

// Stamp says which end of an interval a CSV row's time is.
type Stamp string

// The stamps.
const (
	StampUnknown Stamp = ""      // named by the time column (start or end)
	StampStart   Stamp = "start" // the interval's start
	StampEnd     Stamp = "end"   // the interval's end
)

// ParseStamp parses start or end ("" for neither).
func ParseStamp(s string) (Stamp, error) {
	switch st := Stamp(strings.ToLower(s)); st {
	case StampUnknown, StampStart, StampEnd:
		return st, nil
	}
	return "", problemf("time %q: use start or end", truncate(s))
}

// maxPointsPerInterval bounds the readings one interval of energy becomes.
const maxPointsPerInterval = 10_000

// MaxMadeReadings bounds the readings one import makes beyond the file's
// own: the readings of its intervals of energy (one every store.max_gap,
// and one at each interval's end) and the points that span a gap between
// power readings. 600,000 are 9.7 years of hourly intervals at the default
// max_gap of 10 minutes (7 readings an hour) and a little over a year of
// quarter-hours (2 an interval plus one). Past it an import is refused
// before anything is stored: the store's time and disk grow with the
// readings (a 24 KB file of daily kWh over 26 years made 1.4 M readings
// and 1.2 GB), and a longer history can be sent in parts.
const MaxMadeReadings = 600_000

// MaxFileReadings bounds the power readings one import's file may hold:
// two million are 23 days of a reading a second, a year of one every 16 s.
// The store's time and disk grow with them (a 529 KB body, compressed
// twice, held 10 million sub-second readings and 380 MB), and a longer
// history can be sent in parts.
const MaxFileReadings = 2_000_000

// ParseZone parses the IANA name of a time zone (such as Atlantic/Canary).
func ParseZone(name string) (*time.Location, error) {
	loc, err := time.LoadLocation(name) // refuses a path (.., /)
	if err != nil || name == "" || name == "Local" {
		return nil, problemf("zone %q: give an IANA time zone, such as Atlantic/Canary", truncate(name))
	}
	return loc, nil
}

// MaxIntervalLength is the longest interval of energy a history may give:
// a day.
const MaxIntervalLength = 24 * time.Hour

// ImportOptions says how to read a history file.
type ImportOptions struct {
	// Format is the file's layout; FormatAuto tells it from the file.
	Format Format
	// Interval is the meter's sampling interval: the length of each
	// interval of energy a CSV gives, and the longest gap between power
	// readings that is integrated across (up to one and a half times it).
	// 0 learns it from the file: the most common gap between the first
	// 64 rows. Datadis (an hour) and Green Button (each reading's
	// duration) say it themselves.
	Interval time.Duration
	// Stamp says whether a CSV's interval times are the intervals' starts
	// or ends, where the time column's name (start, end) does not.
	Stamp Stamp
	// Zone is the time zone a Datadis file's hours are in: nil is Spain's
	// peninsular time (Europe/Madrid); the Canary Islands' files are in
	// Atlantic/Canary.
	Zone *time.Location
	// Heard, when set, says when a meter was last heard live (the zero
	// time if never): a history of a meter that reports live holds only
	// what came before its live readings, which a later reading would
	// replace as its power now.
	Heard func(meterID string) time.Time
	// MaxGap is the store's max_gap: the longest interval between two
	// readings that the store integrates across. Interval energy is
	// stored as readings no further apart than it, and power readings
	// further apart than it (but within the meter's interval) get points
	// on the straight line between them. 0 stores only the readings of
	// the file (ReadCSV).
	MaxGap time.Duration
}

// ErrNoMeterID is a history of no meter: the meter's id was not given and
// the file is not a Datadis one, which names it.
var ErrNoMeterID = problemf("say which meter the history is of: only a Datadis file names it (its CUPS)")

// LineError is a bad line of a history file.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

func lineErr(line int, format string, args ...any) error {
	return &LineError{Line: line, Err: problemf(format, args...)}
}

// record is what a format decoder gives: a power reading, or the energy of
// an interval.
type record struct {
	line int
	// meter, when not "", is the meter the file names (a Datadis CUPS).
	meter string
	// A power reading, when !interval.
	r Reading
	// An interval: at is its start (or its end, when atEnd), length its
	// length (0: the meter's interval), importWh and exportWh its energy
	// drawn from and sent to the grid.
	interval           bool
	at                 time.Time
	atEnd              bool
	length             time.Duration
	importWh, exportWh float64
}

// source is a format decoder: next returns its records, then io.EOF; a
// bad line is a *LineError.
type source interface {
	next() (record, error)
	// line is the line read last.
	line() int
}

// learnRows is how many rows the meter's interval is learned from.
const learnRows = 64

// HistoryReader reads a history file of one meter, in any of the Formats,
// as readings, a little at a time: a history of any size takes the memory
// of one day (Datadis) or one file's readings (Green Button, bounded by
// MaxGreenButtonReadings).
//
// Interval energy (an hour's kWh from the utility) is stored as the mean
// power over the interval, at its start and every max_gap within it, and
// once more a nanosecond before its end. The store integrates power by
// trapezoids between readings no further apart than max_gap, so it
// integrates each interval to exactly its energy (mean power times
// length), into the minutes, hours and days the interval covers; the
// nanosecond between one interval's last reading and the next one's first
// counts the mean of their powers, an error under 10^-9 Wh a kW of
// difference, far below the file's own precision (Wh). This is the
// faithful form: daily kWh and cost come out as the utility's, a chart
// shows the mean power of each interval, demand over 15 minutes is as fine
// as the data, and an interval with export stores negative power, so
// energy sent to the grid counts as export.
//
// A cumulative energy counter series was the other choice, and is wrong
// three ways: the store gives a counter's rise across a gap longer than
// max_gap to the minute of the later reading (an hour's energy, stamped at
// its end, would land in the next hour, and the last hour of a day in the
// next day); the store keeps one counter a meter, of energy drawn only; and
// a live counter of another value after the history would read as a jump
// (or a reset) of the whole difference. Import and export of the same
// interval are stored as their net, as an hourly net-metering bill
// (Spain's) counts them.
type HistoryReader struct {
	// Progress, if not nil, is called every 100,000 lines and at the end.
	Progress func(lines int)

	d        *Decoder
	meterID  string
	now      time.Time
	opts     ImportOptions
	format   Format
	src      *errReader
	dec      source
	interval time.Duration // the meter's, stated or learned; 0 unknown
	learn    bool          // the interval is still to learn
	ahead    []record      // records read to learn the interval
	prev     *Reading      // the last power reading, to span a gap from
	lastEnd  time.Time     // the end of the last interval of energy
	made     int           // readings made beyond the file's (MaxMadeReadings)
	out      []Reading     // readings made, to hand out
	// rows counts the file's rows made into readings, intervals those of
	// them that were energy intervals (each stored as several readings).
	rows, intervals int
	reported        int
	done            bool
	// heard is when the meter was last heard live (opts.Heard), looked up
	// once its id is known.
	heard       time.Time
	heardLooked bool
}

// NewHistoryReader returns a HistoryReader of meterID's history in r. For
// a Datadis file meterID may be "": the file's CUPS names the meter.
func (d *Decoder) NewHistoryReader(r io.Reader, meterID string, now time.Time, opts ImportOptions) (*HistoryReader, error) {
	if meterID != "" && !ValidID(meterID) {
		return nil, reject(ReasonBadMeterID, "meter id %q: use 1 to %d letters, digits, '.', '_', ':' or '-'", truncate(meterID), MaxIDLength)
	}
	if opts.Interval < 0 || opts.Interval > MaxIntervalLength {
		return nil, problemf("interval %s: give one from 1s to %s", opts.Interval, MaxIntervalLength)
	}
	src := &errReader{r: r}
	br := bufio.NewReaderSize(src, 16<<10)
	skipBOM(br)
	h := &HistoryReader{d: d, meterID: meterID, now: now, opts: opts, src: src, interval: opts.Interval}
	h.format = opts.Format
	if h.format == FormatAuto {
		h.format = sniff(br)
		if src.err != nil {
			return nil, problemf("read history: %v", src.err)
		}
	}
	switch h.format {
	case FormatCSV:
		h.dec = newCSVSource(br, opts.Stamp)
	case FormatDatadis:
		h.dec = newDatadisSource(br, cmpOrZone(opts.Zone, madrid))
	case FormatGreenButton:
		h.dec = newGreenButtonSource(br)
	default:
		return nil, problemf("format %q: use auto, csv, datadis or greenbutton", h.format)
	}
	if h.format != FormatDatadis && opts.Zone != nil {
		return nil, problemf("zone is for Datadis files: a %s file's times say their offset", h.format)
	}
	if h.format != FormatCSV && opts.Stamp != StampUnknown {
		return nil, problemf("time=%s is for CSV files: %s says which hour it gives", opts.Stamp, h.format)
	}
	if meterID == "" && h.format != FormatDatadis {
		return nil, ErrNoMeterID
	}
	h.learn = h.interval == 0 && h.format == FormatCSV
	return h, nil
}

// skipBOM drops a UTF-8 byte order mark, which spreadsheets write.
func skipBOM(br *bufio.Reader) {
	if b, _ := br.Peek(3); bytes.Equal(b, []byte{0xef, 0xbb, 0xbf}) {
		br.Discard(3)
	}
}

// sniff tells a history's format from its first line.
func sniff(br *bufio.Reader) Format {
	b, _ := br.Peek(4096)
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) > 0 && b[0] == '<' {
		return FormatGreenButton
	}
	first, _, _ := bytes.Cut(b, []byte("\n"))
	if bytes.Contains(first, []byte(";")) && bytes.Contains(bytes.ToLower(first), []byte("cups")) {
		return FormatDatadis
	}
	return FormatCSV
}

// Format returns the history's format (told from the file, or stated).
func (h *HistoryReader) Format() Format { return h.format }

// MeterID returns the meter the history is of: the one given, or the one
// the file names once Next has read it.
func (h *HistoryReader) MeterID() string { return h.meterID }

// ReadErr returns the error that reading failed with (other than io.EOF),
// or nil: the body of an upload that stalled or passed its limit, told
// apart from a bad line.
func (h *HistoryReader) ReadErr() error { return h.src.err }

// Lines returns how many lines were read so far.
func (h *HistoryReader) Lines() int { return h.dec.line() }

// Rows returns how many of the file's rows (power readings and intervals
// of energy) were made into readings so far: what the file holds, where
// the store counts the points they became.
func (h *HistoryReader) Rows() int { return h.rows }

// Intervals returns how many of Rows were intervals of energy.
func (h *HistoryReader) Intervals() int { return h.intervals }

// Next returns the next reading, or io.EOF after the last.
func (h *HistoryReader) Next() (Reading, error) {
	for len(h.out) == 0 {
		if h.done {
			return Reading{}, io.EOF
		}
		if err := h.fill(); err != nil {
			h.done = true
			h.out = nil
			return Reading{}, err
		}
	}
	r := h.out[0]
	h.out = h.out[1:]
	return r, nil
}

// fill reads the next record and makes its readings.
func (h *HistoryReader) fill() error {
	rec, err := h.pull()
	if n := h.dec.line(); h.Progress != nil && n/100000 > h.reported/100000 {
		h.Progress(n)
		h.reported = n
	}
	if err == io.EOF {
		h.done = true
		if h.Progress != nil {
			h.Progress(h.dec.line())
		}
		return nil
	}
	if err != nil {
		if h.src.err != nil { // the body failed: a cut line is no bad line
			return problemf("read history after line %d: %v", max(h.dec.line()-1, 0), h.src.err)
		}
		return err
	}
	if rec.meter != "" {
		if h.meterID == "" {
			if !ValidID(rec.meter) {
				return lineErr(rec.line, "%q cannot name a meter: choose the meter's id", truncate(rec.meter))
			}
			h.meterID = rec.meter
		}
	}
	if rec.interval {
		if err := h.expand(rec); err != nil {
			return err
		}
		h.rows++
		h.intervals++
		return nil
	}
	rec.r.Meter = h.meterID
	if err := h.d.Validate(rec.r, h.now); err != nil {
		return &LineError{Line: rec.line, Err: err}
	}
	if err := h.notAhead(rec.r.Time, rec.line); err != nil {
		return err
	}
	if err := h.span(rec.r, rec.line); err != nil {
		return err
	}
	if h.rows-h.intervals >= MaxFileReadings {
		return lineErr(rec.line, "the file holds more than %d readings: split it into parts", MaxFileReadings)
	}
	h.out = append(h.out, rec.r)
	h.rows++
	return nil
}

// notAhead refuses a reading later than the import's time: a history is
// of what was measured, and its latest reading would become the meter's
// power now.
func (h *HistoryReader) notAhead(t time.Time, line int) error {
	if t.After(h.now) {
		return lineErr(line, "a reading at %s is in the future, later than the import's time (%s): a history holds only what was measured",
			t.UTC().Format(time.RFC3339), h.now.UTC().Format(time.RFC3339))
	}
	if !h.heardLooked && h.opts.Heard != nil && h.meterID != "" {
		h.heard, h.heardLooked = h.opts.Heard(h.meterID), true
	}
	if !h.heard.IsZero() && t.After(h.heard) {
		return lineErr(line, "a reading at %s is after %s, when meter %s last reported live: a history holds what came before its live readings, which it would otherwise replace as its power now",
			t.UTC().Format(time.RFC3339), h.heard.UTC().Format(time.RFC3339), h.meterID)
	}
	return nil
}

// count counts n readings made beyond the file's, within MaxMadeReadings.
func (h *HistoryReader) count(n int, line int) error {
	if h.made += n; h.made > MaxMadeReadings {
		return lineErr(line, "the file would be stored as more than %d readings (its intervals at most store.max_gap, %s, apart): split it into parts of fewer years",
			MaxMadeReadings, h.opts.MaxGap)
	}
	return nil
}

// pull returns the next record, after reading the first learnRows ahead to
// learn the meter's interval when it was not stated.
func (h *HistoryReader) pull() (record, error) {
	if h.learn {
		h.learn = false
		for len(h.ahead) < learnRows {
			rec, err := h.dec.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return record{}, err
			}
			h.ahead = append(h.ahead, rec)
		}
		h.interval = learnInterval(h.ahead)
	}
	if len(h.ahead) > 0 {
		rec := h.ahead[0]
		h.ahead = h.ahead[1:]
		return rec, nil
	}
	return h.dec.next()
}

// learnInterval returns the most common gap between consecutive rows (the
// shortest of equally common ones), or 0 when no two rows follow each other.
func learnInterval(recs []record) time.Duration {
	count := map[time.Duration]int{}
	stamp := func(r record) time.Time {
		if r.interval {
			return r.at
		}
		return r.r.Time
	}
	for i := 1; i < len(recs); i++ {
		if g := stamp(recs[i]).Sub(stamp(recs[i-1])); g > 0 && g <= MaxIntervalLength {
			count[g]++
		}
	}
	var best time.Duration
	for g, n := range count {
		if n > count[best] || (n == count[best] && g < best) {
			best = g
		}
	}
	return best
}

// expand makes the readings of an interval's energy (see HistoryReader).
func (h *HistoryReader) expand(rec record) error {
	length := cmpOr(rec.length, h.interval)
	if length <= 0 {
		return lineErr(rec.line, "the interval's length is unknown: state it (interval, such as 1h or 15m)")
	}
	if length > MaxIntervalLength {
		return lineErr(rec.line, "an interval of %s: at most %s", length, MaxIntervalLength)
	}
	for _, wh := range []float64{rec.importWh, rec.exportWh} {
		if math.IsNaN(wh) || math.IsInf(wh, 0) || wh < 0 || wh > MaxEnergyWh {
			return lineErr(rec.line, "energy %g Wh is outside [0, %g] Wh", wh, MaxEnergyWh)
		}
	}
	start := rec.at
	if rec.atEnd {
		start = start.Add(-length)
	}
	if start.Before(h.lastEnd) {
		return lineErr(rec.line, "the interval from %s overlaps the one before, which ends at %s: give intervals in time order, each the meter's interval long (%s)",
			start.UTC().Format(time.RFC3339), h.lastEnd.UTC().Format(time.RFC3339), length)
	}
	h.lastEnd = start.Add(length)
	powerW := (rec.importWh - rec.exportWh) / length.Hours()
	n := time.Duration(1)
	if h.opts.MaxGap > 0 {
		n = (length + h.opts.MaxGap - 1) / h.opts.MaxGap // points no further apart than max_gap
	}
	if n > maxPointsPerInterval {
		return lineErr(rec.line, "an interval of %s would take %d readings %s apart (store.max_gap): at most %d", length, n, h.opts.MaxGap, maxPointsPerInterval)
	}
	if err := h.notAhead(start.Add(length-time.Nanosecond), rec.line); err != nil {
		return err
	}
	if err := h.count(int(n)+1, rec.line); err != nil {
		return err
	}
	r := Reading{Source: "import", Meter: h.meterID, PowerW: powerW, Stamped: true}
	for k := range n {
		r.Time = start.Add(length * k / n).UTC()
		h.out = append(h.out, r)
	}
	r.Time = start.Add(length - time.Nanosecond).UTC()
	h.out = append(h.out, r)
	for _, x := range h.out {
		if err := h.d.Validate(x, h.now); err != nil {
			h.out = nil
			return &LineError{Line: rec.line, Err: problemf("%v (the mean power of the interval from %s)", err, start.UTC().Format(time.RFC3339))}
		}
	}
	h.prev = nil
	return nil
}

// span adds, between the last power reading and r, points on the straight
// line between them where they are further apart than the store's max_gap
// but no more than one and a half times the meter's interval: the store
// then integrates across the meter's own interval, to the same trapezoid.
// A counter that fell between them (a reset) gets no points.
func (h *HistoryReader) span(r Reading, line int) error {
	prev := h.prev
	h.prev = &r
	if prev == nil || h.opts.MaxGap <= 0 || h.interval <= h.opts.MaxGap*2/3 || prev.HasEnergy != r.HasEnergy {
		return nil
	}
	gap := r.Time.Sub(prev.Time)
	if gap <= h.opts.MaxGap || gap > h.interval*3/2 || (r.HasEnergy && r.EnergyWh < prev.EnergyWh) {
		return nil
	}
	n := (gap + h.opts.MaxGap - 1) / h.opts.MaxGap
	if err := h.count(int(n)-1, line); err != nil {
		return err
	}
	for k := time.Duration(1); k < n; k++ {
		f := float64(k) / float64(n)
		p := *prev
		p.Time = prev.Time.Add(gap * k / n)
		p.PowerW = prev.PowerW + (r.PowerW-prev.PowerW)*f
		p.EnergyWh = prev.EnergyWh + (r.EnergyWh-prev.EnergyWh)*f
		p.HasPF = false
		h.out = append(h.out, p)
	}
	return nil
}

func cmpOrZone(a, b *time.Location) *time.Location {
	if a != nil {
		return a
	}
	return b
}

func cmpOr(a, b time.Duration) time.Duration {
	if a != 0 {
		return a
	}
	return b
}

// ReadCSV reads a whole history of one meter in Vatio's CSV (see
// HistoryReader) and returns its readings, as the file gives them.
// progress, if not nil, is called every 100,000 lines.
func (d *Decoder) ReadCSV(r io.Reader, meterID string, now time.Time, progress func(lines int)) ([]Reading, error) {
	return d.ReadHistory(r, meterID, now, ImportOptions{Format: FormatCSV}, progress)
}

// ReadHistory reads a whole history (see HistoryReader) and returns its
// readings. progress, if not nil, is called every 100,000 lines.
func (d *Decoder) ReadHistory(r io.Reader, meterID string, now time.Time, opts ImportOptions, progress func(lines int)) ([]Reading, error) {
	h, err := d.NewHistoryReader(r, meterID, now, opts)
	if err != nil {
		return nil, err
	}
	h.Progress = progress
	var out []Reading
	for {
		rd, err := h.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rd)
	}
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

// lineScanner reads lines of at most MaxCSVLineBytes.
type lineScanner struct {
	sc *bufio.Scanner
	n  int
}

// MaxCSVLineBytes is the longest line a CSV history may have.
const MaxCSVLineBytes = 4096

func newLineScanner(r io.Reader) *lineScanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, MaxCSVLineBytes), MaxCSVLineBytes)
	return &lineScanner{sc: sc}
}

// scan returns the next line that is not blank, trimmed, or io.EOF.
func (l *lineScanner) scan() (string, error) {
	for l.sc.Scan() {
		l.n++
		if text := strings.TrimSpace(l.sc.Text()); text != "" {
			return text, nil
		}
	}
	if err := l.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return "", lineErr(l.n+1, "longer than %d bytes", MaxCSVLineBytes)
		}
		return "", problemf("read history: %v", err)
	}
	return "", io.EOF
}

// splitFields splits a line at sep and trims each field (and the quotes a
// spreadsheet puts around one).
func splitFields(text string, sep string) []string {
	fields := strings.Split(text, sep)
	for i, f := range fields {
		f = strings.TrimSpace(f)
		if len(f) >= 2 && f[0] == '"' && f[len(f)-1] == '"' {
			f = strings.TrimSpace(f[1 : len(f)-1])
		}
		fields[i] = f
	}
	return fields
}

// headerIndex returns the index of the first of names among fields, or -1.
func headerIndex(fields []string, names ...string) int {
	for _, n := range names {
		if i := slices.Index(fields, n); i >= 0 {
			return i
		}
	}
	return -1
}

// ImportSummary is what an import stored: the meter, the format the file
// was read as, how many readings it gave and how many were new, and the
// times of its first and last readings.
type ImportSummary struct {
	MeterID string
	Format  Format
	// Readings counts the points stored (an interval of energy is
	// several), Added those new; Rows counts the file's rows, Intervals
	// those of them that were intervals of energy.
	Readings, Added int
	Rows, Intervals int
	First, Last     time.Time
}

// FieldError is a bad field of an import's request (meter, format,
// interval, time or zone), named as the API's query and the dashboard's
// form name it.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// ParseImportOptions parses an import's options as typed: format (auto,
// csv, datadis, greenbutton or ""), interval (a duration from 1s to 24h,
// or ""), time (start, end or "") and zone (an IANA name or ""). A bad
// one is a *FieldError.
func ParseImportOptions(format, interval, stamp, zone string) (ImportOptions, error) {
	var opts ImportOptions
	var err error
	if opts.Format, err = ParseFormat(format); err != nil {
		return opts, &FieldError{Field: "format", Err: err}
	}
	if opts.Stamp, err = ParseStamp(stamp); err != nil {
		return opts, &FieldError{Field: "time", Err: err}
	}
	if zone != "" {
		if opts.Zone, err = ParseZone(zone); err != nil {
			return opts, &FieldError{Field: "zone", Err: err}
		}
	}
	if interval != "" {
		d, err := time.ParseDuration(interval)
		if err != nil || d < time.Second || d > MaxIntervalLength {
			return opts, &FieldError{Field: "interval", Err: problemf("want a duration from 1s to 24h, such as 15m or 1h")}
		}
		opts.Interval = d
	}
	return opts, nil
}
