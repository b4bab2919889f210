package asset

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/gofiber/fiber/v2"
)

// page is a file worth compressing.
var page = []byte(strings.Repeat("<p>Power now: 1.2 kW, today 8.4 kWh.</p>\n", 2000))

func brotlied(t *testing.T, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := brotli.NewWriterLevel(&buf, brotli.BestCompression)
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(t *testing.T, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// serve serves files over real HTTP on a loopback port at /{name} and
// returns the server's URL.
func serve(t *testing.T, files map[string]*File) string {
	t.Helper()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/*", func(c *fiber.Ctx) error {
		f, ok := files[c.Params("*")]
		if !ok {
			return fiber.ErrNotFound
		}
		return f.Serve(c, "no-cache")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		app.ShutdownWithContext(ctx)
	})
	return "http://" + ln.Addr().String()
}

// answer is a response with its body as sent and as decoded.
type answer struct {
	status                    int
	header                    http.Header
	sent, decoded             []byte
	encoding, etag, vary, typ string
}

// fetch makes a GET with headers (name, value pairs); the client asks for
// no encoding of its own and decodes nothing.
func fetch(t *testing.T, url string, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sent, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, sent: sent, encoding: resp.Header.Get("Content-Encoding"),
		etag: resp.Header.Get("ETag"), vary: resp.Header.Get("Vary"), typ: resp.Header.Get("Content-Type")}
	var r io.Reader
	switch a.encoding {
	case "":
		a.decoded = sent
		return a
	case "br":
		r = brotli.NewReader(bytes.NewReader(sent))
	case "gzip":
		if r, err = gzip.NewReader(bytes.NewReader(sent)); err != nil {
			t.Fatalf("GET %s: gzip: %v", url, err)
		}
	default:
		t.Fatalf("GET %s: Content-Encoding %q", url, a.encoding)
	}
	if a.decoded, err = io.ReadAll(r); err != nil {
		t.Fatalf("GET %s: decode %s: %v", url, a.encoding, err)
	}
	return a
}

// TestServeNegotiates: the encoding follows Accept-Encoding, the body
// decodes to the file, each encoding has its ETag, and a client that has
// one gets 304.
func TestServeNegotiates(t *testing.T) {
	f := New("page.html", page, nil, nil)
	url := serve(t, map[string]*File{"page.html": f}) + "/page.html"
	tests := []struct {
		accept, want string
	}{
		{"", ""},
		{"gzip", "gzip"},
		{"br", "br"},
		{"gzip, deflate, br, zstd", "br"}, // what browsers send: brotli, the smaller, wins a tie
		{"br;q=0.5, gzip", "gzip"},
		{"BR", "br"},
		{"x-gzip", "gzip"},
		{"*", "br"},
		{"gzip;q=0.8, identity;q=0.9", ""},
		{"gzip;q=0, br;q=0", ""},
		{"br;q=nonsense, gzip", "gzip"},
		{"identity;q=0", ""}, // nothing else is acceptable: the file as it is
		{"deflate", ""},
	}
	etags := map[string]string{}
	for _, tt := range tests {
		a := fetch(t, url, "Accept-Encoding", tt.accept)
		if a.status != http.StatusOK || a.encoding != tt.want {
			t.Errorf("Accept-Encoding %q: %d %q, want 200 %q", tt.accept, a.status, a.encoding, tt.want)
		}
		if !bytes.Equal(a.decoded, page) {
			t.Errorf("Accept-Encoding %q: the decoded body (%d bytes) is not the file (%d)", tt.accept, len(a.decoded), len(page))
		}
		if tt.want != "" && len(a.sent) >= len(page)/10 {
			t.Errorf("Accept-Encoding %q: %d bytes sent for %d, not compressed", tt.accept, len(a.sent), len(page))
		}
		if a.vary != "Accept-Encoding" || a.typ != "text/html; charset=utf-8" || a.header.Get("Cache-Control") != "no-cache" {
			t.Errorf("Accept-Encoding %q: Vary %q, Content-Type %q, Cache-Control %q", tt.accept, a.vary, a.typ, a.header.Get("Cache-Control"))
		}
		if other, ok := etags[a.etag]; ok && other != a.encoding {
			t.Errorf("the %q and %q answers share the ETag %s", other, a.encoding, a.etag)
		}
		etags[a.etag] = a.encoding
	}
	want := map[string]string{`"` + f.Version + `"`: "", `"` + f.Version + `-br"`: "br", `"` + f.Version + `-gz"`: "gzip"}
	if len(etags) != len(want) {
		t.Errorf("ETags %v, want %v", etags, want)
	}
	for etag, enc := range want {
		if etags[etag] != enc {
			t.Errorf("ETag %s went with %q, want %q", etag, etags[etag], enc)
		}
	}

	plain, brE, gzE := `"`+f.Version+`"`, `"`+f.Version+`-br"`, `"`+f.Version+`-gz"`
	for _, c := range []struct {
		accept, ifNoneMatch string
		want                int
		etag                string // of the answer
	}{
		{"br", brE, http.StatusNotModified, brE},
		{"br", "W/" + brE, http.StatusNotModified, brE}, // weak comparison
		{"gzip", `"x", ` + gzE, http.StatusNotModified, gzE},
		{"", plain, http.StatusNotModified, plain},
		{"gzip", "*", http.StatusNotModified, gzE},
		{"br", gzE, http.StatusOK, brE}, // has the gzip one, gets brotli
		{"gzip", plain, http.StatusOK, gzE},
		{"", brE, http.StatusOK, plain},
	} {
		a := fetch(t, url, "Accept-Encoding", c.accept, "If-None-Match", c.ifNoneMatch)
		if a.status != c.want || a.etag != c.etag || a.vary != "Accept-Encoding" {
			t.Errorf("Accept-Encoding %q, If-None-Match %s: %d ETag %s Vary %q, want %d ETag %s Vary Accept-Encoding",
				c.accept, c.ifNoneMatch, a.status, a.etag, a.vary, c.want, c.etag)
		}
		if a.status == http.StatusNotModified && (len(a.sent) != 0 || a.encoding != "") {
			t.Errorf("Accept-Encoding %q, If-None-Match %s: 304 with %d bytes, Content-Encoding %q", c.accept, c.ifNoneMatch, len(a.sent), a.encoding)
		}
	}
}

// TestLoadUsesTheBuildsEncodings: Load serves the encodings the build made
// as they are, never a stale one, and not the siblings or dot files as
// files of their own; a file too small to gain is sent as it is.
func TestLoadUsesTheBuildsEncodings(t *testing.T) {
	built := brotlied(t, page)
	fsys := fstest.MapFS{
		"assets/page.html":    {Data: page},
		"assets/page.html.br": {Data: built},
		// Made before the file was edited: it decodes to something else.
		"assets/page.html.gz":   {Data: gzipped(t, page[:len(page)/2])},
		"assets/vendor/tiny.js": {Data: []byte("x()")},
		"assets/.keep":          {Data: []byte{}},
	}
	files, err := Load(fsys, "assets")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range files {
		names = append(names, name)
	}
	if len(files) != 2 || files["page.html"] == nil || files["vendor/tiny.js"] == nil {
		t.Fatalf("Load = %v, want page.html and vendor/tiny.js", names)
	}
	url := serve(t, files)

	br := fetch(t, url+"/page.html", "Accept-Encoding", "br")
	if br.encoding != "br" || !bytes.Equal(br.sent, built) {
		t.Errorf("brotli: %q, %d bytes; want the build's %d bytes as they are", br.encoding, len(br.sent), len(built))
	}
	gz := fetch(t, url+"/page.html", "Accept-Encoding", "gzip")
	if gz.encoding != "gzip" || !bytes.Equal(gz.decoded, page) {
		t.Errorf("gzip with a stale sibling: %q, decoded %d bytes, want the file's %d", gz.encoding, len(gz.decoded), len(page))
	}
	tiny := fetch(t, url+"/vendor/tiny.js", "Accept-Encoding", "br, gzip")
	if tiny.encoding != "" || string(tiny.sent) != "x()" || tiny.etag != `"`+files["vendor/tiny.js"].Version+`"` {
		t.Errorf("a 3-byte file: %q %q ETag %s, want it as it is with the plain ETag", tiny.encoding, tiny.sent, tiny.etag)
	}
	if tiny.typ != "text/javascript; charset=utf-8" {
		t.Errorf("tiny.js: Content-Type %q", tiny.typ)
	}
	for _, p := range []string{"/page.html.br", "/page.html.gz", "/.keep"} {
		if a := fetch(t, url+p); a.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, a.status)
		}
	}
}

// FuzzNegotiate: any Accept-Encoding header gets the file in an encoding
// that decodes to it, never one the header refuses when another is
// acceptable.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"", "gzip", "br;q=0.5, gzip", "*;q=0", "identity;q=0, br;q=0.001", "gzip;q=1.5", ",;;=,q=", "BR;Q=0.9"} {
		f.Add(s)
	}
	file := New("page.html", page, nil, nil)
	f.Fuzz(func(t *testing.T, header string) {
		body, e := file.negotiate(header)
		q := qualities(header)
		if e == nil {
			if !bytes.Equal(body, page) {
				t.Fatalf("%q: no encoding, yet not the file", header)
			}
			return
		}
		v, named := q[e.name]
		if !named {
			v = q["*"]
		}
		if v <= 0 {
			t.Fatalf("%q: chose %s, whose q is %v", header, e.name, v)
		}
	})
}
