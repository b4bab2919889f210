// Package crypt encrypts backups and archives at rest with AES-256-GCM.
//
// A file is streamed in chunks, so one of any size goes through in constant
// memory and a damaged one is refused at the first bad chunk. The format
// follows the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár):
//
//	header: "VATIOENC" | version 1 | key id (8 bytes) | nonce prefix (7 bytes)
//	chunks: AES-256-GCM of 64 KiB of plaintext each (the last may be
//	        shorter, or empty), with the nonce prefix | chunk counter
//	        (4 bytes, big-endian) | 1 for the last chunk, 0 before it,
//	        and the header as additional data.
//
// The last-chunk flag makes a cut file fail to open rather than read as a
// shorter one; the counter makes reordered chunks fail; the key id (the
// first 8 bytes of the key's SHA-256) tells "encrypted with another key"
// apart from damage, without saying anything of the key.
package crypt

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Magic opens every encrypted file.
const Magic = "VATIOENC"

const (
	version    = 1
	headerSize = len(Magic) + 1 + 8 + 7
	chunkSize  = 64 << 10
	tagSize    = 16
	maxChunks  = 1<<32 - 1
)

// Errors of decryption.
var (
	// ErrWrongKey is a file encrypted with another key.
	ErrWrongKey = errors.New("crypt: the file was encrypted with another key")
	// ErrDamaged is a file changed, cut or reordered since it was written.
	ErrDamaged = errors.New("crypt: the file is damaged or was cut short")
	// ErrNotEncrypted is a file that does not start as this package's do.
	ErrNotEncrypted = errors.New("crypt: not an encrypted file")
)

// Key is an AES-256 key.
type Key struct {
	aead cipher.AEAD
	id   [8]byte
}

// ParseKey reads a key of 32 bytes written as 64 hex digits or in base64
// (as `openssl rand -base64 32` prints). Its errors never hold the key.
func ParseKey(s string) (*Key, error) {
	s = strings.TrimSpace(s)
	var raw []byte
	if len(s) == 64 {
		raw, _ = hex.DecodeString(s)
	}
	if raw == nil {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(s); err == nil {
				raw = b
				break
			}
		}
	}
	if len(raw) != 32 {
		return nil, errors.New("not 32 bytes in base64 or 64 hex digits (make one with: openssl rand -base64 32)")
	}
	return NewKey(raw)
}

// NewKey makes a Key of 32 raw bytes.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != 32 {
		return nil, errors.New("crypt: a key has 32 bytes")
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &Key{aead: aead}
	sum := sha256.Sum256(raw)
	copy(k.id[:], sum[:])
	return k, nil
}

// ID names the key without revealing it, for logs: 16 hex digits.
func (k *Key) ID() string { return hex.EncodeToString(k.id[:]) }

// IsEncrypted reports whether r's next bytes open an encrypted file; it
// only peeks.
func IsEncrypted(r *bufio.Reader) bool {
	b, _ := r.Peek(len(Magic))
	return string(b) == Magic
}

// Writer encrypts what is written to it; Close writes the last chunk
// (and does not close the underlying writer).
type Writer struct {
	w      io.Writer
	key    *Key
	header []byte
	nonce  [12]byte
	n      uint32
	buf    []byte
	out    []byte
	closed bool
	err    error
}

// NewWriter writes the header to w and returns the Writer of the rest.
func NewWriter(w io.Writer, k *Key) (*Writer, error) {
	h := make([]byte, 0, headerSize)
	h = append(h, Magic...)
	h = append(h, version)
	h = append(h, k.id[:]...)
	var prefix [7]byte
	if _, err := rand.Read(prefix[:]); err != nil {
		return nil, err
	}
	h = append(h, prefix[:]...)
	if _, err := w.Write(h); err != nil {
		return nil, err
	}
	cw := &Writer{w: w, key: k, header: h, buf: make([]byte, 0, chunkSize), out: make([]byte, 0, chunkSize+tagSize)}
	copy(cw.nonce[:7], prefix[:])
	return cw, nil
}

func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("crypt: write after close")
	}
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		if len(w.buf) == chunkSize { // full, and more follows: not the last
			if w.err = w.seal(false); w.err != nil {
				return written, w.err
			}
		}
		n := copy(w.buf[len(w.buf):chunkSize], p)
		w.buf = w.buf[:len(w.buf)+n]
		p = p[n:]
		written += n
	}
	return written, nil
}

func (w *Writer) seal(last bool) error {
	if w.n == maxChunks {
		return errors.New("crypt: file too large")
	}
	binary.BigEndian.PutUint32(w.nonce[7:11], w.n)
	w.nonce[11] = 0
	if last {
		w.nonce[11] = 1
	}
	w.out = w.key.aead.Seal(w.out[:0], w.nonce[:], w.buf, w.header)
	w.n++
	w.buf = w.buf[:0]
	_, err := w.w.Write(w.out)
	return err
}

// Close writes the last chunk.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	w.err = w.seal(true)
	return w.err
}

// Reader decrypts a file written by Writer. Read fails with ErrDamaged at
// the first chunk that does not open, and at the end of a file whose last
// chunk is missing.
type Reader struct {
	r      *bufio.Reader
	key    *Key
	header []byte
	nonce  [12]byte
	n      uint32
	in     []byte
	plain  []byte
	done   bool
	err    error
}

// NewReader reads the header from r; it fails with ErrNotEncrypted,
// ErrWrongKey or ErrDamaged.
func NewReader(r io.Reader, k *Key) (*Reader, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, chunkSize+tagSize+1)
	}
	h := make([]byte, headerSize)
	if n, err := io.ReadFull(br, h); err != nil {
		if n >= len(Magic) && string(h[:len(Magic)]) == Magic {
			return nil, ErrDamaged
		}
		return nil, ErrNotEncrypted
	}
	if string(h[:len(Magic)]) != Magic {
		return nil, ErrNotEncrypted
	}
	if h[len(Magic)] != version {
		return nil, fmt.Errorf("crypt: format version %d; this Vatio reads %d", h[len(Magic)], version)
	}
	if !bytes.Equal(h[len(Magic)+1:len(Magic)+9], k.id[:]) {
		return nil, ErrWrongKey
	}
	cr := &Reader{r: br, key: k, header: h, in: make([]byte, chunkSize+tagSize)}
	copy(cr.nonce[:7], h[len(Magic)+9:])
	return cr, nil
}

func (r *Reader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		r.err = r.open()
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// open reads and opens the next chunk.
func (r *Reader) open() error {
	n, err := io.ReadFull(r.r, r.in)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		r.done = true // a short chunk is the last
	case err != nil:
		return err
	default:
		if _, err := r.r.Peek(1); errors.Is(err, io.EOF) {
			r.done = true // a full chunk at the end is the last
		} else if err != nil {
			return err
		}
	}
	if n < tagSize {
		return ErrDamaged
	}
	binary.BigEndian.PutUint32(r.nonce[7:11], r.n)
	r.nonce[11] = 0
	if r.done {
		r.nonce[11] = 1
	}
	plain, err := r.key.aead.Open(r.in[:0], r.nonce[:], r.in[:n], r.header)
	if err != nil {
		return ErrDamaged
	}
	r.n++
	r.plain = plain
	return nil
}

// SealedSize returns the size of n bytes once encrypted, so that an
// upload can announce its length before it streams.
func SealedSize(n int64) int64 {
	chunks := n / chunkSize
	if n%chunkSize != 0 || n == 0 {
		chunks++
	}
	return int64(headerSize) + n + chunks*tagSize
}

// KeyID returns the id of the key a file was encrypted with (see Key.ID),
// from its first bytes; false when they are not an encrypted file's.
func KeyID(r *bufio.Reader) (string, bool) {
	h, err := r.Peek(len(Magic) + 1 + 8)
	if err != nil || string(h[:len(Magic)]) != Magic {
		return "", false
	}
	return hex.EncodeToString(h[len(Magic)+1:]), true
}
