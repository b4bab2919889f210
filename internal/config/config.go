// Package config holds Vatio's configuration: one Config struct with its
// defaults, loaded from config.yaml, the environment and flags (in rising
// precedence) and validated once at start-up, one section at a time. It
// describes and builds nothing: it imports no other Vatio package, and
// whoever builds an object (a tariff, an alert rule, the encryption key)
// converts the section it needs, checking what only its package can judge.
// It must not start anything.
package config

import (
	"os"
	"strings"
	"time"
)

// Config is the whole configuration. Every field has a yaml key, documented
// with its default in the repository's config.yaml.
type Config struct {
	// DataDir holds the database, and later archives and backups.
	DataDir string `yaml:"data_dir"`
	// MemoryLimitMB is a soft limit on the Go runtime's memory, in MiB: near
	// it the garbage collector works harder rather than let the heap grow,
	// at up to half the CPU. A limit below what the connected clients keep
	// alive makes the collector run without pause. 0, the default, sets
	// none; the GOMEMLIMIT environment variable, when set, wins.
	MemoryLimitMB int `yaml:"memory_limit_mb"`
	// GCPercent is how far, in percent, the heap may grow past the memory
	// still in use before the garbage collector runs again (the runtime's
	// GOGC). 50, the default, lets the heap reach 1.5 times what is in use,
	// where Go's own 100 lets it double; with 1,000 meters that is 12% less
	// resident memory at the same CPU. Lower trades CPU for memory. The GOGC
	// environment variable, when set, wins.
	GCPercent int    `yaml:"gc_percent"`
	Log       Log    `yaml:"log"`
	MQTT      MQTT   `yaml:"mqtt"`
	HTTP      HTTP   `yaml:"http"`
	TLS       TLS    `yaml:"tls"`
	Ingest    Ingest `yaml:"ingest"`
	// Sources turns the device families Vatio reads on and off.
	Sources Sources `yaml:"sources"`
	// Inputs describe other devices (an industrial gateway, say) by their
	// topics and payloads; they are read before the built-in families.
	Inputs []Input `yaml:"inputs"`
	// Modbus lists the meters Vatio reads itself over Modbus (TCP, RTU on
	// a serial line, RTU over TCP), with no gateway to MQTT. More can be
	// added on the dashboard's Settings page or through
	// /api/v1/modbus/devices; these stay read-only there.
	Modbus    []ModbusDevice `yaml:"modbus"`
	Store     Store          `yaml:"store"`
	Alerts    Alerts         `yaml:"alerts"`
	Backup    Backup         `yaml:"backup"`
	Retention Retention      `yaml:"retention"`
	Archive   Archive        `yaml:"archive"`
	Dashboard Dashboard      `yaml:"dashboard"`
	Tariff    Tariff         `yaml:"tariff"`
	// HomeAssistant configures MQTT discovery for Home Assistant.
	HomeAssistant HomeAssistant `yaml:"homeassistant"`
	// Shedding configures load shedding.
	Shedding Shedding `yaml:"shedding"`
	// Auth seeds the first admin and an admin token.
	Auth Auth `yaml:"auth"`
	// Encryption encrypts backups and archives at rest.
	Encryption Encryption `yaml:"encryption"`
	// Offsite ships backups and archives to S3-compatible object storage.
	Offsite Offsite `yaml:"offsite"`
	// Broker chooses between the embedded broker (the mqtt section) and an
	// external one Vatio is a client of.
	Broker Broker `yaml:"broker"`
}

// Broker chooses the MQTT broker. VATIO_BROKER_PASSWORD overrides the
// password.
type Broker struct {
	// Mode is embedded (Vatio's own broker, the mqtt section) or external.
	Mode string `yaml:"mode"`
	// URLs of the external broker: mqtt://host:1883, mqtts://host:8883,
	// ws://host/mqtt, wss://...; the next is tried when one fails.
	URLs []string `yaml:"urls"`
	// ClientID keeps this instance's session; empty means one chosen at
	// the first start and kept in the data directory (mqtt-client-id):
	// vatio-<host name>-<8 hex digits>. Each instance needs its own.
	ClientID string `yaml:"client_id"`
	// Username logs in to the external broker.
	Username string `yaml:"username"`
	// Password of username.
	Password string `yaml:"password"`
	// CAFile is a PEM file of the authority to trust for mqtts:// and
	// wss://, besides the system's.
	CAFile string `yaml:"ca_file"`
	// Share is the shared-subscription group that instances split the
	// readings in ($share/<share>/<topic>); empty subscribes plainly.
	Share string `yaml:"share"`
	// Topics are the filters subscribed to; "#" leaves the choice to the
	// device families.
	Topics []string `yaml:"topics"`
	// SessionExpiry is how long the broker keeps the session, and the
	// readings published meanwhile, while Vatio is away.
	SessionExpiry time.Duration `yaml:"session_expiry"`
}

// Offsite configures the off-site copies of backups and archives (see
// package offsite). VATIO_OFFSITE_ACCESS_KEY and VATIO_OFFSITE_SECRET_KEY
// override the keys.
type Offsite struct {
	// Enabled ships backups and archives (from the leading instance).
	Enabled bool `yaml:"enabled"`
	// Endpoint is the storage's host[:port], without a scheme:
	// s3.eu-west-1.amazonaws.com, s3.eu-central-003.backblazeb2.com,
	// minio.lan:9000.
	Endpoint string `yaml:"endpoint"`
	// Region is the storage's region (us-east-1 where it has none).
	Region string `yaml:"region"`
	// Bucket is the bucket, which must exist.
	Bucket string `yaml:"bucket"`
	// Prefix is the folder of this Vatio's objects in the bucket.
	Prefix string `yaml:"prefix"`
	// AccessKey is the storage's access key id.
	AccessKey string `yaml:"access_key"`
	// SecretKey is the storage's secret key.
	SecretKey string `yaml:"secret_key"`
	// Insecure speaks plain HTTP to the endpoint (a MinIO on the LAN).
	Insecure bool `yaml:"insecure"`
	// Every is the time between two syncs.
	Every time.Duration `yaml:"every"`
	// KeepBackups is how many backups the bucket keeps (0: all).
	KeepBackups int `yaml:"keep_backups"`
	// KeepArchives is how long after the end of its month an archive is
	// kept in the bucket (0: for ever).
	KeepArchives time.Duration `yaml:"keep_archives"`
}

// Encryption configures the encryption of backups and archives (AES-256-GCM,
// see package crypt); VATIO_ENCRYPTION_KEY overrides it, and is the better
// place for the key.
type Encryption struct {
	// Key is 32 bytes in base64 (openssl rand -base64 32) or 64 hex digits;
	// empty leaves backups and archives plain.
	Key string `yaml:"key"`
}

// Auth seeds access at start-up; VATIO_ADMIN_PASSWORD and
// VATIO_ADMIN_TOKEN override it, and are the better place for secrets.
type Auth struct {
	// AdminPassword creates user admin when no admin exists (instead of
	// the setup page).
	AdminPassword string `yaml:"admin_password"`
	// AdminToken makes sure this admin API token exists: vat_<12 hex>_<at
	// least 24 characters>.
	AdminToken string `yaml:"admin_token"`
	// PasswordChecks is how many password checks (argon2id, 19 MiB and
	// tens of milliseconds each) of web log-ins and MQTT CONNECTs run at
	// once; 0 means half the cores (at least one), which leaves the rest
	// to serve connected clients during a flood. Past it a check waits up to a
	// second, then the client is told to retry (HTTP 429, CONNACK server
	// busy), so a flood of wrong passwords cannot take the memory or CPU.
	PasswordChecks int `yaml:"password_checks"`
}

// HomeAssistant configures the announcement of meters to Home Assistant.
type HomeAssistant struct {
	// Enabled announces every meter to Home Assistant by MQTT discovery
	// and publishes its state and availability. Only Vatio may then
	// publish under discovery_prefix and state_topic, but for Home
	// Assistant's own <discovery_prefix>/status.
	Enabled bool `yaml:"enabled"`
	// DiscoveryPrefix is Home Assistant's discovery prefix.
	DiscoveryPrefix string `yaml:"discovery_prefix"`
	// StateTopic prefixes each meter's state topic, <state_topic>/<meter>/state,
	// and its availability, <state_topic>/<meter>/availability; Vatio's own
	// availability is <state_topic>/status.
	StateTopic string `yaml:"state_topic"`
	// StateEvery is the least time between two states of a meter.
	StateEvery time.Duration `yaml:"state_every"`
}

// Tariff is how energy is priced (see package tariff). Times are read in
// dashboard.timezone. A tariff saved on the dashboard's Settings page (or
// PUT /api/v1/tariff) overrides this section until it is removed there.
type Tariff struct {
	// Currency is an ISO 4217 code, such as EUR.
	Currency string `yaml:"currency"`
	// PriceKWh is the price of a kWh drawn outside every period.
	PriceKWh float64 `yaml:"price_kwh"`
	// ExportPriceKWh is paid for a kWh sent to the grid.
	ExportPriceKWh float64 `yaml:"export_price_kwh"`
	// DailyCharge is a fixed charge per day.
	DailyCharge float64 `yaml:"daily_charge"`
	// DemandChargeKW is charged per kW of each month's peak 15-minute
	// demand.
	DemandChargeKW float64 `yaml:"demand_charge_kw"`
	// CO2GramsKWh is the grid's carbon intensity, g/kWh.
	CO2GramsKWh float64 `yaml:"co2_g_kwh"`
	// ReactivePriceKVArh is charged per kvarh of reactive energy beyond a
	// third of the active energy; 0 when the supply pays none.
	ReactivePriceKVArh float64 `yaml:"reactive_price_kvarh"`
	// Periods are time-of-use prices; the first that covers a time wins.
	Periods []Period `yaml:"periods"`
	// Holidays (YYYY-MM-DD) are priced as Sundays.
	Holidays []string `yaml:"holidays"`
}

// Period is a time-of-use price.
type Period struct {
	// Name names the period in costs (peak, off-peak).
	Name string `yaml:"name"`
	// PriceKWh is the price of a kWh drawn in the period.
	PriceKWh float64 `yaml:"price_kwh"`
	// Days: mon..sun, weekdays, weekend or all.
	Days []string `yaml:"days"`
	// From and To are times of day HH:MM; To is exclusive, may be 24:00,
	// and To before From runs past midnight.
	From string `yaml:"from"`
	// To is the time of day the period ends, HH:MM (see from).
	To string `yaml:"to"`
}

// Dashboard configures the browser dashboard.
type Dashboard struct {
	// TimeZone is the IANA time zone the dashboard shows times and local
	// days in ("Europe/Madrid"); empty means the machine's own, named by
	// the TZ variable, /etc/localtime or /etc/timezone (UTC when it is).
	TimeZone string `yaml:"timezone"`
}

// Location returns the dashboard's time zone: TimeZone, or the machine's
// under its IANA name (LocalZone).
func (d Dashboard) Location() (*time.Location, error) {
	if d.TimeZone == "" {
		tz, set := os.LookupEnv("TZ")
		return LocalZone(tz, set, "/"), nil
	}
	return time.LoadLocation(d.TimeZone)
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text (for people) or json (for log collectors).
	Format string `yaml:"format"`
}

// MQTT configures the embedded broker.
type MQTT struct {
	// Addr is the TCP address meters connect to.
	Addr string `yaml:"addr"`
	// MaxPacketBytes is the largest MQTT packet accepted; a client sending a
	// larger one is disconnected.
	MaxPacketBytes int `yaml:"max_packet_bytes"`
	// WriteTimeout bounds every write to a client; a client that does not
	// read for this long is disconnected so it cannot stall the others.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// MaxQueuedMessages is how many messages may wait to be sent to one
	// subscriber before further ones are dropped for it; every connection
	// reserves room for this many (8 bytes each).
	MaxQueuedMessages int `yaml:"max_queued_messages"`
	// AllowAnonymous lets clients without credentials connect from any
	// address, not only from loopback: insecure on a shared network.
	AllowAnonymous bool `yaml:"allow_anonymous"`
	// TLSAddr serves MQTT over TLS when tls.enabled; "" turns it off.
	TLSAddr string `yaml:"tls_addr"`
	// WebSocketAddr serves MQTT over WebSocket (wss when tls.enabled);
	// "" turns it off.
	WebSocketAddr string `yaml:"websocket_addr"`
	// WebSocketOrigins are the web origins whose pages may open the
	// WebSocket besides its own ("https://vatio.lan:5000"); "*" allows all.
	WebSocketOrigins []string `yaml:"websocket_origins"`
	// MaxClients is how many clients may be connected at once.
	MaxClients int `yaml:"max_clients"`
	// MaxMessagesPerSecond is the rate each client may publish at; a client
	// going faster is slowed down (its messages wait), not cut off.
	MaxMessagesPerSecond int `yaml:"max_messages_per_second"`
	// MaxTopicLength is the longest topic a client may publish on or
	// subscribe to, in bytes.
	MaxTopicLength int `yaml:"max_topic_length"`
	// MaxConnectionsPerDevice is how many clients may be connected at once
	// with one device's credentials (default 8); the next is refused with
	// CONNACK 0x97 quota exceeded (MQTT 5) or 3 server unavailable (MQTT
	// 3.1.1). Clients without credentials are not counted per device
	// (max_clients bounds them). 0 is no limit per device.
	MaxConnectionsPerDevice int `yaml:"max_connections_per_device"`
	// MaxConnectionsPerAddress is how many TCP connections may be open at
	// once from one IP address, before any CONNECT (default 256): one
	// host cannot take all the memory or file descriptors. Past it a
	// connection is closed at once. 0 is no limit.
	MaxConnectionsPerAddress int `yaml:"max_connections_per_address"`
	// MaxRetainedMessageBytes is the largest retained message a client may
	// leave, topic, payload and properties counted (default 64 KiB); a
	// larger retained publish is refused (MQTT 5: reason 0x97 quota
	// exceeded; MQTT 3.1.1: acknowledged, neither retained nor forwarded)
	// and counted.
	MaxRetainedMessageBytes int `yaml:"max_retained_message_bytes"`
	// MaxRetainedBytes bounds all retained messages together (default 16
	// MiB): a retained publish that would pass it is refused as above.
	MaxRetainedBytes int `yaml:"max_retained_bytes"`
}

// TLS configures HTTPS (on http.addr) and MQTTS (on mqtt.tls_addr).
type TLS struct {
	// Enabled serves HTTPS on http.addr and MQTTS on mqtt.tls_addr.
	Enabled bool `yaml:"enabled"`
	// CertFile and KeyFile are PEM files of the certificate (with its chain)
	// and key, read again when they change; empty, Vatio makes a local
	// certificate authority in <data_dir>/tls and a certificate from it.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM file of the certificate's private key (see
	// cert_file).
	KeyFile string `yaml:"key_file"`
	// Hosts are names and addresses the certificate Vatio makes covers
	// besides localhost, this machine's name and its addresses.
	Hosts []string `yaml:"hosts"`
	// HSTS tells browsers to reach this host name by HTTPS only, for a
	// year: every port of it, so leave it off when other web services
	// (Home Assistant, Grafana) share the name over plain HTTP.
	HSTS bool `yaml:"hsts"`
}

// HTTP configures the API and dashboard server.
type HTTP struct {
	// Addr is the TCP address of the API and dashboard.
	Addr string `yaml:"addr"`
	// BodyLimitBytes is the largest request body accepted, counted once
	// its Content-Encoding (gzip, deflate, br) is undone.
	BodyLimitBytes int `yaml:"body_limit_bytes"`
	// ImportLimitBytes is the largest CSV history one import accepts, also
	// counted decoded. An import streams into the store, so its size costs
	// disk (it is staged while validated), not memory.
	ImportLimitBytes int64 `yaml:"import_limit_bytes"`
	// ReadTimeout bounds reading one request; for an import, the time
	// without data (a stalled upload), however long the whole one takes,
	// and the time over which an import must send at least 1 KiB a second
	// (one dripping bytes would hold the one import slot).
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// MaxStreamsPerUser is how many live streams (/api/v1/stream) one user
	// (all their sessions) or token may hold open at once: one viewer
	// cannot take them all. A newer stream ends the holder's oldest.
	MaxStreamsPerUser int `yaml:"max_streams_per_user"`
	// MaxConnectionsPerAddress is how many connections may be open at once
	// from one IP address (default 128): idle keep-alive connections cost
	// memory, and a flood of them would take every file descriptor. Past
	// it a connection is closed at once. 0 is no limit.
	MaxConnectionsPerAddress int `yaml:"max_connections_per_address"`
	// RateLimitPerMinute is how many requests one address may make in a
	// minute; 0 is no limit.
	RateLimitPerMinute int `yaml:"rate_limit_per_minute"`
	// TrustedProxies are reverse proxies (IPs or CIDRs) whose ProxyHeader
	// gives the client's address, and X-Forwarded-Proto the scheme.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ProxyHeader is the header a trusted proxy sets to the client's
	// address (overwriting what the client sent).
	ProxyHeader string `yaml:"proxy_header"`
}

// Ingest configures how published readings are decoded and validated.
type Ingest struct {
	// Topic is the energy topic: Topic carries readings of meter "default",
	// Topic/<meter> those of <meter>.
	Topic string `yaml:"topic"`
	// MinPowerW and MaxPowerW bound a valid reading, in watts (negative is
	// export to the grid). MaxPowerW also bounds how fast the energy counter
	// of a meter without an expected maximum of its own may rise.
	MinPowerW float64 `yaml:"min_power_w"`
	// MaxPowerW is the highest valid power, in watts (see min_power_w).
	MaxPowerW float64 `yaml:"max_power_w"`
	// MaxFuture is how far ahead of the server clock a device timestamp may
	// be; a reading stamped ahead within it is taken at the time it was
	// received.
	MaxFuture time.Duration `yaml:"max_future"`
	// MaxPayloadBytes is the largest reading payload decoded.
	MaxPayloadBytes int `yaml:"max_payload_bytes"`
}

// Sources configures the device families read besides the energy topic:
// each can be turned off, and its topic prefix changed.
type Sources struct {
	// Tasmota reads <prefix>/<device>/SENSOR (ENERGY.Power W, ENERGY.Total
	// kWh; arrays: one meter per channel, <device>:1, <device>:2) and
	// <prefix>/<device>/LWT for availability.
	Tasmota Source `yaml:"tasmota"`
	// Shelly reads Gen2/Gen3 <device>/status/switch:<n>, pm1:<n>, em:<n>
	// and events/rpc, and Gen1 shellies/<id>/relay/<n>/power and energy;
	// meter <device>:<n>.
	Shelly Toggle `yaml:"shelly"`
	// Emonhub reads OpenEnergyMonitor <prefix>/<node>/P1..P6 (W) and
	// E1..E6 (Wh), or JSON on <prefix>/<node>; meter <node>:<n>.
	Emonhub Source `yaml:"emonhub"`
	// Zigbee2MQTT reads <prefix>/<friendly name>: JSON with power (W) and
	// energy (kWh).
	Zigbee2MQTT Source `yaml:"zigbee2mqtt"`
	// DSMR reads DSMR-reader's <prefix>/json telegram or its split
	// <prefix>/reading/electricity_currently_delivered (kW) topics.
	DSMR Source `yaml:"dsmr"`
}

// Source turns one device family on or off and sets its topic prefix.
type Source struct {
	// Enabled reads the family's topics.
	Enabled bool `yaml:"enabled"`
	// Prefix is the first level of the family's topics.
	Prefix string `yaml:"prefix"`
}

// Input describes a device by configuration (see meter.Input).
type Input struct {
	// Name names the input in logs.
	Name string `yaml:"name"`
	// Topic is an MQTT topic filter: + matches one level, # the rest.
	Topic string `yaml:"topic"`
	// Format is plain (a number) or json.
	Format string `yaml:"format"`
	// Field is the dot-separated path of the power in a JSON payload.
	Field string `yaml:"field"`
	// Unit is the power's unit, W or kW; empty for a counter-only input
	// (EnergyField and no Field).
	Unit string `yaml:"unit"`
	// EnergyField is the path of an energy counter, in EnergyUnit (Wh, kWh).
	EnergyField string `yaml:"energy_field"`
	// EnergyUnit is the energy counter's unit, Wh or kWh.
	EnergyUnit string `yaml:"energy_unit"`
	// PFField is the path of a power factor in a JSON payload (optional).
	PFField string `yaml:"pf_field"`
	// Meter makes the meter id from topic levels: {1} is the first.
	Meter string `yaml:"meter"`
	// Scale multiplies values before units are converted (0 means 1).
	Scale float64 `yaml:"scale"`
}

// ModbusDevice is a meter polled over Modbus (package modbus checks what
// only it can judge: the URL, the profile, the registers).
type ModbusDevice struct {
	// Name is the meter's id; a three-phase meter's phases are the meters
	// name:L1, name:L2 and name:L3.
	Name string `yaml:"name"`
	// URL is tcp://host:port, rtu:///dev/ttyUSB0 (a serial line) or
	// rtuovertcp://host:port (RTU through a serial-to-TCP gateway).
	URL string `yaml:"url"`
	// Unit is the meter's Modbus address, 1 to 247 (0 means its profile's
	// factory address, 1).
	Unit int `yaml:"unit"`
	// Profile names the meter's model: sdm120, sdm230, sdm630, em24,
	// em340, iem3000, abb-b2x, dtsu666, dtsu666-4000. Or give registers.
	Profile string `yaml:"profile"`
	// Registers describe any other meter, one value each (at least its
	// power_w).
	Registers []ModbusRegister `yaml:"registers"`
	// Interval is how often the meter is read: 100ms to 1h, 0 meaning 5s.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds each request: 10ms to 10s, 0 meaning 1s. A line's
	// requests take the longest of its devices'.
	Timeout time.Duration `yaml:"timeout"`
	// Speed is a serial line's baud rate (rtu:// only; every device on a
	// line has the same settings); 0 means the profile's factory setting
	// (9600 without a profile).
	Speed int `yaml:"speed"`
	// Parity is a serial line's parity: none, even or odd; "" means the
	// profile's factory setting (none without a profile).
	Parity string `yaml:"parity"`
	// StopBits is a serial line's stop bits, 1 or 2; 0 means the
	// profile's factory setting (1 without a profile).
	StopBits int `yaml:"stop_bits"`
}

// ModbusRegister is one value of a meter without a profile.
type ModbusRegister struct {
	// Function is holding (read holding registers, 0x03) or input (read
	// input registers, 0x04).
	Function string `yaml:"function"`
	// Address is the first register's address as sent, 0-based: a
	// manual's register 30001 or 40001 is address 0.
	Address int `yaml:"address"`
	// Type is int16, uint16, int32, uint32, int64, uint64, float32 or
	// float64.
	Type string `yaml:"type"`
	// WordOrder is the order of a value's registers: high_first (the
	// default) or low_first.
	WordOrder string `yaml:"word_order"`
	// ByteOrder is the order of the bytes in each register: high_first
	// (the default, Modbus's) or low_first.
	ByteOrder string `yaml:"byte_order"`
	// Scale multiplies the value into quantity's unit (0.1 for tenths of
	// a volt, 1000 for kW or kWh); 0 means 1.
	Scale float64 `yaml:"scale"`
	// Quantity is what the value is: power_w (W, negative sent to the
	// grid), import_wh or export_wh (Wh, cumulative), voltage_v,
	// current_a, power_factor or frequency_hz.
	Quantity string `yaml:"quantity"`
	// Phase is L1, L2 or L3; empty for the meter's total.
	Phase string `yaml:"phase"`
}

// Toggle turns on or off a family whose topics have no common prefix.
type Toggle struct {
	// Enabled reads the family's topics.
	Enabled bool `yaml:"enabled"`
}

// Store configures the database.
type Store struct {
	// Driver is bbolt (one file in the data directory, the default) or
	// postgres (a PostgreSQL database several instances may share).
	Driver string `yaml:"driver"`
	// DSN is the PostgreSQL connection URL, such as
	// postgres://vatio@db.lan:5432/vatio?sslmode=verify-full; its password
	// is better given in VATIO_STORE_DSN, which replaces it whole.
	DSN string `yaml:"dsn"`
	// QueueSize is how many readings may wait for the writer; when it is
	// full, publishers wait (back-pressure) instead of memory growing.
	QueueSize int `yaml:"queue_size"`
	// MaxBatch is the most readings the writer takes at once: one group of
	// the log (bbolt), or one transaction (PostgreSQL, imports).
	MaxBatch int `yaml:"max_batch"`
	// MaxGap is the longest silence across which power is integrated into
	// energy; past it, the meter's energy for the gap is unknown.
	MaxGap time.Duration `yaml:"max_gap"`
	// CompressAfter is the age past which readings are re-encoded into
	// compressed blocks, a closed hour at a time; 0 turns it off.
	CompressAfter time.Duration `yaml:"compress_after"`
	// SyncDelay is how long a QoS 1 reading waits for others to share the
	// write-ahead log's fdatasync (bbolt): one page written per group, not
	// per reading; it adds up to this much to the PUBACK. 0 syncs at once.
	SyncDelay time.Duration `yaml:"sync_delay"`
	// FlushInterval is the longest a QoS 0 reading waits in the log before
	// its fdatasync (bbolt): what a power cut may lose of them. A process
	// crash loses none.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// CheckpointInterval is the time between checkpoints of the readings
	// held in memory and in the log into the database (bbolt).
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// HeadMaxMB bounds the memory of the readings not yet checkpointed
	// (bbolt): reaching it checkpoints at once.
	HeadMaxMB int `yaml:"head_max_mb"`
}

// Alerts configures alert delivery.
type Alerts struct {
	Webhook Webhook   `yaml:"webhook"`
	Email   Email     `yaml:"email"`
	MQTT    AlertMQTT `yaml:"mqtt"`
	// Attempts is how many times a delivery is tried before it is recorded
	// as failed.
	Attempts int `yaml:"attempts"`
	// Backoff is the wait before the first retry; it doubles on each one.
	Backoff time.Duration `yaml:"backoff"`
	// ActionsAllowLoopback lets rule actions' webhooks reach services on
	// this machine's loopback (127.0.0.1, ::1); Vatio's own ports stay
	// refused, and so do link-local addresses (cloud metadata) everywhere.
	ActionsAllowLoopback bool `yaml:"actions_allow_loopback"`
	// EvaluateEvery is how often the alert rules are checked.
	EvaluateEvery time.Duration `yaml:"evaluate_every"`
	// Rules are alert rules (see alert.Rule); the API adds more.
	Rules []Rule `yaml:"rules"`
}

// Rule is an alert rule of the configuration (see alert.Rule).
type Rule struct {
	// ID names the rule in alerts and in the API (/api/v1/rules/{id});
	// letters, digits, '.', '_', '-'.
	ID string `yaml:"id"`
	// Name is shown in the dashboard; empty shows the id.
	Name string `yaml:"name"`
	// Kind is power_above, power_below, energy_budget, silent,
	// out_of_range, anomaly or phase_imbalance.
	Kind string `yaml:"kind"`
	// Meter is the meter id the rule watches, or * for every meter.
	Meter string `yaml:"meter"`
	// Severity of its alerts: info, warning or critical.
	Severity string `yaml:"severity"`
	// Enabled evaluates the rule; a rule not enabled is kept but idle.
	Enabled bool `yaml:"enabled"`
	// ThresholdW is the power of power_above and power_below, in watts.
	ThresholdW float64 `yaml:"threshold_w"`
	// For is how long the readings must stay past the threshold before
	// power_above or power_below fires (0 to 24h), on the readings' own
	// times, from the first past it to the newest; resolving takes as
	// long back past the hysteresis.
	For time.Duration `yaml:"for"`
	// BudgetKWh is energy_budget's budget for each period.
	BudgetKWh float64 `yaml:"budget_kwh"`
	// Period is energy_budget's period: day or month.
	Period string `yaml:"period"`
	// SilentFor is how long without a live reading makes silent fire (1m
	// to 720h).
	SilentFor time.Duration `yaml:"silent_for"`
	// Factor is how many times the usual power for the hour and weekday
	// makes anomaly fire (more than 1; 0 means 2).
	Factor float64 `yaml:"factor"`
	// ThresholdPct is how far apart, in percent, a three-phase meter's
	// phases (<meter>:L1 to :L3) may draw power before phase_imbalance
	// fires: the largest deviation of a phase from their mean, in percent
	// of it.
	ThresholdPct float64 `yaml:"threshold_pct"`
	// HysteresisPct is how far under threshold_pct the imbalance must come
	// before phase_imbalance resolves.
	HysteresisPct float64 `yaml:"hysteresis_pct"`
	// HysteresisW is how far back past the threshold the power must come,
	// and stay for For, before the alert resolves (0: the threshold).
	HysteresisW float64 `yaml:"hysteresis_w"`
	// Cooldown is the least time between two firings on one meter.
	Cooldown time.Duration `yaml:"cooldown"`
	// Actions are commands sent when the rule fires (on: fire) or
	// resolves (on: resolve).
	Actions []Action `yaml:"actions"`
}

// Action is a command sent by a rule or load shedding: an MQTT publish
// (topic) or an HTTP POST (url) of payload.
type Action struct {
	// On is fire or resolve (rules only).
	On string `yaml:"on"`
	// Topic is the MQTT topic published to (through the broker Vatio uses).
	Topic string `yaml:"topic"`
	// URL receives an HTTP POST instead of an MQTT publish.
	URL string `yaml:"url"`
	// Payload is what is published or posted.
	Payload string `yaml:"payload"`
}

// Shedding configures load shedding (see automation.Shedding).
type Shedding struct {
	// Enabled sheds and restores loads (on the leading instance).
	Enabled bool `yaml:"enabled"`
	// DryRun records what would be done without sending commands.
	DryRun bool `yaml:"dry_run"`
	// Site is the site whose main meters (those with no parent) give the
	// power; meters with no site are in site default.
	Site string `yaml:"site"`
	// CapW is the site power past which loads are shed; they come back
	// under cap_w - hysteresis_w, after min_off.
	CapW float64 `yaml:"cap_w"`
	// HysteresisW is how far under cap_w the power must come before a
	// load is restored.
	HysteresisW float64 `yaml:"hysteresis_w"`
	// MinOff is the least time a shed load stays off.
	MinOff time.Duration `yaml:"min_off"`
	// Every is how often the site's power is checked; one load is shed or
	// restored each time at most.
	Every time.Duration `yaml:"every"`
	// Loads are the loads to shed, in order; the last shed is restored
	// first.
	Loads []ShedLoad `yaml:"loads"`
}

// ShedLoad is a sheddable load, in the order loads are shed.
type ShedLoad struct {
	// Name names the load in the shedding log and the audit log.
	Name string `yaml:"name"`
	// Meter is the load's own meter; a meter marked critical is never
	// shed.
	Meter string `yaml:"meter"`
	// Off is the command that switches the load off.
	Off Action `yaml:"off"`
	// On is the command that switches it back on.
	On Action `yaml:"on"`
}

// Backup configures the scheduled backups, written to <data_dir>/backups.
type Backup struct {
	// Interval is the time between backups; 0 turns them off. The first
	// comes one interval after the newest backup there, never at start.
	Interval time.Duration `yaml:"interval"`
	// Keep is how many backups are kept; older ones are deleted.
	Keep int `yaml:"keep"`
}

// Retention configures how long each tier of data is kept; 0 keeps a tier
// forever. A coarser tier is kept at least as long as a finer one.
type Retention struct {
	// Raw is the age past which raw readings are written to archive files
	// (<data_dir>/archive) and deleted, a calendar month (UTC) at a time:
	// readings stay between Raw and Raw plus a month.
	Raw time.Duration `yaml:"raw"`
	// Minute, Hourly and Daily are the ages past which the 1-minute,
	// 1-hour and 1-day rollups are deleted.
	Minute time.Duration `yaml:"minute"`
	// Hourly is the age past which 1-hour rollups are deleted.
	Hourly time.Duration `yaml:"hourly"`
	// Daily is the age past which 1-day rollups are deleted.
	Daily time.Duration `yaml:"daily"`
}

// Archive configures the archive files of raw readings past retention.
type Archive struct {
	// Keep is how long an archive file is kept after the end of its month;
	// 0 keeps archives forever.
	Keep time.Duration `yaml:"keep"`
}

// Webhook configures the webhook notifier.
type Webhook struct {
	// URL receives a POST of each alert; empty turns it off.
	URL string `yaml:"url"`
	// Timeout bounds one delivery attempt.
	Timeout time.Duration `yaml:"timeout"`
	// Body is a Go template of the request body (see alert.ParseBody);
	// empty sends the alert as JSON.
	Body string `yaml:"body"`
	// ContentType is the body's media type.
	ContentType string `yaml:"content_type"`
}

// Email configures the SMTP server that mails alerts and statements; one
// saved on the Settings page overrides it.
type Email struct {
	// Addr is the SMTP server, host:port; empty turns email off (unless
	// a server is saved on the Settings page).
	Addr string `yaml:"addr"`
	// From is the sender's address.
	From string `yaml:"from"`
	// To are the alerts' recipients; none mails no alert (statements go
	// to their schedules' recipients).
	To []string `yaml:"to"`
	// Username logs in to the SMTP server; empty sends without logging in.
	Username string `yaml:"username"`
	// Password of username; keep config.yaml readable by Vatio's user
	// only when it holds one.
	Password string `yaml:"password"`
	// TLS is starttls, tls (from the first byte) or none.
	TLS string `yaml:"tls"`
	// Timeout bounds one delivery attempt.
	Timeout time.Duration `yaml:"timeout"`
}

// AlertMQTT configures the notifier that publishes alerts on the broker.
type AlertMQTT struct {
	// Enabled publishes each alert as JSON on <prefix>/<meter>.
	Enabled bool `yaml:"enabled"`
	// Prefix of the topics: alerts of meter m go to <prefix>/m. Only Vatio
	// publishes under it: a client's publish there is refused.
	Prefix string `yaml:"prefix"`
}

// Default returns the configuration Vatio runs with when nothing is set.
func Default() Config {
	return Config{
		DataDir:   "./data",
		GCPercent: 50,
		Log:       Log{Level: "info", Format: "text"},
		MQTT: MQTT{Addr: ":1883", MaxPacketBytes: 1 << 20, WriteTimeout: 10 * time.Second, MaxQueuedMessages: 512,
			TLSAddr: ":8883", MaxClients: 1000, MaxMessagesPerSecond: 200, MaxTopicLength: 512,
			MaxConnectionsPerDevice: 8, MaxConnectionsPerAddress: 256, MaxRetainedMessageBytes: 64 << 10, MaxRetainedBytes: 16 << 20},
		HTTP: HTTP{Addr: ":5000", BodyLimitBytes: 1 << 20, ImportLimitBytes: 1 << 30, ReadTimeout: 30 * time.Second, MaxStreamsPerUser: 8, MaxConnectionsPerAddress: 128,
			RateLimitPerMinute: 1200, ProxyHeader: "X-Real-IP"},
		Ingest: Ingest{
			Topic:           "energy/consumption",
			MinPowerW:       -1e6, // the meter package's DefaultLimits
			MaxPowerW:       10e6,
			MaxFuture:       5 * time.Minute,
			MaxPayloadBytes: 16384,
		},
		Sources: Sources{
			Tasmota:     Source{Enabled: true, Prefix: "tele"},
			Shelly:      Toggle{Enabled: true},
			Emonhub:     Source{Enabled: true, Prefix: "emon"},
			Zigbee2MQTT: Source{Enabled: true, Prefix: "zigbee2mqtt"},
			DSMR:        Source{Enabled: true, Prefix: "dsmr"},
		},
		Store: Store{Driver: "bbolt", QueueSize: 16384, MaxBatch: 10000, MaxGap: 10 * time.Minute, CompressAfter: time.Hour,
			SyncDelay: 15 * time.Millisecond, FlushInterval: 5 * time.Second, CheckpointInterval: 30 * time.Minute, HeadMaxMB: 16},
		Alerts: Alerts{Webhook: Webhook{Timeout: 10 * time.Second, ContentType: "application/json"},
			Email: Email{TLS: "starttls", Timeout: 30 * time.Second}, MQTT: AlertMQTT{Enabled: true, Prefix: "vatio/alerts"},
			Attempts: 5, Backoff: 2 * time.Second, EvaluateEvery: 15 * time.Second},
		Backup:        Backup{Interval: 24 * time.Hour, Keep: 7},
		Offsite:       Offsite{Prefix: "vatio/", Every: time.Hour, KeepBackups: 30},
		Broker:        Broker{Mode: "embedded", Share: "vatio", Topics: []string{"#"}, SessionExpiry: 24 * time.Hour},
		Retention:     Retention{Raw: 30 * 24 * time.Hour, Minute: 365 * 24 * time.Hour},
		Archive:       Archive{Keep: 2 * 365 * 24 * time.Hour},
		Tariff:        Tariff{Currency: "EUR", PriceKWh: 0.15, CO2GramsKWh: 250},
		HomeAssistant: HomeAssistant{Enabled: true, DiscoveryPrefix: "homeassistant", StateTopic: "vatio/meters", StateEvery: 10 * time.Second},
		Shedding:      Shedding{Site: "default", MinOff: 5 * time.Minute, Every: 10 * time.Second},
	}
}

func isNaNOrInf(f float64) bool { return f != f || f > 1e308 || f < -1e308 }

// validBucket reports whether b is an S3 bucket name.
func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 || strings.HasPrefix(b, ".") || strings.HasPrefix(b, "-") || strings.HasSuffix(b, ".") || strings.HasSuffix(b, "-") {
		return false
	}
	return !strings.ContainsFunc(b, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-') })
}

// validFilter reports whether f is an MQTT topic filter: + alone in its
// level, # alone and last.
func validFilter(f string) bool {
	if f == "" || len(f) > 65535 || strings.ContainsRune(f, 0) {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return false
		}
		if strings.Contains(l, "+") && l != "+" {
			return false
		}
	}
	return true
}

// redactDSN keeps a DSN's password out of an error about it: pgconn's
// errors quote the string.
func redactDSN(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "cannot parse `"); i >= 0 {
		return "cannot parse it"
	}
	return msg
}
