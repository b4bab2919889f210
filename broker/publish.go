package broker

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Reasons a publish is refused, as the refusal counter labels them.
const (
	refusedRetainedTooLarge = "retained_too_large"
	refusedRetainedFull     = "retained_full"
	refusedSys              = "sys_topic"
	// refusedACL is a publish or subscription outside its user name's
	// topics.
	refusedACL = "not_allowed"
	// refusedKept is a publish on a topic only the server publishes on
	// (see Keeper).
	refusedKept = "server_topic"
)

// retained keeps the retained messages within their caps: maxMessage bytes
// each and maxTotal bytes together. It counts what mochi actually retains
// (OnRetainMessage, OnRetainedExpired), the server's own messages (Home
// Assistant discovery) included, but refuses only clients' messages.
// Concurrent publishers may each pass the check before either is counted,
// so the total may pass maxTotal by at most a message per publisher.
type retained struct {
	maxMessage, maxTotal int

	mu    sync.Mutex
	size  map[string]int // bytes of the message retained on each topic
	total int
}

// retainedSize is what a retained message costs: its topic, payload and the
// properties kept with it.
func retainedSize(topic string, payload []byte, props packets.Properties) int {
	n := len(topic) + len(payload) + len(props.ContentType) + len(props.ResponseTopic) + len(props.CorrelationData)
	for _, u := range props.User {
		n += len(u.Key) + len(u.Val)
	}
	return n
}

// refuses returns the reason a retained message of n bytes on topic would
// pass the caps, or "". An empty message clears the topic's, and passes.
func (r *retained) refuses(topic string, n int, empty bool) string {
	if empty {
		return ""
	}
	if n > r.maxMessage {
		return refusedRetainedTooLarge
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.total-r.size[topic]+n > r.maxTotal {
		return refusedRetainedFull
	}
	return ""
}

// set records that topic now retains a message of n bytes (0: none).
func (r *retained) set(topic string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total += n - r.size[topic]
	if n == 0 {
		delete(r.size, topic)
	} else {
		r.size[topic] = n
	}
}

// bytes returns the bytes retained now.
func (r *retained) bytes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// refusals counts and logs refused publishes, a log line per reason at
// most every refusalLogInterval.
type refusals struct {
	log   *slog.Logger
	count map[string]*atomic.Int64
	mu    sync.Mutex
	last  map[string]time.Time
}

// refusalLogInterval is the least time between two log lines for one
// reason of refused publishes.
const refusalLogInterval = 10 * time.Second

func newRefusals(log *slog.Logger) *refusals {
	r := &refusals{log: log, count: map[string]*atomic.Int64{}, last: map[string]time.Time{}}
	for _, reason := range []string{refusedRetainedTooLarge, refusedRetainedFull, refusedSys, refusedACL, refusedKept} {
		r.count[reason] = new(atomic.Int64)
	}
	return r
}

func (r *refusals) note(cl *mqtt.Client, topic, reason, msg string) {
	r.count[reason].Add(1)
	now := time.Now()
	r.mu.Lock()
	if now.Sub(r.last[reason]) < refusalLogInterval {
		r.mu.Unlock()
		return
	}
	r.last[reason] = now
	r.mu.Unlock()
	if len(topic) > 128 {
		topic = strings.ToValidUTF8(topic[:128], "") + "…"
	}
	r.log.Warn(msg, slog.String("reason", reason), slog.String("topic", topic), slog.String("client", cl.ID),
		slog.String("user", string(cl.Properties.Username)))
}

// refuse answers a refused QoS 1 or 2 publish of an MQTT 5 client with a
// PUBACK (or PUBREC) carrying code. MQTT 3.1.1 has no refusal: see the
// callers.
func refuse(cl *mqtt.Client, pk packets.Packet, code packets.Code) {
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID, ReasonCode: code.Code}
	if pk.FixedHeader.Qos == 2 {
		ack.FixedHeader.Type = packets.Pubrec
	}
	if code.Code >= packets.ErrUnspecifiedError.Code {
		ack.Properties.ReasonString = code.Reason
	}
	_ = cl.WritePacket(ack)
}

// isSys reports whether topic is under $SYS, as mochi tells it (any case).
func isSys(topic string) bool {
	return len(topic) >= len(mqtt.SysPrefix) && strings.EqualFold(topic[:len(mqtt.SysPrefix)], mqtt.SysPrefix)
}

// cleanAck makes an acknowledgement what MQTT 5 allows: mochi v2.7.9 sends
// a PUBACK's success as 0x01 ("granted QoS 1", a SUBACK code) and copies
// the publish's properties, user properties included, into its acks. A
// success becomes 0x00 and an ack keeps only its reason string (given
// with a refusal). Publishes forwarded to subscribers are not touched: they
// keep their user properties, as MQTT 5 says.
func cleanAck(pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp:
	default:
		return pk
	}
	if pk.ReasonCode < packets.ErrUnspecifiedError.Code && pk.ReasonCode != packets.CodeNoMatchingSubscribers.Code {
		pk.ReasonCode = packets.CodeSuccess.Code
	}
	reason := pk.Properties.ReasonString
	pk.Properties = packets.Properties{}
	if pk.ReasonCode >= packets.ErrUnspecifiedError.Code {
		pk.Properties.ReasonString = reason
	}
	return pk
}
