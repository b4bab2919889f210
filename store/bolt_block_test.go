package store

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// negZero is -0.0, which Go constants cannot spell.
var negZero = math.Copysign(0, -1)

// blockT0 is the midnight the simulated readings start at, in Unix ns.
var blockT0 = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC).UnixNano()

// diffPoints describes the first difference between got and want, comparing
// floats by their bits and energy only where a point has it, or returns "".
func diffPoints(got, want []point) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d points, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !w.hasEnergy {
			w.energyWh = 0
		}
		if g.ns != w.ns || g.id != w.id || g.hasEnergy != w.hasEnergy ||
			math.Float64bits(g.powerW) != math.Float64bits(w.powerW) ||
			math.Float64bits(g.energyWh) != math.Float64bits(w.energyWh) {
			return fmt.Sprintf("point %d = %+v, want %+v", i, g, w)
		}
	}
	return ""
}

// regularPoints returns n points from start, step ns apart, with ids from 1 and
// the power fn gives.
func regularPoints(n int, start, step int64, power func(i int) float64) []point {
	pts := make([]point, n)
	for i := range pts {
		pts[i] = point{ns: start + int64(i)*step, id: uint64(i + 1), powerW: power(i)}
	}
	return pts
}

// pointsWithPowers returns regular 10 s points carrying the given powers.
func pointsWithPowers(ws ...float64) []point {
	return regularPoints(len(ws), blockT0, 10e9, func(i int) float64 { return ws[i] })
}

// blockCases are the round-trip cases, shared with the fuzz seeds.
func blockCases() []struct {
	name string
	pts  []point
} {
	rng := rand.New(rand.NewPCG(1, 2))
	tenth := func(i int) float64 { return float64(1500+rng.IntN(41)-20) / 10 }

	jittered := regularPoints(200, blockT0, 10e9, tenth)
	for i := range jittered {
		jittered[i].ns += rng.Int64N(4_000_001) - 2_000_000
	}
	millis := regularPoints(200, blockT0, 10e9, tenth)
	for i := range millis {
		millis[i].ns += (rng.Int64N(41) - 20) * 1e6
	}
	micros := regularPoints(200, blockT0, 1e9, tenth)
	for i := range micros {
		micros[i].ns += rng.Int64N(1001) * 1e3
	}
	gaps := regularPoints(6, blockT0, 10e9, tenth)
	gaps[1].ns = gaps[0].ns + 1
	gaps[2].ns = gaps[1].ns + int64(3*365*24*time.Hour)
	gaps[3].ns = gaps[2].ns + 10e9
	gaps[4].ns = math.MaxInt64 - 1
	gaps[5].ns = math.MaxInt64

	idGaps := regularPoints(50, blockT0, 10e9, tenth)
	for i := range idGaps {
		idGaps[i].id = uint64(i*100 + rng.IntN(11))
	}
	idOdd := pointsWithPowers(1, 2, 3, 4, 5, 6, 7)
	for i, id := range []uint64{5, 3, 1 << 63, math.MaxUint64, 0, 42, 41} {
		idOdd[i].id = id
	}

	counters := regularPoints(100, blockT0, 10e9, tenth)
	wh := 123_456.0
	for i := range counters {
		wh += float64(rng.IntN(5))
		if i == 60 {
			wh = 0 // a counter reset
		}
		if i%7 != 3 {
			counters[i].energyWh, counters[i].hasEnergy = wh, true
		}
	}
	counters[10].energyWh = 1e-300
	counters[20].energyWh = math.Float64frombits(0x7ff8_0000_dead_beef) // a NaN's bits round-trip too
	energyOnce := pointsWithPowers(100, 100, 100)
	energyOnce[2].energyWh, energyOnce[2].hasEnergy = 5, true

	kW := regularPoints(300, blockT0, 10e9, func(int) float64 {
		kw, _ := strconv.ParseFloat(strconv.FormatFloat(float64(rng.IntN(30000))/1e4, 'f', 4, 64), 64)
		return kw * 1000 // a quarter of these are an ulp off the nearest 0.1 W
	})
	randomBits := regularPoints(100, blockT0, 10e9, func(int) float64 {
		for {
			if w := math.Float64frombits(rng.Uint64()); !math.IsNaN(w) && !math.IsInf(w, 0) {
				return w
			}
		}
	})

	return []struct {
		name string
		pts  []point
	}{
		{"empty", nil},
		{"one point", []point{{ns: blockT0, id: 7, powerW: 150.3}}},
		{"one point with energy", []point{{ns: -1, id: math.MaxUint64, powerW: negZero, energyWh: 42.5, hasEnergy: true}}},
		{"two points", []point{{ns: blockT0, id: 7, powerW: 150.3}, {ns: blockT0 + 1, id: 9, powerW: 150.4}}},
		{"regular 10 s", regularPoints(360, blockT0, 10e9, tenth)},
		{"regular 10 s constant power", regularPoints(360, blockT0, 10e9, func(int) float64 { return 150 })},
		{"ns jitter", jittered},
		{"ms timestamps", millis},
		{"µs timestamps", micros},
		{"gaps of a nanosecond to years", gaps},
		{"before 1970", regularPoints(10, -int64(40*365*24*time.Hour), 60e9, tenth)},
		{"widest span", []point{{ns: math.MinInt64, powerW: 1}, {ns: 0, powerW: 2}, {ns: math.MaxInt64, powerW: 3}}},
		{"negative power", pointsWithPowers(-1500.5, -1500.4, 0, 20, -3.7)},
		{"negative zero", pointsWithPowers(0, negZero, 150.3, negZero, negZero, 0)},
		{"tiny and huge", pointsWithPowers(1e-300, 1e300, -1e300, 5e-324, -5e-324, 2.2250738585072014e-308)},
		{"extreme finite", pointsWithPowers(math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, math.MaxFloat64)},
		{"decimals then an outlier", pointsWithPowers(150.3, 150.4, 1e300, 150.5, 0.1, 1e-300, 150.3)},
		{"kW times 1000", kW},
		{"random bits", randomBits},
		{"ids with gaps", idGaps},
		{"ids decreasing and wrapping", idOdd},
		{"energy counters on some points, reset", counters},
		{"energy on the last point only", energyOnce},
	}
}

func TestBlockRoundTrip(t *testing.T) {
	boltOnly(t)
	for _, tc := range blockCases() {
		t.Run(tc.name, func(t *testing.T) {
			b := encodeBlock(tc.pts)
			got, err := decodeBlock(b)
			if err != nil {
				t.Fatalf("decodeBlock(encodeBlock(%d points)) error: %v", len(tc.pts), err)
			}
			if d := diffPoints(got, tc.pts); d != "" {
				t.Fatalf("round trip: %s", d)
			}
			if n, err := blockLen(b); n != len(tc.pts) || err != nil {
				t.Errorf("blockLen = %d, %v; want %d, nil", n, err, len(tc.pts))
			}
			if len(tc.pts) > 0 {
				t.Logf("%d points in %d bytes, %.2f bytes/point", len(tc.pts), len(b), float64(len(b))/float64(len(tc.pts)))
			}
		})
	}
}

func TestBlockTimeUnit(t *testing.T) {
	boltOnly(t)
	tests := []struct {
		name string
		step int64
		want int
	}{
		{"whole seconds", 10e9, 3},
		{"milliseconds", 10_001e6, 2},
		{"microseconds", 10_000_001e3, 1},
		{"nanoseconds", 10e9 + 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pts := regularPoints(3, blockT0+123, 10e9, func(int) float64 { return 1 })
			pts[2].ns = pts[1].ns + tc.step
			if got := timeUnitCode(pts); got != tc.want {
				t.Errorf("timeUnitCode(gaps 10 s and %d ns) = %d, want %d", tc.step, got, tc.want)
			}
		})
	}
}

func TestBlockFloatCodec(t *testing.T) {
	boltOnly(t)
	tests := []struct {
		name string
		vals []float64
		want floatCodec
	}{
		{"tenths", []float64{150.3, 150.4, 2000, -3.1}, floatCodec{decimal: true, scale: 1}},
		{"whole", []float64{150, 151, 2000, -3}, floatCodec{decimal: true, scale: 0}},
		{"an ulp off", []float64{150.3, math.Nextafter(150.4, 151), 150.5}, floatCodec{decimal: true, scale: 1, ulps: true}},
		{"negative zero among tenths", []float64{150.3, negZero, 150.4, 150.5, 150.3, 150.4}, floatCodec{decimal: true, scale: 1, ulps: true}},
		{"one repeated oddity", []float64{1e-300, 1e-300, 1e-300}, floatCodec{}},
		{"irrational", []float64{1.0 / 3, math.Pi, math.E, math.Sqrt2}, floatCodec{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := chooseFloatCodec(tc.vals, 1); got != tc.want {
				t.Errorf("chooseFloatCodec(%v) = %+v, want %+v", tc.vals, got, tc.want)
			}
		})
	}
}

func TestDecodeBlockErrors(t *testing.T) {
	boltOnly(t)
	valid := encodeBlock(regularPoints(30, blockT0, 10e9, func(i int) float64 { return float64(i*173) / 10 }))
	header := []byte{blockVersion, 30, 3, 2} // 30 points, whole seconds, decimal .1 power
	if !strings.HasPrefix(string(valid), string(header)) {
		t.Fatalf("valid block starts % x, want % x", valid[:4], header)
	}
	unsorted := pointsWithPowers(1, 2, 3)
	unsorted[2].ns = unsorted[1].ns
	withNaN := pointsWithPowers(1, math.NaN(), 3)
	withInf := pointsWithPowers(1, 2, math.Inf(-1))

	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"nil", nil, "store: block: empty"},
		{"version 0", []byte{0, 0}, "version 0, want 1"},
		{"version 2", append([]byte{2}, valid[1:]...), "version 2, want 1"},
		{"no count", []byte{1}, "truncated point count"},
		{"count overflows", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1}, "truncated point count"},
		{"bytes after an empty block", []byte{1, 0, 0}, "1 bytes after an empty block"},
		{"no flags", []byte{1, 1}, "truncated header"},
		{"unknown flags", []byte{1, 1, 8, 0, 0, 0, 0}, "unknown flags 0x8"},
		{"unknown codec", []byte{1, 1, 0, 11, 0, 0, 0}, "power: unknown codec 0xb"},
		{"unknown energy codec", []byte{1, 1, blockFlagEnergy, 0, 0x20, 0, 0, 0}, "energy: unknown codec 0x20"},
		{"no energy codec", []byte{1, 1, blockFlagEnergy, 0}, "truncated header"},
		{"no first time", []byte{1, 1, 0, 0}, "bad time of point 0"},
		{"no first id", []byte{1, 1, 0, 0, 0}, "bad id of point 0"},
		{"huge count", []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0}, "4294967295 points cannot fit in 1 bytes"},
		{"count beyond the bits", append([]byte{1, 0xe8, 0x07}, valid[2:]...), "1000 points cannot fit"},
		{"one point, no bits", []byte{1, 1, 0, 0, 0, 0}, "truncated at point 0"},
		{"cut in half", valid[:len(valid)/2], "truncated at point"},
		{"last byte missing", valid[:len(valid)-1], "truncated at point 29"},
		{"a byte after the end", append(slices.Clip(valid), 0), "1 bytes after the last point"},
		{"times not increasing", encodeBlock(unsorted), fmt.Sprintf("point 2: time %d is not after %d", unsorted[2].ns, unsorted[1].ns)},
		{"NaN power", encodeBlock(withNaN), "point 1: power NaN is not finite"},
		{"infinite power", encodeBlock(withInf), "point 2: power -Inf is not finite"},
		{"XOR window reused first", []byte{1, 1, 0, 0, 0, 0, 0b1000_0000}, "point 0: power: XOR window reused before one was opened"},
		{"XOR window too wide", []byte{1, 1, 0, 0, 0, 0, 0b1100_0010, 0b0000_0000}, "point 0: power: XOR window of 64 bits after 1 leading zeros"},
		{"nonzero padding", []byte{1, 1, 0, 0, 0, 0, 0b0100_0000}, "nonzero padding"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeBlock(tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decodeBlock(% x) = %d points, error %v; want an error containing %q", tc.b, len(got), err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "store: block: ") {
				t.Errorf("error %q does not start with \"store: block: \"", err)
			}
		})
	}

	t.Run("every prefix", func(t *testing.T) {
		for i := range len(valid) {
			if pts, err := decodeBlock(valid[:i]); err == nil {
				t.Errorf("decodeBlock(first %d of %d bytes) = %d points, want an error", i, len(valid), len(pts))
			}
		}
	})
}

func TestBlockLen(t *testing.T) {
	boltOnly(t)
	b := encodeBlock(regularPoints(1000, blockT0, 10e9, func(int) float64 { return 1 }))
	if n, err := blockLen(b); n != 1000 || err != nil {
		t.Errorf("blockLen(1000 points) = %d, %v; want 1000, nil", n, err)
	}
	if n, err := blockLen(b[:2]); err == nil {
		t.Errorf("blockLen(first 2 bytes) = %d, nil; want an error", n)
	}
	if n, err := blockLen([]byte{1, 0}); n != 0 || err != nil {
		t.Errorf("blockLen(empty block) = %d, %v; want 0, nil", n, err)
	}
}

// dayOptions are the variants of a simulated meter-day.
type dayOptions struct {
	jitterNs  bool // receive-time stamps: 10 s ±2 ms at ns resolution
	jitterMs  bool // the same truncated to whole milliseconds
	idStep100 bool // ids step by about 100, as with 100 meters interleaved
	energy    bool // each reading carries a whole-Wh energy counter
	kW        bool // power came as text in kW with 4 decimals, times 1000
}

// householdDay returns a day of one meter's readings every 10 s (8640
// points): a 150 W baseload, a fridge cycling 0/90 W about every 20 min, a
// 2000 W kettle for 3 min six times, and Gaussian noise of 2 W, rounded to
// 0.1 W as meters report it.
func householdDay(o dayOptions) []point {
	rng := rand.New(rand.NewPCG(2026, 11))
	const n = 8640
	kettle := make([]bool, n)
	for range 6 {
		start := rng.IntN(n - 18)
		for i := start; i < start+18; i++ {
			kettle[i] = true
		}
	}
	pts := make([]point, n)
	fridgeOn, fridgeLeft := false, rng.IntN(120)
	id, wh := uint64(1_000_000), 4_321_000.0
	for i := range pts {
		if fridgeLeft--; fridgeLeft <= 0 {
			fridgeOn = !fridgeOn
			fridgeLeft = 50 + rng.IntN(30) // 8 to 13 minutes a phase
		}
		w := 150 + rng.NormFloat64()*2
		if fridgeOn {
			w += 90
		}
		if kettle[i] {
			w += 2000
		}
		w = math.Round(max(w, 0)*10) / 10
		if o.kW {
			kw, _ := strconv.ParseFloat(strconv.FormatFloat(w/1000, 'f', 4, 64), 64)
			w = kw * 1000
		}

		ns := blockT0 + int64(i)*10e9
		if o.jitterNs || o.jitterMs {
			ns += rng.Int64N(4_000_001) - 2_000_000
		}
		if o.jitterMs {
			ns -= ns % 1e6
		}
		if o.idStep100 {
			id += uint64(95 + rng.IntN(11))
		} else {
			id++
		}
		wh += w * 10 / 3600
		pts[i] = point{ns: ns, id: id, powerW: w}
		if o.energy {
			pts[i].energyWh, pts[i].hasEnergy = math.Floor(wh), true
		}
	}
	return pts
}

// dayVariants are the simulated days the size test and benchmarks measure,
// with the bytes a point may take at most, or 0 where no bound holds.
var dayVariants = []struct {
	name string
	opts dayOptions
	max  float64
}{
	{"device-s/ids+1", dayOptions{}, 4},
	{"device-s/ids+100", dayOptions{idStep100: true}, 4},
	{"device-s/ids+1/energy", dayOptions{energy: true}, 4},
	{"device-s/ids+1/kW-text", dayOptions{kW: true}, 4},
	{"receive-ms/ids+100", dayOptions{jitterMs: true, idStep100: true}, 4},
	// ±2 ms at 1 ns is log2(4e6) = 22 bits of noise per timestamp: no exact
	// codec stores it in 4 bytes a point with the power.
	{"receive-ns/ids+1", dayOptions{jitterNs: true}, 0},
	{"receive-ns/ids+100", dayOptions{jitterNs: true, idStep100: true}, 0},
}

// TestBlockSize holds the storage contract: a realistic meter-day takes at
// most 4 bytes a reading.
func TestBlockSize(t *testing.T) {
	boltOnly(t)
	for _, v := range dayVariants {
		t.Run(v.name, func(t *testing.T) {
			pts := householdDay(v.opts)
			b := encodeBlock(pts)
			got, err := decodeBlock(b)
			if err != nil {
				t.Fatal(err)
			}
			if d := diffPoints(got, pts); d != "" {
				t.Fatalf("round trip: %s", d)
			}
			perPoint := float64(len(b)) / float64(len(pts))
			powers := make([]float64, len(pts))
			for i, p := range pts {
				powers[i] = p.powerW
			}
			codec := chooseFloatCodec(powers, 1)
			t.Logf("%.3f bytes/point (%d bytes for %d points); power codec %+v: %.1f bits/point, Gorilla XOR alone %.1f",
				perPoint, len(b), len(pts), codec,
				float64(floatStreamBits(powers, codec, 1))/float64(len(pts)),
				float64(floatStreamBits(powers, floatCodec{}, 1))/float64(len(pts)))
			if v.max > 0 && perPoint > v.max {
				t.Errorf("%.3f bytes/point, want at most %.1f", perPoint, v.max)
			}
		})
	}
}

func BenchmarkEncodeBlock(b *testing.B) {
	for _, v := range dayVariants {
		b.Run(v.name, func(b *testing.B) {
			pts := householdDay(v.opts)
			var size int
			for b.Loop() {
				size = len(encodeBlock(pts))
			}
			b.SetBytes(int64(size))
			b.ReportMetric(float64(size)/float64(len(pts)), "bytes/point")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pts)), "ns/point")
		})
	}
}

func BenchmarkDecodeBlock(b *testing.B) {
	for _, v := range dayVariants {
		b.Run(v.name, func(b *testing.B) {
			pts := householdDay(v.opts)
			block := encodeBlock(pts)
			b.SetBytes(int64(len(block)))
			for b.Loop() {
				if _, err := decodeBlock(block); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(block))/float64(len(pts)), "bytes/point")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pts)), "ns/point")
		})
	}
}

func FuzzDecodeBlock(f *testing.F) {
	for _, tc := range blockCases() {
		f.Add(encodeBlock(tc.pts))
	}
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0b1100_0010, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		pts, err := decodeBlock(b)
		n, lenErr := blockLen(b)
		if err != nil {
			return
		}
		if lenErr != nil || n != len(pts) {
			t.Fatalf("decodeBlock(% x) = %d points, but blockLen = %d, %v", b, len(pts), n, lenErr)
		}
		again, err := decodeBlock(encodeBlock(pts))
		if err != nil {
			t.Fatalf("decodeBlock(% x) = %+v, which re-encodes to an error: %v", b, pts, err)
		}
		if d := diffPoints(again, pts); d != "" {
			t.Fatalf("decodeBlock(% x) then a round trip: %s", b, d)
		}
	})
}

// fuzzRecord is the bytes pointsFromFuzz turns into one point: a control
// byte then three 8-byte words for time, id and values.
const fuzzRecord = 25

// pointsFromFuzz builds a valid block's points from fuzz input. Each control
// byte picks how the words become the point: raw bits or small steps in
// seconds, milliseconds or ns; raw or nearby ids; raw, decimal, repeated or
// ulp-nudged power; whether and which energy counter. Points are then
// sorted by time, with repeated times and non-finite powers dropped.
func pointsFromFuzz(data []byte) []point {
	var pts []point
	var prev point
	for ; len(data) >= fuzzRecord; data = data[fuzzRecord:] {
		ctl := data[0]
		t := binary.LittleEndian.Uint64(data[1:])
		id := binary.LittleEndian.Uint64(data[9:])
		v := binary.LittleEndian.Uint64(data[17:])
		p := prev
		switch ctl & 3 {
		case 0:
			p.ns = int64(t)
		case 1:
			p.ns += int64(t%100+1) * 1e9
		case 2:
			p.ns += int64(t%100_000_000 + 1)
		case 3:
			p.ns += int64(t%20_000+1) * 1e6
		}
		if ctl&4 == 0 {
			p.id = id
		} else {
			p.id += id%256 - 128
		}
		switch ctl >> 3 & 3 {
		case 0:
			p.powerW = math.Float64frombits(v)
		case 1:
			p.powerW = float64(int64(v)%100_000) / 10
		case 2: // the same power again
		case 3:
			p.powerW = math.Float64frombits(math.Float64bits(float64(int64(v)%100_000)/10) + v>>62 - 1)
		}
		p.hasEnergy = ctl&32 != 0
		switch {
		case !p.hasEnergy:
			p.energyWh = 0
		case ctl&64 == 0:
			p.energyWh = math.Float64frombits(v ^ id)
		default:
			p.energyWh = prev.energyWh + float64(id%1000)/10
		}
		prev = p
		if !math.IsNaN(p.powerW) && !math.IsInf(p.powerW, 0) {
			pts = append(pts, p)
		}
	}
	slices.SortStableFunc(pts, func(a, b point) int { return cmp.Compare(a.ns, b.ns) })
	return slices.CompactFunc(pts, func(a, b point) bool { return a.ns == b.ns })
}

func FuzzBlockRoundTrip(f *testing.F) {
	f.Add([]byte{})
	for _, ctl := range []byte{0, 1, 2, 3, 1 | 4 | 8, 2 | 4 | 24, 3 | 4 | 8 | 32 | 64, 16 | 32} {
		rec := make([]byte, 3*fuzzRecord)
		for i := range 3 {
			rec[i*fuzzRecord] = ctl
			rec[i*fuzzRecord+1+i] = 7
			rec[i*fuzzRecord+17] = byte(i * 3)
		}
		f.Add(rec)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pts := pointsFromFuzz(data)
		b := encodeBlock(pts)
		got, err := decodeBlock(b)
		if err != nil {
			t.Fatalf("decodeBlock(encodeBlock(%+v)) error: %v", pts, err)
		}
		if d := diffPoints(got, pts); d != "" {
			t.Fatalf("round trip of %+v: %s", pts, d)
		}
		if n, err := blockLen(b); n != len(pts) || err != nil {
			t.Fatalf("blockLen = %d, %v; want %d, nil", n, err, len(pts))
		}
	})
}
