package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session/state"

	"github.com/vatio-energy/vatio/hooks"
	"github.com/vatio-energy/vatio/internal/meter"
)

// A connection the broker ends within briefConnection of making it, for
// briefInARow connections in a row, is taken as another connection taking
// the client id over. Of two instances sharing one, the one that noticed
// first waits longer before each attempt (1 s, 2 s, 4 s...), so the other's
// connections last that long before it knocks them off: 10 s lets that
// one notice too, by its third.
const (
	briefConnection = 10 * time.Second
	briefInARow     = 3
)

// link is one MQTT session at the broker, under one client id: this
// instance's own, or a lapsed instance's that it takes over (see Takeover).
// Readings it receives go through the bridge's pipeline, and each message
// is acknowledged once its readings are committed.
type link struct {
	b        *Bridge
	clientID string
	// filters are the subscriptions of the session ($share/... included).
	filters []string
	cm      *autopaho.ConnectionManager
	// session is the client's session state, kept across connections.
	session *state.State
	// own is false for a session taken over: it is not subscribed again,
	// and not reconnected when its connection ends.
	own bool

	// live is whether the broker granted the subscriptions on the current
	// connection (see Bridge.Health).
	live atomic.Bool
	// stopped: messages are no longer taken (see Bridge.Drain); refused
	// counts those left unacknowledged since.
	stopped atomic.Bool
	refused atomic.Int64
	// leave makes the DISCONNECT end the session (session expiry 0).
	leave atomic.Bool
	// pending counts messages taken and not yet answered; waiting for
	// them is waiting for pendingN to reach zero.
	pending  sync.WaitGroup
	pendingN atomic.Int64
	// received counts readings' messages taken; lastMsg is when the last
	// message arrived (UnixNano).
	received atomic.Int64
	lastMsg  atomic.Int64
	// gate is closed once the current connection is up (see receive).
	gateMu sync.Mutex
	gate   chan struct{}
	// connack is the answer to the first connection.
	connack chan *paho.Connack
	// connections counts connections made; upAt is when the current one
	// came up (UnixNano), and brief counts the connections in a row that
	// the broker ended within briefConnection of it.
	connections atomic.Int64
	upAt        atomic.Int64
	brief       atomic.Int64
	// downs counts connections lost.
	downs atomic.Int64
}

func (b *Bridge) newLink(clientID string, filters []string, own bool) *link {
	return &link{b: b, clientID: clientID, filters: filters, own: own, session: state.NewInMemory(),
		gate: make(chan struct{}), connack: make(chan *paho.Connack, 1)}
}

// will is the link's will: offline on the status topic, for its own
// session only (a session taken over is another instance's).
func (l *link) will() *paho.WillMessage {
	if !l.own || l.b.opts.StatusTopic == "" {
		return nil
	}
	return &paho.WillMessage{Topic: l.b.opts.StatusTopic, Payload: []byte("offline"), Retain: true, QoS: 1}
}

// currentGate returns the gate of the current connection.
func (l *link) currentGate() chan struct{} {
	l.gateMu.Lock()
	defer l.gateMu.Unlock()
	return l.gate
}

// connect starts connecting, in the background, for ever (own) or once.
func (l *link) connect(ctx context.Context) error {
	b := l.b
	log := b.log.With(slog.String("client_id", l.clientID))
	cfg := autopaho.ClientConfig{
		ServerUrls:                    b.opts.URLs,
		TlsCfg:                        b.opts.TLS,
		KeepAlive:                     30,
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         uint32(min(b.opts.SessionExpiry/time.Second, 0xFFFFFFFF)),
		ConnectUsername:               b.opts.Username,
		ConnectPassword:               []byte(b.opts.Password),
		ReconnectBackoff:              b.reconnectDelay,
		WillMessage:                   l.will(),
		DisconnectPacketBuilder: func() *paho.Disconnect {
			d := &paho.Disconnect{ReasonCode: 0}
			if l.leave.Load() && l.refused.Load() == 0 { // see Leave
				expiry := uint32(0)
				d.Properties = &paho.DisconnectProperties{SessionExpiryInterval: &expiry}
			}
			return d
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ack *paho.Connack) {
			n := l.connections.Add(1)
			l.upAt.Store(time.Now().UnixNano())
			l.gateMu.Lock()
			close(l.gate)
			l.gateMu.Unlock()
			select {
			case l.connack <- ack:
			default:
			}
			if !l.own {
				return
			}
			log.Info("connected to the MQTT broker", slog.Bool("session_present", ack.SessionPresent))
			if !ack.SessionPresent && (n > 1 || b.opts.ExpectSession) {
				// The broker kept no session for us: whatever it queued
				// for it while we were away is gone (a broker restarted
				// without persistence, a session expired).
				b.Evidence("session_lost", fmt.Sprintf("the MQTT broker kept no session for client id %s: readings it queued while Vatio was away are lost (raise the session expiry, persist the broker's sessions)", l.clientID))
			}
			go l.subscribe(context.WithoutCancel(ctx), cm)
			if t := b.opts.StatusTopic; t != "" {
				go func() {
					pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					defer cancel()
					if _, err := cm.Publish(pctx, &paho.Publish{Topic: t, Payload: []byte("online"), Retain: true, QoS: 1}); err != nil {
						log.Warn("status not published", slog.String("topic", t), slog.Any("error", err))
					}
				}()
			}
		},
		OnConnectionDown: func() bool {
			l.live.Store(false)
			l.downs.Add(1)
			l.gateMu.Lock()
			l.gate = make(chan struct{})
			l.gateMu.Unlock()
			if !l.own {
				return false
			}
			// Mosquitto 2.0 ends the older of two connections with one
			// client id without saying why (MQTT 5's DISCONNECT 0x8E is
			// optional): connections that end again and again right after
			// they were made are taken as that.
			if up := l.upAt.Load(); up != 0 && time.Since(time.Unix(0, up)) < briefConnection {
				if n := l.brief.Add(1); n >= briefInARow {
					b.takenOver(l.clientID, fmt.Sprintf("the broker ended %d connections in a row within %s of making them", n, briefConnection))
				}
			} else {
				l.brief.Store(0)
			}
			log.Warn("lost the MQTT broker; reconnecting")
			return true
		},
		OnConnectError: func(err error) {
			if l.own {
				log.Warn("cannot reach the MQTT broker", slog.Any("error", err))
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID:                   l.clientID,
			Session:                    l.session,
			EnableManualAcknowledgment: true,
			SendAcksInterval:           50 * time.Millisecond,
			OnPublishReceived:          []func(paho.PublishReceived) (bool, error){l.receive},
			OnClientError:              func(err error) { log.Warn("MQTT client error", slog.Any("error", err)) },
			OnServerDisconnect: func(d *paho.Disconnect) {
				if d.ReasonCode == 0x8E && l.own {
					b.takenOver(l.clientID, "the broker said so (session taken over)")
					return
				}
				reason := ""
				if d.Properties != nil {
					reason = d.Properties.ReasonString
				}
				log.Warn("the MQTT broker ended the connection", slog.Int("reason_code", int(d.ReasonCode)), slog.String("reason", reason))
			},
		},
	}
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	l.cm = cm
	return nil
}

// subscribe subscribes to the filters, retrying until the broker grants
// them all or the connection ends: connected but not subscribed, Vatio
// would take nothing. A persistent session keeps the subscriptions;
// subscribing again on each connection covers a session the broker
// dropped. Retained messages are not asked for: an old retained reading
// would be stored as a new one.
func (l *link) subscribe(ctx context.Context, cm *autopaho.ConnectionManager) {
	b := l.b
	subs := make([]paho.SubscribeOptions, 0, len(l.filters))
	for _, t := range l.filters {
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
				l.live.Store(true)
				b.log.Info("subscribed to the MQTT broker", slog.Int("filters", len(subs)))
				l.watch(ctx, cm, b.watchFilters())
				b.watchBroker(ctx, cm)
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

// unsubscribe takes the link's filters out of its session, so that the
// broker sends it nothing more; what it queued for it before still comes.
func (l *link) unsubscribe(ctx context.Context) error {
	uctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ack, err := l.cm.Unsubscribe(uctx, &paho.Unsubscribe{Topics: l.filters})
	if err != nil {
		return fmt.Errorf("bridge: unsubscribe %s: %w", l.clientID, err)
	}
	for i, code := range ack.Reasons {
		// 0x11: no subscription existed, which is as good.
		if code >= 0x80 && i < len(l.filters) {
			return fmt.Errorf("bridge: unsubscribe %s from %s: reason code %#x", l.clientID, l.filters[i], code)
		}
	}
	return nil
}

// quiesce waits until the link has answered every message it took and
// none has come for quiet: the broker has sent what it held for the
// session. It gives up at ctx's end.
func (l *link) quiesce(ctx context.Context, since time.Time, quiet time.Duration) error {
	for {
		last := max(l.lastMsg.Load(), since.UnixNano())
		idle := time.Since(time.Unix(0, last))
		if l.pendingN.Load() == 0 && idle >= quiet {
			return nil
		}
		wait := max(quiet-idle, 10*time.Millisecond)
		select {
		case <-ctx.Done():
			return fmt.Errorf("bridge: session %s still sending: %w", l.clientID, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// receive takes one message: the readings are stored, and the message is
// acknowledged once the last is committed (a rejected one at once, behind
// the earlier ones). Not acknowledged, the broker sends it again on the
// next connection.
func (l *link) receive(pr paho.PublishReceived) (bool, error) {
	b := l.b
	pb := pr.Packet
	if l.own {
		b.notify(pb.Topic, pb.Payload)
	}
	if !strings.HasPrefix(pb.Topic, "$SYS/") {
		// What the broker sends of its own, every sys_interval, is not
		// what a session's end waits for (see quiesce).
		l.lastMsg.Store(time.Now().UnixNano())
	}
	// paho v0.23 empties its acknowledgement tracker once it has started
	// reading, so a message the broker sends straight after the CONNACK
	// (the backlog of a persistent session) can be dropped from it, with
	// its acknowledgement. Waiting until the connection is up (Connect
	// has returned) means every acknowledgement comes after that; one
	// the tracker lost is then sent through the session (see ack).
	select {
	case <-l.currentGate():
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
				err = l.session.Ack(pb.Packet())
			}
		}
		if err != nil {
			b.log.Debug("MQTT ack not sent", slog.Any("error", err))
		}
	}
	if strings.HasPrefix(pb.Topic, "$SYS/") {
		if l.own {
			b.monitored(pb.Topic, pb.Payload)
		}
		ack()
		return true, nil
	}
	src := b.p.Source(pb.Topic)
	if src == nil {
		ack() // not a reading: nothing to keep
		return true, nil
	}
	l.pending.Add(1)
	l.pendingN.Add(1)
	done := func() { l.pendingN.Add(-1); l.pending.Done() }
	if l.stopped.Load() {
		// Stopping: left unacknowledged, resent on the next connection;
		// it comes after everything taken, so it holds none of it back.
		l.refused.Add(1)
		done()
		return true, nil
	}
	l.received.Add(1)
	rs, err := b.p.Decode(src, pb.Topic, pb.Payload)
	if err != nil {
		b.p.Count(l.clientID, pb.Topic, src, err)
		answer := func(error) { defer done(); ack() }
		if b.p.Store().Sync(answer) != nil {
			answer(nil)
		}
		return true, nil
	}
	if pb.QoS > 0 {
		hooks.Delivered(rs, l.clientID, pb.PacketID, pb.Topic, pb.Payload, pb.Duplicate())
	}
	if len(rs) == 0 {
		b.p.NoteAvailability(src, pb.Topic, pb.Payload)
		ack()
		done()
		return true, nil
	}
	for i, r := range rs {
		last := i == len(rs)-1
		answer := func(err error) {
			if meter.ReasonOf(err) != "" {
				b.p.Count(l.clientID, pb.Topic, src, err)
			}
		}
		if last {
			answer = func(err error) {
				defer done()
				switch {
				case err == nil:
					ack()
				case meter.ReasonOf(err) != "":
					b.p.Count(l.clientID, pb.Topic, src, err)
					ack() // refused for good: resending would not help
				default:
					l.redeliver(pr, err)
				}
			}
		}
		if err := b.p.Store().Append(r, answer); err != nil {
			l.redeliver(pr, err)
			done()
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
func (l *link) redeliver(pr paho.PublishReceived, err error) {
	if l.stopped.Load() {
		return
	}
	l.b.log.Error("a reading could not be stored; reconnecting so the broker resends it", slog.String("client_id", l.clientID), slog.Any("error", err))
	go pr.Client.Disconnect(&paho.Disconnect{ReasonCode: 0x80})
}

// drain stops taking messages and waits until those taken are committed
// and acknowledged.
func (l *link) drain(ctx context.Context) error {
	l.stopped.Store(true)
	err := l.b.p.Store().Flush()
	done := make(chan struct{})
	go func() { l.pending.Wait(); close(done) }()
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

// close disconnects, ending the session when leave is set.
func (l *link) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.cm.Disconnect(ctx); err != nil && !errors.Is(err, autopaho.ConnectionDownError) {
		return fmt.Errorf("bridge: %w", err)
	}
	return nil
}
