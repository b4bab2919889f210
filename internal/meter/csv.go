package meter

import (
	"io"
	"strings"
)

// csvSource reads Vatio's CSV history, one row a line, in one of two forms.
//
// Power readings, a header optional:
//
//	timestamp,power_w[,energy_wh]
//
// timestamp is RFC 3339 with an offset or Unix seconds or milliseconds;
// power_w is the power in watts; energy_wh, optional, the device's energy
// counter in watt-hours. A first line that is not a reading and names
// power (a header) is skipped.
//
// Energy per interval, under a header naming its columns (in any order):
//
//	start|end|timestamp,energy_wh|energy_kwh[,export_wh|export_kwh]
//
// start (or interval_start) is each interval's start, end (or
// interval_end) its end; a column named timestamp (or time) is whichever
// the import's Stamp says. energy is what was drawn from the grid over the
// interval, export what was sent to it. Each interval lasts the meter's
// interval (ImportOptions.Interval, or learned from the rows).
type csvSource struct {
	ls     *lineScanner
	stamp  Stamp
	header bool // the first line was read
	// The columns of an interval file (energy >= 0), or energy < 0 for
	// power readings.
	timeCol, energyCol, exportCol int
	atEnd                         bool
	energyScale, exportScale      float64 // to Wh
	fields                        int
}

func newCSVSource(r io.Reader, stamp Stamp) *csvSource {
	return &csvSource{ls: newLineScanner(r), stamp: stamp, energyCol: -1, exportCol: -1}
}

func (c *csvSource) line() int { return c.ls.n }

func (c *csvSource) next() (record, error) {
	for {
		text, err := c.ls.scan()
		if err != nil {
			return record{}, err
		}
		if !c.header {
			c.header = true
			if !startsLikeNumber(text) {
				if isHeader, err := c.readHeader(text); isHeader || err != nil {
					if err != nil {
						return record{}, &LineError{Line: c.ls.n, Err: err}
					}
					continue
				}
			}
		}
		var rec record
		if c.energyCol >= 0 {
			rec, err = c.interval(text)
		} else {
			rec, err = powerRow(text)
		}
		if err != nil {
			return record{}, &LineError{Line: c.ls.n, Err: err}
		}
		rec.line = c.ls.n
		return rec, nil
	}
}

// readHeader reads a first line that may be a header. It reports whether
// it is one: a header naming power is one of power readings, a header
// naming energy and no power one of intervals.
func (c *csvSource) readHeader(text string) (bool, error) {
	fields := splitFields(strings.ToLower(text), ",")
	if strings.Contains(strings.ToLower(text), "power") {
		return true, nil // power readings: timestamp,power_w[,energy_wh]
	}
	wh, kwh := headerIndex(fields, "energy_wh"), headerIndex(fields, "energy_kwh")
	if wh < 0 && kwh < 0 {
		return false, nil
	}
	c.fields = len(fields)
	c.energyCol, c.energyScale = wh, 1
	if wh < 0 {
		c.energyCol, c.energyScale = kwh, 1000
	}
	c.exportCol, c.exportScale = headerIndex(fields, "export_wh"), 1
	if c.exportCol < 0 {
		c.exportCol, c.exportScale = headerIndex(fields, "export_kwh"), 1000
	}
	start, end := headerIndex(fields, "start", "interval_start"), headerIndex(fields, "end", "interval_end")
	stamped := headerIndex(fields, "timestamp", "time")
	switch {
	case start >= 0 && end >= 0:
		return true, problemf("name one time column, start or end, not both")
	case start >= 0 || end >= 0:
		c.timeCol, c.atEnd = max(start, end), end >= 0
		if c.stamp != StampUnknown && (c.stamp == StampEnd) != c.atEnd {
			return true, problemf("the header names the interval's %s but time=%s was stated", map[bool]string{false: "start", true: "end"}[c.atEnd], c.stamp)
		}
	case stamped >= 0:
		if c.stamp == StampUnknown {
			return true, problemf("say whether timestamp is each interval's start or end: name the column start or end, or state time=start or time=end")
		}
		c.timeCol, c.atEnd = stamped, c.stamp == StampEnd
	default:
		return true, problemf("name the time column start or end (the interval's), next to the energy")
	}
	return true, nil
}

// interval reads a row of an interval file.
func (c *csvSource) interval(text string) (record, error) {
	fields := splitFields(text, ",")
	if len(fields) != c.fields {
		return record{}, problemf("%d fields, the header names %d", len(fields), c.fields)
	}
	t, err := ParseTime(fields[c.timeCol])
	if err != nil {
		return record{}, err
	}
	rec := record{interval: true, at: t, atEnd: c.atEnd}
	e, err := parseNumber([]byte(fields[c.energyCol]))
	if err != nil {
		return record{}, problemf("energy: %v", err)
	}
	rec.importWh = e * c.energyScale
	if c.exportCol >= 0 && fields[c.exportCol] != "" {
		x, err := parseNumber([]byte(fields[c.exportCol]))
		if err != nil {
			return record{}, problemf("export: %v", err)
		}
		rec.exportWh = x * c.exportScale
	}
	return rec, nil
}

// powerRow reads a row timestamp,power_w[,energy_wh].
func powerRow(text string) (record, error) {
	fields := splitFields(text, ",")
	if len(fields) < 2 || len(fields) > 3 {
		return record{}, problemf("want timestamp,power_w[,energy_wh], got %d fields", len(fields))
	}
	t, err := ParseTime(fields[0])
	if err != nil {
		return record{}, err
	}
	w, err := parseNumber([]byte(fields[1]))
	if err != nil {
		return record{}, problemf("power_w: %v", err)
	}
	r := Reading{Source: "import", Time: t.UTC(), PowerW: w, Stamped: true}
	if len(fields) == 3 && fields[2] != "" {
		wh, err := parseNumber([]byte(fields[2]))
		if err != nil {
			return record{}, problemf("energy_wh: %v", err)
		}
		r.EnergyWh, r.HasEnergy = wh, true
	}
	return record{r: r}, nil
}

func startsLikeNumber(s string) bool {
	return s != "" && (s[0] >= '0' && s[0] <= '9')
}
