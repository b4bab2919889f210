package crypt

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

func testKey(t testing.TB, b byte) *Key {
	t.Helper()
	k, err := NewKey(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func seal(t testing.TB, k *Key, plain []byte, writes int) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := NewWriter(&out, k)
	if err != nil {
		t.Fatal(err)
	}
	step := max(1, len(plain)/max(1, writes))
	for p := plain; len(p) > 0; {
		n := min(step, len(p))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func open(k *Key, sealed []byte) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(sealed), k)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestRoundTrip(t *testing.T) {
	k := testKey(t, 1)
	for _, size := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 2 * chunkSize, 3*chunkSize + 17} {
		plain := make([]byte, size)
		rand.Read(plain)
		for _, writes := range []int{1, 7, size + 1} {
			sealed := seal(t, k, plain, writes)
			chunks := size/chunkSize + 1
			if size > 0 && size%chunkSize == 0 {
				chunks = size / chunkSize // the last chunk is a full one
			}
			if want := headerSize + size + chunks*tagSize; len(sealed) != want || SealedSize(int64(size)) != int64(len(sealed)) {
				t.Errorf("%d bytes in %d writes: sealed to %d bytes, want %d (SealedSize %d)", size, writes, len(sealed), want, SealedSize(int64(size)))
			}
			if id, ok := KeyID(bufio.NewReader(bytes.NewReader(sealed))); !ok || id != k.ID() {
				t.Errorf("KeyID = %q, %v; want %q", id, ok, k.ID())
			}
			got, err := open(k, sealed)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%d bytes in %d writes: round trip %d bytes, %v", size, writes, len(got), err)
			}
		}
	}
	// The same plaintext twice gives two different files.
	a, b := seal(t, k, []byte("same"), 1), seal(t, k, []byte("same"), 1)
	if bytes.Equal(a, b) {
		t.Error("two encryptions of the same file are equal: the nonce is not random")
	}
	plain := bytes.Repeat([]byte("timestamp,power_w,energy_wh\n"), 1000)
	if bytes.Contains(seal(t, k, plain, 1), []byte("timestamp")) {
		t.Error("the plaintext shows through")
	}
}

// Every change to a sealed file is refused: another key, a cut anywhere,
// a flipped bit, chunks reordered or dropped, bytes added.
func TestTampering(t *testing.T) {
	k := testKey(t, 1)
	plain := make([]byte, 3*chunkSize+100)
	rand.Read(plain)
	sealed := seal(t, k, plain, 1)
	full := chunkSize + tagSize

	if _, err := open(testKey(t, 2), sealed); !errors.Is(err, ErrWrongKey) {
		t.Errorf("another key: %v, want ErrWrongKey", err)
	}
	for _, cut := range []int{headerSize - 1, headerSize, headerSize + 5, headerSize + full, headerSize + 2*full, headerSize + 3*full, len(sealed) - 1} {
		if _, err := open(k, sealed[:cut]); !errors.Is(err, ErrDamaged) {
			t.Errorf("cut at %d of %d: %v, want ErrDamaged", cut, len(sealed), err)
		}
	}
	for _, at := range []int{len(Magic) + 10, headerSize + 3, headerSize + full + 100, len(sealed) - 1} {
		bad := bytes.Clone(sealed)
		bad[at] ^= 0x20
		if _, err := open(k, bad); err == nil {
			t.Errorf("a bit flipped at %d was not noticed", at)
		}
	}
	swapped := bytes.Clone(sealed)
	copy(swapped[headerSize:], sealed[headerSize+full:headerSize+2*full])
	copy(swapped[headerSize+full:], sealed[headerSize:headerSize+full])
	if _, err := open(k, swapped); !errors.Is(err, ErrDamaged) {
		t.Errorf("two chunks swapped: %v", err)
	}
	dropped := append(bytes.Clone(sealed[:headerSize+full]), sealed[headerSize+2*full:]...)
	if _, err := open(k, dropped); !errors.Is(err, ErrDamaged) {
		t.Errorf("a chunk dropped: %v", err)
	}
	if _, err := open(k, append(bytes.Clone(sealed), 0)); !errors.Is(err, ErrDamaged) {
		t.Errorf("a byte added: %v", err)
	}
	if _, err := open(k, []byte("SQLite format 3\x00 and more bytes")); !errors.Is(err, ErrNotEncrypted) {
		t.Errorf("a plain file: %v, want ErrNotEncrypted", err)
	}
}

func TestParseKey(t *testing.T) {
	raw := bytes.Repeat([]byte{0xab}, 32)
	want := testKey(t, 0xab).ID()
	for _, s := range []string{hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw),
		base64.RawURLEncoding.EncodeToString(raw), " " + base64.StdEncoding.EncodeToString(raw) + "\n"} {
		k, err := ParseKey(s)
		if err != nil || k.ID() != want {
			t.Errorf("ParseKey(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"", "short", hex.EncodeToString(raw[:31]), base64.StdEncoding.EncodeToString(append(raw, 1)), strings.Repeat("z", 64)} {
		_, err := ParseKey(s)
		if err == nil {
			t.Errorf("ParseKey(%q) accepted", s)
		} else if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("the error repeats the key: %v", err)
		}
	}
}

// FuzzReader: whatever the bytes, the reader fails cleanly or reads back
// exactly what was sealed; it never panics.
func FuzzReader(f *testing.F) {
	k := testKey(f, 7)
	f.Add(seal(f, k, []byte("2026-11-25T10:00:00Z,1234.5,\n"), 1))
	f.Add(seal(f, k, nil, 1))
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b), k)
		if err != nil {
			return
		}
		plain, err := io.ReadAll(r)
		if err != nil {
			return
		}
		// A file that opened must have been sealed with the key: sealing
		// its plaintext again gives a file of the same length.
		if again := seal(t, k, plain, 1); len(again) != len(b) {
			t.Errorf("%d bytes opened to %d bytes of plaintext, which seal to %d", len(b), len(plain), len(again))
		}
	})
}
