// Package dashboard provides Vatio's browser dashboard: an overview of the
// site's power and energy, a page per meter (history, daily energy, load
// profile, settings), the meters, the alerts, and the settings (the tariff
// and the alert rules), in English and Spanish,
// with the static files they need embedded in the binary so that the pages
// work with no internet.
//
// Pages and their charts are rendered on the server with go-echarts; the
// embedded app.js keeps them live with the API's Server-Sent Events stream
// and fetches finer data as a chart is zoomed. The dashboard reads the
// store; its changes go through the JSON API, or, for the settings page's
// forms, through the same objects the API changes (the tariff in force,
// the rule engine), behind the same authentication and audit.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/compress"

	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/asset"
	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/devices"
	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/modbus"
	"github.com/vatio-energy/vatio/internal/statement"
	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

//go:embed templates/*.html
var templateFiles embed.FS

// pages are the page templates by name, each with the layout.
var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"overview", "meter", "meters", "alerts", "costs", "savings", "statements", "notfound", "login", "setup", "access", "configure"} {
		t := template.New("layout").Funcs(template.FuncMap{
			// Texts and formats in the page's language; the template is
			// executed with a clone whose functions know it (see render).
			"t":         func(string) string { return "" },
			"power":     func(float64) string { return "" },
			"energy":    func(float64) string { return "" },
			"number":    func(float64, int) string { return "" },
			"datetime":  func(time.Time) string { return "" },
			"charges":   func(any) string { return "" },
			"alert":     func(store.Alert) string { return "" },
			"rfc3339":   func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
			"upper":     strings.ToUpper,
			"list":      func(xs ...string) []string { return xs },
			"field":     tariffField,
			"fieldbase": func(k string) string { return fieldIndex.ReplaceAllString(k, "") },
			"dayname":   func(string) string { return "" },
			"period": func(from, to time.Time) statement.Period {
				return statement.Period{From: from, To: to, Month: from.Day() == 1 && to.Equal(from.AddDate(0, 1, 0))}
			},
			"percent": func(share float64) float64 { return share * 100 },
		})
		template.Must(t.ParseFS(templateFiles, "templates/layout.html", "templates/settings.html", "templates/"+name+".html"))
		out[name] = t
	}
	return out
}()

// Options configure a Dashboard.
type Options struct {
	Logger *slog.Logger
	// Location is the time zone of the pages' times and local days; nil
	// means the machine's.
	Location *time.Location
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Tariff is the tariff in force, which prices energy for the costs and
	// savings pages and which admins change on the settings page; nil
	// prices nothing.
	Tariff *energy.Tariffs
	// Auth, when set, serves the login and setup pages and logout.
	Auth *auth.Service
	// Audit records logins (lock-outs are reported by Auth.OnLockout).
	Audit *audit.Log
	// Devices, when set, lists MQTT devices on the access page.
	Devices *devices.Registry
	// Rules, when set, are the alert rules the settings page lists and
	// changes.
	Rules *alert.Rules
	// ImportForm, when set, imports the Meters page's history files
	// (api.Server.ImportForm, the API's import); nil shows no import form.
	ImportForm ImportFunc
	// MQTTPort is the embedded broker's plain MQTT port, which the empty
	// overview tells devices to use; 0 means the default, 1883.
	MQTTPort int
	// Modbus, when set, is the Modbus poller: a meter it reads shows its
	// phases (voltage, current, power) and their imbalance.
	Modbus *modbus.Poller
	// ModbusDevices, when set, are the Modbus devices the settings page
	// lists, and admins change.
	ModbusDevices *modbus.Devices
	// Tenants, when set, are the tenants the Statements page offers, and
	// admins change there.
	Tenants *statement.Tenants
	// Schedules, when set, are the statement schedules the Statements
	// page shows admins, and they change there.
	Schedules *statement.Schedules
	// Mail, when set, is the SMTP server the settings page shows and
	// admins change.
	Mail *alert.Mail
}

// Dashboard serves the dashboard's pages and static files. It is safe for
// concurrent use.
type Dashboard struct {
	st     *store.Store
	loc    *time.Location
	tariff *energy.Tariffs
	auth   *auth.Service
	audit  *audit.Log
	// devices are the MQTT credentials the access page lists; nil hides them.
	devices *devices.Registry
	// rules are the alert rules of the settings page; nil shows none.
	rules *alert.Rules
	// modbus is the Modbus poller; nil shows no phases.
	modbus *modbus.Poller
	// modbusDevices are its devices; nil shows no Modbus section.
	modbusDevices *modbus.Devices
	// tenants are the Statements page's; nil offers no tenants.
	tenants   *statement.Tenants
	schedules *statement.Schedules
	mail      *alert.Mail
	// importFile imports the import form's file; nil offers no form.
	importFile ImportFunc
	// mqttPort is the broker's plain MQTT port (Options.MQTTPort).
	mqttPort int
	now      func() time.Time
	log      *slog.Logger
	// assets are the embedded files by path under /assets/.
	assets map[string]*asset.File
	// charts is false when the ECharts build was not embedded (the binary
	// was built without make assets): pages then say so instead of showing
	// blank charts.
	charts bool
}

// New returns the dashboard reading from st.
func New(st *store.Store, opts Options) *Dashboard {
	assets, err := loadAssets()
	if err != nil {
		// The files are compiled in: failing to read them is a build defect.
		panic(fmt.Sprintf("dashboard: read embedded assets: %v", err))
	}
	return newDashboard(st, opts, assets)
}

// newDashboard returns the dashboard serving assets, and warns when they
// lack the ECharts build.
func newDashboard(st *store.Store, opts Options, assets map[string]*asset.File) *Dashboard {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MQTTPort <= 0 {
		opts.MQTTPort = 1883
	}
	if opts.Tariff == nil {
		opts.Tariff = energy.FixedTariff(&tariff.Tariff{Location: opts.Location})
	}
	d := &Dashboard{st: st, loc: opts.Location, now: opts.Now, log: opts.Logger, assets: assets, tariff: opts.Tariff,
		auth: opts.Auth, audit: opts.Audit, devices: opts.Devices, rules: opts.Rules, importFile: opts.ImportForm, mqttPort: opts.MQTTPort,
		modbus: opts.Modbus, modbusDevices: opts.ModbusDevices, tenants: opts.Tenants, schedules: opts.Schedules, mail: opts.Mail}
	_, d.charts = assets[echartsFile]
	if !d.charts {
		opts.Logger.Warn("dashboard assets not built: run make assets", slog.String("missing", "dashboard/assets/"+echartsFile))
	}
	return d
}

// Register adds the pages, GET /lang/{code} (the language switch) and
// GET /assets/* (the embedded static files) to r.
func (d *Dashboard) Register(r fiber.Router) {
	gz := compress.New()
	r.Get("/", gz, d.overview)
	r.Get("/meters", gz, d.metersPage)
	r.Get("/meters/:id", gz, d.meterPage)
	r.Get("/alerts", gz, d.alertsPage)
	r.Get("/costs", gz, d.costsPage)
	r.Get("/savings", gz, d.savingsPage)
	r.Get("/settings", gz, d.settingsPage)
	r.Get("/statements", gz, d.statementsPage)
	if d.tenants != nil {
		r.Post("/statements/tenants", d.saveTenant) // admin only (the API's roleFor decides)
		r.Post("/statements/tenants/:id/delete", d.deleteTenant)
	}
	if d.schedules != nil {
		r.Post("/statements/schedules", d.saveSchedule) // admin only (the API's roleFor decides)
		r.Post("/statements/schedules/:id/delete", d.deleteSchedule)
		r.Post("/statements/schedules/:id/send", d.sendSchedule)
	}
	r.Post("/settings/tariff", d.saveTariff) // admin only (the API's roleFor decides)
	r.Post("/settings/tariff/remove", d.removeTariff)
	if d.mail != nil {
		r.Post("/settings/email", d.saveMail) // admin only (the API's roleFor decides)
		r.Post("/settings/email/test", d.testMail)
		r.Post("/settings/email/remove", d.removeMail)
	}
	if d.rules != nil {
		r.Post("/settings/rules", d.saveRule) // operators
		r.Post("/settings/rules/:id/enabled", d.enableRule)
		r.Post("/settings/rules/:id/delete", d.deleteRule)
	}
	if d.modbusDevices != nil {
		r.Post("/settings/modbus", d.saveModbus) // admin only (the API's roleFor decides)
		r.Post("/settings/modbus/:name/delete", d.deleteModbus)
	}
	if d.importFile != nil {
		r.Post("/meters/import", d.importHistory) // operators; its multipart body streams (see api.Server.ImportForm)
	}
	r.Get("/lang/:code", d.switchLanguage)
	if d.auth != nil {
		r.Get("/login", d.loginPage)
		r.Post("/login", d.login)
		r.Post("/logout", d.logout)
		r.Get("/setup", d.setupPage)
		r.Post("/setup", d.setup)
		r.Get("/access", gz, d.accessPage) // admin only (the API's roleFor decides)
	}
	r.Get("/assets/*", d.serveAsset)
	r.Use(d.unknownPage) // last: only what no route above served
}

// unknownPage answers a browser's GET of a path that nothing serves with
// the Not found page; the API's paths, and clients that do not ask for
// HTML, get the API's JSON 404 (the error handler's).
func (d *Dashboard) unknownPage(c *fiber.Ctx) error {
	path := c.Path()
	browser := (c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead) &&
		strings.Contains(c.Get(fiber.HeaderAccept), "text/html")
	if !browser || path == "/api" || strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/assets/") {
		return c.Next()
	}
	return d.notFound(c)
}

// assetURLs are the versioned URLs of the static files.
type assetURLs struct {
	CSS, JS, ECharts, Icon string
}

// base is what the layout renders of every page.
type base struct {
	Page  string
	Title string
	// Path is the page's path, for the language switch to come back to.
	Path          string
	Lang          *language
	Languages     []*language
	TZ            string
	Assets        assetURLs
	AssetsMissing bool
	// JSTexts are the texts app.js needs, in the page's language.
	JSTexts map[string]string
	// User and Role are who is logged in ("" without auth); CSRF is the
	// token app.js sends with changes.
	User, Role, CSRF string
	// Public marks a page shown before a log-in (login, setup): it has no
	// links to pages that need one and no live status, which needs one too.
	Public bool
	// MinPasswordChars is the shortest password (auth's rule), and
	// PasswordRules and UserNameRules say the rules of a password and a
	// user name in the page's language, for the forms that ask for them.
	MinPasswordChars             int
	PasswordRules, UserNameRules string
	// charts are the page's rendered charts, whose inline scripts the
	// Content-Security-Policy allows by hash.
	charts []*chartSnippet
}

// chart records a rendered chart on the page and returns it.
func (b *base) chart(c chartSnippet) *chartSnippet {
	b.charts = append(b.charts, &c)
	return &c
}

// newBase starts the data of a page.
func (d *Dashboard) newBase(c *fiber.Ctx, page, titleKey string) *base {
	lang := pickLanguage(c.Cookies(langCookie), c.Get(fiber.HeaderAcceptLanguage))
	b := &base{
		Page:             page,
		Title:            lang.T(titleKey),
		Path:             string(c.Request().URI().RequestURI()),
		Lang:             lang,
		Languages:        languages,
		TZ:               d.loc.String(),
		AssetsMissing:    !d.charts,
		Assets:           assetURLs{CSS: d.url("app.css"), JS: d.url("app.js"), ECharts: d.url(echartsFile), Icon: d.url("icon.svg")},
		JSTexts:          map[string]string{},
		MinPasswordChars: auth.MinPasswordChars,
		PasswordRules:    fmt.Sprintf(lang.T("password.rules"), auth.MinPasswordChars, auth.MaxPasswordBytes),
		UserNameRules:    fmt.Sprintf(lang.T("user.rules"), auth.MaxUserNameChars),
	}
	if who := auth.WhoFrom(c.UserContext()); who.User != "" {
		b.User, b.Role, b.CSRF = who.User, who.Role, who.CSRF
	}
	for _, k := range lang.textKeys() {
		if strings.HasPrefix(k, "js.") {
			b.JSTexts[k] = lang.T(k)
		}
	}
	return b
}

// render executes page with data for b's language and sends it with the
// security headers: a Content-Security-Policy that allows the page's own
// origin only, and no inline script but its charts', by hash.
func (d *Dashboard) render(c *fiber.Ctx, page string, b *base, data any) error {
	l, loc := b.Lang, d.loc
	t, err := pages[page].Clone()
	if err != nil {
		return err
	}
	t.Funcs(template.FuncMap{
		"t":        l.T,
		"power":    l.Power,
		"energy":   l.Energy,
		"number":   l.Number,
		"datetime": func(tm time.Time) string { return l.DateTime(tm, loc) },
		"alert":    func(a store.Alert) string { return l.alertText(a, loc) },
		"dayname":  l.dayName,
		"charges": func(v any) string {
			cd, ok := v.(*costsData)
			if !ok {
				return ""
			}
			return strings.NewReplacer("{fixed}", l.Number(cd.FixedCharge, 2)+" "+cd.Currency,
				"{demand}", l.Number(cd.DemandCharge, 2)+" "+cd.Currency).Replace(l.T("costs.charges"))
		},
	})
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		return fmt.Errorf("dashboard: render %s: %w", page, err)
	}
	c.Set(fiber.HeaderContentSecurityPolicy, contentSecurityPolicy(b.charts))
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderContentLanguage, l.Code)
	c.Set(fiber.HeaderVary, "Accept-Language, Cookie")
	c.Type("html", "utf-8")
	return c.Send(buf.Bytes())
}

// switchLanguage serves GET /lang/{code}?back=/path: it remembers the
// language in a cookie and goes back to the page.
func (d *Dashboard) switchLanguage(c *fiber.Ctx) error {
	l := languageByCode(c.Params("code"))
	if l == nil {
		return fiber.ErrNotFound
	}
	c.Cookie(&fiber.Cookie{Name: langCookie, Value: l.Code, Path: "/", MaxAge: 365 * 24 * 3600, SameSite: fiber.CookieSameSiteLaxMode})
	return c.Redirect(safeNext(c.Query("back")), fiber.StatusSeeOther) // only pages of this site
}

// url returns the versioned URL of an embedded file, or its plain URL when
// it is missing (the request then fails visibly with 404).
func (d *Dashboard) url(name string) string {
	u := "/assets/" + name
	if f, ok := d.assets[name]; ok {
		u += "?v=" + f.Version
	}
	return u
}

// contentSecurityPolicy allows a page to load and contact its own origin
// only, and to run no inline script but its charts', pinned by their
// hashes. Inline styles stay allowed: chart elements and ECharts' tooltips
// use them.
func contentSecurityPolicy(charts []*chartSnippet) string {
	scripts := "'self'"
	for _, c := range charts {
		sum := sha256.Sum256([]byte(c.body))
		scripts += " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return "default-src 'self'; script-src " + scripts +
		"; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
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
