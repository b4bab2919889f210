// Package hooks holds the mochi-mqtt hooks that connect the broker to the
// rest of Vatio. Ingest intercepts publishes on the energy topics, decodes
// and validates them, and hands valid readings to the store; the broker
// acknowledges and forwards a reading only once it is on disk.
package hooks

import (
	"bytes"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

// codePayloadInvalid is the MQTT 5 reason code sent for a rejected reading.
var codePayloadInvalid = packets.ErrPayloadFormatInvalid // 0x99

// Ingest is the hook that stores readings published on the energy topics.
//
// For a QoS 1 publish it returns packets.ErrRejectPacket, so mochi neither
// acknowledges nor forwards the packet; the store's commit callback then
// sends the PUBACK and forwards the reading to subscribers through the
// server's inline client. The client's read loop never waits for the disk,
// and one commit covers many readings. PUBACKs for a client leave in the
// order its publishes arrived, rejected ones included, because every one of
// them goes through the store's FIFO queue.
type Ingest struct {
	mqtt.HookBase
	*Pipeline

	// MayWrite, when set, tells whether a client logged in as user may
	// send readings of meterID (a device may not send readings of a meter
	// named after another device, through a gateway's topics): a publish
	// with one it may not is refused whole, as an invalid reading is.
	MayWrite func(user, meterID string) bool

	server  *mqtt.Server
	stopped atomic.Bool
	acks    *acker
	// waiting counts, per client (*mqtt.Client -> *atomic.Int64), its
	// publishes on energy topics whose answers wait for the store: a
	// publish mochi answers at once (another topic) waits behind them, so
	// that the client's acknowledgements keep the order of its publishes.
	waiting sync.Map
}

// Pipeline decodes, validates and counts the readings of publishes,
// whatever carried them: the embedded broker's Ingest hook, or a client of
// an external broker (package bridge).
type Pipeline struct {
	// sources decode the device families; the first whose Match takes a
	// topic decodes it.
	sources []meter.Source
	store   *store.Store
	log     *slog.Logger
	now     func() time.Time

	accepted prometheus.Counter
	rejected *prometheus.CounterVec
	// unstored counts readings the store could not take (see
	// ackAndForward); unstoredLog is when that was last logged.
	unstored    prometheus.Counter
	unstoredLog atomic.Int64

	logMu    sync.Mutex
	lastLogs map[meter.Reason]*logState
}

type logState struct {
	last       time.Time
	suppressed int
}

// rejectLogInterval is the least time between two log lines for one reason.
const rejectLogInterval = 10 * time.Second

// NewPipeline returns the pipeline of sources into st.
func NewPipeline(sources []meter.Source, st *store.Store, logger *slog.Logger) *Pipeline {
	p := &Pipeline{
		sources: sources,
		store:   st,
		log:     logger,
		now:     time.Now,
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vatio_readings_accepted_total",
			Help: "Readings that passed validation and were queued for storage.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vatio_readings_rejected_total",
			Help: "Readings rejected, by reason.",
		}, []string{"reason"}),
		unstored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vatio_readings_unstored_total",
			Help: "Valid readings the store could not take (a full disk, the head full while checkpoints fail); their QoS 1 clients are disconnected so that they send them again.",
		}),
		lastLogs: map[meter.Reason]*logState{},
	}
	for _, r := range meter.Reasons {
		p.rejected.WithLabelValues(string(r))
	}
	return p
}

// Store returns the store readings go to.
func (p *Pipeline) Store() *store.Store { return p.store }

// NewIngest returns the ingest hook. server is used to forward stored
// readings to subscribers; it must have its inline client enabled.
//
// Set MayWrite before the broker starts.
func NewIngest(sources []meter.Source, st *store.Store, server *mqtt.Server, logger *slog.Logger) *Ingest {
	return &Ingest{
		Pipeline: NewPipeline(sources, st, logger),
		server:   server,
		acks:     newAcker(server, logger),
	}
}

// ID implements mqtt.Hook.
func (h *Ingest) ID() string { return "vatio-ingest" }

// Provides implements mqtt.Hook.
func (h *Ingest) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnSubscribed || b == mqtt.OnUnsubscribed || b == mqtt.OnDisconnect ||
		b == mqtt.OnWillSent
}

// OnWillSent implements mqtt.Hook: a client's last will (Tasmota's LWT
// "Offline", a Shelly's online "false") is published by the broker without
// passing through OnPublish, and may say a device went away.
func (h *Ingest) OnWillSent(_ *mqtt.Client, pk packets.Packet) {
	if src := h.Source(pk.TopicName); src != nil {
		h.NoteAvailability(src, pk.TopicName, pk.Payload)
	}
}

// NoteAvailability records what an availability message of src says.
func (p *Pipeline) NoteAvailability(src meter.Source, topic string, payload []byte) {
	if as, ok := src.(meter.AvailabilitySource); ok {
		if device, online, ok := as.Availability(topic, payload); ok {
			p.store.SetAvailability(device, online, p.now())
		}
	}
}

// OnSubscribed implements mqtt.Hook: forwarding looks subscribers up again.
func (h *Ingest) OnSubscribed(*mqtt.Client, packets.Packet, []byte) { h.acks.subsGen.Add(1) }

// OnUnsubscribed implements mqtt.Hook: forwarding looks subscribers up again.
func (h *Ingest) OnUnsubscribed(*mqtt.Client, packets.Packet) { h.acks.subsGen.Add(1) }

// OnDisconnect implements mqtt.Hook: a client's subscriptions may have gone.
func (h *Ingest) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.acks.subsGen.Add(1)
	h.waiting.Delete(cl)
}

// wait counts a publish of cl whose answer waits for the store, and
// returns what to call once it is answered.
func (h *Ingest) wait(cl *mqtt.Client) func() {
	v, _ := h.waiting.LoadOrStore(cl, new(atomic.Int64))
	n := v.(*atomic.Int64)
	n.Add(1)
	return func() { n.Add(-1) }
}

// answerInOrder returns once cl's publishes before pk that wait for the
// store are answered, when mochi answers pk itself (QoS 1 or 2 on a topic
// that is not a reading's): its acknowledgement must not overtake theirs.
func (h *Ingest) answerInOrder(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Qos == 0 {
		return
	}
	if v, ok := h.waiting.Load(cl); ok && v.(*atomic.Int64).Load() > 0 {
		answered := make(chan struct{})
		if h.store.Sync(func(error) { close(answered) }) == nil {
			<-answered
		}
	}
	h.afterPending(cl)
}

// afterPending returns once cl's answered acknowledgements are written, not
// waiting for its connection (see acker), before mochi writes one of its
// own, which must come after them; or after ackStuckAfter, when the acker
// gives the client up.
func (h *Ingest) afterPending(cl *mqtt.Client) {
	for deadline := time.Now().Add(ackStuckAfter); h.acks.hasPending(cl) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

// Shutdown makes the hook refuse further readings without acknowledging them
// (QoS 1 clients resend after reconnecting), then waits until every reading
// already taken is committed and answered. Call it before closing the broker,
// so the answers reach clients that are still connected.
func (h *Ingest) Shutdown() error {
	h.stopped.Store(true)
	err := h.store.Flush()
	h.acks.wait()
	return err
}

// Stop implements mqtt.Hook: mochi calls it when the broker closes.
func (h *Ingest) Stop() error {
	h.acks.close()
	return nil
}

// Source returns the Source that takes topic, or nil.
func (p *Pipeline) Source(topic string) meter.Source {
	for _, src := range p.sources {
		if src.Match(topic) {
			return src
		}
	}
	return nil
}

// OnPublish implements mqtt.Hook.
func (h *Ingest) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // our own forwards
	}
	src := h.Source(pk.TopicName)
	if src == nil {
		h.answerInOrder(cl, pk)
		return pk, nil // not a device family we read
	}
	if h.stopped.Load() {
		return pk, packets.ErrRejectPacket
	}
	rs, err := h.Decode(src, pk.TopicName, pk.Payload)
	if err == nil && h.MayWrite != nil {
		user := string(cl.Properties.Username)
		for _, r := range rs {
			if !h.MayWrite(user, r.Meter) {
				err = &meter.RejectError{Reason: meter.ReasonOtherDevice, Detail: fmt.Sprintf(
					"meter %s is another device's: %s may not send its readings", r.Meter, user)}
				break
			}
		}
	}
	if err != nil {
		h.reject(cl, pk, src, err)
		return pk, packets.ErrRejectPacket
	}
	if len(rs) == 0 {
		// A status message: the broker handles it as any other. It may
		// say whether a device is online.
		h.NoteAvailability(src, pk.TopicName, pk.Payload)
		h.answerInOrder(cl, pk)
		return pk, nil
	}
	if pk.FixedHeader.Qos > 0 {
		Delivered(rs, cl.ID, pk.PacketID, pk.TopicName, pk.Payload, pk.FixedHeader.Dup)
	}
	if pk.FixedHeader.Qos == 2 {
		return h.storeQoS2(cl, pk, src, rs)
	}
	// The publish is answered once its last reading is durable: the
	// store's queue is FIFO, so the others are by then. The store may
	// still refuse a reading (an implausible energy counter): that is
	// counted and logged, and refuses the publish when it is the last (or
	// only) reading. Nobody was promised a QoS 0 reading's durability: it
	// is forwarded once in the store's log, before the log's fdatasync.
	appendFn := h.store.Append
	if pk.FixedHeader.Qos == 0 {
		appendFn = h.store.AppendVolatile
	}
	answered := func() {}
	if pk.FixedHeader.Qos == 1 {
		answered = h.wait(cl)
	}
	// The callbacks keep what they need of the packet, not the packet:
	// mochi's packets.Packet is some 400 bytes, copied into each closure.
	f := &forward{topic: pk.TopicName, payload: pk.Payload, qos: pk.FixedHeader.Qos, retain: pk.FixedHeader.Retain}
	for i, r := range rs {
		var done func(error)
		if i == len(rs)-1 {
			done = h.ackAndForward(cl, f, pk.PacketID, src, answered)
		} else {
			done = h.countRefusal(cl, f.topic, src)
		}
		if err := appendFn(r, done); err != nil {
			h.log.Warn("reading not stored", slog.String("meter", r.Meter), slog.Any("error", err))
			answered() // the last reading's callback will not run
			break
		}
	}
	return pk, packets.ErrRejectPacket
}

// Delivered gives the readings of rs stamped on receipt the delivery of
// their message, packetID in clientID's session, for the store to tell a
// resend of a message it stored (dup set) from new readings. Each reading
// of a message (a plug's channels) is its own entry: one stored does not
// make the others resends.
func Delivered(rs []meter.Reading, clientID string, packetID uint16, topic string, payload []byte, dup bool) {
	var d meter.Delivery
	for i := range rs {
		if !rs[i].Stamped {
			if d.Key == 0 {
				d = meter.NewDelivery(clientID, packetID, topic, payload, dup)
			}
			rs[i].Delivery = d.Part(i)
		}
	}
}

// Decode decodes a publish of src and counts its readings as accepted; a
// rejection is returned, for the caller to answer and Count.
//
// A reading its device stamped ahead of the server clock (by no more than
// ingest.max_future, or it is refused) is taken as received now: stored
// at its own time, it would be the meter's newest until that time came,
// its power "now" and the one power rules and load shedding read, whatever
// live readings followed, and its energy would be booked before it was
// drawn.
func (p *Pipeline) Decode(src meter.Source, topic string, payload []byte) ([]meter.Reading, error) {
	now := p.now()
	rs, err := src.Decode(topic, payload, now)
	if err != nil {
		return nil, err
	}
	for i := range rs {
		rs[i].Source = src.Name()
		if rs[i].Stamped && rs[i].Time.After(now) {
			rs[i].Time, rs[i].Stamped = now.UTC(), false
		}
	}
	p.accepted.Add(float64(len(rs)))
	return rs, nil
}

// ackAndForward returns the commit callback of a QoS 1 or QoS 0 reading:
// once committed, the acker sends the PUBACK (QoS 1) and forwards the
// reading to subscribers. A failed commit sends nothing, so the client
// resends.
func (h *Ingest) ackAndForward(cl *mqtt.Client, f *forward, packetID uint16, src meter.Source, answered func()) func(error) {
	it := ackItem{cl: cl, forward: f}
	if f.qos == 1 {
		it.packetID = packetID
	}
	return func(err error) {
		defer answered()
		switch {
		case err == nil:
			h.acks.send(it)
		case meter.ReasonOf(err) != "":
			h.Count(cl.ID, f.topic, src, err)
			if ack := refusal(cl, f.qos, packetID, err); ack != nil {
				h.acks.send(ackItem{cl: cl, ack: ack})
			}
		default:
			h.notStored(cl, f.qos, err)
		}
	}
}

// notStored counts a valid reading the store could not take (err: a full
// disk, the head full while checkpoints fail) and, at QoS 1, disconnects
// its client: an MQTT client sends an unacknowledged message again only
// after reconnecting (MQTT-4.4.0-1), so left connected it would wait for
// ever, and an MQTT 5 client stops at its receive maximum. A QoS 0 reading
// is lost, as QoS 0 allows; both are counted and logged.
func (h *Ingest) notStored(cl *mqtt.Client, qos byte, err error) {
	h.unstored.Inc()
	now := time.Now().UnixNano()
	if last := h.unstoredLog.Load(); now-last >= int64(rejectLogInterval) && h.unstoredLog.CompareAndSwap(last, now) {
		h.log.Error("readings not stored; QoS 1 clients are disconnected to send them again", slog.String("client", cl.ID), slog.Any("error", err))
	}
	if qos > 0 {
		cl.Stop(err)
	}
}

// countRefusal returns the commit callback of a reading that is not its
// publish's last: it counts and logs the store's refusal of it.
func (h *Ingest) countRefusal(cl *mqtt.Client, topic string, src meter.Source) func(error) {
	return func(err error) {
		if meter.ReasonOf(err) != "" {
			h.Count(cl.ID, topic, src, err)
		}
	}
}

// storeQoS2 stores a QoS 2 reading before mochi sends the PUBREC. QoS 2 is
// rare for meters, so it waits for its commit on the client's goroutine and
// lets mochi run the rest of the exchange and the forwarding.
func (h *Ingest) storeQoS2(cl *mqtt.Client, pk packets.Packet, src meter.Source, rs []meter.Reading) (packets.Packet, error) {
	for _, r := range rs[:len(rs)-1] {
		if err := h.store.Append(r, h.countRefusal(cl, pk.TopicName, src)); err != nil {
			return pk, packets.ErrRejectPacket
		}
	}
	committed := make(chan error, 1)
	if err := h.store.Append(rs[len(rs)-1], func(err error) { committed <- err }); err != nil {
		return pk, packets.ErrRejectPacket
	}
	err := <-committed
	if meter.ReasonOf(err) != "" {
		h.Count(cl.ID, pk.TopicName, src, err)
		if ack := refusal(cl, pk.FixedHeader.Qos, pk.PacketID, err); ack != nil {
			h.acks.send(ackItem{cl: cl, ack: ack})
		}
		return pk, packets.ErrRejectPacket
	}
	if err != nil {
		h.notStored(cl, pk.FixedHeader.Qos, err)
		return pk, packets.ErrRejectPacket
	}
	// mochi sends the PUBREC: after the PUBACKs answered before it.
	h.afterPending(cl)
	return pk, nil
}

// reject counts and logs a rejected reading and answers its sender: nothing
// at QoS 0; at QoS 1 a PUBACK (MQTT 5: with reason code 0x99 and the reason),
// queued behind the client's earlier readings so acknowledgements stay in
// order; at QoS 2 the same as a PUBREC.
func (h *Ingest) reject(cl *mqtt.Client, pk packets.Packet, src meter.Source, err error) {
	h.Count(cl.ID, pk.TopicName, src, err)
	ack := refusal(cl, pk.FixedHeader.Qos, pk.PacketID, err)
	if ack == nil {
		return
	}
	answered := h.wait(cl)
	send := func(error) {
		h.acks.send(ackItem{cl: cl, ack: ack})
		answered()
	}
	if h.store.Sync(send) != nil {
		send(nil)
	}
}

// Count counts and logs a reading of client on topic rejected with err.
func (p *Pipeline) Count(client, topic string, src meter.Source, err error) {
	reason := meter.ReasonOf(err)
	p.rejected.WithLabelValues(string(reason)).Inc()
	var meterID string
	if m, ok := src.(interface{ MeterID(string) (string, error) }); ok {
		meterID, _ = m.MeterID(topic) // "" when the topic is what is wrong
	}
	p.logReject(src.Name(), meterID, client, topic, reason, err)
}

// Polled validates readings a poller took (source "modbus") with validate
// and queues them for the store, counted as an MQTT publish's are:
// accepted, or rejected by reason and logged; the store's refusals (an
// implausible counter) are counted as rejections too, and a reading it
// could not take at all as unstored. It waits while the store's queue is
// full.
func (p *Pipeline) Polled(source string, rs []meter.Reading, validate func(meter.Reading, time.Time) error) {
	now := p.now()
	for _, r := range rs {
		if err := validate(r, now); err != nil {
			reason := meter.ReasonOf(err)
			p.rejected.WithLabelValues(string(reason)).Inc()
			p.logReject(source, r.Meter, "", "", reason, err)
			continue
		}
		p.accepted.Inc()
		done := func(err error) {
			switch {
			case err == nil:
			case meter.ReasonOf(err) != "":
				reason := meter.ReasonOf(err)
				p.rejected.WithLabelValues(string(reason)).Inc()
				p.logReject(source, r.Meter, "", "", reason, err)
			default:
				p.unstored.Inc()
			}
		}
		if err := p.store.Append(r, done); err != nil {
			done(err)
		}
	}
}

// refusal returns the answer to a rejected publish: none at QoS 0; at QoS 1
// a PUBACK (MQTT 5: with reason code 0x99 and the reason); at QoS 2 the
// same as a PUBREC.
func refusal(cl *mqtt.Client, qos byte, packetID uint16, err error) *packets.Packet {
	if qos == 0 {
		return nil
	}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: packetID}
	if qos == 2 {
		ack.FixedHeader.Type = packets.Pubrec
	}
	if cl.Properties.ProtocolVersion == 5 {
		ack.ReasonCode = codePayloadInvalid.Code
		ack.Properties.ReasonString = err.Error()
	} else if qos == 2 {
		// MQTT 3.1.1 has no way to refuse a QoS 2 message: complete the
		// exchange so the client does not resend it forever.
		ack.ReasonCode = packets.CodeSuccess.Code
	}
	return &ack
}

func (p *Pipeline) logReject(source, meterID, client, topic string, reason meter.Reason, err error) {
	now := p.now()
	p.logMu.Lock()
	st := p.lastLogs[reason]
	if st == nil {
		st = &logState{}
		p.lastLogs[reason] = st
	}
	if now.Sub(st.last) < rejectLogInterval {
		st.suppressed++
		p.logMu.Unlock()
		return
	}
	suppressed := st.suppressed
	st.last, st.suppressed = now, 0
	p.logMu.Unlock()
	p.log.Warn("reading rejected",
		slog.String("source", source),
		slog.String("meter", meterID),
		slog.String("reason", string(reason)),
		slog.String("topic", printable(topic)),
		slog.String("client", client),
		slog.String("detail", err.Error()),
		slog.Int("similar_suppressed", suppressed))
}

// printable shortens a topic for a log line.
func printable(s string) string {
	if len(s) > 128 {
		return string(bytes.ToValidUTF8([]byte(s[:128]), nil)) + "…"
	}
	return s
}

// Describe implements prometheus.Collector.
func (p *Pipeline) Describe(ch chan<- *prometheus.Desc) {
	p.accepted.Describe(ch)
	p.rejected.Describe(ch)
	p.unstored.Describe(ch)
}

// Collect implements prometheus.Collector.
func (p *Pipeline) Collect(ch chan<- prometheus.Metric) {
	p.accepted.Collect(ch)
	p.rejected.Collect(ch)
	p.unstored.Collect(ch)
}
