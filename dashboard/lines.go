package dashboard

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
)

// A line chart of power is honest about what it does not know: a silence
// longer than the meter's usual interval is a break in the line, not a
// straight line from the reading before it to the one after, and a reading
// with silence on both sides is drawn as a dot (a line needs two points).
// app.js does the same to the readings that arrive over the stream
// (withBreaks there), with the threshold the server chose (data-break-ms).

// breakSlack is how much longer than the usual spacing a silence may be
// before it breaks the line: a reading a little late is no gap.
const breakSlack = 1.5

// spacingPoints is how many points a line needs before their own usual
// spacing (the median) counts: history imported at 15 minutes or an hour
// is continuous at that spacing even when the meter reports every 10 s now.
const spacingPoints = 8

// breakAfter returns the longest silence between two points of a meter's
// line that is still drawn as a line, in ms: half again the longest of
// the meter's usual interval (store.Meter.Interval, what the silent logic
// uses), the points' step (a rollup's bucket; 0 for readings) and the
// points' median spacing (with spacingPoints or more). While the interval
// is unknown, the store's MaxGap, across which power is still integrated,
// stands for it.
func breakAfter(interval, maxGap, step time.Duration, pts [][2]float64) float64 {
	ms := breakSlack * float64(interval.Milliseconds())
	if interval <= 0 {
		ms = float64(maxGap.Milliseconds())
	}
	ms = max(ms, breakSlack*float64(step.Milliseconds()))
	if len(pts) >= spacingPoints {
		gaps := make([]float64, len(pts)-1)
		for i := range gaps {
			gaps[i] = pts[i+1][0] - pts[i][0]
		}
		slices.Sort(gaps)
		ms = max(ms, breakSlack*gaps[len(gaps)/2])
	}
	return ms
}

// withBreaks returns pts, [Unix ms, kW] oldest first, as a line's data
// (JSON): a [ms, null] point in the middle of every silence longer than
// breakMs (ECharts, with connectNulls false, ends the line there), and a
// point alone between two silences as {"value": [ms, kW], "symbol":
// "circle"}, a dot (the line's own symbol is "none"). It writes the JSON
// itself: a []any of points boxed each one made the overview's page half
// again as many allocations (BenchmarkRenderPage).
func withBreaks(pts [][2]float64, breakMs float64) json.RawMessage {
	return withBreaksAt(pts, breakMs, 0)
}

// withBreaksAt is withBreaks for a line of buckets widthMs wide drawn as
// steps (each point's value held until the next): the null ending a
// bucket before a silence sits at the bucket's end, where the step
// stops, rather than halfway across the silence. widthMs 0 puts it
// halfway.
func withBreaksAt(pts [][2]float64, breakMs, widthMs float64) json.RawMessage {
	b := make([]byte, 0, 32*len(pts)+2)
	b = append(b, '[')
	for i, p := range pts {
		gapBefore := i == 0 || p[0]-pts[i-1][0] > breakMs
		gapAfter := i == len(pts)-1 || pts[i+1][0]-p[0] > breakMs
		if i > 0 {
			b = append(b, ',')
		}
		if i > 0 && gapBefore {
			b = append(b, '[')
			at := (pts[i-1][0] + p[0]) / 2
			if widthMs > 0 {
				at = pts[i-1][0] + widthMs
			}
			b = appendNumber(b, at)
			b = append(b, ",null],"...)
		}
		lone := gapBefore && gapAfter
		if lone {
			b = append(b, `{"value":`...)
		}
		b = append(b, '[')
		b = appendNumber(b, p[0])
		b = append(b, ',')
		b = appendNumber(b, p[1])
		b = append(b, ']')
		if lone {
			b = append(b, `,"symbol":"circle"}`...)
		}
	}
	return append(b, ']')
}

// appendNumber appends f as encoding/json writes it, and null for what
// JSON has no number for.
func appendNumber(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1] // e-07 is e-7, as encoding/json writes it
		b = b[:n-1]
	}
	return b
}

// zoomToData returns the part of [from, to] (Unix ms) to show first, in
// percent of it, when the points, oldest first, cover a small part of it:
// their extent with a margin, at least zoomMinSpan, reaching the end when
// they reach near it (so that live readings stay in view). With no points,
// or points over half the window or more, it is all of it.
func zoomToData(from, to float64, pts [][2]float64) (startPct, endPct float64) {
	span := to - from
	if len(pts) == 0 || span <= 0 {
		return 0, 100
	}
	first, last := pts[0][0], pts[len(pts)-1][0]
	if last-first >= span/2 {
		return 0, 100
	}
	margin := max((last-first)/10, float64(zoomMinSpan.Milliseconds())/2)
	lo, hi := max(first-margin, from), min(last+margin, to)
	if to-last < margin*2 {
		hi = to
	}
	if least := float64(zoomMinSpan.Milliseconds()); hi-lo < least {
		lo = max(from, hi-least)
		hi = min(to, lo+least)
	}
	return 100 * (lo - from) / span, 100 * (hi - from) / span
}

// zoomMinSpan is the least a chart zoomed to its data shows: a few
// readings are not stretched over the whole width.
const zoomMinSpan = 10 * time.Minute
