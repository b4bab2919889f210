package api

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

// Stream defaults (see Options).
const (
	defaultStreamThrottle  = 250 * time.Millisecond
	defaultStreamHeartbeat = 15 * time.Second
	defaultMaxStreams      = 64
	// streamRetryMs is how long a browser waits before reconnecting.
	streamRetryMs = 2000
	// maxReplay bounds what a reconnecting client is sent of what it missed.
	maxReplay = 1000
	// maxStreamMeters bounds a stream's meter filter.
	maxStreamMeters = 100
)

// openStream counts a new stream against the server's cap (503 past it)
// and its holder's: a user, however many sessions they log in, or a token.
// Past the holder's cap its oldest stream is ended (closed is closed): a
// browser whose tabs were closed may not have been noticed yet, and the
// newest page is the one being looked at. Without auth nobody is told
// apart, and only the server's cap holds. release gives the slot back.
func (s *Server) openStream(c *fiber.Ctx) (closed <-chan struct{}, release func(), err error) {
	w := who(c)
	holder := "user:" + w.User
	if w.Token != "" {
		holder = "token:" + w.Token
	}
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	if s.streams.Load() >= int64(s.maxStreams) {
		c.Set(fiber.HeaderRetryAfter, "10")
		return nil, nil, fiber.NewError(fiber.StatusServiceUnavailable, fmt.Sprintf("%d live streams are open already", s.maxStreams))
	}
	if held := s.streamsBy[holder]; s.auth != nil && len(held) >= s.maxStreamsPerHolder {
		close(held[0].end) // the oldest ends; its release takes it off the list
		s.streamsBy[holder] = held[1:]
	}
	slot := &streamSlot{end: make(chan struct{})}
	s.streams.Add(1)
	s.streamsBy[holder] = append(s.streamsBy[holder], slot)
	var once sync.Once
	return slot.end, func() {
		once.Do(func() {
			s.streamsMu.Lock()
			defer s.streamsMu.Unlock()
			s.streams.Add(-1)
			held := slices.DeleteFunc(s.streamsBy[holder], func(x *streamSlot) bool { return x == slot })
			if len(held) == 0 {
				delete(s.streamsBy, holder)
			} else {
				s.streamsBy[holder] = held
			}
		})
	}, nil
}

// streamSlot is one open stream of a holder; end is closed to end it.
type streamSlot struct{ end chan struct{} }

// streamEvent is the data of a reading event.
type streamEvent struct {
	Meter      string    `json:"meter"`
	T          time.Time `json:"t"`
	PowerW     float64   `json:"power_w"`
	CounterKWh *float64  `json:"counter_kwh,omitempty"`
}

// stream serves GET /api/v1/stream: Server-Sent Events, one "reading" event
// (id: the reading's id) for each new reading, at most one per meter per
// throttle interval (the newest wins), and a comment every heartbeat so
// that dead connections are found and proxies keep the stream open. A
// client reconnecting with Last-Event-ID first gets the readings it missed
// (up to 1000). ?meter=a,b limits the stream to those meters; ?meter= with
// none sends only the heartbeats (a page's "connected" light).
func (s *Server) stream(c *fiber.Ctx) error {
	var filter map[string]bool
	if c.Context().QueryArgs().Has("meter") {
		filter = map[string]bool{} // ?meter= alone: heartbeats only
	}
	if q := c.Query("meter"); q != "" {
		ids := strings.Split(q, ",")
		if len(ids) > maxStreamMeters {
			return &paramError{Name: "meter", Detail: fmt.Sprintf("at most %d meters", maxStreamMeters)}
		}
		filter = map[string]bool{}
		for _, id := range ids {
			if !meter.ValidID(id) {
				return &paramError{Name: "meter", Detail: fmt.Sprintf("%q is not a meter id", clip(id))}
			}
			filter[strings.Clone(id)] = true
		}
	}
	var last uint64
	if v := cmp.Or(c.Get("Last-Event-ID"), c.Query("last_event_id")); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return &paramError{Name: "Last-Event-ID", Detail: fmt.Sprintf("%q is not a reading id", clip(v))}
		}
		last = n
	}
	evicted, release, err := s.openStream(c)
	if err != nil {
		return err
	}
	watch, stop := s.store.Watch(64)
	var replay []store.Record
	if last > 0 {
		recs, err := s.store.Latest("", maxReplay)
		if err != nil {
			stop()
			release()
			return err
		}
		for _, r := range recs {
			if r.ID > last && (filter == nil || filter[r.Meter]) {
				replay = append(replay, r)
			}
		}
		slices.SortFunc(replay, func(a, b store.Record) int { return cmp.Compare(a.ID, b.ID) })
	}
	c.Set(fiber.HeaderContentType, "text/event-stream; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	closing := s.closing
	throttle, heartbeat := s.streamThrottle, s.streamHeartbeat
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer release()
		defer stop()
		fmt.Fprintf(w, "retry: %d\n\n", streamRetryMs)
		for _, r := range replay {
			writeReading(w, r)
		}
		if w.Flush() != nil {
			return
		}
		pending := map[string]store.Record{}
		flush := time.NewTicker(throttle)
		defer flush.Stop()
		beat := time.NewTicker(heartbeat)
		defer beat.Stop()
		for {
			select {
			case recs, ok := <-watch:
				if !ok {
					return
				}
				for _, r := range recs {
					if filter == nil || filter[r.Meter] {
						pending[r.Meter] = r
					}
				}
			case <-flush.C:
				if len(pending) == 0 {
					continue
				}
				out := make([]store.Record, 0, len(pending))
				for _, r := range pending {
					out = append(out, r)
				}
				clear(pending)
				slices.SortFunc(out, func(a, b store.Record) int { return cmp.Compare(a.ID, b.ID) })
				for _, r := range out {
					writeReading(w, r)
				}
				if w.Flush() != nil {
					return // the client has gone
				}
			case <-beat.C:
				if _, err := w.WriteString(": ping\n\n"); err != nil || w.Flush() != nil {
					return
				}
			case <-evicted:
				// An "end" event: the page stops reconnecting, which
				// would only end another of the holder's streams.
				fmt.Fprintf(w, "event: end\ndata: {\"reason\": \"more than %d live streams of one user\"}\n\n", s.maxStreamsPerHolder)
				w.Flush()
				return
			case <-closing:
				return
			}
		}
	})
	return nil
}

func writeReading(w *bufio.Writer, r store.Record) {
	ev := streamEvent{Meter: r.Meter, T: r.Time, PowerW: r.PowerW}
	if r.HasEnergy {
		kwh := r.EnergyWh / 1000
		ev.CounterKWh = &kwh
	}
	data, _ := json.Marshal(ev) // plain fields: cannot fail
	fmt.Fprintf(w, "id: %d\nevent: reading\ndata: %s\n\n", r.ID, data)
}
