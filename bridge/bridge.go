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
// split the readings between them.
package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session/state"

	"github.com/vatio-energy/vatio/hooks"
	"github.com/vatio-energy/vatio/meter"
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
	Logger        *slog.Logger
}

// Bridge is the connection to the external broker.
type Bridge struct {
	p    *hooks.Pipeline
	cm   *autopaho.ConnectionManager
	log  *slog.Logger
	opts Options

	stopped atomic.Bool
	// live is whether the broker granted the subscriptions on the
	// current connection (see Health).
	live atomic.Bool
	// pending counts messages taken and not yet answered; Drain waits
	// for them.
	pending sync.WaitGroup
	// session is the client's session state, kept across connections.
	session *state.State
	// gate is closed once the current connection is up (see receive).
	gateMu sync.Mutex
	gate   chan struct{}
}

// currentGate returns the gate of the current connection.
func (b *Bridge) currentGate() chan struct{} {
	b.gateMu.Lock()
	defer b.gateMu.Unlock()
	return b.gate
}

// New connects to the broker in the background (and reconnects for ever);
// readings flow once the first connection is up.
func New(ctx context.Context, p *hooks.Pipeline, opts Options) (*Bridge, error) {
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
	b := &Bridge{p: p, log: opts.Logger, opts: opts, session: state.NewInMemory(), gate: make(chan struct{})}
	cfg := autopaho.ClientConfig{
		ServerUrls:                    opts.URLs,
		TlsCfg:                        opts.TLS,
		KeepAlive:                     30,
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         uint32(min(opts.SessionExpiry/time.Second, 0xFFFFFFFF)),
		ConnectUsername:               opts.Username,
		ConnectPassword:               []byte(opts.Password),
		ReconnectBackoff:              autopaho.NewExponentialBackoff(500*time.Millisecond, 30*time.Second, 2*time.Second, 2),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			b.gateMu.Lock()
			close(b.gate)
			b.gateMu.Unlock()
			b.log.Info("connected to the MQTT broker", slog.String("client_id", opts.ClientID))
			go b.subscribe(ctx, cm)
		},
		OnConnectionDown: func() bool {
			b.live.Store(false)
			b.gateMu.Lock()
			b.gate = make(chan struct{})
			b.gateMu.Unlock()
			b.log.Warn("lost the MQTT broker; reconnecting")
			return true
		},
		OnConnectError: func(err error) { b.log.Warn("cannot reach the MQTT broker", slog.Any("error", err)) },
		ClientConfig: paho.ClientConfig{
			ClientID:                   opts.ClientID,
			Session:                    b.session,
			EnableManualAcknowledgment: true,
			SendAcksInterval:           50 * time.Millisecond,
			OnPublishReceived:          []func(paho.PublishReceived) (bool, error){b.receive},
			OnClientError:              func(err error) { b.log.Warn("MQTT client error", slog.Any("error", err)) },
		},
	}
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	b.cm = cm
	return b, nil
}

// subscribe subscribes to the topics, in the share group when there is
// one, retrying until the broker grants them all or the connection ends:
// connected but not subscribed, Vatio would take nothing. A persistent
// session keeps the subscriptions; subscribing again on each connection
// covers a session the broker dropped. Retained messages are not asked
// for: an old retained reading would be stored as a new one.
func (b *Bridge) subscribe(ctx context.Context, cm *autopaho.ConnectionManager) {
	var subs []paho.SubscribeOptions
	for _, t := range b.opts.Topics {
		if b.opts.Share != "" {
			t = "$share/" + b.opts.Share + "/" + t
		}
		subs = append(subs, paho.SubscribeOptions{Topic: t, QoS: 1, RetainHandling: 2})
	}
	wait := time.Second
	for {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ack, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: subs})
		cancel()
		refused := false
		if err == nil {
			for i, code := range ack.Reasons {
				if code >= 0x80 && i < len(subs) {
					refused = true
					b.log.Error("the MQTT broker refused a subscription; retrying", slog.String("topic", subs[i].Topic), slog.Int("reason", int(code)))
				}
			}
			if !refused {
				b.live.Store(true)
				b.log.Info("subscribed to the MQTT broker", slog.Int("filters", len(subs)))
				return
			}
		} else {
			b.log.Error("MQTT subscribe failed; retrying", slog.Any("error", err))
		}
		if errors.Is(err, autopaho.ConnectionDownError) {
			return // the next connection subscribes again
		}
		select {
		case <-ctx.Done():
			return
		case <-cm.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// Health reports whether readings flow: connected to the broker, with the
// subscriptions granted.
func (b *Bridge) Health() error {
	if !b.live.Load() {
		return errors.New("not connected and subscribed to the MQTT broker")
	}
	return nil
}

// receive takes one message: the readings are stored, and the message is
// acknowledged once the last is committed (a rejected one at once, behind
// the earlier ones). Not acknowledged, the broker sends it again on the
// next connection.
func (b *Bridge) receive(pr paho.PublishReceived) (bool, error) {
	pb := pr.Packet
	// paho v0.23 empties its acknowledgement tracker once it has started
	// reading, so a message the broker sends straight after the CONNACK
	// (the backlog of a persistent session) can be dropped from it, with
	// its acknowledgement. Waiting until the connection is up (Connect
	// has returned) means every acknowledgement comes after that; one
	// the tracker lost is then sent through the session (see ack).
	select {
	case <-b.currentGate():
	case <-pr.Client.Done():
		return true, nil // that connection ended: the broker resends
	case <-time.After(10 * time.Second):
	}
	// Acknowledgements leave in the order messages came, each once every
	// earlier one is acknowledged (paho's tracker): every QoS 1 message
	// must be acknowledged on its connection, or none after it is.
	ack := func() {
		err := pr.Client.Ack(pb)
		if errors.Is(err, paho.ErrPacketNotFound) {
			// Dropped from the tracker (see receive). Left
			// unacknowledged, the broker would hold it in flight until
			// the next connection: acknowledge it through the session,
			// unless this connection has ended (its id may then be
			// another message's on the next one).
			select {
			case <-pr.Client.Done():
			default:
				err = b.session.Ack(pb.Packet())
			}
		}
		if err != nil {
			b.log.Debug("MQTT ack not sent", slog.Any("error", err))
		}
	}
	src := b.p.Source(pb.Topic)
	if src == nil {
		ack() // not a reading: nothing to keep
		return true, nil
	}
	b.pending.Add(1)
	if b.stopped.Load() {
		// Stopping: left unacknowledged, resent on the next connection;
		// it comes after everything taken, so it holds none of it back.
		b.pending.Done()
		return true, nil
	}
	rs, err := b.p.Decode(src, pb.Topic, pb.Payload)
	if err != nil {
		b.p.Count(b.opts.ClientID, pb.Topic, src, err)
		answer := func(error) { defer b.pending.Done(); ack() }
		if b.p.Store().Sync(answer) != nil {
			answer(nil)
		}
		return true, nil
	}
	if len(rs) == 0 {
		b.p.NoteAvailability(src, pb.Topic, pb.Payload)
		ack()
		b.pending.Done()
		return true, nil
	}
	for i, r := range rs {
		last := i == len(rs)-1
		done := func(err error) {
			if meter.ReasonOf(err) != "" {
				b.p.Count(b.opts.ClientID, pb.Topic, src, err)
			}
		}
		if last {
			done = func(err error) {
				defer b.pending.Done()
				switch {
				case err == nil:
					ack()
				case meter.ReasonOf(err) != "":
					b.p.Count(b.opts.ClientID, pb.Topic, src, err)
					ack() // refused for good: resending would not help
				default:
					b.redeliver(pr, err)
				}
			}
		}
		if err := b.p.Store().Append(r, done); err != nil {
			b.redeliver(pr, err)
			b.pending.Done()
			return true, nil
		}
	}
	return true, nil
}

// redeliver handles a message whose readings could not be stored (a
// failed commit, a store that is closing): left unacknowledged it would
// hold back every later acknowledgement on this connection, so the
// connection is dropped, and the broker sends the message again on the
// next one.
func (b *Bridge) redeliver(pr paho.PublishReceived, err error) {
	if b.stopped.Load() {
		return
	}
	b.log.Error("a reading could not be stored; reconnecting so the broker resends it", slog.Any("error", err))
	go pr.Client.Disconnect(&paho.Disconnect{ReasonCode: 0x80})
}

// Publish sends a message to the broker (commands, alerts, Home Assistant
// discovery), waiting for its acknowledgement at QoS 1.
func (b *Bridge) Publish(topic string, payload []byte, retain bool, qos byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := b.cm.Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, Retain: retain, QoS: qos})
	if err != nil {
		return fmt.Errorf("bridge: publish on %s: %w", topic, err)
	}
	return nil
}

// Drain stops taking readings (the broker keeps the later ones for the
// session) and waits until those taken are committed and acknowledged.
// Publishing still works until Close.
func (b *Bridge) Drain(ctx context.Context) error {
	b.stopped.Store(true)
	err := b.p.Store().Flush()
	done := make(chan struct{})
	go func() { b.pending.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return errors.Join(err, errors.New("bridge: readings still waiting for their commit; the broker resends them"))
	}
	// Let the acknowledgement tracker (every 50 ms) send what was just
	// acknowledged.
	select {
	case <-time.After(150 * time.Millisecond):
	case <-ctx.Done():
	}
	return err
}

// Close disconnects from the broker.
func (b *Bridge) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.cm.Disconnect(ctx); err != nil && !errors.Is(err, autopaho.ConnectionDownError) {
		return fmt.Errorf("bridge: %w", err)
	}
	return nil
}
