package meter

import (
	"cmp"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// MaxGreenButtonReadings bounds the interval readings of one Green Button
// file: they are held until the file's end (about 100 bytes each), since a
// feed may give a ReadingType after the blocks it describes. 500,000 are 28
// years of hourly readings or 7 of quarter-hours, import and export.
const MaxGreenButtonReadings = 500_000

// greenButtonSource reads a Green Button "download my data" file: a NAESB
// ESPI Atom feed whose entries hold a UsagePoint, its MeterReadings, each
// MeterReading's ReadingType (linked rel="related") and IntervalBlocks
// (linked rel="up" to the MeterReading) of IntervalReadings:
//
//	<IntervalReading><timePeriod><duration>3600</duration>
//	  <start>1700000000</start></timePeriod><value>974</value></IntervalReading>
//
// start is Unix seconds, duration seconds (the ReadingType's intervalLength
// when absent), value the energy in the ReadingType's unit (uom 72, Wh)
// times 10^powerOfTenMultiplier. Only interval (delta) readings of
// electricity in Wh are read: accumulationBehaviour 4 (or absent),
// flowDirection 1 (forward, drawn from the grid; or absent), 19 (reverse,
// sent to it) or 4 (net, signed). Readings of other units (a gas or water
// usage point, demand in W) are left out; a file with none in Wh, or with
// Wh of more than one usage point, is refused. Import and export of the
// same interval are added into one interval.
type greenButtonSource struct {
	dec *xml.Decoder
	// What the feed links: MeterReading href -> ReadingType href, and the
	// ReadingTypes by href.
	meterReadings map[string]string
	readingTypes  map[string]gbReadingType
	blocks        []gbValues
	readings      int
	out           []gbSum
	read          bool
}

type gbLink struct {
	Rel  string `xml:"rel,attr"`
	Href string `xml:"href,attr"`
}

type gbReadingType struct {
	AccumulationBehaviour *int   `xml:"accumulationBehaviour"`
	FlowDirection         *int   `xml:"flowDirection"`
	IntervalLength        *int64 `xml:"intervalLength"`
	PowerOfTenMultiplier  *int   `xml:"powerOfTenMultiplier"`
	Uom                   *int   `xml:"uom"`
	Line                  int    `xml:"-"`
}

type gbInterval struct {
	Duration *int64 `xml:"duration"`
	Start    *int64 `xml:"start"`
}

type gbReading struct {
	TimePeriod *gbInterval `xml:"timePeriod"`
	Value      *int64      `xml:"value"`
}

type gbBlock struct {
	Readings []gbReading `xml:"IntervalReading"`
}

// gbValues are the readings of one IntervalBlock, kept compact until the
// file's end, with the MeterReading the block is of (from its links) and
// where its entry starts.
type gbValues struct {
	meterReading string
	line         int
	values       []gbValue
}

// gbValue is an IntervalReading: its start (Unix seconds), its duration
// (seconds; 0 for its ReadingType's intervalLength) and its value.
type gbValue struct{ start, duration, value int64 }

type gbEntry struct {
	Links   []gbLink `xml:"link"`
	Content struct {
		MeterReading *struct{}      `xml:"MeterReading"`
		ReadingType  *gbReadingType `xml:"ReadingType"`
		Blocks       []gbBlock      `xml:"IntervalBlock"`
	} `xml:"content"`
}

func newGreenButtonSource(r io.Reader) *greenButtonSource {
	dec := xml.NewDecoder(r)
	dec.Strict = true
	return &greenButtonSource{dec: dec, meterReadings: map[string]string{}, readingTypes: map[string]gbReadingType{}}
}

func (g *greenButtonSource) line() int {
	l, _ := g.dec.InputPos()
	return l
}

func (g *greenButtonSource) next() (record, error) {
	if !g.read {
		g.read = true
		if err := g.readFeed(); err != nil {
			return record{}, err
		}
		if err := g.resolve(); err != nil {
			return record{}, err
		}
	}
	if len(g.out) == 0 {
		return record{}, io.EOF
	}
	s := g.out[0]
	g.out = g.out[1:]
	return record{line: s.line, interval: true, at: time.Unix(s.start, 0).UTC(), length: time.Duration(s.length) * time.Second, importWh: s.importWh, exportWh: s.exportWh}, nil
}

// gbSum is the energy of one interval (Unix seconds), drawn and sent.
type gbSum struct {
	start, length      int64
	importWh, exportWh float64
	line               int
}

// readFeed reads every entry of the feed (or the one entry a file may be).
func (g *greenButtonSource) readFeed() error {
	depth := 0
	for {
		tok, err := g.dec.Token()
		if err == io.EOF {
			if depth != 0 {
				return lineErr(g.line(), "the XML ends inside an element")
			}
			return nil
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return lineErr(se.Line, "%s", se.Msg)
			}
			return lineErr(g.line(), "%v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && t.Name.Local != "feed" && t.Name.Local != "entry" {
				return lineErr(g.line(), "<%s>: a Green Button file is an Atom <feed> of <entry>s", truncate(t.Name.Local))
			}
			if t.Name.Local == "entry" && depth <= 1 {
				line := g.line()
				var e gbEntry
				if err := g.dec.DecodeElement(&e, &t); err != nil {
					var se *xml.SyntaxError
					if errors.As(err, &se) {
						return lineErr(se.Line, "%s", se.Msg)
					}
					return lineErr(line, "entry: %v", err)
				}
				if err := g.entry(e, line); err != nil {
					return err
				}
				continue
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
}

// entry notes what one entry holds.
func (g *greenButtonSource) entry(e gbEntry, line int) error {
	link := func(rel string) string {
		for _, l := range e.Links {
			if l.Rel == rel {
				return l.Href
			}
		}
		return ""
	}
	c := e.Content
	if c.MeterReading != nil { // related to its IntervalBlocks and its ReadingType
		rt := ""
		for _, l := range e.Links {
			if l.Rel == "related" && (rt == "" || strings.Contains(l.Href, "ReadingType")) && !strings.HasSuffix(l.Href, "/IntervalBlock") {
				rt = l.Href
			}
		}
		g.meterReadings[link("self")] = rt
	}
	if rt := c.ReadingType; rt != nil {
		rt.Line = line
		g.readingTypes[link("self")] = *rt
	}
	for _, blk := range c.Blocks {
		g.readings += len(blk.Readings)
		if g.readings > MaxGreenButtonReadings {
			return lineErr(line, "more than %d interval readings: split the download", MaxGreenButtonReadings)
		}
		// An IntervalBlock's up link is its MeterReading's href and
		// "/IntervalBlock"; its self link that and "/<id>".
		mr := link("up")
		if mr == "" {
			mr = link("self")
		}
		if i := strings.LastIndex(mr, "/IntervalBlock"); i >= 0 {
			mr = mr[:i]
		}
		b := gbValues{meterReading: mr, line: line, values: make([]gbValue, len(blk.Readings))}
		for i, r := range blk.Readings {
			if r.TimePeriod == nil || r.TimePeriod.Start == nil || r.Value == nil {
				return lineErr(line, "IntervalReading %d of the block: want a timePeriod with a start, and a value", i+1)
			}
			v := gbValue{start: *r.TimePeriod.Start, value: *r.Value}
			if d := r.TimePeriod.Duration; d != nil {
				if v.duration = *d; v.duration <= 0 {
					return lineErr(line, "IntervalReading %d of the block: duration %d", i+1, v.duration)
				}
			}
			b.values[i] = v
		}
		g.blocks = append(g.blocks, b)
	}
	return nil
}

// resolve gives each block's readings their ReadingType's unit and
// direction, and makes the intervals.
func (g *greenButtonSource) resolve() error {
	type key struct{ start, length int64 }
	sums := map[key]*gbSum{}
	usagePoints := map[string]bool{}
	skipped := 0
	for _, b := range g.blocks {
		rt, ok := g.readingTypes[g.meterReadings[b.meterReading]]
		if !ok && len(g.readingTypes) == 1 { // a file without links, of one ReadingType
			for _, only := range g.readingTypes {
				rt, ok = only, true
			}
		}
		if !ok {
			return lineErr(b.line, "no ReadingType for the IntervalBlock of %q: the feed must link its MeterReading (rel=\"related\") to one", truncate(b.meterReading))
		}
		if rt.Uom == nil || *rt.Uom != 72 {
			skipped += len(b.values) // not energy in Wh: gas, water, demand
			continue
		}
		if a := rt.AccumulationBehaviour; a != nil && *a != 4 {
			return lineErr(rt.Line, "ReadingType accumulationBehaviour %d: Vatio imports interval readings (4, deltaData), not cumulative ones", *a)
		}
		flow := 1
		if rt.FlowDirection != nil {
			flow = *rt.FlowDirection
		}
		if flow != 1 && flow != 19 && flow != 4 {
			return lineErr(rt.Line, "ReadingType flowDirection %d: Vatio imports 1 (forward), 19 (reverse) and 4 (net)", flow)
		}
		scale := 1.0
		if p := rt.PowerOfTenMultiplier; p != nil {
			if *p < -9 || *p > 9 {
				return lineErr(rt.Line, "ReadingType powerOfTenMultiplier %d: want -9 to 9", *p)
			}
			scale = math.Pow10(*p)
		}
		up, _, _ := strings.Cut(b.meterReading, "/MeterReading")
		usagePoints[up] = true
		if len(usagePoints) > 1 {
			return lineErr(b.line, "the file holds energy of more than one usage point: download one at a time")
		}
		for i, r := range b.values {
			length := r.duration
			if length == 0 && rt.IntervalLength != nil {
				length = *rt.IntervalLength
			}
			if length <= 0 || length > int64(MaxIntervalLength/time.Second) {
				return lineErr(b.line, "IntervalReading %d of the block: a duration of 1 to %d seconds is needed", i+1, int64(MaxIntervalLength/time.Second))
			}
			if r.start < 0 || r.start > 1<<40 {
				return lineErr(b.line, "IntervalReading %d of the block: start %d is not a Unix time", i+1, r.start)
			}
			wh := float64(r.value) * scale
			if math.Abs(wh) > MaxEnergyWh {
				return lineErr(b.line, "IntervalReading %d of the block: %g Wh is outside [0, %g] Wh", i+1, wh, MaxEnergyWh)
			}
			k := key{r.start, length}
			s := sums[k]
			if s == nil {
				s = &gbSum{line: b.line, start: r.start, length: length}
				sums[k] = s
			}
			switch {
			case flow == 19:
				s.exportWh += wh
			case flow == 4 && wh < 0:
				s.exportWh -= wh
			default:
				s.importWh += wh
			}
			if s.importWh < 0 || s.exportWh < 0 {
				return lineErr(b.line, "IntervalReading %d of the block: %g Wh is negative", i+1, wh)
			}
		}
	}
	if len(sums) == 0 {
		if skipped > 0 {
			return lineErr(g.line(), "no energy in Wh (uom 72) among the %d interval readings: is it a gas or water download?", skipped)
		}
		return lineErr(g.line(), "no IntervalReading in the file")
	}
	g.blocks = nil
	g.out = make([]gbSum, 0, len(sums))
	for _, s := range sums {
		g.out = append(g.out, *s)
	}
	clear(sums)
	slices.SortFunc(g.out, func(a, b gbSum) int { return cmp.Compare(a.start, b.start) })
	for i := 1; i < len(g.out); i++ {
		if prev, cur := g.out[i-1], g.out[i]; prev.start+prev.length > cur.start {
			return lineErr(cur.line, "the interval from %s overlaps the one from %s", time.Unix(cur.start, 0).UTC().Format(time.RFC3339), time.Unix(prev.start, 0).UTC().Format(time.RFC3339))
		}
	}
	return nil
}
