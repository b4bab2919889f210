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
		}, "more than 64 KiB (65536 bytes)", 4 << 20},
		{"many readings", func() io.Reader {
			return io.MultiReader(strings.NewReader(head+blockHead), repeated(reading, 3_000_000))
		}, "more than 500000 interval readings", 120 << 20},
		{"many comments", func() io.Reader {
			return io.MultiReader(strings.NewReader("<feed>"), repeated("<!--"+strings.Repeat("<", 4000)+"-->", 50_000))
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

// TestGreenButtonTokenLimit reads files of one token of 120 MiB that
// holds a '<' every 1000 bytes: a comment, a CDATA section, a processing
// instruction, a directive, a tag's attribute (with '>', as it may not hold
// '<'). Each is refused as soon as
// it passes the limit on one token, having allocated a few times the
// limit, not the token.
func TestGreenButtonTokenLimit(t *testing.T) {
	const chunks = 120 << 10 // 120 MiB of 1000 bytes
	tests := []struct{ name, open, close string }{
		{"comment", "<feed><!--", "--></feed>"},
		{"CDATA", "<feed><title><![CDATA[", "]]></title></feed>"},
		{"CDATA in an entry", gbHead + gbType("<uom>72</uom>") + "<entry><content><IntervalBlock><IntervalReading><value><![CDATA[", "]]></value></IntervalReading></IntervalBlock></content></entry></feed>"},
		{"processing instruction", "<feed><?pi ", "?></feed>"},
		{"directive", "<!DOCTYPE feed [<!ENTITY e '", "'>]><feed/>"},
		{"attribute", `<feed><entry><link href="`, `"/></entry></feed>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunk := strings.Repeat("x", 999) + "<"
			if tt.name == "attribute" {
				chunk = strings.Repeat("x", 999) + ">"
			}
			in := io.MultiReader(strings.NewReader(tt.open), repeated(chunk, chunks), strings.NewReader(tt.close))
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := testDecoder().ReadHistory(in, "m", now, ImportOptions{Format: FormatGreenButton, MaxGap: 10 * time.Minute}, nil)
			runtime.ReadMemStats(&after)
			var le *LineError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), "token of more than 64 KiB (65536 bytes)") {
				t.Fatalf("got %v, want a line error naming the token limit", err)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 2<<20 {
				t.Errorf("allocated %d bytes reading a token of %d bytes, want at most %d", got, len(chunk)*chunks, 2<<20)
			}
		})
	}
}

// TestGreenButtonFlows reads a solar customer's feed, which gives energy
// drawn (flowDirection 1), sent (19) and net (4) for the same hours: net
// is forward less reverse, so it is left out where they are given, and
// read only for an hour given neither.
func TestGreenButtonFlows(t *testing.T) {
	reading := func(start int64, wh int) string {
		return fmt.Sprintf("<IntervalReading><timePeriod><duration>3600</duration><start>%d</start></timePeriod><value>%d</value></IntervalReading>", start, wh)
	}
	flow := func(n, dir int, readings string) string {
		mr := fmt.Sprintf("U/1/MeterReading/%d", n)
		return fmt.Sprintf(`<entry><link rel="self" href="%s"/><link rel="related" href="RT/%d"/><content><MeterReading/></content></entry>`, mr, n) +
			fmt.Sprintf(`<entry><link rel="self" href="RT/%d"/><content><ReadingType><accumulationBehaviour>4</accumulationBehaviour><flowDirection>%d</flowDirection><uom>72</uom></ReadingType></content></entry>`, n, dir) +
			`<entry><link rel="up" href="` + mr + `/IntervalBlock"/><content><IntervalBlock>` + readings + `</IntervalBlock></content></entry>`
	}
	const h = 1764000000
	type energy struct{ importWh, exportWh float64 }
	tests := []struct {
		name string
		feed string
		want []energy
	}{
		{"forward, reverse and net",
			flow(1, 1, reading(h, 3000)+reading(h+3600, 500)+reading(h+7200, 0)) +
				flow(2, 19, reading(h, 1000)+reading(h+3600, 2500)+reading(h+7200, 400)) +
				flow(3, 4, reading(h, 2000)+reading(h+3600, -2000)+reading(h+7200, -400)+reading(h+10800, 700)),
			[]energy{{3000, 1000}, {500, 2500}, {0, 400}, {700, 0}}},
		{"forward and net", // the attacker's file: 1 kWh, not 2
			flow(1, 1, reading(h, 1000)+reading(h+3600, 1000)) + flow(2, 4, reading(h, 1000)+reading(h+3600, 1000)),
			[]energy{{1000, 0}, {1000, 0}}},
		{"forward and net: net gives the export",
			flow(1, 1, reading(h, 3000)+reading(h+3600, 500)+reading(h+7200, 0)) +
				flow(2, 4, reading(h, 2000)+reading(h+3600, -2000)+reading(h+7200, -400)),
			[]energy{{3000, 1000}, {500, 2500}, {0, 400}}},
		{"reverse and net: net gives the import",
			flow(1, 19, reading(h, 1000)+reading(h+3600, 2500)) + flow(2, 4, reading(h, 2000)+reading(h+3600, -2000)),
			[]energy{{3000, 1000}, {500, 2500}}},
		{"net first, then reverse",
			flow(1, 4, reading(h, -300)+reading(h+3600, 250)) + flow(2, 19, reading(h, 300)),
			[]energy{{0, 300}, {250, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := `<feed xmlns="http://www.w3.org/2005/Atom">` + tt.feed + "</feed>"
			src := newGreenButtonSource(strings.NewReader(in))
			var got []energy
			for {
				rec, err := src.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if want := time.Unix(h, 0).Add(time.Duration(len(got)) * time.Hour); !rec.at.Equal(want) || rec.length != time.Hour {
					t.Fatalf("interval %d at %s for %s, want %s for 1h", len(got), rec.at, rec.length, want)
				}
				got = append(got, energy{rec.importWh, rec.exportWh})
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got drawn and sent Wh %v, want %v", got, tt.want)
			}
			// Stored, each hour is its net mean power.
			rs, err := testDecoder().ReadHistory(strings.NewReader(in), "m", now, ImportOptions{Format: FormatGreenButton, MaxGap: time.Hour}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				i := int(r.Time.Sub(time.Unix(h, 0)) / time.Hour)
				if w := tt.want[i].importWh - tt.want[i].exportWh; r.PowerW != w {
					t.Errorf("reading at %s: %g W, want %g W", r.Time, r.PowerW, w)
				}
			}
		})
	}
}
