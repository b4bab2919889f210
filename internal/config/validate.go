package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// problems collects what is wrong with a configuration, each naming its
// key.
type problems []error

func (p *problems) bad(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

// Validate reports every invalid value, each error naming its key. It
// checks what the configuration itself can say (ranges, addresses, names,
// what goes together); what only a domain package can judge (the tariff,
// which the dashboard and the API also write, an alert rule, a template,
// the encryption key) is checked by whoever builds that object from its
// section.
func (c Config) Validate() error {
	var p problems
	c.validateProcess(&p)
	c.Log.validate(&p)
	c.validateMQTT(&p)
	c.HTTP.validate(&p)
	c.TLS.validate(&p)
	c.validateIngest(&p)
	c.validateSources(&p)
	c.validateModbus(&p)
	c.Store.validate(&p)
	c.Alerts.validate(&p)
	c.Dashboard.validate(&p)
	c.Shedding.validate(&p)
	c.HomeAssistant.validate(&p)
	c.validateOwnTopics(&p)
	c.Backup.validate(&p)
	c.Retention.validate(&p)
	c.Archive.validate(&p)
	c.Auth.validate(&p)
	c.validateOffsite(&p)
	c.Broker.validate(&p)
	return errors.Join(p...)
}

// validateProcess checks the top-level keys.
func (c Config) validateProcess(p *problems) {
	if strings.TrimSpace(c.DataDir) == "" {
		p.bad("data_dir", "must not be empty")
	}
	if c.MemoryLimitMB != 0 && (c.MemoryLimitMB < 16 || c.MemoryLimitMB > 1<<20) {
		p.bad("memory_limit_mb", "%d is outside 16 to 1048576 (0 for none)", c.MemoryLimitMB)
	}
	if c.GCPercent < 10 || c.GCPercent > 1000 {
		p.bad("gc_percent", "%d is outside 10 to 1000", c.GCPercent)
	}
}

func (l Log) validate(p *problems) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		p.bad("log.level", "%q is not debug, info, warn or error", l.Level)
	}
	switch l.Format {
	case "text", "json":
	default:
		p.bad("log.format", "%q is not text or json", l.Format)
	}
}

func checkAddr(p *problems, key, addr string) {
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		p.bad(key, "%q is not host:port (e.g. \":1883\" or \"127.0.0.1:1883\")", addr)
	}
}

// validateMQTT checks mqtt (whose listeners depend on tls.enabled).
func (c Config) validateMQTT(p *problems) {
	m := c.MQTT
	if m.Addr != "" {
		checkAddr(p, "mqtt.addr", m.Addr)
	}
	if m.TLSAddr != "" {
		checkAddr(p, "mqtt.tls_addr", m.TLSAddr)
	}
	if m.WebSocketAddr != "" {
		checkAddr(p, "mqtt.websocket_addr", m.WebSocketAddr)
	}
	if m.Addr == "" && m.WebSocketAddr == "" && (!c.TLS.Enabled || m.TLSAddr == "") {
		p.bad("mqtt.addr", "is empty, and neither mqtt.tls_addr (with tls.enabled) nor mqtt.websocket_addr is set: devices could not connect")
	}
	for i, o := range m.WebSocketOrigins {
		if u, err := url.Parse(o); o != "*" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "") {
			p.bad(fmt.Sprintf("mqtt.websocket_origins[%d]", i), "%q is not an origin such as https://vatio.lan:5000, or *", o)
		}
	}
	if m.MaxClients < 1 || m.MaxClients > 1_000_000 {
		p.bad("mqtt.max_clients", "%d is outside 1 to 1000000", m.MaxClients)
	}
	if m.MaxMessagesPerSecond < 1 || m.MaxMessagesPerSecond > 1_000_000 {
		p.bad("mqtt.max_messages_per_second", "%d is outside 1 to 1000000", m.MaxMessagesPerSecond)
	}
	if m.MaxTopicLength < 64 || m.MaxTopicLength > 65535 {
		p.bad("mqtt.max_topic_length", "%d is outside 64 to 65535", m.MaxTopicLength)
	}
	if m.MaxConnectionsPerAddress < 0 || m.MaxConnectionsPerAddress > 1_000_000 {
		p.bad("mqtt.max_connections_per_address", "%d is outside 0 (no limit) to 1000000", m.MaxConnectionsPerAddress)
	}
	if m.MaxConnectionsPerDevice < 0 || m.MaxConnectionsPerDevice > m.MaxClients {
		p.bad("mqtt.max_connections_per_device", "%d is outside 0 (no limit) to mqtt.max_clients (%d)", m.MaxConnectionsPerDevice, m.MaxClients)
	}
	if m.MaxRetainedMessageBytes < 1024 || m.MaxRetainedMessageBytes > m.MaxRetainedBytes {
		p.bad("mqtt.max_retained_message_bytes", "%d is outside 1024 to mqtt.max_retained_bytes (%d)", m.MaxRetainedMessageBytes, m.MaxRetainedBytes)
	}
	if m.MaxRetainedBytes < 1024 || m.MaxRetainedBytes > 1<<30 {
		p.bad("mqtt.max_retained_bytes", "%d is outside 1024 to 1073741824", m.MaxRetainedBytes)
	}
	if m.MaxPacketBytes < 1024 || m.MaxPacketBytes > 256<<20 {
		p.bad("mqtt.max_packet_bytes", "%d is outside 1024 to 268435456", m.MaxPacketBytes)
	}
	if m.MaxQueuedMessages < 16 || m.MaxQueuedMessages > 1<<20 {
		p.bad("mqtt.max_queued_messages", "%d is outside 16 to 1048576", m.MaxQueuedMessages)
	}
	if m.WriteTimeout < time.Second {
		p.bad("mqtt.write_timeout", "%s is under 1s", m.WriteTimeout)
	}
}

func (h HTTP) validate(p *problems) {
	checkAddr(p, "http.addr", h.Addr)
	if h.MaxConnectionsPerAddress < 0 || h.MaxConnectionsPerAddress > 1_000_000 {
		p.bad("http.max_connections_per_address", "%d is outside 0 (no limit) to 1000000", h.MaxConnectionsPerAddress)
	}
	for i, proxy := range h.TrustedProxies {
		if net.ParseIP(proxy) == nil {
			if _, _, err := net.ParseCIDR(proxy); err != nil {
				p.bad(fmt.Sprintf("http.trusted_proxies[%d]", i), "%q is not an IP address or a CIDR such as 10.0.0.0/8", proxy)
			}
		}
	}
	if ph := h.ProxyHeader; ph == "" || strings.ContainsAny(ph, " :\r\n") {
		p.bad("http.proxy_header", "%q is not a header name such as X-Real-IP", ph)
	} else if strings.EqualFold(ph, "X-Forwarded-For") {
		p.bad("http.proxy_header", "X-Forwarded-For starts with whatever the client sent: use a header the proxy overwrites, such as X-Real-IP")
	}
	if h.ReadTimeout < time.Second || h.ReadTimeout > time.Hour {
		p.bad("http.read_timeout", "%s is outside 1s to 1h", h.ReadTimeout)
	}
	if h.MaxStreamsPerUser < 1 || h.MaxStreamsPerUser > 1000 {
		p.bad("http.max_streams_per_user", "%d is outside 1 to 1000", h.MaxStreamsPerUser)
	}
	if h.RateLimitPerMinute < 0 || h.RateLimitPerMinute > 1_000_000 {
		p.bad("http.rate_limit_per_minute", "%d is outside 0 to 1000000 (0 for no limit)", h.RateLimitPerMinute)
	}
	if h.BodyLimitBytes < 1024 {
		p.bad("http.body_limit_bytes", "%d is under 1024", h.BodyLimitBytes)
	}
	if h.ImportLimitBytes < 1024 {
		p.bad("http.import_limit_bytes", "%d is under 1024", h.ImportLimitBytes)
	}
}

func (t TLS) validate(p *problems) {
	if t.Enabled {
		if (t.CertFile == "") != (t.KeyFile == "") {
			p.bad("tls.cert_file", "cert_file and key_file go together: set both, or neither for a certificate Vatio makes")
		}
	} else if t.CertFile != "" || t.KeyFile != "" {
		p.bad("tls.enabled", "is false, but tls.cert_file or tls.key_file is set: set enabled: true to serve them")
	}
	for i, h := range t.Hosts {
		if strings.TrimSpace(h) == "" || strings.ContainsAny(h, " /:*") && net.ParseIP(h) == nil {
			p.bad(fmt.Sprintf("tls.hosts[%d]", i), "%q is not a host name or an IP address", h)
		}
	}
}

// validateIngest checks ingest (whose payloads fit in mqtt's packets).
func (c Config) validateIngest(p *problems) {
	in := c.Ingest
	if t := in.Topic; t == "" || strings.ContainsAny(t, "+#\x00") || strings.HasPrefix(t, "$") ||
		strings.HasPrefix(t, "/") || strings.HasSuffix(t, "/") || len(t) > 200 {
		p.bad("ingest.topic", "%q must be a plain topic without wildcards, $ prefix or leading/trailing '/'", t)
	}
	if !(in.MinPowerW < in.MaxPowerW) || isNaNOrInf(in.MinPowerW) || isNaNOrInf(in.MaxPowerW) {
		p.bad("ingest.min_power_w", "%g must be finite and below ingest.max_power_w (%g)", in.MinPowerW, in.MaxPowerW)
	}
	if in.MaxFuture < 0 || in.MaxFuture > 24*time.Hour {
		p.bad("ingest.max_future", "%s is outside 0s to 24h", in.MaxFuture)
	}
	if in.MaxPayloadBytes < 16 || in.MaxPayloadBytes > c.MQTT.MaxPacketBytes {
		p.bad("ingest.max_payload_bytes", "%d is outside 16 to mqtt.max_packet_bytes (%d)", in.MaxPayloadBytes, c.MQTT.MaxPacketBytes)
	}
}

// validateSources checks sources and inputs; an input's fields are the
// meter package's to judge, when the input is built.
func (c Config) validateSources(p *problems) {
	for _, s := range []struct {
		key string
		src Source
	}{
		{"sources.tasmota", c.Sources.Tasmota}, {"sources.emonhub", c.Sources.Emonhub},
		{"sources.zigbee2mqtt", c.Sources.Zigbee2MQTT}, {"sources.dsmr", c.Sources.DSMR},
	} {
		if pre := s.src.Prefix; s.src.Enabled && (pre == "" || strings.ContainsAny(pre, "+#/\x00") || strings.HasPrefix(pre, "$")) {
			p.bad(s.key+".prefix", "%q must be one topic level without wildcards or $", pre)
		}
	}
	names := map[string]bool{}
	for i, in := range c.Inputs {
		if names[in.Name] {
			p.bad(fmt.Sprintf("inputs[%d].name", i), "%q is used twice", in.Name)
		}
		names[in.Name] = true
	}
}

func (s Store) validate(p *problems) {
	switch s.Driver {
	case "bbolt":
	case "postgres":
		if s.DSN == "" {
			p.bad("store.dsn", "the postgres driver needs a connection URL such as postgres://vatio@db.lan/vatio (or %s)", EnvStoreDSN)
		} else if _, err := pgconn.ParseConfig(s.DSN); err != nil {
			p.bad("store.dsn", "not a PostgreSQL connection string: %v", redactDSN(err))
		}
	default:
		p.bad("store.driver", "%q is not bbolt or postgres", s.Driver)
	}
	if s.QueueSize < 1 || s.QueueSize > 1<<24 {
		p.bad("store.queue_size", "%d is outside 1 to 16777216", s.QueueSize)
	}
	if s.MaxBatch < 1 || s.MaxBatch > 1<<20 {
		p.bad("store.max_batch", "%d is outside 1 to 1048576", s.MaxBatch)
	}
	if s.MaxGap < time.Second || s.MaxGap > 24*time.Hour {
		p.bad("store.max_gap", "%s is outside 1s to 24h", s.MaxGap)
	}
	if s.CompressAfter != 0 && s.CompressAfter < time.Hour {
		p.bad("store.compress_after", "%s is under 1h (0 turns compression off)", s.CompressAfter)
	}
	if s.SyncDelay < 0 || s.SyncDelay > time.Second {
		p.bad("store.sync_delay", "%s is outside 0 to 1s", s.SyncDelay)
	}
	if s.FlushInterval < 10*time.Millisecond || s.FlushInterval > time.Minute {
		p.bad("store.flush_interval", "%s is outside 10ms to 1m", s.FlushInterval)
	}
	if s.CheckpointInterval < time.Second || s.CheckpointInterval > 24*time.Hour {
		p.bad("store.checkpoint_interval", "%s is outside 1s to 24h", s.CheckpointInterval)
	}
	if s.HeadMaxMB < 1 || s.HeadMaxMB > 4096 {
		p.bad("store.head_max_mb", "%d is outside 1 to 4096", s.HeadMaxMB)
	}
}

// validate checks alerts; a rule's fields and the webhook's body template
// are the alert package's to judge, when they are built.
func (a Alerts) validate(p *problems) {
	if u := a.Webhook.URL; u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			p.bad("alerts.webhook.url", "%q is not an http:// or https:// URL", u)
		}
	}
	ruleIDs := map[string]bool{}
	for i, r := range a.Rules {
		if ruleIDs[r.ID] {
			p.bad(fmt.Sprintf("alerts.rules[%d].id", i), "%q is used twice", r.ID)
		}
		ruleIDs[r.ID] = true
	}
	if a.EvaluateEvery < time.Second || a.EvaluateEvery > time.Hour {
		p.bad("alerts.evaluate_every", "%s is outside 1s to 1h", a.EvaluateEvery)
	}
	if ct := a.Webhook.ContentType; ct == "" || strings.ContainsAny(ct, "\r\n") {
		p.bad("alerts.webhook.content_type", "%q is not a media type", ct)
	}
	// alerts.email is checked where it is built (alert.MailSpec.Check),
	// as the settings saved on the dashboard are.
	if pre := a.MQTT.Prefix; a.MQTT.Enabled && (pre == "" || strings.ContainsAny(pre, "+#\x00") || strings.HasPrefix(pre, "$") || strings.HasSuffix(pre, "/")) {
		p.bad("alerts.mqtt.prefix", "%q is not a topic without wildcards, $ or a trailing /", pre)
	}
	if a.Webhook.Timeout < 100*time.Millisecond {
		p.bad("alerts.webhook.timeout", "%s is under 100ms", a.Webhook.Timeout)
	}
	if a.Attempts < 1 || a.Attempts > 100 {
		p.bad("alerts.attempts", "%d is outside 1 to 100", a.Attempts)
	}
	if a.Backoff < 10*time.Millisecond || a.Backoff > time.Hour {
		p.bad("alerts.backoff", "%s is outside 10ms to 1h", a.Backoff)
	}
}

func (d Dashboard) validate(p *problems) {
	if d.TimeZone == "" {
		return // the machine's: there is always one
	}
	if _, err := d.Location(); err != nil || strings.EqualFold(d.TimeZone, "local") {
		p.bad("dashboard.timezone", "%q is not an IANA time zone such as Europe/Madrid (empty: the machine's)", d.TimeZone)
	}
}

// validate checks load shedding, when it is on; a load's meter id and
// commands are checked when the shedding is built.
func (s Shedding) validate(p *problems) {
	if !s.Enabled {
		return
	}
	if s.Site == "" {
		p.bad("shedding.site", "must name a site (default is the meters' without one)")
	}
	if isNaNOrInf(s.CapW) || s.CapW <= 0 {
		p.bad("shedding.cap_w", "%g must be more than 0 W", s.CapW)
	}
	if isNaNOrInf(s.HysteresisW) || s.HysteresisW < 0 || s.HysteresisW >= s.CapW {
		p.bad("shedding.hysteresis_w", "%g must be from 0 to below cap_w", s.HysteresisW)
	}
	if s.MinOff < 0 || s.MinOff > 24*time.Hour {
		p.bad("shedding.min_off", "%s is outside 0s to 24h", s.MinOff)
	}
	if s.Every < time.Second || s.Every > time.Hour {
		p.bad("shedding.every", "%s is outside 1s to 1h", s.Every)
	}
	if len(s.Loads) == 0 {
		p.bad("shedding.loads", "list at least one load to shed")
	}
	names := map[string]bool{}
	for i, l := range s.Loads {
		if l.Name == "" || names[l.Name] {
			p.bad(fmt.Sprintf("shedding.loads[%d].name", i), "%q is empty or used twice", l.Name)
		}
		names[l.Name] = true
	}
}

func (h HomeAssistant) validate(p *problems) {
	if !h.Enabled {
		return
	}
	for _, t := range []struct{ key, topic string }{
		{"homeassistant.discovery_prefix", h.DiscoveryPrefix}, {"homeassistant.state_topic", h.StateTopic},
	} {
		if t.topic == "" || strings.ContainsAny(t.topic, "+#\x00") || strings.HasPrefix(t.topic, "$") || strings.HasSuffix(t.topic, "/") {
			p.bad(t.key, "%q is not a topic without wildcards, $ or a trailing /", t.topic)
		}
	}
	if h.StateEvery < time.Second || h.StateEvery > time.Hour {
		p.bad("homeassistant.state_every", "%s is outside 1s to 1h", h.StateEvery)
	}
}

// validateOwnTopics checks that no readings' topic falls under
// Home Assistant's discovery prefix or state topic, or the alerts' prefix:
// only Vatio may publish there (see devices.WithOwnTopics), so such
// readings would all be refused.
func (c Config) validateOwnTopics(p *problems) {
	var owns []struct{ key, prefix string }
	if a := c.Alerts.MQTT; a.Enabled {
		owns = append(owns, struct{ key, prefix string }{"alerts.mqtt.prefix", a.Prefix})
	}
	if h := c.HomeAssistant; h.Enabled {
		owns = append(owns, struct{ key, prefix string }{"homeassistant.discovery_prefix", h.DiscoveryPrefix},
			struct{ key, prefix string }{"homeassistant.state_topic", h.StateTopic})
	}
	if len(owns) == 0 {
		return
	}
	readings := []struct{ key, filter string }{{"ingest.topic", c.Ingest.Topic + "/#"}}
	for _, s := range []struct {
		key string
		src Source
	}{
		{"sources.tasmota", c.Sources.Tasmota}, {"sources.emonhub", c.Sources.Emonhub},
		{"sources.zigbee2mqtt", c.Sources.Zigbee2MQTT}, {"sources.dsmr", c.Sources.DSMR},
	} {
		if s.src.Enabled {
			readings = append(readings, struct{ key, filter string }{s.key + ".prefix", s.src.Prefix + "/#"})
		}
	}
	for i, in := range c.Inputs {
		readings = append(readings, struct{ key, filter string }{fmt.Sprintf("inputs[%d].topic", i), in.Topic})
	}
	for _, own := range owns {
		for _, r := range readings {
			if r.filter != "" && own.prefix != "" && filterUnder(r.filter, own.prefix) {
				p.bad(r.key, "%q is under %s %q, where only Vatio may publish: its readings would all be refused", r.filter, own.key, own.prefix)
			}
		}
	}
}

// filterUnder reports whether every topic filter matches is prefix or
// under it. A filter that only may reach there (+/SENSOR) is left alone:
// the topics it loses there are Vatio's, not readings.
func filterUnder(filter, prefix string) bool {
	fl, pl := strings.Split(filter, "/"), strings.Split(prefix, "/")
	if len(fl) < len(pl) {
		return false
	}
	for i, l := range pl {
		if fl[i] != l {
			return false
		}
	}
	return true
}

func (b Backup) validate(p *problems) {
	if b.Interval != 0 && b.Interval < time.Minute {
		p.bad("backup.interval", "%s is under 1m (0 turns backups off)", b.Interval)
	}
	if b.Keep < 1 || b.Keep > 1000 {
		p.bad("backup.keep", "%d is outside 1 to 1000", b.Keep)
	}
}

func (r Retention) validate(p *problems) {
	tiers := []struct {
		key  string
		keep time.Duration
	}{
		{"retention.raw", r.Raw}, {"retention.minute", r.Minute},
		{"retention.hourly", r.Hourly}, {"retention.daily", r.Daily},
	}
	for i, t := range tiers {
		switch {
		case t.keep != 0 && t.keep < 24*time.Hour:
			p.bad(t.key, "%s is under 24h (0 keeps forever)", t.keep)
		case i > 0 && t.keep != 0 && tiers[i-1].keep == 0:
			p.bad(t.key, "%s is set while %s is 0 (forever): a tier is kept at least as long as the finer one", t.keep, tiers[i-1].key)
		case i > 0 && t.keep != 0 && t.keep < tiers[i-1].keep:
			p.bad(t.key, "%s is shorter than %s (%s): a tier is kept at least as long as the finer one", t.keep, tiers[i-1].key, tiers[i-1].keep)
		}
	}
}

func (a Archive) validate(p *problems) {
	if a.Keep != 0 && a.Keep < 24*time.Hour {
		p.bad("archive.keep", "%s is under 24h (0 keeps archives forever)", a.Keep)
	}
}

func (a Auth) validate(p *problems) {
	if a.PasswordChecks < 0 || a.PasswordChecks > 1024 {
		p.bad("auth.password_checks", "%d is outside 0 (half the CPUs) to 1024", a.PasswordChecks)
	}
}

// validateOffsite checks offsite (whose copies need encryption.key).
func (c Config) validateOffsite(p *problems) {
	o := c.Offsite
	if o.Enabled {
		if c.Encryption.Key == "" {
			p.bad("offsite.enabled", "off-site copies are encrypted here before they leave: set encryption.key (or %s)", EnvEncryptionKey)
		}
		if o.Endpoint == "" || strings.Contains(o.Endpoint, "/") {
			p.bad("offsite.endpoint", "%q is not a host[:port] such as s3.eu-west-1.amazonaws.com (no scheme; insecure: true for http)", o.Endpoint)
		}
		if !validBucket(o.Bucket) {
			p.bad("offsite.bucket", "%q is not a bucket name (3-63 lowercase letters, digits, '.' and '-')", o.Bucket)
		}
		if strings.HasPrefix(o.Prefix, "/") || strings.Contains(o.Prefix, "..") {
			p.bad("offsite.prefix", "%q must be a relative folder such as vatio/", o.Prefix)
		}
		if o.AccessKey == "" || o.SecretKey == "" {
			p.bad("offsite.access_key", "access_key and secret_key are required (or %s and %s)", EnvOffsiteAccessKey, EnvOffsiteSecretKey)
		}
		if o.Every < time.Minute {
			p.bad("offsite.every", "%s is under 1m", o.Every)
		}
	}
	if o.KeepBackups < 0 {
		p.bad("offsite.keep_backups", "%d is negative (0 keeps them all)", o.KeepBackups)
	}
	if o.KeepArchives < 0 {
		p.bad("offsite.keep_archives", "%s is negative (0 keeps them for ever)", o.KeepArchives)
	}
}

func (b Broker) validate(p *problems) {
	switch b.Mode {
	case "embedded":
	case "external":
		if len(b.URLs) == 0 {
			p.bad("broker.urls", "an external broker needs at least one URL such as mqtt://broker.lan:1883")
		}
		for i, raw := range b.URLs {
			u, err := url.Parse(raw)
			if err != nil || u.Host == "" || !slices.Contains([]string{"mqtt", "mqtts", "tcp", "ssl", "tls", "ws", "wss"}, u.Scheme) {
				p.bad(fmt.Sprintf("broker.urls[%d]", i), "%q is not a broker URL such as mqtt://host:1883 or mqtts://host:8883", raw)
			}
			if err == nil && u.User != nil {
				p.bad(fmt.Sprintf("broker.urls[%d]", i), "put the credentials in broker.username and broker.password (or %s), not in the URL", EnvBrokerPassword)
			}
		}
		if strings.ContainsAny(b.Share, "/+#") {
			p.bad("broker.share", "%q must be one topic level without wildcards", b.Share)
		}
		if len(b.Topics) == 0 {
			p.bad("broker.topics", "subscribe to something: [\"#\"] takes every topic")
		}
		for i, t := range b.Topics {
			if !validFilter(t) {
				p.bad(fmt.Sprintf("broker.topics[%d]", i), "%q is not an MQTT topic filter", t)
			}
		}
		if b.SessionExpiry < time.Minute {
			p.bad("broker.session_expiry", "%s is under 1m: readings published while Vatio restarts would be lost", b.SessionExpiry)
		}
	default:
		p.bad("broker.mode", "%q is not embedded or external", b.Mode)
	}
}

// validateModbus checks what the modbus list itself can say: names given
// once, and numbers in range; package modbus checks the rest when the
// devices are built (URLs, profiles, registers).
func (c Config) validateModbus(p *problems) {
	names := map[string]bool{}
	for i, d := range c.Modbus {
		key := fmt.Sprintf("modbus[%d]", i)
		if d.Name == "" || names[d.Name] {
			p.bad(key+".name", "%q is empty or used twice", d.Name)
		}
		names[d.Name] = true
		if d.URL == "" {
			p.bad(key+".url", "give tcp://host:port, rtu:///dev/ttyUSB0 or rtuovertcp://host:port")
		}
		if d.Unit < 0 || d.Unit > 255 {
			p.bad(key+".unit", "%d is outside 1 to 247 (or 255)", d.Unit)
		}
		if d.Interval != 0 && (d.Interval < 100*time.Millisecond || d.Interval > time.Hour) {
			p.bad(key+".interval", "%s is outside 100ms to 1h", d.Interval)
		}
		if d.Timeout != 0 && (d.Timeout < 10*time.Millisecond || d.Timeout > 30*time.Second) {
			p.bad(key+".timeout", "%s is outside 10ms to 30s", d.Timeout)
		}
		if d.Speed < 0 || d.Speed > 921600 {
			p.bad(key+".speed", "%d is not a baud rate", d.Speed)
		}
		if d.StopBits < 0 || d.StopBits > 2 {
			p.bad(key+".stop_bits", "%d: use 1 or 2", d.StopBits)
		}
		for j, r := range d.Registers {
			if r.Address < 0 || r.Address > 65535 {
				p.bad(fmt.Sprintf("%s.registers[%d].address", key, j), "%d is outside 0 to 65535", r.Address)
			}
		}
	}
}
