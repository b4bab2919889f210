package api

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
)

func compress(encoding string, data []byte) []byte {
	var buf bytes.Buffer
	var w io.WriteCloser
	switch encoding {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "deflate":
		w = zlib.NewWriter(&buf)
	case "br":
		w = brotli.NewWriter(&buf)
	default:
		return data
	}
	w.Write(data)
	w.Close()
	return buf.Bytes()
}

// TestDecodeBody decodes each encoding and both layers of two, and stops
// every one of them at the limit.
func TestDecodeBody(t *testing.T) {
	plain := []byte(strings.Repeat("timestamp,power_w\n", 100))
	for _, encs := range [][]string{nil, {"gzip"}, {"deflate"}, {"br"}, {"gzip", "br"}, {"deflate", "gzip"}} {
		body := plain
		for _, e := range encs {
			body = compress(e, body)
		}
		for _, limit := range []int64{int64(len(plain)), int64(len(plain)) - 1} {
			r, done, err := decodeBody(bytes.NewReader(body), encs, limit)
			if err != nil {
				t.Fatalf("%v: %v", encs, err)
			}
			got, err := io.ReadAll(r)
			done()
			switch {
			case limit >= int64(len(plain)) && (err != nil || !bytes.Equal(got, plain)):
				t.Errorf("%v, limit %d: %d bytes, %v; want the %d plain bytes", encs, limit, len(got), err, len(plain))
			case limit < int64(len(plain)) && !errors.Is(err, errTooLarge):
				t.Errorf("%v, limit %d: %d bytes, %v; want errTooLarge", encs, limit, len(got), err)
			}
		}
	}
}

// FuzzDecodeBody feeds any bytes as any encoding: never more than the
// limit comes out, and nothing panics.
func FuzzDecodeBody(f *testing.F) {
	for _, e := range []string{"gzip", "deflate", "br", ""} {
		f.Add(e, compress(e, []byte("user=admin&password=x")), int64(16))
		f.Add(e, compress(e, bytes.Repeat([]byte{0}, 1<<16)), int64(1000))
	}
	f.Fuzz(func(t *testing.T, encoding string, body []byte, limit int64) {
		if limit < 0 || limit > 1<<20 {
			return
		}
		var encs []string
		if encoding != "" {
			encs = strings.Split(encoding, ",")
			for _, e := range encs {
				if e != "gzip" && e != "x-gzip" && e != "deflate" && e != "br" {
					return
				}
			}
		}
		r, done, err := decodeBody(bytes.NewReader(body), encs, limit)
		if err != nil {
			return
		}
		defer done()
		got, err := io.ReadAll(io.LimitReader(r, limit+1<<20))
		if int64(len(got)) > limit+1 {
			t.Fatalf("%q: %d bytes out past the limit %d", encoding, len(got), limit)
		}
		if int64(len(got)) > limit && !errors.Is(err, errTooLarge) {
			t.Fatalf("%q: %d bytes past the limit %d without errTooLarge: %v", encoding, len(got), limit, err)
		}
	})
}
