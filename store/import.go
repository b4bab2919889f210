package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

// ImportChunk is how many readings of a large import are stored in one
// transaction: it bounds the memory an import of any size takes.
const ImportChunk = 50_000

// ImportFrom stores the readings next returns (io.EOF after the last) as a
// history import, in bounded memory whatever their number. Nothing is
// stored until next has returned every reading: its first error fails the
// import with nothing stored. An import of up to ImportChunk readings is
// then stored in one transaction, all or nothing, as Import does; a larger
// one is staged in a file of StagingDir while it is read, then stored
// ImportChunk readings a transaction. No reading is refused then: one whose
// energy counter does not fit the meter's (a meter replaced) is stored
// with its power alone. Should the storing stop half-way (the process
// killed, the disk full), sending the same history again completes it:
// readings at instants already stored replace them, none is added twice. progress, if not nil, is told how many of all the readings were
// stored.
func (s *Store) ImportFrom(next func() (meter.Reading, error), progress func(stored, all int)) (read, added int, err error) {
	chunk := make([]meter.Reading, 0, min(ImportChunk, 1024))
	var stage *staging
	defer func() {
		if stage != nil {
			stage.remove()
		}
	}()
	for {
		r, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return read, 0, err
		}
		read++
		if stage == nil && len(chunk) < ImportChunk {
			chunk = append(chunk, r)
			continue
		}
		if stage == nil {
			if stage, err = newStaging(s.stagingDir); err != nil {
				return read, 0, err
			}
			for _, c := range chunk {
				if err := stage.write(c); err != nil {
					return read, 0, err
				}
			}
		}
		if err := stage.write(r); err != nil {
			return read, 0, err
		}
	}
	report := func(base int) func(int) {
		if progress == nil {
			return nil
		}
		return func(k int) { progress(base+k, read) }
	}
	if stage == nil {
		added, err := s.Import(chunk, report(0))
		if err == nil && progress != nil {
			progress(read, read)
		}
		return read, added, err
	}
	if err := stage.rewind(); err != nil {
		return read, 0, err
	}
	stored := 0
	for stored < read {
		chunk = chunk[:0]
		for len(chunk) < ImportChunk && stored+len(chunk) < read {
			r, err := stage.read()
			if err != nil {
				return read, added, err
			}
			chunk = append(chunk, r)
		}
		n, err := s.Import(chunk, report(stored))
		if err != nil {
			return read, added, fmt.Errorf("%w (after %d of %d readings: send the same history again to complete it)", err, stored, read)
		}
		added += n
		stored += len(chunk)
		if progress != nil {
			progress(stored, read)
		}
	}
	return read, added, nil
}

// staging is a file of readings in a compact binary form, about 11 bytes
// a reading of one meter's history: a byte of flags; the meter and source
// (length-prefixed) only when they differ from the record before; the
// time as a varint of nanoseconds since the record before; the power, and
// the energy and power factor when present, as float64 bits.
type staging struct {
	f *os.File
	w *bufio.Writer
	r *bufio.Reader
	b []byte
	// The meter, source and time of the last record written or read.
	id, so string
	ns     int64
}

const (
	flagEnergy = 1 << iota
	flagStamped
	flagPF
	flagNames // meter and source follow
)

func newStaging(dir string) (*staging, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: import staging: %w", err)
	}
	f, err := os.CreateTemp(dir, ".import-*.staging")
	if err != nil {
		return nil, fmt.Errorf("store: import staging: %w", err)
	}
	return &staging{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

func (st *staging) write(r meter.Reading) error {
	var flags byte
	if r.HasEnergy {
		flags |= flagEnergy
	}
	if r.Stamped {
		flags |= flagStamped
	}
	if r.HasPF {
		flags |= flagPF
	}
	names := r.Meter != st.id || r.Source != st.so
	if names {
		flags |= flagNames
	}
	b := append(st.b[:0], flags)
	if names {
		b = binary.AppendUvarint(b, uint64(len(r.Meter)))
		b = append(b, r.Meter...)
		b = binary.AppendUvarint(b, uint64(len(r.Source)))
		b = append(b, r.Source...)
		st.id, st.so = r.Meter, r.Source
	}
	ns := r.Time.UnixNano()
	b = binary.AppendVarint(b, ns-st.ns)
	st.ns = ns
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.PowerW))
	if r.HasEnergy {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.EnergyWh))
	}
	if r.HasPF {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.PowerFactor))
	}
	st.b = b
	if _, err := st.w.Write(b); err != nil {
		return fmt.Errorf("store: import staging: %w", err)
	}
	return nil
}

func (st *staging) rewind() error {
	if err := st.w.Flush(); err != nil {
		return fmt.Errorf("store: import staging: %w", err)
	}
	if _, err := st.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("store: import staging: %w", err)
	}
	st.r = bufio.NewReaderSize(st.f, 64<<10)
	st.id, st.so, st.ns = "", "", 0
	return nil
}

func (st *staging) read() (meter.Reading, error) {
	var r meter.Reading
	fail := func(err error) (meter.Reading, error) {
		return r, fmt.Errorf("store: import staging: %w", err)
	}
	str := func() (string, error) {
		n, err := binary.ReadUvarint(st.r)
		if err != nil {
			return "", err
		}
		if n > 1024 {
			return "", errors.New("bad length")
		}
		b := make([]byte, n)
		_, err = io.ReadFull(st.r, b)
		return string(b), err
	}
	flags, err := st.r.ReadByte()
	if err != nil {
		return fail(err)
	}
	if flags&flagNames != 0 {
		if st.id, err = str(); err != nil {
			return fail(err)
		}
		if st.so, err = str(); err != nil {
			return fail(err)
		}
	}
	delta, err := binary.ReadVarint(st.r)
	if err != nil {
		return fail(err)
	}
	st.ns += delta
	f64 := func() (float64, error) {
		var b [8]byte
		_, err := io.ReadFull(st.r, b[:])
		return math.Float64frombits(binary.LittleEndian.Uint64(b[:])), err
	}
	r.Meter, r.Source, r.Time = st.id, st.so, time.Unix(0, st.ns).UTC()
	r.HasEnergy, r.Stamped, r.HasPF = flags&flagEnergy != 0, flags&flagStamped != 0, flags&flagPF != 0
	if r.PowerW, err = f64(); err != nil {
		return fail(err)
	}
	if r.HasEnergy {
		if r.EnergyWh, err = f64(); err != nil {
			return fail(err)
		}
	}
	if r.HasPF {
		if r.PowerFactor, err = f64(); err != nil {
			return fail(err)
		}
	}
	return r, nil
}

func (st *staging) remove() {
	st.f.Close()
	os.Remove(st.f.Name())
}
