package dashboard

import (
	"embed"
	"sync"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/asset"
)

// files holds the static files of the page. assets/vendor/ is not committed:
// the build copies the third-party files there from node_modules (make
// assets), and writes each file's brotli and gzip encodings beside it
// (name.br, name.gz; package asset). The pattern names the directory, not
// the vendor files, so that the package compiles without them; New reports
// when they are missing.
//
//go:embed assets
var files embed.FS

// embedded are the files of assets/, read once however many dashboards a
// process makes (tests make hundreds), so that what is compressed at run
// time is compressed once.
var embedded = sync.OnceValues(func() (map[string]*asset.File, error) { return asset.Load(files, "assets") })

// echartsFile is the ECharts build the page loads, relative to assets/.
const echartsFile = "vendor/echarts.min.js"

// Cache policies. The pages ask for every file by its hashed URL
// (?v=<version>, see url): that URL's content never changes, so browsers
// keep it a year without asking again, and an upgrade shows at once
// through new URLs. A file asked for by any other URL (no version, or an
// old one) is revalidated on every use with its ETag.
const (
	cacheHashed  = "public, max-age=31536000, immutable"
	cacheUnknown = "no-cache"
)

// loadAssets returns the embedded files by path relative to assets/
// ("app.js", "vendor/echarts.min.js"), as a map of the caller's own.
func loadAssets() (map[string]*asset.File, error) {
	all, err := embedded()
	if err != nil {
		return nil, err
	}
	out := make(map[string]*asset.File, len(all))
	for name, f := range all {
		out[name] = f
	}
	return out, nil
}

// serveAsset serves GET /assets/*: the embedded file in the encoding the
// client prefers, with its ETag, immutable when asked for by its hashed URL.
func (d *Dashboard) serveAsset(c *fiber.Ctx) error {
	f, ok := d.assets[c.Params("*")]
	if !ok {
		return fiber.ErrNotFound
	}
	cache := cacheUnknown
	if c.Query("v") == f.Version {
		cache = cacheHashed
	}
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	return f.Serve(c, cache)
}
