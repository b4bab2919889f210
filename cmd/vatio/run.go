package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/vatio-energy/vatio/api"
	"github.com/vatio-energy/vatio/broker"
	"github.com/vatio-energy/vatio/hooks"
	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/automation"
	"github.com/vatio-energy/vatio/internal/bridge"
	"github.com/vatio-energy/vatio/internal/config"
	"github.com/vatio-energy/vatio/internal/crypt"
	"github.com/vatio-energy/vatio/internal/devices"
	"github.com/vatio-energy/vatio/internal/homeassistant"
	"github.com/vatio-energy/vatio/internal/leader"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/modbus"
	"github.com/vatio-energy/vatio/internal/offsite"
	"github.com/vatio-energy/vatio/internal/statement"
	"github.com/vatio-energy/vatio/store"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// shutdownTimeout bounds a graceful stop.
const shutdownTimeout = 5 * time.Second

const usage = `Usage:
  vatio [flags]                 run the broker, the store, the API and the dashboard
  vatio restore [flags] FILE    replace the database with the backup FILE (Vatio stopped)
  vatio import [flags] [-meter ID] FILE
                                import a meter's history: CSV, Datadis or Green Button (Vatio stopped; or POST it)
  vatio compact [flags]         shrink the database file to its data (Vatio stopped)
  vatio token [flags]           make an API token and print it (Vatio stopped)
  vatio decrypt [flags] FILE    write an encrypted backup or archive, decrypted, to stdout
  vatio device add [flags] NAME give a device MQTT credentials and print its settings (Vatio stopped)
  vatio version                 print the version

Flags:
`

// command is a subcommand: vatio <name> [flags] ...
type command struct {
	name string
	run  func(args []string, getenv func(string) string, stdout, stderr io.Writer) error
}

// commands are the subcommands besides version and help, in the order of
// the usage; the CLI reference (docs/cli.md) shows each one's -h.
var commands = []command{
	{"restore", restore}, {"import", importHistory}, {"compact", compact}, {"token", makeToken},
	{"decrypt", decrypt}, {"device", addDevice},
}

// run is the whole program: it parses args, starts Vatio and stops it
// gracefully when ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "version":
			fmt.Fprintf(stdout, "vatio %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		case "help":
			args = []string{"-h"}
		default:
			i := slices.IndexFunc(commands, func(c command) bool { return c.name == args[0] })
			if i < 0 {
				return fmt.Errorf("unknown command %q (see vatio help)", args[0])
			}
			if err := commands[i].run(args[1:], getenv, stdout, stderr); !errors.Is(err, flag.ErrHelp) {
				return err
			}
			return nil
		}
	}
	cfg, cfgPath, err := loadConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := newLogger(cfg.Log, stderr)
	if cfgPath != "" {
		logger.Info("configuration loaded", slog.String("file", cfgPath))
	}
	if cfg.MemoryLimitMB > 0 && getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(cfg.MemoryLimitMB) << 20)
	}
	if getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.GCPercent)
	}
	a, err := start(cfg, logger)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-a.httpErr:
		logger.Error("http server stopped", slog.Any("error", err))
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return a.shutdown(sctx)
}

// loadConfig builds the configuration: defaults, then the config file, then
// the environment, then flags. It returns the file it read, if any.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config.Config, string, error) {
	fset := flag.NewFlagSet("vatio", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprint(stderr, usage)
		fset.PrintDefaults()
	}
	cfgFlag := fset.String("config", "", "config file (default ./config.yaml when it exists; env "+config.EnvConfig+")")
	mqttAddr := fset.String("mqtt-addr", "", "MQTT listen address (default \":1883\"; env "+config.EnvMQTTAddr+")")
	httpAddr := fset.String("http-addr", "", "HTTP listen address (default \":5000\"; env "+config.EnvHTTPAddr+")")
	dataDir := fset.String("data-dir", "", "data directory (default \"./data\"; env "+config.EnvDataDir+")")
	if err := fset.Parse(args); err != nil {
		return config.Config{}, "", err
	}
	if fset.NArg() > 0 {
		return config.Config{}, "", fmt.Errorf("unexpected argument %q (see vatio help)", fset.Arg(0))
	}

	path, explicit := *cfgFlag, true
	if path == "" {
		path = getenv(config.EnvConfig)
	}
	if path == "" {
		path, explicit = "config.yaml", false
	}
	cfg, err := config.Load(path)
	switch {
	case err == nil:
	case !explicit && errors.Is(err, fs.ErrNotExist):
		cfg, path = config.Default(), ""
	default:
		return cfg, "", err
	}
	cfg.ApplyEnv(getenv)
	if *mqttAddr != "" {
		cfg.MQTT.Addr = *mqttAddr
	}
	if *httpAddr != "" {
		cfg.HTTP.Addr = *httpAddr
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if err := configErrors(cfg.Validate(), checkSettings(cfg)); err != nil {
		where := "configuration"
		if path != "" {
			where = path
		}
		return cfg, "", fmt.Errorf("invalid %s:\n%w", where, err)
	}
	return cfg, path, nil
}

// newCommand returns the flag set of a subcommand, printing usage and its
// flags for -h.
func newCommand(name, usage string, stderr io.Writer) *flag.FlagSet {
	fset := flag.NewFlagSet(name, flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprint(stderr, usage)
		fset.PrintDefaults()
	}
	return fset
}

// commandConfig parses the flags of a subcommand (vatio restore, import,
// ...) with -config and -data-dir added, and loads the configuration as the
// server would, so that the subcommand finds the same data directory. It
// returns flag.ErrHelp after printing the help for -h.
func commandConfig(fset *flag.FlagSet, args []string, getenv func(string) string, stderr io.Writer) (config.Config, error) {
	cfgFlag := fset.String("config", "", "config file (default ./config.yaml when it exists; env "+config.EnvConfig+")")
	dataDir := fset.String("data-dir", "", "data directory (default \"./data\"; env "+config.EnvDataDir+")")
	if err := fset.Parse(args); err != nil {
		return config.Config{}, err
	}
	var cargs []string
	if *cfgFlag != "" {
		cargs = append(cargs, "-config", *cfgFlag)
	}
	if *dataDir != "" {
		cargs = append(cargs, "-data-dir", *dataDir)
	}
	cfg, _, err := loadConfig(cargs, getenv, stderr)
	return cfg, err
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// sources returns the device families Vatio reads: the plain energy topic,
// the configured inputs, then the built-in families.
func sources(cfg config.Config, dec *meter.Decoder) []meter.Source {
	out := []meter.Source{dec.AsSource()}
	limits, src := ingestLimits(cfg.Ingest), cfg.Sources
	for _, in := range cfg.Inputs {
		out = append(out, meter.NewGeneric(inputSource(in), limits))
	}
	if src.Tasmota.Enabled {
		out = append(out, meter.NewTasmota(src.Tasmota.Prefix, limits))
	}
	if src.Emonhub.Enabled {
		out = append(out, meter.NewEmonhub(src.Emonhub.Prefix, limits))
	}
	if src.Zigbee2MQTT.Enabled {
		out = append(out, meter.NewZigbee2MQTT(src.Zigbee2MQTT.Prefix, limits))
	}
	if src.DSMR.Enabled {
		out = append(out, meter.NewDSMR(src.DSMR.Prefix, limits))
	}
	if src.Shelly.Enabled { // last: its topics have no prefix of their own
		out = append(out, meter.NewShelly(limits))
	}
	return out
}

// reservedTopics are the topics of cfg whose first levels no device may
// be named after: a device named so would get, through its default topics
// (NAME/#), every reading or message under them.
func reservedTopics(cfg config.Config) []string {
	src := cfg.Sources
	out := []string{cfg.Ingest.Topic, src.Tasmota.Prefix, src.Emonhub.Prefix, src.Zigbee2MQTT.Prefix, src.DSMR.Prefix,
		cfg.Alerts.MQTT.Prefix, cfg.HomeAssistant.DiscoveryPrefix, cfg.HomeAssistant.StateTopic}
	for _, in := range cfg.Inputs {
		out = append(out, in.Topic)
	}
	return out
}

// ownTopics returns the topics only Vatio publishes on (own) and, among
// them, those clients may publish on too (open): the alerts' prefix when
// alerts go out by MQTT (automations act on them); with Home Assistant
// on, its discovery prefix and Vatio's state topics, but for Home
// Assistant's own status (its birth and will). A device could otherwise
// forge an alert, announce entities to Home Assistant, clear Vatio's, or
// say a meter is online.
func ownTopics(cfg config.Config) (own, open []string) {
	if a := cfg.Alerts.MQTT; a.Enabled {
		own = append(own, a.Prefix+"/#")
	}
	if h := cfg.HomeAssistant; h.Enabled {
		own = append(own, h.DiscoveryPrefix+"/#", h.StateTopic+"/#")
		open = append(open, h.DiscoveryPrefix+"/status")
	}
	return own, open
}

// app is a running Vatio.
type app struct {
	log    *slog.Logger
	store  *store.Store
	broker *broker.Broker
	ingest *hooks.Ingest
	// bridge is the connection to an external broker (broker.mode:
	// external), instead of broker and ingest.
	bridge *bridge.Bridge
	// presence tells instances sharing a PostgreSQL store which are alive,
	// so that one takes over the broker session of one gone (external
	// broker on PostgreSQL only); stopPresence stops its loop.
	presence     *leader.Presence
	stopPresence func()
	dataDir      string
	alerts       *alert.Service
	rules        *alert.Rules
	devices      *devices.Registry
	// checks bounds the password checks of web log-ins and MQTT CONNECTs
	// together.
	checks *auth.PasswordChecks
	// shedder sheds load, when configured.
	shedder *automation.Shedder
	// elector runs the jobs to run once among instances sharing a store
	// (rules, shedding, retention, off-site copies, Home Assistant) while
	// this one leads; cancelLead stops them, and stopLead is closed once
	// they have.
	elector    *leader.Elector
	cancelLead context.CancelFunc
	stopLead   chan struct{}
	http       *api.Server
	httpErr    chan error
	// audit is the audit log; closing it stores the refusals it held back.
	audit *audit.Log
	// modbus polls the Modbus meters while this instance leads; devices
	// are config.yaml's and those saved through the API and dashboard.
	modbus        *modbus.Poller
	modbusDevices *modbus.Devices
	// tenants are the groups of meters statements bill; schedules mail
	// statements, from the leading instance.
	tenants   *statement.Tenants
	schedules *statement.Schedules
	mail      *alert.Mail
}

// shutdown stops in the order that loses nothing: no new HTTP requests or
// MQTT connections; no new readings taken; every reading taken is committed and acknowledged
// while its client is still connected; then the broker, alert delivery and
// the database close.
func (a *app) shutdown(ctx context.Context) error {
	var errs []error
	if a.schedules != nil {
		a.schedules.Close() // a statement being mailed stops and is recorded, to be tried again
	}
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := a.http.Shutdown(hctx); err != nil {
		errs = append(errs, fmt.Errorf("http: %w", err))
	}
	flushed := make(chan error, 1)
	if a.bridge != nil {
		if a.stopPresence != nil {
			a.stopPresence() // no takeover starts or runs from here on
		}
		go func() { flushed <- a.stopBridge(ctx) }()
	} else {
		_ = a.broker.StopAccepting() // an error only repeats that it is closed
		go func() { flushed <- a.ingest.Shutdown() }()
	}
	select {
	case err := <-flushed:
		if err != nil {
			errs = append(errs, err)
		}
	case <-ctx.Done():
		errs = append(errs, errors.New("store: flush did not finish in time; unacknowledged readings will be resent"))
	}
	// The leader's jobs publish through the broker and write to the store;
	// stopping them hands the leadership over.
	a.cancelLead()
	<-a.stopLead
	a.rules.Stop() // cancels the actions under way
	a.rules.Wait()
	a.alerts.Close() // before the broker: the MQTT notifier publishes through it
	if a.bridge != nil {
		if err := a.bridge.Close(); err != nil {
			errs = append(errs, err)
		}
		if a.bridge.Left() {
			if err := noteSession(a.dataDir, ""); err != nil {
				errs = append(errs, err)
			}
		}
		if a.presence != nil {
			if err := a.presence.Leave(ctx, a.bridge.Left()); err != nil {
				errs = append(errs, err)
			}
		}
	} else if err := a.broker.Close(); err != nil {
		errs = append(errs, err)
	}
	if a.audit != nil { // the last entries, before the store closes
		a.audit.Close()
	}
	if err := a.store.Close(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		a.log.Info("stopped cleanly")
	}
	return errors.Join(errs...)
}

// hostname is this machine's name, for the settings printed to devices.
func hostname() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

// redactURL keeps a URL's scheme and host: its path (Slack, Discord),
// query and user info often hold keys, which the audit log must not.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host
}

// newRemote returns the object storage of cfg.Offsite.
func newRemote(cfg config.Config, key *crypt.Key, logger *slog.Logger) (*offsite.Remote, error) {
	o := cfg.Offsite
	return offsite.New(offsite.Options{Endpoint: o.Endpoint, Insecure: o.Insecure, Region: o.Region, Bucket: o.Bucket,
		Prefix: o.Prefix, AccessKey: o.AccessKey, SecretKey: o.SecretKey, Key: key,
		KeepBackups: o.KeepBackups, KeepArchives: o.KeepArchives, Logger: logger.With("component", "offsite")})
}

// newBridge connects to the external broker of cfg.Broker.
func newBridge(cfg config.Config, p *hooks.Pipeline, logger *slog.Logger) (*bridge.Bridge, error) {
	b := cfg.Broker
	var urls []*url.URL
	for _, raw := range b.URLs {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("broker.urls: %w", err) // Validate catches it first
		}
		if u.Port() == "" { // the client dials host:port as written
			switch u.Scheme {
			case "mqtt", "tcp":
				u.Host += ":1883"
			case "mqtts", "ssl", "tls":
				u.Host += ":8883"
			}
		}
		urls = append(urls, u)
	}
	var tc *tls.Config
	if b.CAFile != "" {
		pem, err := os.ReadFile(b.CAFile)
		if err != nil {
			return nil, fmt.Errorf("broker.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("broker.ca_file: %s holds no PEM certificate", b.CAFile)
		}
		tc = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	id := b.ClientID
	if id == "" {
		var err error
		if id, err = defaultClientID(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("broker.client_id: %w", err)
		}
	}
	status := "" // Vatio's status for Home Assistant: online, or offline by will
	if h := cfg.HomeAssistant; h.Enabled {
		status = homeassistant.StatusTopic(h.StateTopic)
	}
	return bridge.New(p, bridge.Options{URLs: urls, ClientID: id, Username: b.Username, Password: b.Password,
		TLS: tc, Share: b.Share, Topics: b.Topics, SessionExpiry: b.SessionExpiry, Logger: logger, StatusTopic: status,
		ExpectSession: expectSession(cfg.DataDir, id), BrokerStarted: brokerStart(cfg.DataDir),
		OnBrokerStart: func(t time.Time) {
			if err := noteBrokerStart(cfg.DataDir, t); err != nil {
				logger.Warn("cannot keep the broker's start in the data directory", slog.Any("error", err))
			}
		}})
}

// portOf returns the TCP port of addr (0 when it has none).
func portOf(addr net.Addr) int {
	if t, ok := addr.(*net.TCPAddr); ok {
		return t.Port
	}
	return 0
}
