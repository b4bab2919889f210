// Package bridge makes Vatio a client of an external MQTT broker (EMQX,
// HiveMQ, Mosquitto, a Home Assistant add-on) instead of running its own:
// it subscribes to the meters' topics there, stores their readings through
// the same pipeline as the embedded broker, and publishes commands, alerts
// and Home Assistant discovery there.
//
// The guarantee is the embedded broker's: a QoS 1 reading is acknowledged
// to the broker only once it is committed. The session is persistent
// (clean start off, a session expiry), so readings published while Vatio
// is down or reconnecting wait in the broker and arrive when it is back;
// one not acknowledged before a crash is sent again. With a shared
// subscription ($share/<group>/<filter>, MQTT 5) several Vatio instances
// split the readings between them; one that stops leaves the group (see
// Leave), and the session of one that died is taken over by another (see
// Takeover), so that what the broker queued for it is stored without it.
package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vatio-energy/vatio/hooks"
)

// Options configure the connection.
type Options struct {
	// URLs of the broker: mqtt://host:1883, mqtts://host:8883,
	// ws://host/mqtt, wss://...; the next is tried when one fails.
	URLs []*url.URL
	// ClientID must be stable across restarts (the session is kept under
	// it) and different for each instance.
	ClientID           string
	Username, Password string
	// TLS configures mqtts:// and wss:// (nil: the system's roots).
	TLS *tls.Config
	// Share is the shared-subscription group; "" subscribes plainly.
	Share string
	// Topics are the filters subscribed to; "#" takes everything and
	// leaves the choice to the device families.
	Topics []string
	// SessionExpiry is how long the broker keeps the session (and the
	// readings sent to it) while Vatio is away.
	SessionExpiry time.Duration
	// ExpectSession says that the broker should hold a session for
	// ClientID from an earlier run: one it does not have is reported as
	// evidence of loss.
	ExpectSession bool
	// BrokerStarted is when the broker started, as an earlier run saw it
	// (zero: unknown); OnBrokerStart is told when that changes, to keep it.
	// A broker that started since is reported as evidence of loss.
	BrokerStarted time.Time
	OnBrokerStart func(time.Time)
	// StatusTopic, when set, is where this instance says it is connected:
	// online (retained) on each connection, and offline (retained) as its
	// will, which the broker publishes when the connection is lost
	// without a goodbye (a crash, a network cut). A stop says goodbye:
	// whoever leads Vatio's jobs publishes offline then.
	StatusTopic string
	Logger      *slog.Logger
}

// Filters returns the subscriptions of a session in share group share
// ("" for none) on topics.
func Filters(share string, topics []string) []string {
	out := make([]string, len(topics))
	for i, t := range topics {
		if share != "" {
			t = "$share/" + share + "/" + t
		}
		out[i] = t
	}
	return out
}

// Brokers' counters of messages they dropped, published on $SYS: Mosquitto
// 2's, and EMQX's of messages dropped because a session's queue was full.
// Subscribing may be refused (EMQX lets only local clients see $SYS by
// default); the counters are then not watched.
var dropCounters = []string{
	"$SYS/broker/publish/messages/dropped",
	"$SYS/brokers/+/metrics/delivery/dropped/queue_full",
}

// uptimeTopic is Mosquitto's uptime ("1234 seconds"): its start moving
// forward is a restart of the broker, which Mosquitto 2.0 comes back from
// without the sessions' shared subscriptions.
const uptimeTopic = "$SYS/broker/uptime"

// Bridge is the connection to the external broker.
type Bridge struct {
	p    *hooks.Pipeline
	log  *slog.Logger
	opts Options

	mu   sync.Mutex
	main *link // this instance's session, once started
	// ctx ends with Close; every link's connection lives in it.
	ctx    context.Context
	cancel context.CancelFunc

	// Taken over: when another connection last took this instance's
	// client id, how many times in a row, and the wait before connecting
	// again (see reconnectDelay).
	takeMu    sync.Mutex
	takenAt   time.Time
	takenRun  int
	takeDelay time.Duration

	// Evidence of loss, by kind: the last message and when.
	evMu sync.Mutex
	seen map[string]evidenceSeen
	// dropped is the broker's counter of dropped messages, by topic, as
	// last seen; started when the broker started, from its uptime.
	dropMu  sync.Mutex
	dropped map[string]float64
	started time.Time
	// lastUptime is the broker's uptime last seen, s (-1: none yet).
	lastUptime int64

	// watchers are Vatio's own subscriptions (see Subscribe), numbered
	// by watchSeq.
	watchMu  sync.Mutex
	watchers map[int]watcher
	watchSeq int

	takeovers  prometheus.Counter
	lossSeen   *prometheus.CounterVec
	brokerDrop prometheus.Gauge
	lapsed     prometheus.Counter
	lapsedRead prometheus.Counter
}

type evidenceSeen struct {
	at  time.Time
	msg string
}

// New prepares the connection; Start makes it.
func New(p *hooks.Pipeline, opts Options) (*Bridge, error) {
	if len(opts.URLs) == 0 {
		return nil, errors.New("bridge: no broker URL")
	}
	if opts.ClientID == "" {
		return nil, errors.New("bridge: a client id is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if len(opts.Topics) == 0 {
		opts.Topics = []string{"#"}
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Bridge{p: p, log: opts.Logger, opts: opts, ctx: ctx, cancel: cancel, started: opts.BrokerStarted, lastUptime: -1,
		seen: map[string]evidenceSeen{}, dropped: map[string]float64{}, watchers: map[int]watcher{},
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vatio_broker_session_taken_over_total",
			Help: "Times another connection took this instance's MQTT client id: two instances sharing one broker.client_id knock each other off.",
		}),
		lossSeen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vatio_broker_loss_evidence_total",
			Help: "Evidence that the external broker lost readings, by kind: dropped (its counter of dropped messages rose), session_lost (it kept no session for this instance), broker_restarted (Mosquitto 2.0 restarts without shared subscriptions), share_silent (an instance's share of the readings stopped while the others' went on).",
		}, []string{"kind"}),
		brokerDrop: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vatio_broker_dropped_messages",
			Help: "The external broker's own count of messages it dropped (queues full), from $SYS; absent when the broker does not publish it.",
		}),
		lapsed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vatio_broker_lapsed_sessions_total",
			Help: "Sessions of instances that died or stopped, taken over by this one and ended.",
		}),
		lapsedRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vatio_broker_lapsed_messages_total",
			Help: "Readings' messages taken from the sessions of instances that died or stopped.",
		}),
	}
	for _, k := range []string{"dropped", "session_lost", "broker_restarted", "share_silent"} {
		b.lossSeen.WithLabelValues(k)
	}
	return b, nil
}

// Start connects to the broker in the background (and reconnects for
// ever); readings flow once the first connection is up and subscribed.
// It is called last, once everything that takes readings is up, so that a
// start that fails leaves no session at the broker.
func (b *Bridge) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.main != nil {
		return errors.New("bridge: already started")
	}
	l := b.newLink(b.opts.ClientID, Filters(b.opts.Share, b.opts.Topics), true)
	if err := l.connect(b.ctx); err != nil {
		return err
	}
	b.main = l
	return nil
}

// Suspend disconnects this instance's session, keeping it at the broker
// (what arrives meanwhile waits there), until Resume; what it took is
// committed and acknowledged first, until ctx ends (the broker resends
// the rest).
func (b *Bridge) Suspend(ctx context.Context) {
	b.mu.Lock()
	l := b.main
	b.main = nil
	b.mu.Unlock()
	if l != nil {
		_ = l.drain(ctx)
		_ = l.close()
	}
}

// Resume connects again after Suspend.
func (b *Bridge) Resume() error {
	b.mu.Lock()
	started := b.main != nil
	b.mu.Unlock()
	if started {
		return nil
	}
	return b.Start()
}

func (b *Bridge) current() *link {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.main
}

// Received returns how many readings' messages this instance's session has
// taken: compared with the other instances', a share gone silent.
func (b *Bridge) Received() int64 {
	if l := b.current(); l != nil {
		return l.received.Load()
	}
	return 0
}

// takenOverFor is how long after the last takeover of its client id the
// bridge reports itself unhealthy.
const takenOverFor = 2 * time.Minute

// takenOver records that the broker ended the connection because another
// took the client id (how Vatio knows: why), and lengthens the wait before
// the next.
func (b *Bridge) takenOver(id, why string) {
	b.takeovers.Inc()
	b.takeMu.Lock()
	if time.Since(b.takenAt) > takenOverFor {
		b.takenRun, b.takeDelay = 0, 0
	}
	b.takenRun++
	b.takenAt = time.Now()
	b.takeDelay = min(max(2*b.takeDelay, time.Second), time.Minute)
	n, wait := b.takenRun, b.takeDelay
	b.takeMu.Unlock()
	b.log.Error("another connection took this instance's MQTT client id: two instances share it, or an old one still runs; give each its own broker.client_id (or leave it empty)",
		slog.String("client_id", id), slog.String("seen", why), slog.Int("times", n), slog.Duration("next_attempt_in", wait))
}

// reconnectDelay is the wait before connection attempt attempt (0 after a
// connection that worked): growing while the client id is taken over.
func (b *Bridge) reconnectDelay(attempt int) time.Duration {
	d := autopaho.NewExponentialBackoff(500*time.Millisecond, 30*time.Second, 2*time.Second, 2)(attempt)
	b.takeMu.Lock()
	defer b.takeMu.Unlock()
	if time.Since(b.takenAt) < takenOverFor {
		d = max(d, b.takeDelay)
	}
	return d
}

// Health reports whether readings flow: connected to the broker, with the
// subscriptions granted, and the client id not taken by another
// connection lately.
func (b *Bridge) Health() error {
	b.takeMu.Lock()
	taken, n := b.takenAt, b.takenRun
	b.takeMu.Unlock()
	if since := time.Since(taken); since < takenOverFor {
		return fmt.Errorf("another connection took MQTT client id %s %d times, last %s ago: two instances share it", b.opts.ClientID, n, since.Round(time.Second))
	}
	if l := b.current(); l == nil || !l.live.Load() {
		return errors.New("not connected and subscribed to the MQTT broker")
	}
	return nil
}

// evidenceFor is how long evidence of loss is reported in /healthz.
const evidenceFor = time.Hour

// Evidence records evidence of loss of kind, counts it, and logs it.
func (b *Bridge) Evidence(kind, msg string) {
	b.lossSeen.WithLabelValues(kind).Inc()
	b.evMu.Lock()
	b.seen[kind] = evidenceSeen{at: time.Now(), msg: msg}
	b.evMu.Unlock()
	b.log.Error("evidence of readings lost at the MQTT broker", slog.String("kind", kind), slog.String("detail", msg))
}

// Warnings returns the evidence of loss seen in the last hour, for
// /healthz.
func (b *Bridge) Warnings() []string {
	b.evMu.Lock()
	defer b.evMu.Unlock()
	var out []string
	for _, e := range b.seen {
		if time.Since(e.at) < evidenceFor {
			out = append(out, e.msg+" ("+e.at.UTC().Format(time.RFC3339)+")")
		}
	}
	return out
}

// watchBroker subscribes, on a best-effort basis, to the broker's counters
// of dropped messages.
func (b *Bridge) watchBroker(ctx context.Context, cm *autopaho.ConnectionManager) {
	subs := make([]paho.SubscribeOptions, 0, len(dropCounters)+1)
	for _, t := range append(dropCounters, uptimeTopic) {
		subs = append(subs, paho.SubscribeOptions{Topic: t, QoS: 0})
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ack, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: subs})
	if err != nil {
		b.log.Debug("broker counters not watched", slog.Any("error", err))
		return
	}
	for i, code := range ack.Reasons {
		if code >= 0x80 && i < len(subs) {
			b.log.Info("the MQTT broker does not let Vatio read its counter of dropped messages", slog.String("topic", subs[i].Topic), slog.Int("reason", int(code)))
		}
	}
}

// monitored handles a message of the broker's own ($SYS): its uptime, or
// a counter of dropped messages.
func (b *Bridge) monitored(topic string, payload []byte) {
	if topic == uptimeTopic {
		b.uptime(payload)
		return
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(payload)), 64)
	if err != nil {
		return
	}
	b.dropMu.Lock()
	prev, seen := b.dropped[topic]
	b.dropped[topic] = v
	b.dropMu.Unlock()
	b.brokerDrop.Set(v)
	if v > prev && (seen || v > 0) {
		// Seen first with dropped messages already counted: they may be
		// older than Vatio, and are still worth saying once.
		b.Evidence("dropped", fmt.Sprintf("the MQTT broker dropped %.0f messages (%s rose from %.0f to %.0f): its queues are too small for the readings waiting in them; see the operator guide's broker settings", v-prev, topic, prev, v))
	}
}

// uptime handles the broker's uptime. A restart is an uptime lower than
// the last, or a start later than the one kept by more than RestartSlack
// (a retained uptime is up to the broker's sys_interval, 10 s by default,
// old): the broker restarted while Vatio was away, or while it was
// reconnecting for longer than the broker had run before.
func (b *Bridge) uptime(payload []byte) {
	f, _, _ := strings.Cut(strings.TrimSpace(string(payload)), " ")
	secs, err := strconv.ParseInt(f, 10, 64)
	if err != nil || secs < 0 {
		return
	}
	start := time.Now().Add(-time.Duration(secs) * time.Second).Truncate(time.Second)
	b.dropMu.Lock()
	prev, last := b.started, b.lastUptime
	b.lastUptime = secs
	restarted := last >= 0 && secs < last || !prev.IsZero() && start.Sub(prev) > RestartSlack
	keep := prev.IsZero() || restarted || start.Before(prev) // the earliest estimate is the best
	if keep {
		b.started = start
	}
	b.dropMu.Unlock()
	if restarted {
		b.Evidence("broker_restarted", fmt.Sprintf("the MQTT broker restarted at about %s: Mosquitto 2.0 restores sessions without their shared subscriptions, so readings published before Vatio subscribed again went to nobody",
			start.UTC().Format(time.RFC3339)))
	}
	if keep && b.opts.OnBrokerStart != nil {
		b.opts.OnBrokerStart(start)
	}
}

var brokerUptimeDesc = prometheus.NewDesc("vatio_broker_uptime_seconds",
	"The external MQTT broker's uptime, as it last reported it ($SYS/broker/uptime, Mosquitto); a drop is a restart.", nil, nil)

// RestartSlack is how much later than the one kept the broker's start may
// seem, across a restart of Vatio, without being taken for a restart.
const RestartSlack = 15 * time.Second

// Publish sends a message to the broker (commands, alerts, Home Assistant
// discovery), waiting for its acknowledgement at QoS 1: 10 s at most, and no longer
// than ctx.
func (b *Bridge) Publish(ctx context.Context, topic string, payload []byte, retain bool, qos byte) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// Up to the timeout, wait for the connection: the leader's jobs start
	// before it is made (see Start), and during a reconnection.
	l := b.current()
	for l == nil {
		select {
		case <-ctx.Done():
			return fmt.Errorf("bridge: publish on %s: not connected", topic)
		case <-time.After(100 * time.Millisecond):
		}
		l = b.current()
	}
	if err := l.cm.AwaitConnection(ctx); err != nil {
		return fmt.Errorf("bridge: publish on %s: not connected: %w", topic, err)
	}
	_, err := l.cm.Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, Retain: retain, QoS: qos})
	if err != nil {
		return fmt.Errorf("bridge: publish on %s: %w", topic, err)
	}
	return nil
}

// Drain stops taking readings (the broker keeps the later ones for the
// session) and waits until those taken are committed and acknowledged.
// Publishing still works until Close.
func (b *Bridge) Drain(ctx context.Context) error {
	if l := b.current(); l != nil {
		return l.drain(ctx)
	}
	return nil
}

// leaveQuiet is how long a session must have sent nothing, once out of the
// share group, for what the broker held for it to be taken as all sent.
const leaveQuiet = time.Second

// Leave takes this instance out of its share group for good, for a stop
// with other instances running: the subscriptions are removed (the broker
// sends the group's readings to the others from then on), what the
// broker had queued for this session is taken and stored until it has
// sent nothing for a second, and Close then ends the session. Should
// anything come after that, the session is kept for another instance to
// take over (see Takeover) rather than ended with it.
func (b *Bridge) Leave(ctx context.Context) error {
	l := b.current()
	if l == nil {
		return nil
	}
	if err := l.unsubscribe(ctx); err != nil {
		return errors.Join(err, l.drain(ctx))
	}
	since := time.Now()
	qerr := l.quiesce(ctx, since, leaveQuiet)
	err := l.drain(ctx)
	if qerr == nil && err == nil && l.refused.Load() == 0 {
		l.leave.Store(true)
		b.log.Info("left the share group: the other instances take its readings", slog.String("client_id", l.clientID))
	}
	return errors.Join(qerr, err)
}

// Left reports whether Leave left the share group (and Close ends the
// session).
func (b *Bridge) Left() bool {
	l := b.current()
	return l != nil && l.leave.Load()
}

// Close disconnects from the broker.
func (b *Bridge) Close() error {
	l := b.current()
	var err error
	if l != nil {
		err = l.close()
	}
	b.cancel()
	return err
}

// Describe implements prometheus.Collector.
func (b *Bridge) Describe(ch chan<- *prometheus.Desc) {
	ch <- brokerUptimeDesc
	b.takeovers.Describe(ch)
	b.lossSeen.Describe(ch)
	b.brokerDrop.Describe(ch)
	b.lapsed.Describe(ch)
	b.lapsedRead.Describe(ch)
}

// Collect implements prometheus.Collector.
func (b *Bridge) Collect(ch chan<- prometheus.Metric) {
	b.takeovers.Collect(ch)
	b.lossSeen.Collect(ch)
	b.dropMu.Lock()
	watched, uptime := len(b.dropped) > 0, b.lastUptime
	b.dropMu.Unlock()
	if watched {
		b.brokerDrop.Collect(ch)
	}
	if uptime >= 0 {
		ch <- prometheus.MustNewConstMetric(brokerUptimeDesc, prometheus.GaugeValue, float64(uptime))
	}
	b.lapsed.Collect(ch)
	b.lapsedRead.Collect(ch)
}

// ClientID returns this instance's client id at the broker.
func (b *Bridge) ClientID() string { return b.opts.ClientID }

// Filters returns this instance's subscriptions.
func (b *Bridge) Filters() []string { return Filters(b.opts.Share, b.opts.Topics) }

// Shared reports whether this instance takes its readings in a share
// group.
func (b *Bridge) Shared() bool { return b.opts.Share != "" }
