// Package dashboard provides Vatio's browser dashboard: the page at / with a
// card per meter and a live chart of power over time, and the static files
// it needs, embedded in the binary so that the page works with no internet.
//
// The page is rendered on the server with go-echarts; the embedded app.js then
// keeps it current by polling the JSON API. The dashboard only reads the
// store: it must never write to it.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/compress"

	"github.com/vatio-energy/vatio/meter"
	"github.com/vatio-energy/vatio/store"
)

//go:embed page.html
var pageHTML string

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"power":   formatPower,
	"rfc3339": func(t time.Time) string { return t.Format(time.RFC3339) },
	"utc":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
}).Parse(pageHTML))

// Dashboard serves the dashboard page and its static files. It is safe for
// concurrent use.
type Dashboard struct {
	st *store.Store
	// assets are the embedded files by path under /assets/.
	assets map[string]*asset
	// charts is false when the ECharts build was not embedded (the binary
	// was built without make assets): the page then says so instead of
	// showing a blank chart.
	charts bool
}

// New returns the dashboard reading from st.
func New(st *store.Store, logger *slog.Logger) *Dashboard {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	assets, err := loadAssets()
	if err != nil {
		// The files are compiled in: failing to read them is a build defect.
		panic(fmt.Sprintf("dashboard: read embedded assets: %v", err))
	}
	return newDashboard(st, logger, assets)
}

// newDashboard returns the dashboard serving assets, and warns when they
// lack the ECharts build.
func newDashboard(st *store.Store, logger *slog.Logger, assets map[string]*asset) *Dashboard {
	d := &Dashboard{st: st, assets: assets}
	_, d.charts = assets[echartsFile]
	if !d.charts {
		logger.Warn("dashboard assets not built: run make assets", slog.String("missing", "dashboard/assets/"+echartsFile))
	}
	return d
}

// Register adds GET / (the page) and GET /assets/* (the embedded static
// files) to r.
func (d *Dashboard) Register(r fiber.Router) {
	r.Get("/", compress.New(), d.page)
	r.Get("/assets/*", d.serveAsset)
}

// card is one meter's summary on the page.
type card struct {
	ID       string
	PowerW   float64
	LastSeen time.Time
	// From is the time of the newest reading on the chart (RFC 3339): app.js
	// asks the API for readings from there on.
	From string
}

// pageData is what page.html renders.
type pageData struct {
	Cards []card
	// Chart is nil when there is no meter yet or no ECharts build.
	Chart *chartSnippet
	// AssetsMissing asks the page to say the binary lacks the chart files.
	AssetsMissing bool
	// Host is the host name the browser used, for the MQTT example.
	Host string
	// CSS, AppJS, EChartsJS and Icon are the versioned URLs of the static
	// files.
	CSS, AppJS, EChartsJS, Icon string
}

// page serves GET /.
func (d *Dashboard) page(c *fiber.Ctx) error {
	data, err := d.pageData(hostName(c.Hostname()))
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, data); err != nil {
		return fmt.Errorf("dashboard: render page: %w", err)
	}
	c.Set(fiber.HeaderContentSecurityPolicy, contentSecurityPolicy(data.Chart))
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Type("html", "utf-8")
	return c.Send(buf.Bytes())
}

// pageData reads the meters and their newest readings.
func (d *Dashboard) pageData(host string) (pageData, error) {
	data := pageData{
		Host:          host,
		AssetsMissing: !d.charts,
		CSS:           d.url("app.css"),
		AppJS:         d.url("app.js"),
		EChartsJS:     d.url(echartsFile),
		Icon:          d.url("icon.svg"),
	}
	var series []meterSeries
	for _, m := range d.st.Meters() {
		c := card{ID: m.ID, PowerW: m.LastPowerW, LastSeen: m.LastSeen, From: m.Last.Format(time.RFC3339Nano)}
		// An id the ingest hook would refuse cannot go into the chart's
		// script unescaped; its card is still shown, escaped.
		if d.charts && meter.ValidID(m.ID) {
			recs, err := d.st.Latest(m.ID, chartPoints)
			if err != nil {
				return pageData{}, fmt.Errorf("dashboard: read meter %q: %w", m.ID, err)
			}
			slices.Reverse(recs)
			if len(recs) > 0 {
				c.From = recs[len(recs)-1].Time.Format(time.RFC3339Nano)
			}
			series = append(series, meterSeries{meter: m.ID, records: recs})
		}
		data.Cards = append(data.Cards, c)
	}
	if len(series) > 0 {
		ch, err := powerChart(series)
		if err != nil {
			return pageData{}, err
		}
		data.Chart = &ch
	}
	return data, nil
}

// url returns the versioned URL of an embedded file, or its plain URL when
// it is missing (the request then fails visibly with 404).
func (d *Dashboard) url(name string) string {
	u := "/assets/" + name
	if a, ok := d.assets[name]; ok {
		u += a.version()
	}
	return u
}

// contentSecurityPolicy allows the page to load and contact its own origin
// only, and to run no inline script but the chart's, pinned by its hash.
// Inline styles stay allowed: the chart element and ECharts' tooltips use them.
func contentSecurityPolicy(chart *chartSnippet) string {
	scripts := "'self'"
	if chart != nil {
		sum := sha256.Sum256([]byte(chart.body))
		scripts += " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return "default-src 'self'; script-src " + scripts +
		"; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'"
}

// hostName strips the port from a Host header value.
func hostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	if host == "" {
		return "localhost"
	}
	return host
}

// formatPower formats a power in watts for people: in W below 1 kW, in kW
// below 1 MW, in MW above, as app.js does in the browser.
func formatPower(powerW float64) string {
	switch a := math.Abs(powerW); {
	case a < 0.5:
		return "0 W"
	case a < 999.5:
		return strconv.FormatFloat(powerW, 'f', 0, 64) + " W"
	case a < 999_995:
		return strconv.FormatFloat(powerW/1e3, 'f', 2, 64) + " kW"
	default:
		return strconv.FormatFloat(powerW/1e6, 'f', 2, 64) + " MW"
	}
}
