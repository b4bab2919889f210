package bridge

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// watcher is a subscription of Vatio's own (see Subscribe).
type watcher struct {
	filter string
	fn     func(topic string, payload []byte)
}

// Subscribe calls fn with each message the broker sends on a topic
// matching filter, from now on, until stop is called: Home Assistant's
// status and cleared discovery, for the Home Assistant publisher. The
// subscription is this instance's own (never shared), made on each
// connection, apart from the readings' (a broker refusing it takes
// nothing from them), and asks for no retained messages. fn must not
// block.
func (b *Bridge) Subscribe(filter string, fn func(topic string, payload []byte)) (stop func(), err error) {
	b.watchMu.Lock()
	id := b.watchSeq
	b.watchSeq++
	b.watchers[id] = watcher{filter: filter, fn: fn}
	b.watchMu.Unlock()
	if l := b.current(); l != nil && l.live.Load() {
		go l.watch(b.ctx, l.cm, []string{filter})
	}
	return func() {
		b.watchMu.Lock()
		delete(b.watchers, id)
		still := false
		for _, w := range b.watchers {
			still = still || w.filter == filter
		}
		b.watchMu.Unlock()
		if l := b.current(); l != nil && !still {
			ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
			defer cancel()
			_, _ = l.cm.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{filter}})
		}
	}, nil
}

// watchFilters returns the filters of the watchers.
func (b *Bridge) watchFilters() []string {
	b.watchMu.Lock()
	defer b.watchMu.Unlock()
	var out []string
	for _, w := range b.watchers {
		out = append(out, w.filter)
	}
	return out
}

// notify hands a message to the watchers whose filter matches its topic.
func (b *Bridge) notify(topic string, payload []byte) {
	b.watchMu.Lock()
	var fns []func(string, []byte)
	for _, w := range b.watchers {
		if topicMatch(w.filter, topic) {
			fns = append(fns, w.fn)
		}
	}
	b.watchMu.Unlock()
	for _, fn := range fns {
		fn(topic, payload)
	}
}

// watch subscribes to filters on the link's connection, best effort: a
// refusal is logged, and the next connection tries again.
func (l *link) watch(ctx context.Context, cm *autopaho.ConnectionManager, filters []string) {
	if len(filters) == 0 {
		return
	}
	subs := make([]paho.SubscribeOptions, 0, len(filters))
	for _, f := range filters {
		subs = append(subs, paho.SubscribeOptions{Topic: f, QoS: 1, RetainHandling: 2})
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ack, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: subs})
	if err != nil {
		l.b.log.Warn("MQTT subscribe failed", slog.Any("topics", filters), slog.Any("error", err))
		return
	}
	for i, code := range ack.Reasons {
		if code >= 0x80 && i < len(subs) {
			l.b.log.Warn("the MQTT broker refused a subscription of Vatio's own", slog.String("topic", subs[i].Topic), slog.Int("reason", int(code)))
		}
	}
}

// topicMatch reports whether topic is under the MQTT filter.
func topicMatch(filter, topic string) bool {
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) || f != "+" && f != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}
