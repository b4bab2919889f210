package meter

import (
	"bufio"
	"cmp"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxGreenButtonReadings bounds the interval readings of one Green Button
// file: they are held until the file's end (24 bytes each, about 12 MB at
// most), since a feed may give a ReadingType after the blocks it describes.
// 500,000 are 28 years of hourly readings or 7 of quarter-hours, import and
// export. They are counted as they are read, so a block of more is refused
// before it is held.
const MaxGreenButtonReadings = 500_000

// MaxGreenButtonBytes bounds the XML of one Green Button file, once
// decompressed: 128 MiB, over 200 bytes for each of MaxGreenButtonReadings
// readings, which an IntervalReading written out with its namespace prefix
// and indentation takes.
const MaxGreenButtonBytes = 128 << 20

// maxGreenButtonDepth bounds how deep a Green Button file's elements nest:
// the deepest it needs (feed, entry, content, IntervalBlock,
// IntervalReading, timePeriod, start) is 7.
const maxGreenButtonDepth = 32

// maxGreenButtonToken bounds one token of a Green Button file, whatever
// it holds: a text, a tag with its attributes, a comment, a CDATA section,
// a processing instruction or a directive. The decoder holds one token at a
// time, so this bounds what it holds; no Green Button value is so long.
const maxGreenButtonToken = 64 << 10

// maxGreenButtonText bounds the text of an element Vatio reads (a number,
// a link's href): longer is no Green Button value.
const maxGreenButtonText = 1024

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
// same interval make one interval. Net is forward less reverse, so it is
// never added to them (a solar customer's feed gives all three): it gives
// reverse where only forward is given besides it, forward where only
// reverse is, and both where neither is.
// A second reading of the same flow direction for an interval (a block
// given twice) is refused.
type greenButtonSource struct {
	dec *xml.Decoder
	lr  *gbLimitReader
	// What the feed links: MeterReading href -> ReadingType href, and the
	// ReadingTypes by href.
	meterReadings map[string]string
	readingTypes  map[string]gbReadingType
	blocks        []gbValues
	readings      int
	out           []gbSum
	read          bool
}

type gbLink struct{ rel, href string }

type gbReadingType struct {
	AccumulationBehaviour *int
	FlowDirection         *int
	IntervalLength        *int64
	PowerOfTenMultiplier  *int
	Uom                   *int
	Line                  int
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

// gbEntry is what one entry holds, as it is read.
type gbEntry struct {
	line         int
	links        []gbLink
	meterReading bool
	readingType  *gbReadingType
	blocks       [][]gbValue
}

// maxGreenButtonLinks bounds the links of one entry (a few: self, up,
// related), and maxGreenButtonTypes the MeterReadings and ReadingTypes of
// a file (a few for each usage point).
const (
	maxGreenButtonLinks = 64
	maxGreenButtonTypes = 10_000
)

// gbLimitReader reads a Green Button file within MaxGreenButtonBytes and
// maxGreenButtonToken. It hands the decoder one byte at a time (the
// decoder reads an io.ByteReader so, without a buffer of its own), so the
// bytes read since the decoder's last token are the next token's, however
// the token is written: readFeed zeroes token after each one.
type gbLimitReader struct {
	r     io.ByteReader
	total int64
	token int
}

var (
	errGreenButtonSize  = problemf("more than %d MiB of XML: split the download", MaxGreenButtonBytes>>20)
	errGreenButtonToken = problemf("a text, tag, comment, CDATA section or other XML token of more than %d KiB (%d bytes): no Green Button value is so long", maxGreenButtonToken>>10, maxGreenButtonToken)
)

func (l *gbLimitReader) ReadByte() (byte, error) {
	if l.total++; l.total > MaxGreenButtonBytes {
		return 0, errGreenButtonSize
	}
	if l.token++; l.token > maxGreenButtonToken {
		return 0, errGreenButtonToken
	}
	return l.r.ReadByte()
}

// Read reads as ReadByte does; the decoder uses ReadByte.
func (l *gbLimitReader) Read(p []byte) (int, error) {
	for i := range p {
		b, err := l.ReadByte()
		if err != nil {
			return i, err
		}
		p[i] = b
	}
	return len(p), nil
}

func newGreenButtonSource(r io.Reader) *greenButtonSource {
	br, ok := r.(io.ByteReader)
	if !ok {
		br = bufio.NewReader(r)
	}
	lr := &gbLimitReader{r: br}
	dec := xml.NewDecoder(lr)
	dec.Strict = true
	return &greenButtonSource{dec: dec, lr: lr, meterReadings: map[string]string{}, readingTypes: map[string]gbReadingType{}}
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

// gbSum is the energy of one interval (Unix seconds): drawn (forward),
// sent (reverse) and net as the file gives them, and the flow directions
// (gbFlowBit) it was given in.
type gbSum struct {
	start, length             int64
	importWh, exportWh, netWh float64
	line                      int
	flows                     uint8
}

// readFeed reads every entry of the feed (or the one entry a file may be),
// a token at a time: it holds the path of elements to the one being read
// (at most maxGreenButtonDepth), the entry being read without its
// readings, and the readings read, counted as they are read.
func (g *greenButtonSource) readFeed() error {
	var (
		path    []string
		e       *gbEntry // the entry being read
		at      int      // the entry's depth in path
		text    []byte   // the text of the element being read
		reading gbReading
		blocks  int
	)
	for {
		tok, err := g.dec.Token()
		g.lr.token = 0
		if err == io.EOF {
			if len(path) != 0 {
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
			name := t.Name.Local
			if len(path) == 0 && name != "feed" && name != "entry" {
				return lineErr(g.line(), "<%s>: a Green Button file is an Atom <feed> of <entry>s", truncate(name))
			}
			if len(path) >= maxGreenButtonDepth {
				return lineErr(g.line(), "elements nested more than %d deep: no Green Button file is", maxGreenButtonDepth)
			}
			path = append(path, name)
			text = text[:0]
			if e == nil {
				if name == "entry" && len(path) <= 2 {
					e, at = &gbEntry{line: g.line()}, len(path)
				}
				continue
			}
			switch rel := strings.Join(path[at:], "/"); rel {
			case "link":
				if len(e.links) >= maxGreenButtonLinks {
					return lineErr(g.line(), "an entry of more than %d links", maxGreenButtonLinks)
				}
				var l gbLink
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "rel":
						l.rel = a.Value
					case "href":
						l.href = a.Value
					}
				}
				if len(l.href) > maxGreenButtonText {
					return lineErr(g.line(), "a link of more than %d bytes", maxGreenButtonText)
				}
				e.links = append(e.links, l)
			case "content/MeterReading":
				e.meterReading = true
			case "content/ReadingType":
				e.readingType = &gbReadingType{Line: e.line}
			case "content/IntervalBlock":
				if blocks++; blocks > MaxGreenButtonReadings {
					return lineErr(g.line(), "more than %d IntervalBlocks: split the download", MaxGreenButtonReadings)
				}
				e.blocks = append(e.blocks, nil)
			case "content/IntervalBlock/IntervalReading":
				if g.readings++; g.readings > MaxGreenButtonReadings {
					return lineErr(g.line(), "more than %d interval readings: split the download", MaxGreenButtonReadings)
				}
				reading = gbReading{}
			}
		case xml.CharData:
			if e != nil && len(path) > at {
				if len(text)+len(t) > maxGreenButtonText {
					return lineErr(g.line(), "<%s> holds more than %d bytes of text", truncate(path[len(path)-1]), maxGreenButtonText)
				}
				text = append(text, t...)
			}
		case xml.EndElement:
			if e != nil {
				if err := g.end(e, path[at:], text, &reading); err != nil {
					return err
				}
				if len(path) == at {
					if err := g.entry(e); err != nil {
						return err
					}
					e = nil
				}
			}
			text = text[:0]
			path = path[:len(path)-1]
		}
	}
}

// gbReading is an IntervalReading as it is read.
type gbReading struct {
	start, duration, value *int64
}

// end reads the element of an entry that ends, at rel (the path from the
// entry's element, which it ends with), whose text is text.
func (g *greenButtonSource) end(e *gbEntry, rel []string, text []byte, r *gbReading) error {
	num := func() (int64, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(string(text)), 10, 64)
		if err != nil {
			return 0, lineErr(g.line(), "<%s> %q: want a whole number", rel[len(rel)-1], truncate(string(text)))
		}
		return n, nil
	}
	small := func(dst **int) error {
		n, err := num()
		if err == nil && (n < math.MinInt32 || n > math.MaxInt32) {
			err = lineErr(g.line(), "<%s> %d is out of range", rel[len(rel)-1], n)
		}
		v := int(n)
		*dst = &v
		return err
	}
	big := func(dst **int64) error {
		n, err := num()
		*dst = &n
		return err
	}
	switch p := strings.Join(rel, "/"); p {
	case "content/ReadingType/accumulationBehaviour":
		return small(&e.readingType.AccumulationBehaviour)
	case "content/ReadingType/flowDirection":
		return small(&e.readingType.FlowDirection)
	case "content/ReadingType/intervalLength":
		return big(&e.readingType.IntervalLength)
	case "content/ReadingType/powerOfTenMultiplier":
		return small(&e.readingType.PowerOfTenMultiplier)
	case "content/ReadingType/uom":
		return small(&e.readingType.Uom)
	case "content/IntervalBlock/IntervalReading/timePeriod/start":
		return big(&r.start)
	case "content/IntervalBlock/IntervalReading/timePeriod/duration":
		return big(&r.duration)
	case "content/IntervalBlock/IntervalReading/value":
		return big(&r.value)
	case "content/IntervalBlock/IntervalReading":
		blk := &e.blocks[len(e.blocks)-1]
		i := len(*blk) + 1
		if r.start == nil || r.value == nil {
			return lineErr(e.line, "IntervalReading %d of the block: want a timePeriod with a start, and a value", i)
		}
		v := gbValue{start: *r.start, value: *r.value}
		if r.duration != nil {
			if v.duration = *r.duration; v.duration <= 0 {
				return lineErr(e.line, "IntervalReading %d of the block: duration %d", i, v.duration)
			}
		}
		*blk = append(*blk, v)
	}
	return nil
}

// entry notes what one entry holds.
func (g *greenButtonSource) entry(e *gbEntry) error {
	line := e.line
	link := func(rel string) string {
		for _, l := range e.links {
			if l.rel == rel {
				return l.href
			}
		}
		return ""
	}
	if e.meterReading { // related to its IntervalBlocks and its ReadingType
		rt := ""
		for _, l := range e.links {
			if l.rel == "related" && (rt == "" || strings.Contains(l.href, "ReadingType")) && !strings.HasSuffix(l.href, "/IntervalBlock") {
				rt = l.href
			}
		}
		g.meterReadings[link("self")] = rt
	}
	if rt := e.readingType; rt != nil {
		g.readingTypes[link("self")] = *rt
	}
	if len(g.meterReadings)+len(g.readingTypes) > maxGreenButtonTypes {
		return lineErr(line, "more than %d MeterReadings and ReadingTypes: download one usage point at a time", maxGreenButtonTypes)
	}
	for _, values := range e.blocks {
		// An IntervalBlock's up link is its MeterReading's href and
		// "/IntervalBlock"; its self link that and "/<id>".
		mr := link("up")
		if mr == "" {
			mr = link("self")
		}
		if i := strings.LastIndex(mr, "/IntervalBlock"); i >= 0 {
			mr = mr[:i]
		}
		g.blocks = append(g.blocks, gbValues{meterReading: mr, line: line, values: values})
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
			if s.flows&gbFlowBit(flow) != 0 {
				return lineErr(b.line, "IntervalReading %d of the block: a second reading of %s (flowDirection %d) for the interval from %s: is a block in the file twice?",
					i+1, gbFlowName(flow), flow, time.Unix(r.start, 0).UTC().Format(time.RFC3339))
			}
			s.flows |= gbFlowBit(flow)
			switch flow {
			case 1:
				s.importWh = wh
			case 19:
				s.exportWh = wh
			case 4:
				s.netWh = wh
			}
			if (flow == 1 || flow == 19) && wh < 0 {
				return lineErr(b.line, "IntervalReading %d of the block: %g Wh of %s is negative", i+1, wh, gbFlowName(flow))
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
		// Net is forward less reverse: it is never added to them, but
		// gives the one of them missing (a utility that sends forward
		// and net leaves reverse to be worked out), or both.
		forward, reverse, net := gbFlowBit(1), gbFlowBit(19), gbFlowBit(4)
		switch s.flows & (forward | reverse | net) {
		case net:
			s.importWh, s.exportWh = max(s.netWh, 0), max(-s.netWh, 0)
		case forward | net:
			s.exportWh = max(s.importWh-s.netWh, 0)
		case reverse | net:
			s.importWh = max(s.netWh+s.exportWh, 0)
		}
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

// gbFlowBit is the bit of a flow direction (1, 19 or 4) in gbSum.flows.
func gbFlowBit(flow int) uint8 {
	switch flow {
	case 19:
		return 2
	case 4:
		return 4
	}
	return 1
}

func gbFlowName(flow int) string {
	switch flow {
	case 19:
		return "energy sent"
	case 4:
		return "net energy"
	}
	return "energy drawn"
}
