package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

// The write-ahead log holds the live readings received since the last
// checkpoint (see bolt_head.go), in the order the writer took them. It lives in
// <dir>/wal as segment files of a fixed size, each named by the log
// sequence number (LSN) of its first record, 16 hex digits and ".wal".
// A segment is written with zeros once when it is created and reused
// (renamed) once a checkpoint covers it, so that appending to it never
// changes the file's size: fdatasync then writes the data pages alone.
//
// A segment is a run of frames, one per group of readings the writer took
// at once:
//
//	uint32 LE  length of the payload (0: the end of the segment's frames)
//	uint32 LE  CRC-32C of the payload
//	payload:
//	  uvarint  epoch: the store's run that wrote it (see bolt_head.go)
//	  uvarint  LSN of its first record; the others follow one by one
//	  varint   the writer's clock when it took the group, Unix ns
//	  uvarint  number of records
//	  records
//
// and a record is one reading:
//
//	uvarint  meter reference: an index into the segment's meters, or, equal
//	         to their count, a new entry that follows (uvarint length and
//	         meter id, uvarint length and source name)
//	byte     flags: 1 stamped by the device, 2 energy counter, 4 power
//	         factor, 8 delivery
//	varint   the reading's time minus the group's clock, ns
//	8 bytes  power, W (float64 bits, LE)
//	8 bytes  energy counter, Wh, with flag 2
//	8 bytes  power factor, with flag 4
//	8 bytes  the message it came in (meter.Delivery's key, LE), with flag
//	         8: replaying rebuilds the ledger of messages stored
//
// A frame whose length, checksum, epoch or first LSN is not what comes next
// ends the log: it is the torn tail of a write cut short, or what an
// earlier use of a reused segment left.
const (
	walDirName     = "wal"
	walSuffix      = ".wal"
	frameHeader    = 8
	walSegmentSize = 4 << 20
	maxWALRecord   = 2*binary.MaxVarintLen64 + 2*(binary.MaxVarintLen16+maxWALName) + 1 + 4*8
	maxWALName     = 255
	recStamped     = 1
	recEnergy      = 2
	recPF          = 4
	recDelivery    = 8
	recKnownFlags  = recStamped | recEnergy | recPF | recDelivery
	walFreePrefix  = "free-"
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// walName is a meter and its source, one entry of a segment's meters.
type walName struct{ meter, source string }

// walFrame is a decoded frame.
type walFrame struct {
	epoch    uint64
	first    uint64
	nowNs    int64
	readings []meter.Reading
}

// appendFrame encodes readings as one frame onto b, adding the meters it
// names to names (the segment's entries, by index) and index.
func appendFrame(b []byte, epoch, first uint64, nowNs int64, rs []meter.Reading, names *[]walName, index map[walName]uint64) []byte {
	start := len(b)
	b = append(b, make([]byte, frameHeader)...)
	b = binary.AppendUvarint(b, epoch)
	b = binary.AppendUvarint(b, first)
	b = binary.AppendVarint(b, nowNs)
	b = binary.AppendUvarint(b, uint64(len(rs)))
	for i := range rs {
		r := &rs[i]
		n := walName{r.Meter, r.Source[:min(len(r.Source), maxWALName)]}
		ref, ok := index[n]
		if !ok {
			ref = uint64(len(*names))
			index[n] = ref
			*names = append(*names, n)
			b = binary.AppendUvarint(b, ref)
			b = binary.AppendUvarint(b, uint64(len(n.meter)))
			b = append(b, n.meter...)
			b = binary.AppendUvarint(b, uint64(len(n.source)))
			b = append(b, n.source...)
		} else {
			b = binary.AppendUvarint(b, ref)
		}
		var flags byte
		if r.Stamped {
			flags |= recStamped
		}
		if r.HasEnergy {
			flags |= recEnergy
		}
		if r.HasPF {
			flags |= recPF
		}
		if r.Delivery.Key != 0 {
			flags |= recDelivery
		}
		b = append(b, flags)
		b = binary.AppendVarint(b, r.Time.UnixNano()-nowNs)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.PowerW))
		if r.HasEnergy {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.EnergyWh))
		}
		if r.HasPF {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.PowerFactor))
		}
		if r.Delivery.Key != 0 {
			b = binary.LittleEndian.AppendUint64(b, r.Delivery.Key)
		}
	}
	payload := b[start+frameHeader:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(payload, crc32c))
	return b
}

// framePayload returns the payload of the frame at the start of b, false
// unless b starts with a whole frame whose checksum is right.
func framePayload(b []byte) ([]byte, bool) {
	if len(b) < frameHeader {
		return nil, false
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 || uint64(n) > uint64(len(b)-frameHeader) {
		return nil, false
	}
	payload := b[frameHeader : frameHeader+int(n)]
	return payload, crc32.Checksum(payload, crc32c) == binary.LittleEndian.Uint32(b[4:])
}

// errFrameEnd marks the end of a segment's frames: zeros, or a frame that
// is torn or left from an earlier use of the segment.
var errFrameEnd = errors.New("end of log")

// decodeFrame decodes the frame at the start of b, whose meter references
// index names (the entries the segment defined before it; the frame's new
// ones are appended), and returns it with its length. Anything that is not
// a whole, well-formed frame is errFrameEnd, with names unchanged.
func decodeFrame(b []byte, names *[]walName) (walFrame, int, error) {
	payload, ok := framePayload(b)
	if !ok {
		return walFrame{}, 0, errFrameEnd
	}
	n := len(payload)
	d := walDecoder{b: payload}
	var f walFrame
	f.epoch = d.uvarint()
	f.first = d.uvarint()
	f.nowNs = d.varint()
	count := d.uvarint()
	if d.err != nil || count == 0 || count > uint64(len(payload)) {
		return walFrame{}, 0, errFrameEnd
	}
	known := len(*names)
	f.readings = make([]meter.Reading, 0, count)
	for range count {
		ref := d.uvarint()
		if ref == uint64(len(*names)) {
			m, src := d.str(), d.str()
			if d.err != nil || !meter.ValidID(m) {
				*names = (*names)[:known]
				return walFrame{}, 0, errFrameEnd
			}
			*names = append(*names, walName{m, src})
		} else if ref > uint64(len(*names)) {
			*names = (*names)[:known]
			return walFrame{}, 0, errFrameEnd
		}
		nm := (*names)[ref]
		flags := d.byte()
		dt := d.varint()
		r := meter.Reading{Meter: nm.meter, Source: nm.source, Stamped: flags&recStamped != 0,
			Time: time.Unix(0, f.nowNs+dt).UTC(), PowerW: d.float()}
		if flags&recEnergy != 0 {
			r.EnergyWh, r.HasEnergy = d.float(), true
		}
		if flags&recPF != 0 {
			r.PowerFactor, r.HasPF = d.float(), true
		}
		if flags&recDelivery != 0 {
			r.Delivery.Key = d.uint64()
		}
		if d.err != nil || flags&^recKnownFlags != 0 || flags&recDelivery != 0 && r.Delivery.Key == 0 || !finite(r.PowerW) || !finite(r.EnergyWh) || !finite(r.PowerFactor) {
			*names = (*names)[:known]
			return walFrame{}, 0, errFrameEnd
		}
		f.readings = append(f.readings, r)
	}
	if len(d.b) != 0 {
		*names = (*names)[:known]
		return walFrame{}, 0, errFrameEnd
	}
	return f, frameHeader + n, nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// walDecoder reads a payload, remembering the first error.
type walDecoder struct {
	b   []byte
	err error
}

var errShort = errors.New("short record")

func (d *walDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err, d.b = errShort, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *walDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err, d.b = errShort, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *walDecoder) byte() byte {
	if len(d.b) < 1 {
		d.err = errShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *walDecoder) float() float64 { return math.Float64frombits(d.uint64()) }

func (d *walDecoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.err, d.b = errShort, nil
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *walDecoder) str() string {
	n := d.uvarint()
	if n > maxWALName || n > uint64(len(d.b)) {
		d.err, d.b = errShort, nil
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// walSegment is a segment file of the log.
type walSegment struct {
	first uint64 // LSN of its first record
	path  string
}

func segmentName(first uint64) string { return fmt.Sprintf("%016x%s", first, walSuffix) }

// listSegments returns the log's segments, oldest first, and its free
// (reusable) files.
func listSegments(dir string) (segs []walSegment, free []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, walSuffix) {
			continue
		}
		if strings.HasPrefix(name, walFreePrefix) {
			free = append(free, filepath.Join(dir, name))
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, walSuffix), 16, 64)
		if err != nil || len(name) != 16+len(walSuffix) {
			continue
		}
		segs = append(segs, walSegment{first: first, path: filepath.Join(dir, name)})
	}
	slices.SortFunc(segs, func(a, b walSegment) int {
		switch {
		case a.first < b.first:
			return -1
		case a.first > b.first:
			return 1
		}
		return 0
	})
	return segs, free, nil
}

// walDamage is a stretch of the log that replay could not read, followed
// by frames of the same run: the records in it are lost. A torn tail, the
// end of a log cut by a crash, is not damage: nothing of the run follows it.
type walDamage struct {
	path   string // the segment
	offset int    // where in it the unreadable stretch starts; -1: segments are missing before it
	// from is the first LSN lost; next, the first read again, in a later
	// segment (0: none).
	from, next uint64
}

func (d walDamage) String() string {
	if d.offset < 0 {
		return fmt.Sprintf("segments before %s are missing: records %d to %d are lost", filepath.Base(d.path), d.from, d.next-1)
	}
	lost := fmt.Sprintf("records from %d on are lost", d.from)
	if d.next > d.from {
		lost = fmt.Sprintf("records %d to %d are lost", d.from, d.next-1)
	}
	return fmt.Sprintf("%s is unreadable from byte %d, with frames of the log after it: %s", filepath.Base(d.path), d.offset, lost)
}

// replayLog calls fn for each frame of epoch in the log at dir, in order,
// with the records at LSNs after `after` (earlier ones a checkpoint holds
// already). It returns the LSN the next record takes. It stops at the end
// of the log: the last frame followed by zeros or a torn frame.
//
// A segment that cannot be read to its end while frames of the run follow
// it (in it, checked by their checksums, or in later segments) is damaged,
// not torn: a bad page of an SD card, a deleted file. Replay then goes on
// with the next segment that starts a frame of the run, and reports what it
// skipped. The rest of a damaged segment is never read: its frames name
// meters by the segment's dictionary, whose entries the damage may hold.
func replayLog(dir string, epoch, after uint64, fn func(f walFrame) error) (uint64, []walDamage, error) {
	segs, _, err := listSegments(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return after + 1, nil, nil
		}
		return 0, nil, err
	}
	next := after + 1
	expect := after + 1 // the LSN the next frame must start at
	started := false    // a frame of the run has been read
	cut := false        // the last segment read was damaged
	var damage []walDamage
	for _, seg := range segs {
		if started && seg.first < expect {
			continue // a segment of an earlier use
		}
		b, err := os.ReadFile(seg.path)
		if err != nil {
			return 0, nil, err
		}
		var names []walName
		if f, _, err := decodeFrame(b, &names); err != nil || f.epoch != epoch || f.first != seg.first {
			continue // not this run's
		}
		names = names[:0]
		switch {
		case cut:
			damage[len(damage)-1].next = seg.first
		case seg.first > expect:
			damage = append(damage, walDamage{path: seg.path, offset: -1, from: expect, next: seg.first})
		}
		cut = false
		lsn := seg.first
		off := 0
		for off < len(b) {
			f, n, err := decodeFrame(b[off:], &names)
			if err != nil || f.epoch != epoch || f.first != lsn {
				break
			}
			started = true
			off += n
			lsn += uint64(len(f.readings))
			if end := f.first + uint64(len(f.readings)); end > after+1 {
				skip := int(min(uint64(len(f.readings)), (after+1)-min(after+1, f.first)))
				f.readings = f.readings[skip:]
				f.first += uint64(skip)
				if err := fn(f); err != nil {
					return 0, nil, err
				}
			}
			next = max(next, lsn)
		}
		if off < len(b) && frameAfter(b[off+1:], epoch, lsn) {
			damage = append(damage, walDamage{path: seg.path, offset: off, from: lsn})
			cut = true
		}
		expect = lsn
	}
	return next, damage, nil
}

// frameAfter reports whether b holds, at some offset, a whole frame of
// epoch (its checksum right) that starts at LSN first or later.
func frameAfter(b []byte, epoch, first uint64) bool {
	for off := range b {
		payload, ok := framePayload(b[off:])
		if !ok {
			continue
		}
		d := walDecoder{b: payload}
		if e, f := d.uvarint(), d.uvarint(); d.err == nil && e == epoch && f >= first {
			return true
		}
	}
	return false
}

// walWriter appends frames to the log's current segment.
type walWriter struct {
	dir     string
	segSize int64
	epoch   uint64
	f       *os.File
	seg     walSegment
	off     int64
	// synced is the offset up to which the segment is durable.
	synced int64
	names  []walName
	index  map[walName]uint64
	old    []walSegment // segments before the current one, oldest first
	free   []string
	buf    []byte
	// unsynced is set when written frames wait for fdatasync.
	unsynced bool
	// startErr is why the last segment could not be started, at
	// startFailed: append tries again after segmentRetry.
	startErr    error
	startFailed time.Time
}

// segmentRetry is how long the log waits before it tries again to start a
// segment it had no room for: each try writes until the disk is full.
const segmentRetry = 10 * time.Second

// openWALWriter starts the log at dir for epoch, its next record at LSN
// next. The segments there are freed for reuse (renamed free-..., so that a
// replay never reads one of them first and stops there), unless keep: then
// those with records before next stay, in use, until a checkpoint covers
// them (see covered), and the new frames go to new segments after them,
// never into one of them, whose tail may be torn.
func openWALWriter(dir string, epoch, next uint64, segSize int64, keep bool) (*walWriter, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	segs, free, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	w := &walWriter{dir: dir, segSize: segSize, epoch: epoch, free: free, index: map[walName]uint64{}}
	for _, s := range segs {
		if keep && s.first < next {
			w.old = append(w.old, s)
		} else if err := w.free1(s); err != nil {
			return nil, err
		}
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return w, nil
}

// free1 renames segment s free for reuse.
func (w *walWriter) free1(s walSegment) error {
	free := filepath.Join(w.dir, fmt.Sprintf("%s%016x%s", walFreePrefix, s.first, walSuffix))
	if err := os.Rename(s.path, free); err != nil {
		return err
	}
	if !slices.Contains(w.free, free) {
		w.free = append(w.free, free)
	}
	return nil
}

// abandon stops writing to the current segment after a failed write: the
// next frame starts a new one.
func (w *walWriter) abandon() {
	if w.f != nil {
		w.f.Close()
		w.old = append(w.old, w.seg)
		w.f, w.unsynced = nil, false
	}
}

// startSegment makes a segment whose first record is at LSN first the
// current one, reusing a free file or writing a new one full of zeros. A
// failure is remembered: append tries again after segmentRetry.
func (w *walWriter) startSegment(first uint64) (err error) {
	defer func() {
		if err != nil {
			w.startErr, w.startFailed = err, time.Now()
		} else {
			w.startErr = nil
		}
	}()
	if w.f != nil {
		if w.unsynced {
			if err := fdatasync(w.f); err != nil {
				return fmt.Errorf("store: log: %w", err)
			}
			w.unsynced = false
		}
		if err := w.f.Close(); err != nil {
			return fmt.Errorf("store: log: %w", err)
		}
		w.old = append(w.old, w.seg)
		w.f = nil
	}
	seg := walSegment{first: first, path: filepath.Join(w.dir, segmentName(first))}
	var f *os.File
	for len(w.free) > 0 && f == nil {
		from := w.free[len(w.free)-1]
		w.free = w.free[:len(w.free)-1]
		if fi, err := os.Stat(from); err != nil || fi.Size() != w.segSize {
			os.Remove(from)
			continue
		}
		if err := os.Rename(from, seg.path); err != nil {
			return fmt.Errorf("store: log: %w", err)
		}
		var err error
		if f, err = os.OpenFile(seg.path, os.O_RDWR, 0o600); err != nil {
			return fmt.Errorf("store: log: %w", err)
		}
	}
	if f == nil {
		// Not written until the disk is full to learn that it would be:
		// everything else on it would fail meanwhile.
		if free, ok := freeBytes(w.dir); ok && free < w.segSize {
			return fmt.Errorf("store: log: a new segment needs %d bytes, the disk has %d free: %w", w.segSize, free, syscall.ENOSPC)
		}
		var err error
		if f, err = createZeroed(seg.path, w.segSize); err != nil {
			return fmt.Errorf("store: log: %w", err)
		}
	}
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return fmt.Errorf("store: log: %w", err)
	}
	dropCache(f)
	w.f, w.seg, w.off, w.synced = f, seg, 0, 0
	w.names, w.index = w.names[:0], map[walName]uint64{}
	return nil
}

// createZeroed writes path full of zeros, size bytes, and syncs it.
func createZeroed(path string, size int64) (*os.File, error) {
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	// Page by page: the page cache keeps a file in folios as large as the
	// writes that made them (see dropCache).
	zeros := make([]byte, 4096)
	for left := size; left > 0; {
		n := min(left, int64(len(zeros)))
		if _, err := f.Write(zeros[:n]); err != nil {
			f.Close()
			os.Remove(tmp)
			return nil, err
		}
		left -= n
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	dropCache(f)
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	return f, nil
}

// append writes rs, taken at nowNs, the first at LSN first and the others
// after it, as one or more frames, all in one segment, with one write: a
// group the log could not take leaves no frame of it behind (see
// frameFailed, which reuses its LSNs). The frames are in the page cache,
// safe from the process's end; sync makes them safe from the machine's.
func (w *walWriter) append(first uint64, nowNs int64, rs []meter.Reading) error {
	if len(rs) == 0 {
		return nil
	}
	if w.f == nil {
		if w.startErr != nil && time.Since(w.startFailed) < segmentRetry {
			return w.startErr
		}
		if err := w.startSegment(first); err != nil {
			return err
		}
	}
	known := len(w.names)
	w.buf = w.encode(w.buf[:0], first, nowNs, rs)
	if w.off > 0 && w.off+int64(len(w.buf))+frameHeader > w.segSize {
		// The next segment starts its own meter entries: encode again.
		w.forget(known)
		if err := w.startSegment(first); err != nil {
			return err
		}
		w.buf = w.encode(w.buf[:0], first, nowNs, rs)
	}
	// A group larger than a segment (10,000 new meters with long names)
	// makes its segment longer: replay reads a segment to its end.
	if _, err := w.f.WriteAt(w.buf, w.off); err != nil {
		// No valid frame of the group may stay: zeros end the log there,
		// and the next segment takes its LSNs. WriteAt does not count
		// what a write cut short by its error wrote: all of it goes. (A
		// disk that fails this write too may leave frames that replay
		// reads instead of the next segment's, until a checkpoint.)
		_, _ = w.f.WriteAt(make([]byte, len(w.buf)), w.off)
		w.forget(known)
		return fmt.Errorf("store: log: %w", err)
	}
	w.off += int64(len(w.buf))
	w.unsynced = true
	return nil
}

// encode appends rs, the first at LSN first, as frames onto b, a frame
// split in halves while it is larger than a quarter of a segment.
func (w *walWriter) encode(b []byte, first uint64, nowNs int64, rs []meter.Reading) []byte {
	known, start := len(w.names), len(b)
	b = appendFrame(b, w.epoch, first, nowNs, rs, &w.names, w.index)
	if int64(len(b)-start) <= w.segSize/4 || len(rs) == 1 {
		return b
	}
	w.forget(known)
	half := len(rs) / 2
	b = w.encode(b[:start], first, nowNs, rs[:half])
	return w.encode(b, first+uint64(half), nowNs, rs[half:])
}

// pendingBytes is how much of the log waits for fdatasync.
func (w *walWriter) pendingBytes() int64 { return w.off - w.synced }

// forget drops the meter entries defined after the first known.
func (w *walWriter) forget(known int) {
	for _, n := range w.names[known:] {
		delete(w.index, n)
	}
	w.names = w.names[:known]
}

// sync makes everything appended durable.
func (w *walWriter) sync() error {
	if !w.unsynced {
		return nil
	}
	if err := fdatasync(w.f); err != nil {
		return fmt.Errorf("store: log: %w", err)
	}
	w.unsynced, w.synced = false, w.off
	return nil
}

// covered frees the segments before the current one: a checkpoint holds
// every record up to the current one's. At most keep free files stay for
// reuse; the rest are deleted.
func (w *walWriter) covered(keep int) { w.coveredFirst(len(w.old), keep) }

// coveredFirst frees the first n segments before the current one: a
// checkpoint holds every record up to the start of the one after them.
func (w *walWriter) coveredFirst(n, keep int) {
	if n == 0 {
		return
	}
	for _, s := range w.old[:n] {
		if len(w.free) < keep && w.free1(s) == nil {
			continue
		}
		os.Remove(s.path)
	}
	w.old = slices.Delete(w.old, 0, n)
	_ = syncDir(w.dir)
}

// size returns the bytes of the log's segments in use.
func (w *walWriter) size() int64 { return int64(len(w.old))*w.segSize + w.off }

func (w *walWriter) close() error {
	if w.f == nil {
		return nil
	}
	err := w.sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	return err
}
