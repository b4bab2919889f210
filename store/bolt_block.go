package store

// A block holds a run of one meter's readings compressed after Facebook's
// Gorilla paper (Pelkonen et al., VLDB 2015): timestamps and ids as deltas of
// deltas, floats as XORs with the previous value. The format, version 1:
//
//	byte     version, 1
//	uvarint  n, the number of points; an empty block ends here
//	byte     flags: bits 0-1 the time unit (0 ns, 1 µs, 2 ms, 3 s);
//	         bit 2 set when some point has an energy counter; bits 3-7 zero
//	byte     power codec
//	byte     energy codec, only when flag bit 2 is set
//	varint   time of point 0, Unix ns
//	uvarint  id of point 0
//	bits     the points, most significant bit first, zero-padded to a byte:
//	           point 0:         power [energy]
//	           points 1 to n-1: time id power [energy]
//
// Time is coded in the block's unit: the largest of 1 s, 1 ms, 1 µs and 1 ns
// that divides every gap between points, so whole-second and millisecond
// device clocks cost no more than their resolution. Each point codes the
// difference between its gap and the previous gap (the gap before point 1
// counts as 0), zigzagged, in timeBuckets. Ids code their delta of delta the
// same way in idBuckets. All of it wraps modulo 2^64, so any id sequence and
// any int64 time round-trip exactly.
//
// A bucket code is a unary prefix choosing a width from a table, then that
// many bits: with {0, 7, 12, ..., 64}, "0" is 0, "10" and 7 bits is below 2^7,
// "110" and 12 bits is below 2^12, and the last width (always 64) has no
// terminating 0 in its prefix.
//
// [energy] is one bit, set when the point has a counter, then its value.
// Power and energy are separate float streams, each coded as its codec byte
// says, from a zero state (the previous value of point 0 is +0, its previous
// delta 0):
//
//	0        Gorilla XOR of the value's bits with the previous value's: "0"
//	         repeats it; "10" then the XOR's meaningful bits in the previous
//	         window; "11", 5 bits of leading zeros, 6 bits of window length
//	         (0 means 64), then the meaningful bits, opening a new window.
//	1+s      decimal with s digits (s <= 9): the value is k/10^s for an
//	         integer k, and the stream codes k's change in valueBuckets
//	         (power: its delta; energy, a counter: its delta of delta).
//	17+s     decimal as above, and each value then codes in ulpBuckets the
//	         difference of its float64 bits from those of k/10^s.
//
// The decimal codec is not Gorilla's. Meters report few digits (150.3 W),
// which as float64 have a long binary tail that XOR cannot compress: a day
// of household power with 2 W of noise takes 47 bits a point with XOR and
// 10 with decimals. The ulp correction keeps decimals exact for values that
// are not quite the float64 nearest a short decimal (a kW reading with 4
// digits times 1000 is 1 ulp off a quarter of the time) and for outliers
// (-0.0, 1e300), which cost about 70 bits each. The encoder sizes each
// stream both ways and keeps the shorter.

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// point is one stored reading as a block holds it.
type point struct {
	ns        int64   // Unix time in nanoseconds (strictly increasing within a block)
	id        uint64  // reading id; any sequence round-trips
	powerW    float64 // power in watts, finite
	energyWh  float64 // device energy counter in Wh, meaningful only when hasEnergy
	hasEnergy bool
}

// blockVersion is the first byte of every block this code writes.
const blockVersion = 1

// Header flag bits after the time unit's two bits.
const (
	blockFlagEnergy = 1 << 2
	blockFlagsKnown = 1<<3 - 1
)

// timeUnits are the units, in ns, a block may count its time in, indexed by
// the code its flags store.
var timeUnits = [4]uint64{1, 1e3, 1e6, 1e9}

// maxDecimalScale is the most decimal digits a decimal float codec keeps.
const maxDecimalScale = 9

// pow10 holds 10^s for every decimal scale; each is exact in a float64.
var pow10 = [maxDecimalScale + 1]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// Bucket tables: the payload widths a unary prefix chooses from, smallest
// first, starting with 0 and ending with 64.
var (
	// timeBuckets fit exact intervals (0), jitter in whole seconds or
	// milliseconds (7, 12 bits), and microseconds to a second of jitter in
	// ns (20 to 32).
	timeBuckets = bucketTable{0, 7, 12, 20, 24, 28, 32, 64}
	// idBuckets fit one meter (0) and a few hundred interleaved ones (6, 12).
	idBuckets = bucketTable{0, 6, 12, 20, 32, 64}
	// valueBuckets fit steps of a decimal value in its last digit.
	valueBuckets = bucketTable{0, 4, 8, 12, 20, 32, 64}
	// ulpBuckets fit float64 rounding (1 ulp) and arbitrary outliers.
	ulpBuckets = bucketTable{0, 2, 8, 64}
)

// encodeBlock encodes pts, sorted by strictly increasing ns, into a
// self-describing byte slice. Points out of order are encoded as given and
// then fail to decode; a NaN or infinite power likewise.
func encodeBlock(pts []point) []byte {
	b := []byte{blockVersion}
	b = binary.AppendUvarint(b, uint64(len(pts)))
	if len(pts) == 0 {
		return b
	}

	unitCode := timeUnitCode(pts)
	flags := byte(unitCode)
	powers := make([]float64, len(pts))
	var energies []float64
	for i, p := range pts {
		powers[i] = p.powerW
		if p.hasEnergy {
			energies = append(energies, p.energyWh)
		}
	}
	power := chooseFloatCodec(powers, 1)
	var energy floatCodec
	if energies != nil {
		flags |= blockFlagEnergy
		energy = chooseFloatCodec(energies, 2)
	}
	b = append(b, flags, power.byte())
	if energies != nil {
		b = append(b, energy.byte())
	}
	b = binary.AppendVarint(b, pts[0].ns)
	b = binary.AppendUvarint(b, pts[0].id)

	w := bitWriter{buf: b}
	unit := timeUnits[unitCode]
	var ts, ids dodState
	ps := floatStream{codec: power, order: 1}
	es := floatStream{codec: energy, order: 2}
	for i, p := range pts {
		if i > 0 {
			prev := pts[i-1]
			timeBuckets.put(&w, ts.next(uint64(p.ns-prev.ns)/unit))
			idBuckets.put(&w, ids.next(p.id-prev.id))
		}
		ps.put(&w, p.powerW)
		if energies != nil {
			if !p.hasEnergy {
				w.writeBits(0, 1)
				continue
			}
			w.writeBits(1, 1)
			es.put(&w, p.energyWh)
		}
	}
	return w.flush()
}

// timeUnitCode returns the code of the largest time unit that divides every
// gap between pts.
func timeUnitCode(pts []point) int {
	code := len(timeUnits) - 1
	for i := 1; i < len(pts) && code > 0; i++ {
		gap := uint64(pts[i].ns - pts[i-1].ns)
		for gap%timeUnits[code] != 0 {
			code--
		}
	}
	return code
}

// blockHeader is what a block says before its bit stream.
type blockHeader struct {
	n         int
	unit      uint64
	hasEnergy bool
	power     floatCodec
	energy    floatCodec
	firstNs   int64
	firstID   uint64
}

// parseBlockHeader reads a block's header and returns the bit stream after
// it. It bounds n by what the stream could hold: every point but the first
// takes at least 3 bits.
func parseBlockHeader(b []byte) (blockHeader, []byte, error) {
	var h blockHeader
	if len(b) == 0 {
		return h, nil, fmt.Errorf("store: block: empty")
	}
	if b[0] != blockVersion {
		return h, nil, fmt.Errorf("store: block: version %d, want %d", b[0], blockVersion)
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return h, nil, fmt.Errorf("store: block: truncated point count")
	}
	b = b[k:]
	if n == 0 {
		if len(b) != 0 {
			return h, nil, fmt.Errorf("store: block: %d bytes after an empty block", len(b))
		}
		return h, nil, nil
	}
	if len(b) < 2 {
		return h, nil, fmt.Errorf("store: block: truncated header")
	}
	flags := b[0]
	if flags&^blockFlagsKnown != 0 {
		return h, nil, fmt.Errorf("store: block: unknown flags %#x", flags)
	}
	h.unit = timeUnits[flags&3]
	h.hasEnergy = flags&blockFlagEnergy != 0
	var err error
	if h.power, err = parseFloatCodec(b[1]); err != nil {
		return h, nil, fmt.Errorf("store: block: power: %w", err)
	}
	b = b[2:]
	if h.hasEnergy {
		if len(b) == 0 {
			return h, nil, fmt.Errorf("store: block: truncated header")
		}
		if h.energy, err = parseFloatCodec(b[0]); err != nil {
			return h, nil, fmt.Errorf("store: block: energy: %w", err)
		}
		b = b[1:]
	}
	if h.firstNs, k = binary.Varint(b); k <= 0 {
		return h, nil, fmt.Errorf("store: block: truncated or bad time of point 0")
	}
	b = b[k:]
	if h.firstID, k = binary.Uvarint(b); k <= 0 {
		return h, nil, fmt.Errorf("store: block: truncated or bad id of point 0")
	}
	b = b[k:]
	if n-1 > 8*uint64(len(b))/3 {
		return h, nil, fmt.Errorf("store: block: %d points cannot fit in %d bytes", n, len(b))
	}
	h.n = int(n)
	return h, b, nil
}

// blockLen returns the number of points in an encoded block, read from its
// header.
func blockLen(b []byte) (int, error) {
	h, _, err := parseBlockHeader(b)
	return h.n, err
}

// decodeBlock decodes a block. It returns an error, never panics, on a
// corrupt or truncated block, and allocates in proportion to len(b).
func decodeBlock(b []byte) ([]point, error) {
	h, stream, err := parseBlockHeader(b)
	if err != nil || h.n == 0 {
		return nil, err
	}
	pts := make([]point, h.n)
	r := bitReader{b: stream}
	var ts, ids dodState
	ps := floatStream{codec: h.power, order: 1}
	es := floatStream{codec: h.energy, order: 2}
	for i := range pts {
		p := &pts[i]
		if i == 0 {
			p.ns, p.id = h.firstNs, h.firstID
		} else {
			prev := pts[i-1]
			p.ns = prev.ns + int64(ts.undo(timeBuckets.get(&r))*h.unit)
			p.id = prev.id + ids.undo(idBuckets.get(&r))
			if p.ns <= prev.ns && !r.short {
				return nil, fmt.Errorf("store: block: point %d: time %d is not after %d", i, p.ns, prev.ns)
			}
		}
		if p.powerW, err = ps.get(&r); err != nil {
			return nil, fmt.Errorf("store: block: point %d: power: %w", i, err)
		}
		if h.hasEnergy && r.readBits(1) == 1 {
			p.hasEnergy = true
			if p.energyWh, err = es.get(&r); err != nil {
				return nil, fmt.Errorf("store: block: point %d: energy: %w", i, err)
			}
		}
		if r.short {
			return nil, fmt.Errorf("store: block: truncated at point %d", i)
		}
		if math.IsNaN(p.powerW) || math.IsInf(p.powerW, 0) {
			return nil, fmt.Errorf("store: block: point %d: power %v is not finite", i, p.powerW)
		}
	}
	if left := r.left(); left >= 8 {
		return nil, fmt.Errorf("store: block: %d bytes after the last point", left/8)
	}
	if r.acc != 0 {
		return nil, fmt.Errorf("store: block: nonzero padding after the last point")
	}
	return pts, nil
}

// dodState codes an integer sequence as zigzagged deltas of deltas, modulo
// 2^64. It is fed the deltas.
type dodState struct{ prevDelta uint64 }

// next returns the code for delta, the next value minus the previous one.
func (s *dodState) next(delta uint64) uint64 {
	dod := delta - s.prevDelta
	s.prevDelta = delta
	return zigzag(int64(dod))
}

// undo returns the delta a code from next stands for.
func (s *dodState) undo(code uint64) uint64 {
	s.prevDelta += uint64(unzigzag(code))
	return s.prevDelta
}

// zigzag maps small signed integers to small unsigned ones: 0, -1, 1, -2...
// to 0, 1, 2, 3...
func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

// unzigzag inverts zigzag.
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// bucketTable lists the payload widths of a bucket code, smallest first; the
// first is 0 and the last 64.
type bucketTable []uint8

// put writes u in the first bucket wide enough for it.
func (t bucketTable) put(w *bitWriter, u uint64) {
	last := len(t) - 1
	for i, width := range t[:last] {
		if u>>width == 0 {
			// i ones then a zero, followed by the payload.
			w.writeBits((1<<(i+1)-2)<<width|u, uint(i+1)+uint(width))
			return
		}
	}
	w.writeBits(1<<last-1, uint(last))
	w.writeWide(u, 64)
}

// get reads a value written by put. It returns 0 when the stream runs short.
func (t bucketTable) get(r *bitReader) uint64 {
	last := uint(len(t) - 1)
	if r.n < last {
		r.refill()
	}
	// Bits past n are zero here unless they are the stream's next bits.
	i := min(uint(bits.LeadingZeros64(^r.acc)), last)
	prefix := min(i+1, last)
	if prefix > r.n {
		r.runShort()
		return 0
	}
	r.skip(prefix)
	switch width := uint(t[i]); {
	case width == 0:
		return 0
	case width <= 56:
		return r.readBits(width)
	default:
		return r.readWide(width)
	}
}

// floatCodec is how a block codes one float stream: Gorilla XOR, or decimal
// with scale digits and, when ulps is set, a correction per value.
type floatCodec struct {
	decimal bool
	scale   int
	ulps    bool
}

// byte returns the codec's header byte.
func (c floatCodec) byte() byte {
	if !c.decimal {
		return 0
	}
	b := byte(1 + c.scale)
	if c.ulps {
		b |= 16
	}
	return b
}

// parseFloatCodec reads a codec's header byte.
func parseFloatCodec(b byte) (floatCodec, error) {
	if b == 0 {
		return floatCodec{}, nil
	}
	c := floatCodec{decimal: true, scale: int(b&15) - 1, ulps: b&16 != 0}
	if b&^31 != 0 || c.scale < 0 || c.scale > maxDecimalScale {
		return floatCodec{}, fmt.Errorf("unknown codec %#x", b)
	}
	return c, nil
}

// chooseFloatCodec returns the codec that codes vals shortest, of Gorilla
// XOR and decimal at the fewest digits that get every value within an ulp
// (values no scale gets that close, like 1e300, do not count).
func chooseFloatCodec(vals []float64, order int) floatCodec {
	scale := -1
	for _, v := range vals {
		if scale >= 0 && nearDecimal(v, scale) {
			continue
		}
		for s := scale + 1; s <= maxDecimalScale; s++ {
			if nearDecimal(v, s) {
				scale = s
				break
			}
		}
	}
	xor := floatCodec{}
	if scale < 0 {
		return xor
	}
	dec := floatCodec{decimal: true, scale: scale}
	for _, v := range vals {
		if _, ulps := decimalOf(v, scale, 0); ulps != 0 {
			dec.ulps = true
			break
		}
	}
	if floatStreamBits(vals, dec, order) < floatStreamBits(vals, xor, order) {
		return dec
	}
	return xor
}

// nearDecimal reports whether v is within an ulp of the float64 nearest to
// some k/10^s.
func nearDecimal(v float64, s int) bool {
	_, ulps := decimalOf(v, s, 0)
	return ulps == 0 || ulps == 1 || ulps == math.MaxUint64
}

// floatStreamBits returns how many bits vals take in codec c.
func floatStreamBits(vals []float64, c floatCodec, order int) int {
	w := bitWriter{discard: true}
	s := floatStream{codec: c, order: order}
	for _, v := range vals {
		s.put(&w, v)
	}
	return w.bits
}

// decimalOf returns the integer k for which k/10^s is nearest v, and the
// difference of v's float64 bits from k/10^s's. A v too large for s (or
// not finite) gets k = prevK.
func decimalOf(v float64, s int, prevK int64) (k int64, ulps uint64) {
	k = prevK
	if x := v * pow10[s]; math.Abs(x) < 1<<53 {
		k = int64(math.Round(x))
	}
	return k, math.Float64bits(v) - math.Float64bits(float64(k)/pow10[s])
}

// floatStream is the coding state of one float stream of a block.
type floatStream struct {
	codec floatCodec
	order int // decimal: 1 codes deltas of k, 2 deltas of deltas

	// Gorilla XOR
	prev              uint64 // the previous value's bits
	leading, trailing int    // the window of meaningful bits
	window            bool   // a window is open

	// decimal
	k, delta int64 // the previous value's k and delta of k
}

// put writes v.
func (s *floatStream) put(w *bitWriter, v float64) {
	if s.codec.decimal {
		k, ulps := decimalOf(v, s.codec.scale, s.k)
		delta := k - s.k
		code := delta
		if s.order == 2 {
			code = delta - s.delta
		}
		s.k, s.delta = k, delta
		valueBuckets.put(w, zigzag(code))
		if s.codec.ulps {
			ulpBuckets.put(w, zigzag(int64(ulps)))
		}
		return
	}

	b := math.Float64bits(v)
	x := b ^ s.prev
	s.prev = b
	if x == 0 {
		w.writeBits(0, 1)
		return
	}
	leading, trailing := min(bits.LeadingZeros64(x), 31), bits.TrailingZeros64(x)
	sig := 64 - leading - trailing
	if s.window && leading >= s.leading && trailing >= s.trailing && 64-s.leading-s.trailing <= 11+sig {
		w.writeBits(0b10, 2)
		w.writeWide(x>>s.trailing, uint(64-s.leading-s.trailing))
		return
	}
	s.window, s.leading, s.trailing = true, leading, trailing
	w.writeBits(0b11<<11|uint64(leading)<<6|uint64(sig&63), 13)
	w.writeWide(x>>trailing, uint(sig))
}

// get reads a value written by put. It returns 0 when the stream runs short.
func (s *floatStream) get(r *bitReader) (float64, error) {
	if s.codec.decimal {
		delta := unzigzag(valueBuckets.get(r))
		if s.order == 2 {
			delta += s.delta
		}
		s.k, s.delta = s.k+delta, delta
		v := float64(s.k) / pow10[s.codec.scale]
		if !s.codec.ulps {
			return v, nil
		}
		return math.Float64frombits(math.Float64bits(v) + uint64(unzigzag(ulpBuckets.get(r)))), nil
	}

	if r.readBits(1) == 0 { // the same value again
		return math.Float64frombits(s.prev), nil
	}
	if r.readBits(1) == 0 { // in the previous window
		if !s.window {
			return 0, fmt.Errorf("XOR window reused before one was opened")
		}
		s.prev ^= r.readWide(uint(64-s.leading-s.trailing)) << s.trailing
		return math.Float64frombits(s.prev), nil
	}
	leading := int(r.readBits(5))
	sig := int(r.readBits(6))
	if sig == 0 {
		sig = 64
	}
	if leading+sig > 64 {
		return 0, fmt.Errorf("XOR window of %d bits after %d leading zeros", sig, leading)
	}
	s.window, s.leading, s.trailing = true, leading, 64-leading-sig
	s.prev ^= r.readWide(uint(sig)) << s.trailing
	return math.Float64frombits(s.prev), nil
}

// bitWriter appends bits, most significant first, to a byte slice.
type bitWriter struct {
	buf     []byte
	acc     uint64 // the low n bits are not yet in buf
	n       uint
	bits    int  // bits written
	discard bool // only count bits
}

// writeBits writes the low nbits of v, nbits <= 56; higher bits of v must be
// zero.
func (w *bitWriter) writeBits(v uint64, nbits uint) {
	w.bits += int(nbits)
	if w.discard {
		return
	}
	if w.n+nbits > 64 {
		w.spill()
	}
	w.acc = w.acc<<nbits | v
	w.n += nbits
}

// writeWide writes the low nbits of v, nbits <= 64.
func (w *bitWriter) writeWide(v uint64, nbits uint) {
	if nbits > 32 {
		w.writeBits(v>>32, nbits-32)
		v, nbits = v&(1<<32-1), 32
	}
	w.writeBits(v, nbits)
}

// spill moves the whole bytes of acc to buf, leaving fewer than 8 bits.
func (w *bitWriter) spill() {
	for w.n >= 8 {
		w.n -= 8
		w.buf = append(w.buf, byte(w.acc>>w.n))
	}
}

// flush pads the last byte with zeros and returns the bytes.
func (w *bitWriter) flush() []byte {
	w.spill()
	if w.n > 0 {
		w.buf = append(w.buf, byte(w.acc<<(8-w.n)))
		w.acc, w.n = 0, 0
	}
	return w.buf
}

// bitReader reads bits, most significant first, from a byte slice. Reading
// past the end returns zeros and sets short.
type bitReader struct {
	b     []byte // bytes not yet loaded into acc
	acc   uint64 // the top n bits are the next to read; the rest is zero or the bits after them
	n     uint
	short bool // a read ran past the end
}

// refill loads bytes into acc until it holds more than 56 bits or b is empty.
func (r *bitReader) refill() {
	if len(r.b) >= 8 {
		r.acc |= binary.BigEndian.Uint64(r.b) >> r.n
		r.b = r.b[(63-r.n)>>3:]
		r.n |= 56
		return
	}
	for r.n <= 56 && len(r.b) > 0 {
		r.acc |= uint64(r.b[0]) << (56 - r.n)
		r.b = r.b[1:]
		r.n += 8
	}
}

// readBits reads nbits, 1 <= nbits <= 56.
func (r *bitReader) readBits(nbits uint) uint64 {
	if r.n < nbits {
		r.fill(nbits)
	}
	v := r.acc >> ((64 - nbits) & 63)
	r.acc <<= nbits
	r.n -= nbits
	return v
}

// fill refills acc to hold at least nbits, or, at the end of the stream,
// runs short and makes acc nbits of zeros.
func (r *bitReader) fill(nbits uint) {
	r.refill()
	if r.n < nbits {
		r.runShort()
		r.n = nbits
	}
}

// readWide reads nbits, nbits <= 64.
func (r *bitReader) readWide(nbits uint) uint64 {
	switch {
	case nbits == 0:
		return 0
	case nbits > 56:
		hi := r.readBits(nbits - 32)
		return hi<<32 | r.readBits(32)
	}
	return r.readBits(nbits)
}

// skip drops nbits <= 56 already known to be there.
func (r *bitReader) skip(nbits uint) {
	r.acc <<= nbits
	r.n -= nbits
}

// runShort marks the stream as read past its end.
func (r *bitReader) runShort() {
	r.short, r.acc, r.n, r.b = true, 0, 0, nil
}

// left returns the number of bits not yet read.
func (r *bitReader) left() int { return int(r.n) + 8*len(r.b) }
