package meter

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// repeatReader reads s n times, without holding more than s.
type repeatReader struct {
	s   string
	n   int
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	written := 0
	for written < len(p) && r.n > 0 {
		c := copy(p[written:], r.s[r.off:])
		written += c
		if r.off += c; r.off == len(r.s) {
			r.off, r.n = 0, r.n-1
		}
	}
	if written == 0 {
		return 0, io.EOF
	}
	return written, nil
}

func repeated(s string, n int) io.Reader { return &repeatReader{s: s, n: n} }

// TestGreenButtonHostile reads files made to take memory: elements nested a
// million deep, a text of a gigabyte, a block of three million readings,
// two hundred megabytes of XML. Each is refused with an error naming its
// limit, having allocated far less than the file's decoded size.
func TestGreenButtonHostile(t *testing.T) {
	reading := "<IntervalReading><timePeriod><duration>3600</duration><start>1764000000</start></timePeriod><value>5</value></IntervalReading>"
	head := gbHead + gbType("<uom>72</uom>")
	blockHead := `<entry><link rel="up" href="U/1/MeterReading/1/IntervalBlock"/><content><IntervalBlock xmlns="http://naesb.org/espi">`
	tests := []struct {
		name     string
		in       func() io.Reader
		want     string
		maxBytes uint64 // heap in use at most
	}{
		{"deep", func() io.Reader {
			return io.MultiReader(strings.NewReader("<feed>"), repeated("<a>", 1_000_000))
		}, "nested more than 32 deep", 1 << 20},
		{"huge text", func() io.Reader {
			return io.MultiReader(strings.NewReader(head+blockHead+"<IntervalReading><value>"), repeated(strings.Repeat("7", 1<<20), 1000))
		}, "<value> holds more than 1024 bytes of text", 4 << 20},
		{"huge text outside entries", func() io.Reader {
			return io.MultiReader(strings.NewReader("<feed><title>"), repeated(strings.Repeat("x", 1<<20), 1000))
		}, "more than 65536 bytes", 4 << 20},
		{"many readings", func() io.Reader {
			return io.MultiReader(strings.NewReader(head+blockHead), repeated(reading, 3_000_000))
		}, "more than 500000 interval readings", 120 << 20},
		{"huge comments", func() io.Reader {
			return io.MultiReader(strings.NewReader("<feed>"), repeated("<!--"+strings.Repeat("<", 1<<20)+"-->", 200))
		}, "more than 128 MiB", 16 << 20},
		{"many links", func() io.Reader {
			return io.MultiReader(strings.NewReader("<feed><entry>"), repeated(`<link rel="x" href="y"/>`, 1_000_000))
		}, "more than 64 links", 1 << 20},
		{"long href", func() io.Reader {
			return strings.NewReader(`<feed><entry><link rel="self" href="` + strings.Repeat("h", 4096) + `"/></entry></feed>`)
		}, "a link of more than 1024 bytes", 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			peak := make(chan uint64)
			stop := make(chan struct{})
			go func() { // samples the heap in use while the file is read
				var m runtime.MemStats
				var most uint64
				tick := time.NewTicker(5 * time.Millisecond)
				defer tick.Stop()
				for {
					runtime.ReadMemStats(&m)
					most = max(most, m.HeapAlloc)
					select {
					case <-stop:
						peak <- most
						return
					case <-tick.C:
					}
				}
			}()
			_, err := testDecoder().ReadHistory(tt.in(), "m", now, ImportOptions{Format: FormatGreenButton, MaxGap: 10 * time.Minute}, nil)
			close(stop)
			most := <-peak
			var le *LineError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a line error with %q", err, tt.want)
			}
			if got := most - min(most, before.HeapAlloc); got > tt.maxBytes {
				t.Errorf("heap grew by %d bytes, want at most %d", got, tt.maxBytes)
			}
		})
	}
}

// TestGreenButtonDuplicates sums import and export of an interval, and
// refuses a second reading of the same flow direction for it: the same
// IntervalBlock twice would otherwise count its energy twice.
func TestGreenButtonDuplicates(t *testing.T) {
	reading := "<IntervalReading><timePeriod><duration>3600</duration><start>1764000000</start></timePeriod><value>%d</value></IntervalReading>"
	forward := gbHead + gbType("<uom>72</uom><flowDirection>1</flowDirection>")
	twoFlows := forward +
		`<entry><link rel="self" href="U/1/MeterReading/2"/><link rel="related" href="RT/2"/><content><MeterReading/></content></entry>` +
		`<entry><link rel="self" href="RT/2"/><content><ReadingType><uom>72</uom><flowDirection>19</flowDirection></ReadingType></content></entry>` +
		gbBlockOf(fmt.Sprintf(reading, 3000)) +
		`<entry><link rel="up" href="U/1/MeterReading/2/IntervalBlock"/><content><IntervalBlock>` + fmt.Sprintf(reading, 1000) + `</IntervalBlock></content></entry></feed>`
	rs, err := testDecoder().ReadHistory(strings.NewReader(twoFlows), "m", now, ImportOptions{MaxGap: time.Hour}, nil)
	if err != nil || len(rs) != 2 || rs[0].PowerW != 2000 {
		t.Fatalf("3 kWh drawn and 1 sent in an hour: %+v %v, want 2000 W net", rs, err)
	}
	for _, in := range []string{
		forward + gbBlockOf(fmt.Sprintf(reading, 3000)) + gbBlockOf(fmt.Sprintf(reading, 3000)) + "</feed>",
		forward + gbBlockOf(fmt.Sprintf(reading, 3000)+fmt.Sprintf(reading, 1000)) + "</feed>",
	} {
		_, err := testDecoder().ReadHistory(strings.NewReader(in), "m", now, ImportOptions{MaxGap: time.Hour}, nil)
		var le *LineError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), "a second reading of energy drawn (flowDirection 1) for the interval from 2025-11-24T16:00:00Z") {
			t.Errorf("the same interval twice: %v, want a line error", err)
		}
	}
}
