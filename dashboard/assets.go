package dashboard

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"mime"
	"path"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"
)

// files holds the static files of the page. assets/vendor/ is not committed:
// the build copies the third-party files there from node_modules (make
// assets). The pattern names the directory, not the vendor files, so that the
// package compiles without them; New reports when they are missing.
//
//go:embed assets
var files embed.FS

// echartsFile is the ECharts build the page loads, relative to assets/.
const echartsFile = "vendor/echarts.min.js"

// Cache policies. Vendor files change only with a Vatio upgrade and their URLs
// carry a version, so browsers keep them a day; the page's own files are
// revalidated on every load with their ETag, so an upgrade shows at once.
const (
	cacheVendor = "public, max-age=86400"
	cacheOwn    = "no-cache"
)

// asset is one embedded file, ready to serve.
type asset struct {
	body         []byte
	contentType  string
	cacheControl string
	// etag is a strong validator derived from the content; it also versions
	// the file's URL in the page.
	etag string
	// gzipped compresses body on first use, so that start-up on a small
	// board does not pay for files nobody asked for.
	gzipped func() []byte
}

// loadAssets reads every embedded file under assets/, keyed by its path
// relative to assets/ ("app.js", "vendor/echarts.min.js").
func loadAssets() (map[string]*asset, error) {
	out := map[string]*asset{}
	err := fs.WalkDir(files, "assets", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		name := strings.TrimPrefix(p, "assets/")
		if strings.HasPrefix(path.Base(name), ".") {
			return nil
		}
		body, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		out[name] = newAsset(name, body)
		return nil
	})
	return out, err
}

func newAsset(name string, body []byte) *asset {
	sum := sha256.Sum256(body)
	a := &asset{
		body:         body,
		contentType:  mime.TypeByExtension(path.Ext(name)),
		cacheControl: cacheOwn,
		etag:         `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
	}
	if a.contentType == "" {
		a.contentType = "application/octet-stream"
	}
	if strings.HasPrefix(name, "vendor/") {
		a.cacheControl = cacheVendor
	}
	a.gzipped = sync.OnceValue(func() []byte {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(body)
		zw.Close()
		return buf.Bytes()
	})
	return a
}

// version returns the query that versions the asset's URL.
func (a *asset) version() string { return "?v=" + strings.Trim(a.etag, `"`) }

// serveAsset serves GET /assets/*: the embedded file with its content type,
// cache policy and ETag, gzip-compressed when the client accepts it.
func (d *Dashboard) serveAsset(c *fiber.Ctx) error {
	a, ok := d.assets[c.Params("*")]
	if !ok {
		return fiber.ErrNotFound
	}
	c.Set(fiber.HeaderCacheControl, a.cacheControl)
	c.Set(fiber.HeaderETag, a.etag)
	c.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderContentType, a.contentType)
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), a.etag) {
		c.Status(fiber.StatusNotModified)
		return nil
	}
	if acceptsGzip(c.Get(fiber.HeaderAcceptEncoding)) {
		c.Set(fiber.HeaderContentEncoding, "gzip")
		return c.Send(a.gzipped())
	}
	return c.Send(a.body)
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

// acceptsGzip reports whether an Accept-Encoding header allows gzip, that is
// names gzip (or *) without q=0.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "*" {
			continue
		}
		q := strings.ReplaceAll(strings.ToLower(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
