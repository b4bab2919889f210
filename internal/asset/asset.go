// Package asset serves files held in memory (embedded in the binary) as
// browsers fetch them best: brotli or gzip as Accept-Encoding asks, each
// encoding with an ETag of its own, 304 when the client has that one.
//
// The encodings are made at build time: make assets runs precompress.mjs
// (Node's brotli at quality 11, gzip level 9), which writes name.br and
// name.gz beside each file, and they are embedded with it. Brotli's best
// quality costs seconds a megabyte in Go, tens of seconds on a small board,
// so it is not paid at start-up. A file the build did not compress (a plain
// go build), or whose sibling no longer decodes to it (the file was edited
// since), is compressed here instead, once, on first use, at a quality
// that is cheap. It never reads the disk or the network.
package asset

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"io/fs"
	"math/bits"
	"mime"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/gofiber/fiber/v2"
)

// File is one file ready to serve. It is safe for concurrent use.
type File struct {
	// Name is its path ("app.js", "vendor/echarts.min.js").
	Name string
	// ContentType is its media type, from its extension.
	ContentType string
	// Version is a strong hash of its content (URL-safe base64 of the first
	// 12 bytes of its SHA-256): its ETag, and the ?v= of its hashed URL.
	Version string

	body []byte
	// encodings are brotli then gzip, in the order they are preferred.
	encodings []*encoding
}

// encoding is one Content-Encoding of a file.
type encoding struct {
	name   string // as in Content-Encoding: "br", "gzip"
	suffix string // of the ETag: "-br", "-gz"
	// bytes returns the encoded body, or nil when it is no smaller than
	// the file.
	bytes func() []byte
}

// New returns the file name holding body. br and gz are its encodings made
// at build time, or nil; they are checked on first use and made here when
// missing or stale.
func New(name string, body, br, gz []byte) *File {
	sum := sha256.Sum256(body)
	f := &File{
		Name:        name,
		ContentType: mime.TypeByExtension(path.Ext(name)),
		Version:     base64.RawURLEncoding.EncodeToString(sum[:12]),
		body:        body,
	}
	if f.ContentType == "" {
		f.ContentType = "application/octet-stream"
	}
	f.encodings = []*encoding{
		{name: "br", suffix: "-br", bytes: encoded(body, br, unbrotli, compressBrotli)},
		{name: "gzip", suffix: "-gz", bytes: encoded(body, gz, gunzip, compressGzip)},
	}
	return f
}

// Load returns the files under root of fsys by their path relative to root,
// leaving out dot files. A file's siblings name.br and name.gz are its
// encodings made at build time, not files of their own.
func Load(fsys fs.FS, root string) (map[string]*File, error) {
	out := map[string]*File{}
	err := fs.WalkDir(fsys, root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.HasSuffix(p, ".br") || strings.HasSuffix(p, ".gz") {
			return err
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		br, _ := fs.ReadFile(fsys, p+".br") // nil when the build made none
		gz, _ := fs.ReadFile(fsys, p+".gz")
		name := strings.TrimPrefix(p, root+"/")
		out[name] = New(name, body, br, gz)
		return nil
	})
	return out, err
}

// encoded returns the function that gives body's encoding: pre when it
// decodes to body, else body compressed now; nil when that is no smaller.
func encoded(body, pre []byte, decode func([]byte, int) ([]byte, error), compress func([]byte) []byte) func() []byte {
	return sync.OnceValue(func() []byte {
		z := pre
		if z == nil {
			z = compress(body)
		} else if got, err := decode(z, len(body)); err != nil || !bytes.Equal(got, body) {
			z = compress(body) // stale: the file changed after the build compressed it
		}
		if len(z) >= len(body) {
			return nil
		}
		return z
	})
}

// compressBrotli compresses at quality 6 with a window that fits the file:
// a tenth of the time quality 11 takes or less, for some 10% more bytes
// (ECharts: 335 KB instead of 299 KB).
func compressBrotli(body []byte) []byte {
	var buf bytes.Buffer
	w := brotli.NewWriterOptions(&buf, brotli.WriterOptions{Quality: 6, LGWin: max(10, min(24, bits.Len(uint(len(body)))))})
	w.Write(body) // a bytes.Buffer does not fail
	w.Close()
	return buf.Bytes()
}

func compressGzip(body []byte) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // a valid level
	w.Write(body)
	w.Close()
	return buf.Bytes()
}

// unbrotli and gunzip decode z, reading at most size+1 bytes of it.
func unbrotli(z []byte, size int) ([]byte, error) {
	return io.ReadAll(io.LimitReader(brotli.NewReader(bytes.NewReader(z)), int64(size)+1))
}

func gunzip(z []byte, size int) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(r, int64(size)+1))
}

// Serve answers c with f in the encoding the client prefers (brotli over
// gzip over none when it accepts them alike), with Vary: Accept-Encoding,
// that encoding's ETag ("<version>-br", "<version>-gz", "<version>") and
// cacheControl; 304 without a body when If-None-Match has that ETag.
func (f *File) Serve(c *fiber.Ctx, cacheControl string) error {
	body, e := f.negotiate(c.Get(fiber.HeaderAcceptEncoding))
	etag := `"` + f.Version
	if e != nil {
		etag += e.suffix
	}
	etag += `"`
	c.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
	c.Set(fiber.HeaderCacheControl, cacheControl)
	c.Set(fiber.HeaderETag, etag)
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), etag) {
		c.Status(fiber.StatusNotModified)
		return nil
	}
	c.Set(fiber.HeaderContentType, f.ContentType)
	if e != nil {
		c.Set(fiber.HeaderContentEncoding, e.name)
	}
	return c.Send(body)
}

// negotiate returns the body to send for an Accept-Encoding header and its
// encoding (nil for none): the acceptable one of highest q, ties going to
// brotli, then gzip, then none. The file as it is goes when nothing else
// is acceptable, even if the header refuses it too.
func (f *File) negotiate(header string) ([]byte, *encoding) {
	q := qualities(header)
	qOf := func(coding string) float64 {
		if v, ok := q[coding]; ok {
			return v
		}
		if v, ok := q["*"]; ok {
			return v
		}
		if coding == "identity" {
			return 1 // acceptable unless refused by name or by *
		}
		return 0
	}
	body, chosen, best := f.body, (*encoding)(nil), qOf("identity")
	for i := len(f.encodings) - 1; i >= 0; i-- { // the preferred last, to win ties
		e := f.encodings[i]
		if v := qOf(e.name); v > 0 && v >= best {
			if z := e.bytes(); z != nil {
				body, chosen, best = z, e, v
			}
		}
	}
	return body, chosen
}

// qualities parses an Accept-Encoding header into each coding's q value
// (lower case; x-gzip is gzip). A q that does not parse counts as 0.
func qualities(header string) map[string]float64 {
	q := map[string]float64{}
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding == "" {
			continue
		}
		if coding == "x-gzip" {
			coding = "gzip"
		}
		v := 1.0
		for _, p := range strings.Split(params, ";") {
			k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				var err error
				if v, err = strconv.ParseFloat(strings.TrimSpace(val), 64); err != nil || v < 0 || v > 1 {
					v = 0
				}
			}
		}
		q[coding] = v
	}
	return q
}

// etagMatches reports whether an If-None-Match header names etag (weak
// comparison, as RFC 9110 asks for If-None-Match).
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
