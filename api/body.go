package api

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/gofiber/fiber/v2"
)

// Request bodies are bounded after their Content-Encoding is undone: a
// 1 MB gzip body can inflate to a gigabyte, so the limit that counts is the
// decoded one. Fiber would inflate without a bound (Ctx.Body, FormValue,
// MultipartForm), so limitBody decodes every body itself, before
// authentication reads a form field, and hands the handlers a plain body
// of at most the limit, held in memory: multipart forms are then parsed
// from memory and never spooled to disk.

// errTooLarge is a body past its limit once decoded.
var errTooLarge = errors.New("body too large")

// contentEncodings returns the codings of c's body, in the order they were
// applied (RFC 9110 8.4), without "identity"; an unsupported one is a 415.
func contentEncodings(c *fiber.Ctx) ([]string, error) {
	h := c.Get(fiber.HeaderContentEncoding)
	if h == "" {
		return nil, nil
	}
	var out []string
	for _, e := range strings.Split(h, ",") {
		switch e = strings.ToLower(strings.TrimSpace(e)); e {
		case "", "identity":
		case "gzip", "x-gzip", "deflate", "br":
			out = append(out, e)
		default:
			return nil, fiber.NewError(fiber.StatusUnsupportedMediaType,
				fmt.Sprintf("Content-Encoding %q is not supported: send gzip, deflate, br or no encoding", truncate(e, 40)))
		}
	}
	if len(out) > 2 {
		return nil, fiber.NewError(fiber.StatusUnsupportedMediaType, "at most two Content-Encodings, please")
	}
	return out, nil
}

// decodeBody returns r with encodings undone (the last applied first),
// reading at most limit decoded bytes before failing with errTooLarge. The
// close function releases the decoders.
func decodeBody(r io.Reader, encodings []string, limit int64) (io.Reader, func(), error) {
	var closers []io.Closer
	closeAll := func() {
		for _, c := range closers {
			c.Close()
		}
	}
	for i := len(encodings) - 1; i >= 0; i-- {
		switch encodings[i] {
		case "gzip", "x-gzip":
			zr, err := gzip.NewReader(r)
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("gzip body: %w", err)
			}
			closers = append(closers, zr)
			r = zr
		case "deflate":
			zr, err := zlib.NewReader(r)
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("deflate body: %w", err)
			}
			closers = append(closers, zr)
			r = zr
		case "br":
			r = brotli.NewReader(r)
		}
	}
	return &boundedReader{r: r, left: limit}, closeAll, nil
}

// boundedReader fails with errTooLarge once more than its limit was read.
type boundedReader struct {
	r    io.Reader
	left int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errTooLarge
	}
	return n, err
}

// bodyError is the answer to a body that could not be read: 413 past the
// limit, 408 for an upload that stalled, 400 for a broken encoding. The
// connection is closed: the rest of the body was not read.
func bodyError(c *fiber.Ctx, err error, limit int64, idle time.Duration) *fiber.Error {
	c.Context().SetConnectionClose()
	var ne net.Error
	var fe *fiber.Error
	switch {
	case errors.As(err, &fe): // 415 and the like, as they are
		return fe
	case errors.Is(err, errTooLarge):
		return fiber.NewError(fiber.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes (once decoded)", limit))
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		if errors.As(err, new(errTooSlow)) {
			return fiber.NewError(fiber.StatusRequestTimeout, fmt.Sprintf("the upload stalled: slower than %d bytes a second after %s", minUploadRate, idle))
		}
		return fiber.NewError(fiber.StatusRequestTimeout, fmt.Sprintf("the upload stalled: no data for %s", idle))
	}
	return fiber.NewError(fiber.StatusBadRequest, "reading the request body: "+err.Error())
}

// limitBody holds every request body but an import's to limit bytes once
// decoded, and leaves it plain (Content-Encoding removed) and in memory.
// It runs before authentication, so what an anonymous client can make the
// server hold is bounded too. Imports (isImport) stream: their handler
// reads the body itself after authentication, through importBody.
func limitBody(limit int, idle time.Duration) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if isImport(c.Method(), c.Path()) {
			return c.Next()
		}
		req := c.Request()
		encodings, err := contentEncodings(c)
		if err != nil {
			c.Context().SetConnectionClose()
			return err
		}
		if !req.IsBodyStream() && len(encodings) == 0 {
			return c.Next() // read whole by the server, within its BodyLimit
		}
		if req.Header.ContentLength() > limit {
			c.Context().SetConnectionClose() // the unread body must not be taken for the next request
			return fiber.ErrRequestEntityTooLarge
		}
		// Body() of a streaming request would read all of it: only the
		// stream itself is read, within the limit.
		var raw io.Reader
		if req.IsBodyStream() {
			raw = &boundedReader{r: &stickyReader{r: c.Context().RequestBodyStream()}, left: int64(limit)}
		} else {
			raw = bytes.NewReader(req.Body())
		}
		r, done, err := decodeBody(raw, encodings, int64(limit))
		if err != nil {
			return bodyError(c, err, int64(limit), idle)
		}
		defer done()
		b, err := io.ReadAll(r)
		if err != nil {
			return bodyError(c, err, int64(limit), idle)
		}
		req.Header.Del(fiber.HeaderContentEncoding)
		req.SetBody(b)
		return c.Next()
	}
}

// isImport reports whether a request is a history import (the API's, or
// the dashboard's import form), whose body streams past the body limit (up
// to the import limit).
func isImport(method, path string) bool {
	if method == fiber.MethodPost && path == importFormPath {
		return true
	}
	rest, ok := strings.CutPrefix(path, "/api/v1/meters/")
	return ok && method == fiber.MethodPost && strings.HasSuffix(rest, "/import") && strings.Count(rest, "/") == 1
}

// importBody returns the body of an import, decoded, failing past limit
// bytes (raw or decoded). A stalled upload fails after idle without data,
// however long the whole upload takes.
func importBody(c *fiber.Ctx, limit int64, idle time.Duration) (io.Reader, func(), error) {
	encodings, err := contentEncodings(c)
	if err != nil {
		return nil, nil, err
	}
	req := c.Request()
	var raw io.Reader
	if req.IsBodyStream() { // not Body(), which would read all of it
		raw = &idleReader{r: &stickyReader{r: c.Context().RequestBodyStream()}, conn: c.Context().Conn(), idle: idle}
	} else {
		raw = bytes.NewReader(req.Body())
	}
	return decodeBody(&boundedReader{r: raw, left: limit}, encodings, limit)
}

// stickyReader returns, once its reader has failed or ended, that error
// again without reading. fasthttp's stream of a chunked body keeps no
// state past its end: a Read after its io.EOF (bufio and others make one)
// waits for another chunk that never comes, and an upload with
// Transfer-Encoding: chunked (curl -T -, any client streaming a body of
// unknown length) ended in 408 after the idle time.
type stickyReader struct {
	r   io.Reader
	err error
}

func (r *stickyReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.r.Read(p)
	r.err = err
	return n, err
}

// idleReader moves the connection's read deadline forward as data comes:
// the server's ReadTimeout bounds a whole request, which a large upload
// outlasts while its client is sending steadily.
//
// It also holds the upload to a least pace, minUploadRate over each idle
// time: an import holds the only import slot while it streams, and a byte
// sent every idle time less a second would otherwise hold it for ever.
type idleReader struct {
	r     io.Reader
	conn  net.Conn
	idle  time.Duration
	moved time.Time
	// The window the pace is measured over: its start, and the bytes read
	// since.
	since time.Time
	read  int64
}

// minUploadRate is the least pace of an upload, in bytes a second over
// each http.read_timeout: a year of quarter-hours in a CSV (about 1 MB)
// takes a quarter of an hour at it.
const minUploadRate = 1024

// errTooSlow is an upload slower than minUploadRate: a timeout, as a
// stalled one is.
type errTooSlow struct{}

func (errTooSlow) Error() string {
	return fmt.Sprintf("the upload is slower than %d bytes a second", minUploadRate)
}
func (errTooSlow) Timeout() bool   { return true }
func (errTooSlow) Temporary() bool { return false }

func (r *idleReader) Read(p []byte) (int, error) {
	now := time.Now()
	if r.since.IsZero() {
		r.since = now
	}
	if r.idle > 0 && now.Sub(r.since) >= r.idle {
		if float64(r.read) < minUploadRate*now.Sub(r.since).Seconds() {
			return 0, errTooSlow{}
		}
		r.since, r.read = now, 0
	}
	if r.conn != nil && r.idle > 0 && now.Sub(r.moved) > min(time.Second, r.idle/4) {
		_ = r.conn.SetReadDeadline(now.Add(r.idle))
		r.moved = now
	}
	n, err := r.r.Read(p)
	r.read += int64(n)
	return n, err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return cutUTF8(s, n) + "..."
	}
	return s
}

// readJSON reads the body, a JSON noun (described, for the error), into v:
// 415 unless it is sent as JSON, 400 for a body that is not one such value
// or has fields v does not.
func readJSON(c *fiber.Ctx, noun, described string, v any) error {
	if ct := c.Get(fiber.HeaderContentType); ct != "" && !strings.HasPrefix(ct, fiber.MIMEApplicationJSON) {
		return fiber.NewError(fiber.StatusUnsupportedMediaType, "send the "+noun+" as application/json")
	}
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &paramError{Name: "body", Detail: "not a JSON " + described + ": " + err.Error()}
	}
	if dec.More() {
		return &paramError{Name: "body", Detail: "more than one JSON value"}
	}
	return nil
}
