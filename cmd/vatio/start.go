package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vatio-energy/vatio/api"
	"github.com/vatio-energy/vatio/broker"
	"github.com/vatio-energy/vatio/dashboard"
	"github.com/vatio-energy/vatio/hooks"
	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/automation"
	"github.com/vatio-energy/vatio/internal/certs"
	"github.com/vatio-energy/vatio/internal/config"
	"github.com/vatio-energy/vatio/internal/crypt"
	"github.com/vatio-energy/vatio/internal/devices"
	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/homeassistant"
	"github.com/vatio-energy/vatio/internal/leader"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/modbus"
	"github.com/vatio-energy/vatio/internal/netlimit"
	"github.com/vatio-energy/vatio/internal/offsite"
	"github.com/vatio-energy/vatio/internal/statement"
	"github.com/vatio-energy/vatio/store"
)

// start opens the store, sets up the broker, builds the services, serves
// HTTP, starts the jobs and, with an external broker, takes readings from
// it, in that order: each stage leaves what the next needs in a starting,
// and pushes the undoing of what it started. On error every stage done,
// and the one that failed, is undone, last first.
func start(cfg config.Config, logger *slog.Logger) (_ *app, err error) {
	s := &starting{cfg: cfg, log: logger, a: &app{log: logger, httpErr: make(chan error, 1),
		checks: auth.NewPasswordChecks(cfg.Auth.PasswordChecks, 0), dataDir: cfg.DataDir}}
	defer func() {
		if err != nil {
			s.undoAll()
		}
	}()
	for _, stage := range []struct {
		name string
		run  func() error
	}{
		{"open the store", s.openStore},
		{"set up the broker", s.setUpBroker},
		{"build the services", s.buildServices},
		{"serve HTTP", s.serveHTTP},
		{"start the jobs", s.startJobs},
		{"take readings from the external broker", s.startBridge},
	} {
		if err := stage.run(); err != nil {
			logger.Debug("start failed", slog.String("stage", stage.name), slog.Any("error", err))
			return nil, err
		}
	}
	s.logReady()
	return s.a, nil
}

// starting is what the stages of start hand on to each other.
type starting struct {
	cfg  config.Config
	log  *slog.Logger
	a    *app
	undo []func() // what to undo on failure, in the order it was started

	key         *crypt.Key
	tls         *tls.Config
	mqttTLSAddr string // the MQTTS listener, with TLS on
	dec         *meter.Decoder
	// publish sends commands, alerts and Home Assistant discovery through
	// the broker, embedded or external.
	publish func(ctx context.Context, topic string, payload []byte, retain bool) error
	// subscribe hears Home Assistant's birth and cleared discovery (nil:
	// not heard).
	subscribe   homeassistant.Subscribe
	mqttMetrics []prometheus.Collector
	reg         *prometheus.Registry
	shipper     *offsite.Shipper
	loc         *time.Location
	// tariff is the tariff in force: config.yaml's, or one saved on the
	// dashboard or through the API.
	tariff *energy.Tariffs
	audit  *audit.Log
	// pipeline validates, counts and stores readings: the ingest hook's
	// or, with an external broker, the bridge's; Modbus readings join it.
	pipeline *hooks.Pipeline
	egress   *automation.Egress
	users    *auth.Service
	ln       net.Listener
}

func (s *starting) onFailure(f func()) { s.undo = append(s.undo, f) }

func (s *starting) undoAll() {
	for i := len(s.undo) - 1; i >= 0; i-- {
		s.undo[i]()
	}
}

// openStore opens bbolt or PostgreSQL, with the encryption key of backups
// and archives.
func (s *starting) openStore() (err error) {
	cfg, a := s.cfg, s.a
	if s.key, err = encryptionKey(cfg.Encryption); err != nil {
		return err // checkSettings catches it first
	}
	if s.key != nil {
		s.log.Info("backups and archives are encrypted", slog.String("key_id", s.key.ID()))
	}
	opts := store.Options{
		QueueSize: cfg.Store.QueueSize, MaxBatch: cfg.Store.MaxBatch, MaxGap: cfg.Store.MaxGap,
		CompressAfter: cfg.Store.CompressAfter, Logger: s.log.With("component", "store"),
		SyncDelay: cmp.Or(cfg.Store.SyncDelay, -1), FlushInterval: cfg.Store.FlushInterval,
		CheckpointInterval: cfg.Store.CheckpointInterval, HeadMaxBytes: cfg.Store.HeadMaxMB << 20,
		Retention: store.Retention{Raw: cfg.Retention.Raw, Minute: cfg.Retention.Minute,
			Hourly: cfg.Retention.Hourly, Daily: cfg.Retention.Daily},
		ArchiveKeep:    cfg.Archive.Keep,
		BackupInterval: cfg.Backup.Interval, BackupKeep: cfg.Backup.Keep,
		MaxPowerW: cfg.Ingest.MaxPowerW, Encryption: s.key,
	}
	if cfg.Store.Driver == "postgres" {
		if opts.BackupInterval > 0 {
			s.log.Info("scheduled backups are off: a PostgreSQL store is backed up by PostgreSQL (pg_dump, base backups)")
		}
		opts.BackupInterval = 0
		a.store, err = store.OpenPostgres(cfg.Store.DSN, cfg.DataDir, opts)
	} else {
		a.store, err = store.Open(cfg.DataDir, opts)
	}
	if err != nil {
		return err
	}
	s.onFailure(func() { a.store.Close() })
	return nil
}

// setUpBroker makes the TLS certificate and the embedded broker with its
// ingest hook (accepting no one yet), or the client of an external broker
// (connected last, by startBridge).
func (s *starting) setUpBroker() (err error) {
	cfg, a, logger := s.cfg, s.a, s.log
	if cfg.TLS.Enabled {
		var info certs.Info
		s.tls, info, err = certs.Config(certs.Options{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile,
			Dir: filepath.Join(cfg.DataDir, "tls"), Hosts: cfg.TLS.Hosts, Logger: logger.With("component", "tls")})
		if err != nil {
			return err
		}
		attrs := []any{slog.String("sha256", info.Fingerprint), slog.Time("not_after", info.NotAfter),
			slog.String("hosts", strings.Join(info.Hosts, " "))}
		if info.CA != "" {
			attrs = append(attrs, slog.String("trust", info.CA))
		}
		logger.Info("tls certificate", attrs...)
		s.mqttTLSAddr = cfg.MQTT.TLSAddr
	}
	s.dec = &meter.Decoder{Topic: cfg.Ingest.Topic, Limits: ingestLimits(cfg.Ingest)}
	if cfg.Broker.Mode == "external" {
		pipeline := hooks.NewPipeline(sources(cfg, s.dec), a.store, logger.With("component", "ingest"))
		s.pipeline = pipeline
		if a.bridge, err = newBridge(cfg, pipeline, logger.With("component", "mqtt")); err != nil {
			return err
		}
		s.onFailure(func() { a.bridge.Close() })
		s.publish = func(ctx context.Context, topic string, payload []byte, retain bool) error {
			return a.bridge.Publish(ctx, topic, payload, retain, 1)
		}
		s.subscribe = a.bridge.Subscribe
		s.mqttMetrics = []prometheus.Collector{pipeline, a.bridge}
		// a.devices stays nil: devices log in to that broker, with its
		// credentials.
		return nil
	}
	if a.devices, err = devices.New(a.store, a.checks, devices.WithReserved(reservedTopics(cfg)...),
		devices.WithOwnTopics(ownTopics(cfg)), devices.WithLogger(logger.With("component", "devices"))); err != nil {
		return err
	}
	if cfg.MQTT.AllowAnonymous {
		a.devices.AnonymousFrom = func(net.IP) bool { return true }
		logger.Warn("mqtt.allow_anonymous is on: any client on the network may publish readings and commands")
	}
	a.broker, err = broker.New(broker.Options{
		Addr: cfg.MQTT.Addr, TLS: s.tls, TLSAddr: s.mqttTLSAddr,
		WebSocketAddr: cfg.MQTT.WebSocketAddr, WebSocketOrigins: cfg.MQTT.WebSocketOrigins,
		MaxClients: cfg.MQTT.MaxClients, MaxMessagesPerSecond: cfg.MQTT.MaxMessagesPerSecond, MaxTopicLength: cfg.MQTT.MaxTopicLength,
		MaxPacketBytes: cfg.MQTT.MaxPacketBytes, WriteTimeout: cfg.MQTT.WriteTimeout,
		MaxQueuedMessages:        cfg.MQTT.MaxQueuedMessages,
		MaxConnectionsPerUser:    cfg.MQTT.MaxConnectionsPerDevice,
		MaxConnectionsPerAddress: cfg.MQTT.MaxConnectionsPerAddress,
		MaxRetainedMessageBytes:  cfg.MQTT.MaxRetainedMessageBytes, MaxRetainedBytes: cfg.MQTT.MaxRetainedBytes,
		Logger: logger.With("component", "mqtt"),
		Access: a.devices,
	})
	if err != nil {
		return err
	}
	s.onFailure(func() { a.broker.Close() })
	a.ingest = hooks.NewIngest(sources(cfg, s.dec), a.store, a.broker.Server(), logger.With("component", "ingest"))
	a.ingest.MayWrite = a.devices.MayWrite
	s.pipeline = a.ingest.Pipeline
	if err := a.broker.AddHook(a.ingest, nil); err != nil {
		return err
	}
	server := a.broker.Server()
	s.publish = func(_ context.Context, topic string, payload []byte, retain bool) error {
		return server.Publish(topic, payload, retain, 1)
	}
	s.subscribe = a.broker.Subscribe
	s.mqttMetrics = []prometheus.Collector{a.broker, a.ingest}
	return nil
}

// buildServices makes what the API and the jobs use: alert delivery and
// rules, load shedding, the Modbus poller, users, off-site copies,
// leadership, metrics.
func (s *starting) buildServices() (err error) {
	cfg, a, logger := s.cfg, s.a, s.log
	specs, err := modbusSpecs(cfg.Modbus)
	if err != nil {
		return err
	}
	pipeline, dec, st := s.pipeline, s.dec, a.store
	take := func(device string, rs []meter.Reading) {
		pipeline.Polled("modbus", rs, dec.Validate)
		for _, r := range rs {
			if r.Meter != device {
				adoptPhase(st, device, r.Meter, logger)
			}
		}
	}
	if a.modbus, err = modbus.New(nil, take, logger.With("component", "modbus")); err != nil {
		return err
	}
	if a.modbusDevices, err = modbus.NewDevices(a.store, specs, a.modbus, logger.With("component", "modbus")); err != nil {
		return err
	}
	a.modbusDevices.MeterSource = func(id string) (string, bool) {
		m, err := st.Meter(id)
		if err != nil {
			return "", false
		}
		if m.Info.Source == "import" && !m.LastHeard.IsZero() {
			return "live readings", true // imported, then fed live: by what, the registry does not say
		}
		return m.Info.Source, true
	}
	if a.tenants, err = statement.NewTenants(a.store); err != nil {
		return err
	}
	notifiers := []alert.Notifier{alert.Log{Logger: logger.With("component", "alert")}}
	if w := cfg.Alerts.Webhook; w.URL != "" {
		hook := alert.NewWebhook(w.URL, w.Timeout)
		hook.ContentType = w.ContentType
		if w.Body != "" {
			if hook.Body, err = alert.ParseBody(w.Body); err != nil {
				return fmt.Errorf("alerts.webhook.body: %w", err) // checkSettings catches it first
			}
		}
		notifiers = append(notifiers, hook)
	}
	// The SMTP server is config.yaml's, or the one saved on the Settings
	// page; alerts are mailed while it has recipients.
	if a.mail, err = alert.NewMail(a.store, mailSpec(cfg.Alerts.Email), logger.With("component", "mail")); err != nil {
		return err
	}
	notifiers = append(notifiers, a.mail.Notifier())
	if m := cfg.Alerts.MQTT; m.Enabled {
		notifiers = append(notifiers, &alert.MQTT{Prefix: m.Prefix, Publish: func(ctx context.Context, topic string, payload []byte) error {
			return s.publish(ctx, topic, payload, false)
		}})
	}
	a.alerts = alert.New(a.store, notifiers, alert.Options{
		Attempts: cfg.Alerts.Attempts, Backoff: cfg.Alerts.Backoff, Logger: logger.With("component", "alert"),
	})
	s.onFailure(a.alerts.Close)

	s.reg = prometheus.NewRegistry()
	if o := cfg.Offsite; o.Enabled {
		remote, err := newRemote(cfg, s.key, logger)
		if err != nil {
			return err
		}
		s.shipper = offsite.NewShipper(remote, a.store)
		s.reg.MustRegister(s.shipper)
		logger.Info("off-site copies", slog.String("endpoint", o.Endpoint), slog.String("bucket", o.Bucket), slog.String("prefix", o.Prefix))
	}
	if cfg.Store.Driver == "postgres" {
		if a.elector, err = leader.Postgres(cfg.Store.DSN, leader.Options{Logger: logger.With("component", "leader")}); err != nil {
			return err // Validate catches it first
		}
	} else {
		a.elector = leader.Alone() // bbolt: one process per file
	}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		a.store, a.elector)
	s.reg.MustRegister(s.mqttMetrics...)
	if s.loc, err = cfg.Dashboard.Location(); err != nil {
		return fmt.Errorf("dashboard.timezone: %w", err) // Validate catches it first
	}
	configTariff, err := buildTariff(cfg.Tariff, s.loc)
	if err != nil {
		return err // checkSettings catches it first
	}
	if s.tariff, err = energy.NewTariffs(a.store, configTariff, logger.With("component", "tariff")); err != nil {
		return err
	}
	a.schedules = statement.NewSchedules(statement.Source{Store: a.store, Tariffs: s.tariff, Tenants: a.tenants, Wait: 10 * time.Minute}, a.mail,
		logger.With("component", "statements"))
	if st := s.tariff.State(); st.Source == energy.FromDatabase {
		// Said at start, for whoever edits config.yaml's tariff and sees
		// no change.
		logger.Info("tariff: the one saved on the dashboard is in force, over config.yaml's (remove it on the Settings page to use config.yaml's)",
			slog.String("saved_by", st.Saved.SavedBy), slog.Time("saved_at", st.Saved.SavedAt))
	}
	var configRules []alert.Rule
	for _, r := range cfg.Alerts.Rules {
		configRules = append(configRules, alertRule(r))
	}
	if a.rules, err = alert.NewRules(a.store, a.alerts, s.tariff, configRules, cfg.Alerts.EvaluateEvery, logger.With("component", "rules")); err != nil {
		return err
	}
	s.audit = audit.New(a.store, logger.With("component", "audit"))
	a.audit = s.audit
	// Refused MQTT CONNECTs are refusals from outside too (the broker
	// starts below, after this is set); with an external broker, devices
	// log in to it, not here.
	if a.devices != nil {
		a.devices.Refused = func(user, addr string, err error) {
			s.audit.Record(audit.Entry{Who: user, Action: "mqtt_refused", Target: "MQTT CONNECT", Addr: addr, Detail: err.Error()})
		}
	}
	command := func(topic string, payload []byte) error {
		return s.publish(context.Background(), topic, payload, false)
	}
	// Rules' commands are audited as they are sent; load shedding's, with
	// what it decided, by OnAction below.
	// Rule actions come from the API: their webhooks may not reach where
	// Egress refuses (its OwnPorts are filled in once the listeners are).
	s.egress = &automation.Egress{AllowLoopback: cfg.Alerts.ActionsAllowLoopback}
	a.rules.SetSender(&automation.Sender{Publish: command, Egress: s.egress, OnSend: func(c automation.Command, err error) {
		e := audit.Entry{Who: "system", Action: "command", Target: c.Topic}
		if c.URL != "" {
			e.Target = "webhook " + redactURL(c.URL)
		}
		if err != nil {
			e.Detail = err.Error()
			if c.URL != "" {
				e.Detail = strings.ReplaceAll(e.Detail, c.URL, redactURL(c.URL))
			}
		}
		s.audit.Record(e)
	}})
	if cfg.Shedding.Enabled {
		sc, err := buildShedding(cfg.Shedding)
		if err != nil {
			return err // checkSettings catches it first
		}
		if a.shedder, err = automation.NewShedder(sc, a.store, &automation.Sender{Publish: command}, logger.With("component", "shedding")); err != nil {
			return err
		}
		a.shedder.OnAction = func(act automation.Action) {
			s.audit.Record(audit.Entry{Time: act.Time, Who: "system", Action: act.Action, Target: act.Load, Detail: act.Error})
		}
	}
	s.reg.MustRegister(a.rules, a.modbus)
	if a.shedder != nil {
		s.reg.MustRegister(a.shedder)
	}
	if s.users, err = auth.New(a.store, a.checks); err != nil {
		return err
	}
	if pw := cfg.Auth.AdminPassword; pw != "" && s.users.NeedsSetup() {
		if _, err := s.users.AddUser("admin", pw, auth.Admin); err != nil {
			return fmt.Errorf("auth.admin_password (%s): %w", config.EnvAdminPassword, err)
		}
		logger.Info("admin user created from the configuration")
	}
	if tok := cfg.Auth.AdminToken; tok != "" {
		if err := s.users.SeedToken(tok, "admin token (configuration)", auth.Admin); err != nil {
			return fmt.Errorf("auth.admin_token (%s): %w", config.EnvAdminToken, err)
		}
	}
	alerts, loc := a.alerts, s.loc
	s.users.OnLockout = func(user, addr string, until time.Time) {
		_, _ = alerts.RaiseMessage(alert.SeverityWarning, alert.Lockout(addr, user, until), loc, "", "security")
	}
	return nil
}

// serveHTTP builds the API and the dashboard, listens, lets devices
// connect to the embedded broker, and serves. The broker accepts no one
// until the HTTP listener exists, so a port in use leaves no broker
// running.
func (s *starting) serveHTTP() (err error) {
	cfg, a, logger := s.cfg, s.a, s.log
	// /healthz answers 503 while readings are refused (a full disk) or
	// the external broker is unreachable.
	health := a.store.Health
	var warnings func() []string
	if a.bridge != nil {
		health = func() error { return errors.Join(a.store.Health(), a.bridge.Health()) }
		warnings = a.bridge.Warnings
	}
	a.http = api.New(a.store, a.alerts, api.Options{
		Auth: s.users, Audit: s.audit, Devices: a.devices, MQTTAddr: cfg.MQTT.Addr, MQTTTLSAddr: s.mqttTLSAddr, HSTS: s.tls != nil && cfg.TLS.HSTS,
		BodyLimitBytes: cfg.HTTP.BodyLimitBytes, ImportLimitBytes: cfg.HTTP.ImportLimitBytes, Decoder: s.dec, ReadTimeout: cfg.HTTP.ReadTimeout,
		MaxStreamsPerUser:  cfg.HTTP.MaxStreamsPerUser,
		RateLimitPerMinute: cfg.HTTP.RateLimitPerMinute, Offsite: s.shipper, Health: health, TrustedProxies: cfg.HTTP.TrustedProxies, ProxyHeader: cfg.HTTP.ProxyHeader,
		Gatherer: s.reg, Logger: logger.With("component", "http"), Tariff: s.tariff, Rules: a.rules, Shedder: a.shedder, Modbus: a.modbus, ModbusDevices: a.modbusDevices, Tenants: a.tenants, Schedules: a.schedules, Mail: a.mail,
		Leading: a.elector.Leading, Warnings: warnings,
	})
	mqttPort := 0
	if a.broker != nil {
		if addr := a.broker.Addr(); addr != nil {
			mqttPort = portOf(addr)
		}
	}
	dashboard.New(a.store, dashboard.Options{Logger: logger.With("component", "dashboard"), Location: s.loc, Tariff: s.tariff,
		Auth: s.users, Audit: s.audit, Devices: a.devices, Rules: a.rules, ImportForm: a.http.ImportForm, MQTTPort: mqttPort,
		Modbus: a.modbus, ModbusDevices: a.modbusDevices, Tenants: a.tenants, Schedules: a.schedules, Mail: a.mail}).Register(a.http.Router())

	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http: listen on %s: %w", cfg.HTTP.Addr, err)
	}
	// Capped per address, and out of file descriptors it waits rather
	// than stops serving for good.
	ln = netlimit.New(ln, cfg.HTTP.MaxConnectionsPerAddress, logger.With("component", "http"))
	s.egress.OwnPorts = append(s.egress.OwnPorts, portOf(ln.Addr()))
	if a.broker != nil {
		for _, addr := range []net.Addr{a.broker.Addr(), a.broker.TLSAddr(), a.broker.WebSocketAddr()} {
			if addr != nil {
				s.egress.OwnPorts = append(s.egress.OwnPorts, portOf(addr))
			}
		}
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	if a.broker != nil {
		if err := a.broker.Start(); err != nil {
			ln.Close()
			return err
		}
	}
	s.ln = ln
	go func() { a.httpErr <- a.http.Serve(ln) }()
	s.onFailure(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = a.http.Shutdown(ctx)
	})
	return nil
}

// startJobs runs what must happen once, not once per instance sharing the
// store, while this instance leads; alone, it is the leader.
func (s *starting) startJobs() error {
	cfg, a := s.cfg, s.a
	var ha *homeassistant.Publisher
	if h := cfg.HomeAssistant; h.Enabled {
		ha = homeassistant.New(a.store, s.publish, homeassistant.Options{Prefix: h.DiscoveryPrefix, StateTopic: h.StateTopic,
			Every: h.StateEvery, Subscribe: s.subscribe, Version: version, Logger: s.log.With("component", "homeassistant")})
	}
	alerts, shipper := a.alerts, s.shipper
	lead := func(ctx context.Context) {
		var jobs sync.WaitGroup
		// Polled by the leader only: two instances polling one meter
		// would store each reading twice.
		jobs.Go(func() { a.modbus.Run(ctx) })
		if a.store.Shared() {
			// Devices saved on another instance.
			jobs.Go(func() {
				t := time.NewTicker(modbus.RefreshEvery)
				defer t.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
						a.modbusDevices.Refresh()
					}
				}
			})
		}
		jobs.Go(func() { a.rules.Run(ctx) })
		jobs.Go(func() { a.schedules.Run(ctx) })
		jobs.Go(func() { a.store.RunRetention(ctx) })
		if a.shedder != nil {
			jobs.Go(func() { a.shedder.Run(ctx, cfg.Shedding.Every) })
		}
		if shipper != nil {
			jobs.Go(func() {
				shipper.Run(ctx, cfg.Offsite.Every, func(err error) {
					_, _ = alerts.RaiseMessage(alert.SeverityWarning, alert.Offsite(err), nil, "", "offsite")
				})
			})
		}
		if ha != nil {
			jobs.Go(func() { ha.Run(ctx) })
		}
		jobs.Wait()
	}
	lctx, cancelLead := context.WithCancel(context.Background())
	a.cancelLead, a.stopLead = cancelLead, make(chan struct{})
	go func() { defer close(a.stopLead); a.elector.Run(lctx, lead) }()
	s.onFailure(func() { cancelLead(); <-a.stopLead })
	return nil
}

// startBridge takes readings from the external broker, last, once
// everything that takes them is up: a start that fails before leaves no
// session there.
func (s *starting) startBridge() error {
	if s.a.bridge == nil {
		return nil
	}
	return s.a.startBridge(s.cfg)
}

// logReady says Vatio is up, and where.
func (s *starting) logReady() {
	a := s.a
	a.http.SetReady(true)
	ready := []any{slog.String("version", version)}
	if a.bridge != nil {
		ready = append(ready, slog.String("broker", strings.Join(s.cfg.Broker.URLs, " ")))
	} else if addr := a.broker.Addr(); addr != nil {
		ready = append(ready, slog.String("mqtt", addr.String()))
	}
	ready = append(ready, slog.String("http", s.ln.Addr().String()), slog.Bool("tls", s.tls != nil))
	if a.broker != nil {
		if addr := a.broker.TLSAddr(); addr != nil {
			ready = append(ready, slog.String("mqtts", addr.String()))
		}
		if addr := a.broker.WebSocketAddr(); addr != nil {
			ready = append(ready, slog.String("mqtt_ws", addr.String()))
		}
	}
	ready = append(ready, slog.String("data", a.store.Path()))
	s.log.Info("vatio ready", ready...)
}
