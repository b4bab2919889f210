// Package api serves Vatio's HTTP API with Fiber: the original routes
// (GET /api/energy, POST /api/alert), the versioned /api/v1, /healthz and
// /metrics. Handlers return errors; writeError turns them into a status and
// a JSON body. It reads the store and raises alerts; it never writes readings.
package api

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/limiter"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/asset"
	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/automation"
	"github.com/vatio-energy/vatio/internal/devices"
	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/modbus"
	"github.com/vatio-energy/vatio/internal/offsite"
	"github.com/vatio-energy/vatio/internal/statement"
	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

// Options configure a Server.
type Options struct {
	// BodyLimitBytes is the largest request body accepted, once decoded;
	// larger ones get 413.
	BodyLimitBytes int
	// ReadTimeout bounds reading a request; for an import, the time
	// without data. Default 30 s.
	ReadTimeout time.Duration
	// ImportLimitBytes is the largest CSV history accepted by an import.
	ImportLimitBytes int64
	// Decoder validates imported readings as published ones are.
	Decoder *meter.Decoder
	// Gatherer supplies /metrics.
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// StreamThrottle is the least time between two events of one meter on
	// /api/v1/stream (default 250 ms); StreamHeartbeat the time between its
	// keep-alive comments (default 15 s); MaxStreams how many streams may be
	// open at once (default 64), MaxStreamsPerUser how many of them one
	// user (all their sessions) or token may hold (default 8).
	StreamThrottle    time.Duration
	StreamHeartbeat   time.Duration
	MaxStreams        int
	MaxStreamsPerUser int
	// Tariff is the tariff in force, which prices energy in its time zone
	// and is served, and changed by admins, at /api/v1/tariff; nil prices
	// nothing, in the machine's zone, and cannot be changed.
	Tariff *energy.Tariffs
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rules is the alert rule engine behind /api/v1/rules; nil serves no
	// rules routes.
	Rules *alert.Rules
	// Shedder is load shedding, behind /api/v1/shedding; nil when off.
	Shedder *automation.Shedder
	// Modbus is the Modbus poller, behind /api/v1/modbus; nil: none.
	Modbus *modbus.Poller
	// Tenants are the tenants statements bill, listed and changed
	// (admins) at /api/v1/tenants; nil leaves tenants out.
	Tenants *statement.Tenants
	// Schedules mail statements, listed and changed (admins) at
	// /api/v1/statements/schedules; nil leaves them out.
	Schedules *statement.Schedules
	// Mail is the SMTP server that mails alerts and statements, shown and
	// changed (admins) at /api/v1/email; nil leaves those routes out.
	Mail *alert.Mail
	// ModbusDevices are its devices, listed and changed (admins) at
	// /api/v1/modbus/devices; nil leaves those routes out.
	ModbusDevices *modbus.Devices
	// Auth, when set, requires a token or a session of a role that may
	// for every route but /healthz, the login and setup pages and their
	// assets; nil leaves every route open (handlers' own tests).
	Auth *auth.Service
	// Audit records logins, token use, changes, deletions and exports.
	Audit *audit.Log
	// Devices are the MQTT credentials behind /api/v1/devices; MQTTAddr
	// and MQTTTLSAddr are the broker's addresses ("" when off), for the
	// settings a new device is given.
	Devices     *devices.Registry
	MQTTAddr    string
	MQTTTLSAddr string
	// RateLimitPerMinute is how many requests one address may make in a
	// (sliding) minute; past it, 429 with Retry-After. 0 is no limit.
	RateLimitPerMinute int
	// TrustedProxies are the reverse proxies (IPs or CIDRs) whose
	// ProxyHeader gives the client's address, and whose X-Forwarded-Proto
	// says HTTPS; from anyone else both are ignored.
	TrustedProxies []string
	ProxyHeader    string
	// Health, when set, is asked by /healthz: an error answers 503 with
	// it (the external broker lost, say).
	Health func() error
	// Warnings, when set, are reported by /healthz as "warnings" without
	// changing its status: evidence that readings were lost upstream.
	Warnings func() []string
	// Leading, when set, is reported by /healthz as "leader": whether this
	// instance runs the jobs instances sharing a store run once (package
	// leader).
	Leading func() bool
	// Offsite, when set, serves POST /api/v1/offsite/sync.
	Offsite *offsite.Shipper
	// HSTS tells browsers to use only HTTPS from now on: set it when
	// serving HTTPS.
	HSTS bool
}

// Server is the HTTP server of the API (and of whatever else registers on
// its Router, such as the dashboard).
type Server struct {
	app         *fiber.App
	store       *store.Store
	decoder     *meter.Decoder
	importLimit int64
	// importing holds a token while an import runs: one at a time (see
	// importHistory).
	importing chan struct{}
	alerts    *alert.Service
	log       *slog.Logger
	ready     atomic.Bool
	now       func() time.Time

	// streams counts the open /api/v1/stream responses; closing is closed
	// by Shutdown, which ends them.
	streams    atomic.Int64
	maxStreams int
	// streamsBy counts the open streams per holder (see openStream),
	// under streamsMu.
	streamsMu           sync.Mutex
	streamsBy           map[string][]*streamSlot
	maxStreamsPerHolder int
	streamThrottle      time.Duration
	streamHeartbeat     time.Duration
	readTimeout         time.Duration
	closing             chan struct{}
	closeOnce           sync.Once
	tariffs             *energy.Tariffs
	rules               *alert.Rules
	shedder             *automation.Shedder
	modbus              *modbus.Poller
	modbusDevs          *modbus.Devices
	tenants             *statement.Tenants
	schedules           *statement.Schedules
	mail                *alert.Mail
	auth                *auth.Service
	auditLog            *audit.Log
	devices             *devices.Registry
	mqttAddr            string
	mqttTLSAddr         string
	// exporting holds the one export being built (see sendExport).
	exporting chan struct{}
	// tokenUses is when each token's use was last audited (token id ->
	// time.Time), so that it is audited at most once a minute.
	tokenUses sync.Map
	offsite   *offsite.Shipper
	health    func() error
	leading   func() bool
	warnings  func() []string
}

// New returns a Server with every API route registered.
func New(st *store.Store, alerts *alert.Service, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{store: st, alerts: alerts, log: opts.Logger, now: time.Now, decoder: opts.Decoder, importLimit: opts.ImportLimitBytes, importing: make(chan struct{}, 1)}
	if s.decoder == nil {
		s.decoder = &meter.Decoder{Limits: meter.DefaultLimits()}
	}
	if s.importLimit <= 0 {
		s.importLimit = 1 << 30
	}
	s.closing = make(chan struct{})
	s.exporting = make(chan struct{}, 1)
	s.offsite = opts.Offsite
	s.health = opts.Health
	s.leading = opts.Leading
	s.warnings = opts.Warnings
	s.tariffs = opts.Tariff
	s.rules = opts.Rules
	s.shedder = opts.Shedder
	s.modbus = opts.Modbus
	s.modbusDevs = opts.ModbusDevices
	s.tenants = opts.Tenants
	s.schedules = opts.Schedules
	s.mail = opts.Mail
	s.auth, s.auditLog = opts.Auth, opts.Audit
	s.devices, s.mqttAddr, s.mqttTLSAddr = opts.Devices, opts.MQTTAddr, opts.MQTTTLSAddr
	if opts.Now != nil {
		s.now = opts.Now
	}
	if s.tariffs == nil {
		s.tariffs = energy.FixedTariff(&tariff.Tariff{Location: time.Local})
	}
	s.streamThrottle = cmp.Or(opts.StreamThrottle, defaultStreamThrottle)
	s.streamHeartbeat = cmp.Or(opts.StreamHeartbeat, defaultStreamHeartbeat)
	s.maxStreams = cmp.Or(opts.MaxStreams, defaultMaxStreams)
	s.maxStreamsPerHolder = cmp.Or(opts.MaxStreamsPerUser, 8)
	s.streamsBy = map[string][]*streamSlot{}
	s.readTimeout = cmp.Or(opts.ReadTimeout, 30*time.Second)
	s.app = fiber.New(fiber.Config{
		AppName:               "vatio",
		DisableStartupMessage: true,
		// Every string a handler gets from the request (headers, form
		// fields, parameters, cookies) is its own copy: Fiber otherwise
		// hands out the connection's buffer, reused by the next request,
		// and a token id or user name kept as a map key changed under
		// our feet.
		Immutable: true,
		BodyLimit: opts.BodyLimitBytes,
		// Routes match exactly: with Fiber's default, /API/v1/Backup/
		// would reach /api/v1/backup while the role check read another
		// path.
		CaseSensitive: true,
		StrictRouting: true,
		// The client's address (rate limits, lock-outs, the audit log)
		// comes from a proxy's header only when that proxy is trusted.
		EnableTrustedProxyCheck: true,
		TrustedProxies:          opts.TrustedProxies,
		ProxyHeader:             proxyHeader(opts),
		EnableIPValidation:      true,
		StreamRequestBody:       true, // imports stream; limitBody holds the rest to BodyLimit
		// fasthttp would parse a multipart body as it arrives, spooling
		// its files to disk before any handler (authentication) ran;
		// multipart forms are parsed from limitBody's bounded body.
		DisablePreParseMultipartForm: true,
		ReadTimeout:                  s.readTimeout,
		IdleTimeout:                  2 * time.Minute,
		ErrorHandler:                 s.writeError,
	})
	s.app.Use(recover.New())
	s.app.Use(securityHeaders)
	if opts.HSTS {
		s.app.Use(func(c *fiber.Ctx) error {
			// A year, as browsers' preload rules ask; not includeSubDomains:
			// other hosts of a LAN domain may well be plain HTTP.
			c.Set(fiber.HeaderStrictTransportSecurity, "max-age=31536000")
			return c.Next()
		})
	}
	if n := opts.RateLimitPerMinute; n > 0 {
		// Before authentication, so that guessing tokens is limited too.
		s.app.Use(limiter.New(limiter.Config{
			Max: n, Expiration: time.Minute, LimiterMiddleware: limiter.SlidingWindow{},
			// Static assets are cached by the browser and cost nothing.
			Next: func(c *fiber.Ctx) bool { return strings.HasPrefix(c.Path(), "/assets/") },
			LimitReached: func(c *fiber.Ctx) error {
				return fiber.NewError(fiber.StatusTooManyRequests, fmt.Sprintf(
					"too many requests: at most %d a minute from one address; retry in %s s", n, c.GetRespHeader(fiber.HeaderRetryAfter)))
			},
		}))
	}
	// Bodies are bounded (once decoded) before authentication reads a
	// form field; an import's streams, read by its handler once the
	// request is authenticated.
	s.app.Use(limitBody(opts.BodyLimitBytes, s.readTimeout))
	s.app.Use(s.authenticate)
	s.app.Post("/api/v1/meters/:id/import", s.importMeter)

	s.app.Get("/healthz", s.healthz)
	if opts.Gatherer != nil {
		s.app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{})))
	}
	s.app.Get("/api/energy", s.energy)
	s.app.Post("/api/alert", s.postAlert)

	v1 := s.app.Group("/api/v1")
	v1.Get("/openapi.json", s.openapi)
	v1.Get("/meters", s.meters)
	v1.Get("/meters/:id", s.getMeter)
	v1.Patch("/meters/:id", s.patchMeter)
	v1.Delete("/meters/:id", s.deleteMeter)
	v1.Get("/meters/:id/readings", s.readings)
	v1.Get("/meters/:id/energy", s.meterEnergy)
	v1.Get("/meters/:id/demand", s.demand)
	v1.Get("/meters/:id/export", s.exportMeter)
	v1.Get("/sites/:site/export", s.exportSite)
	v1.Get("/summary", s.summary)
	v1.Get("/shedding", s.shedding)
	v1.Get("/modbus", s.modbusDevices)
	if s.modbusDevs != nil {
		v1.Get("/modbus/devices", s.modbusEntries)
		v1.Get("/modbus/devices/:name", s.modbusEntry)
		v1.Put("/modbus/devices/:name", s.putModbusDevice)
		v1.Delete("/modbus/devices/:name", s.deleteModbusDevice)
	}
	v1.Get("/recommendations", s.recommendations)
	v1.Get("/meters/:id/forecast", s.meterForecast)
	v1.Get("/sites/:site/forecast", s.siteForecast)
	v1.Get("/sites", s.sites)
	v1.Get("/sites/:site/energy", s.siteEnergy)
	v1.Get("/stream", s.stream)
	v1.Get("/alerts", s.listAlerts)
	if s.auth != nil {
		v1.Get("/me", s.me)
		v1.Get("/tokens", s.listTokens)
		v1.Post("/tokens", s.createToken)
		v1.Delete("/tokens/:id", s.revokeToken)
		v1.Get("/users", s.listUsers)
		v1.Post("/users", s.createUser)
		v1.Delete("/users/:name", s.deleteUser)
	}
	if s.auditLog != nil {
		v1.Get("/audit", s.listAudit)
	}
	if s.devices != nil {
		v1.Get("/devices", s.listDevices)
		v1.Post("/devices", s.addDevice)
		v1.Delete("/devices/:name", s.removeDevice)
	}
	if s.rules != nil {
		v1.Get("/rules", s.listRules)
		v1.Post("/rules", s.createRule)
		v1.Get("/rules/:id", s.getRule)
		v1.Put("/rules/:id", s.putRule)
		v1.Delete("/rules/:id", s.deleteRule)
	}
	v1.Get("/statements", s.statements)
	if s.schedules != nil {
		v1.Get("/statements/schedules", s.listSchedules)
		v1.Get("/statements/schedules/:id", s.getSchedule)
		v1.Put("/statements/schedules/:id", s.putSchedule)
		v1.Delete("/statements/schedules/:id", s.deleteSchedule)
		v1.Post("/statements/schedules/:id/send", s.sendSchedule)
	}
	if s.tenants != nil {
		v1.Get("/tenants", s.listTenants)
		v1.Get("/tenants/:id", s.getTenant)
		v1.Put("/tenants/:id", s.putTenant)
		v1.Delete("/tenants/:id", s.deleteTenant)
	}
	if s.mail != nil {
		v1.Get("/email", s.getMail)
		v1.Put("/email", s.putMail)
		v1.Delete("/email", s.deleteMail)
		v1.Post("/email/test", s.testMail)
	}
	v1.Get("/tariff", s.getTariff)
	v1.Put("/tariff", s.putTariff)
	v1.Delete("/tariff", s.deleteTariff)
	v1.Get("/backup", s.backup)
	if s.offsite != nil {
		v1.Post("/offsite/sync", s.offsiteSync)
	}
	return s
}

func proxyHeader(opts Options) string {
	if len(opts.TrustedProxies) == 0 {
		return ""
	}
	return cmp.Or(opts.ProxyHeader, "X-Real-IP")
}

// securityHeaders sets the headers every answer carries: no sniffing of
// types, no framing, no referrer leaving the site.
func securityHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderReferrerPolicy, "same-origin")
	return c.Next()
}

// Router is where other packages (the dashboard) add their routes.
func (s *Server) Router() fiber.Router { return s.app }

// App returns the Fiber app, for tests and route listings.
func (s *Server) App() *fiber.App { return s.app }

// SetReady makes /healthz answer 200 (true) or 503 (false).
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Serve serves HTTP on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(ln) }

// Shutdown stops accepting connections and waits for requests in flight
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.SetReady(false)
	s.closeOnce.Do(func() { close(s.closing) }) // open streams end
	return s.app.ShutdownWithContext(ctx)
}

func (s *Server) healthz(c *fiber.Ctx) error {
	if !s.ready.Load() {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable"})
	}
	if s.health != nil {
		if err := s.health(); err != nil {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "detail": err.Error()})
		}
	}
	body := fiber.Map{"status": "ok"}
	if s.leading != nil {
		body["leader"] = s.leading()
	}
	if s.warnings != nil {
		if w := s.warnings(); len(w) > 0 {
			body["warnings"] = w
		}
	}
	return c.JSON(body)
}

// openapiFiles are openapi.json and the brotli and gzip encodings the
// build makes of it (make assets), when it made them.
//
//go:embed openapi.json*
var openapiFiles embed.FS

// openapiFile is openapi.json ready to serve, read once a process; an
// encoding the build did not make is made on first use (package asset).
var openapiFile = sync.OnceValue(func() *asset.File {
	body, err := openapiFiles.ReadFile("openapi.json")
	if err != nil {
		panic("api: openapi.json is not embedded: " + err.Error()) // the pattern above makes that a build error
	}
	br, _ := openapiFiles.ReadFile("openapi.json.br")
	gz, _ := openapiFiles.ReadFile("openapi.json.gz")
	f := asset.New("openapi.json", body, br, gz)
	f.ContentType = fiber.MIMEApplicationJSONCharsetUTF8
	return f
})

// openapi serves GET /api/v1/openapi.json, brotli or gzip as the client
// accepts, revalidated with its ETag.
func (s *Server) openapi(c *fiber.Ctx) error {
	return openapiFile().Serve(c, "no-cache")
}

// errorBody is every error response.
type errorBody struct {
	Error  string `json:"error"`
	Detail string `json:"detail,omitempty"`
	// Problems are the fields wrong in a body refused (a tariff), each
	// with why.
	Problems []fieldProblem `json:"problems,omitempty"`
}

// fieldProblem is what is wrong with one field of a body.
type fieldProblem struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// paramError is a bad query parameter or body field.
type paramError struct {
	Name   string
	Detail string
}

func (e *paramError) Error() string { return "invalid parameter " + e.Name + ": " + e.Detail }

// writeError maps an error to a status code and a JSON body.
func (s *Server) writeError(c *fiber.Ctx, err error) error {
	status, body := fiber.StatusInternalServerError, errorBody{Error: "internal error"}
	var (
		pe *paramError
		ie *alert.InvalidError
		fe *fiber.Error
	)
	if code, body, ok := statementError(err); ok {
		return c.Status(code).JSON(body)
	}
	if code, ok := modbusError(err); ok {
		return c.Status(code).JSON(errorBody{Error: err.Error()})
	}
	if code, ok := ruleError(err); ok {
		return c.Status(code).JSON(errorBody{Error: err.Error()})
	}
	if code, body, ok := mailError(err); ok {
		return c.Status(code).JSON(body)
	}
	if code, body, ok := tariffError(err); ok {
		return c.Status(code).JSON(body)
	}
	if code, ok := authError(err); ok {
		return c.Status(code).JSON(errorBody{Error: err.Error()})
	}
	switch {
	case errors.As(err, &pe):
		status, body = fiber.StatusBadRequest, errorBody{Error: "invalid parameter \"" + pe.Name + "\"", Detail: pe.Detail}
	case errors.As(err, &ie):
		status, body = fiber.StatusBadRequest, errorBody{Error: "invalid parameter \"" + ie.Field + "\"", Detail: ie.Reason}
	case meter.ReasonOf(err) != "":
		status, body = fiber.StatusBadRequest, errorBody{Error: "invalid reading", Detail: err.Error()}
	case errors.Is(err, store.ErrUnknownMeter):
		status, body = fiber.StatusNotFound, errorBody{Error: "unknown meter", Detail: err.Error()}
	case errors.As(err, &fe):
		status, body = fe.Code, errorBody{Error: fe.Message}
	default:
		s.log.Error("request failed", slog.String("method", c.Method()), slog.String("path", c.Path()), slog.Any("error", err))
	}
	return c.Status(status).JSON(body)
}
