package broker

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// ErrBusy is what Access.Connect wraps when it cannot check credentials
// now (too many password checks at once): the client is answered "server
// busy" (MQTT 5, 0x89) or "server unavailable" (MQTT 3.1.1, 3) rather
// than "bad user name or password", and tries again later.
var ErrBusy = errors.New("broker: too busy to check the credentials")

// Reasons a connection is refused, as the refusal counter labels them.
const (
	refusedCredentials = "credentials"
	refusedBusy        = "busy"
	refusedWill        = "will"
	refusedClientID    = "client_id_in_use"
	refusedPerDevice   = "per_device_cap"
)

// admission decides, at each CONNECT, what the CONNACK says. It runs in
// mochi's OnConnect hook, which (unlike OnConnectAuthenticate) may stop a
// connection with any reason code: the code's CONNACK is sent here and the
// code returned, so mochi closes the connection without sending another.
//
// It also keeps each credential's clients in their lane: a client id held
// by one user name (connected, or keeping a session) cannot be taken by
// another, and one user name may have at most perUser clients connected.
// Anonymous clients (user name "") hold client ids like the others but
// are not counted per user: max_clients bounds them.
type admission struct {
	srv     *mqtt.Server
	access  Access
	maxTop  int
	perUser int
	log     *slog.Logger

	mu sync.Mutex
	// byID is the client last admitted with each client id; byUser the
	// clients admitted with each (non-empty) user name. Both may hold
	// clients already closed: mochi does not call OnDisconnect on every
	// path out of a connection, so they are pruned when looked at.
	byID   map[string]*mqtt.Client
	byUser map[string][]*mqtt.Client

	refused map[string]*atomic.Int64
	// lastWarned is when each reason's refusal was last logged (under
	// mu): at most one line a second each, a flood must not flood the log.
	lastWarned map[string]time.Time
}

// warn logs a refusal, at most once a second per reason.
func (a *admission) warn(reason, msg string, attrs ...any) {
	now := time.Now()
	a.mu.Lock()
	ok := now.Sub(a.lastWarned[reason]) >= time.Second
	if ok {
		a.lastWarned[reason] = now
	}
	a.mu.Unlock()
	if ok {
		a.log.Warn(msg, attrs...)
	}
}

func newAdmission(srv *mqtt.Server, access Access, maxTopic, perUser int, log *slog.Logger) *admission {
	a := &admission{srv: srv, access: access, maxTop: maxTopic, perUser: perUser, log: log,
		byID: map[string]*mqtt.Client{}, byUser: map[string][]*mqtt.Client{}, refused: map[string]*atomic.Int64{}, lastWarned: map[string]time.Time{}}
	for _, r := range []string{refusedCredentials, refusedBusy, refusedWill, refusedClientID, refusedPerDevice} {
		a.refused[r] = new(atomic.Int64)
	}
	return a
}

// connect checks a CONNECT and, when it is refused, sends the CONNACK and
// returns its code; nil admits the client.
func (a *admission) connect(cl *mqtt.Client, pk packets.Packet) error {
	code, reason := a.check(cl, pk)
	if code == packets.CodeSuccess {
		return nil
	}
	a.refused[reason].Add(1)
	_ = a.srv.SendConnack(cl, connackCode(cl, code), false, nil)
	return refusal{code}
}

// refusal is a CONNECT that admission refused and logged (throttled).
// mochi's listener logs the error OnConnect returns once more, on a line
// with no message; quietHandler drops that line for these.
type refusal struct{ packets.Code }

// quietHandler drops mochi's message-less lines about refusals that
// admission logged already, and passes every other record on.
type quietHandler struct{ slog.Handler }

// Handle passes r on unless it is such a line.
func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "" {
		logged := false
		r.Attrs(func(at slog.Attr) bool {
			err, ok := at.Value.Any().(error)
			var ref refusal
			logged = ok && errors.As(err, &ref)
			return !logged
		})
		if logged {
			return nil
		}
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps the filter on the handler with attrs.
func (h quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(attrs)}
}

// WithGroup keeps the filter on the handler with the group.
func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name)}
}

// connackCode turns code into one the client's protocol has: mochi maps a
// few MQTT 5 codes to MQTT 3.1.1 return codes (server unavailable, client
// identifier rejected, not authorized) and would send the others as they
// are, which MQTT 3.1.1 does not define.
func connackCode(cl *mqtt.Client, code packets.Code) packets.Code {
	if cl.Properties.ProtocolVersion >= 5 {
		return code
	}
	switch code {
	case packets.ErrServerBusy, packets.ErrQuotaExceeded:
		return packets.ErrServerUnavailable // 3
	case packets.ErrNotAuthorized:
		return packets.ErrBadUsernameOrPassword // 5, not authorized
	}
	return code
}

// check returns the CONNACK code of a CONNECT and, for a refusal, the
// reason it is counted under. The password is checked first and with no
// lock held: it may take an argon2id check's time, and other clients
// connect meanwhile.
func (a *admission) check(cl *mqtt.Client, pk packets.Packet) (packets.Code, string) {
	user := string(pk.Connect.Username)
	if a.access != nil {
		remote := cl.Net.Remote
		if cl.Net.Listener == wsListener {
			// Any web page can steer a browser on this machine to the
			// WebSocket (DNS rebinding gets past the origin check), so
			// its clients are never trusted as local ones.
			remote = ""
		}
		if err := a.access.Connect(user, pk.Connect.Password, remote); err != nil {
			if errors.Is(err, ErrBusy) {
				a.warn(refusedBusy, "connection refused: too many password checks at once (auth.password_checks)",
					slog.String("user", user), slog.String("remote", cl.Net.Remote))
				return packets.ErrServerBusy, refusedBusy
			}
			a.warn(refusedCredentials, "connection refused: bad credentials",
				slog.String("user", user), slog.String("remote", cl.Net.Remote), slog.Any("error", err))
			return packets.ErrBadUsernameOrPassword, refusedCredentials
		}
	}
	if pk.Connect.WillFlag {
		// mochi publishes a will without asking OnACLCheck: a client may
		// connect only with a will it could publish itself, or a device
		// could switch another's relay when it drops.
		topic := pk.Connect.WillTopic
		if a.maxTop > 0 && len(topic) > a.maxTop || a.access != nil && !a.access.Allowed(user, topic, true) {
			a.warn(refusedWill, "connection refused: its last will is on a topic it may not publish on",
				slog.String("user", user), slog.String("topic", topic), slog.String("remote", cl.Net.Remote))
			return packets.ErrNotAuthorized, refusedWill
		}
	}
	return a.lane(cl, user)
}

// lane admits cl, of user, unless its client id belongs to another user
// name or user already has perUser clients connected. A client reusing its
// own client id takes over its session as MQTT says, and is not counted
// twice.
func (a *admission) lane(cl *mqtt.Client, user string) (packets.Code, string) {
	id := cl.ID
	// mochi's own map holds connected clients and those keeping a session;
	// read it before taking a.mu, so no lock of ours is held around it.
	held, inMochi := a.srv.Clients.Get(id)
	a.mu.Lock()
	defer a.mu.Unlock()
	if inMochi && (held.Net.Inline || string(held.Properties.Username) != user) {
		a.log.Warn("connection refused: its client id is held by another user name",
			slog.String("client", id), slog.String("user", user), slog.String("remote", cl.Net.Remote))
		return packets.ErrClientIdentifierNotValid, refusedClientID
	}
	if prev, ok := a.byID[id]; ok && !prev.Closed() && string(prev.Properties.Username) != user {
		a.log.Warn("connection refused: its client id is held by another user name",
			slog.String("client", id), slog.String("user", user), slog.String("remote", cl.Net.Remote))
		return packets.ErrClientIdentifierNotValid, refusedClientID
	}
	if user != "" {
		live := slices.DeleteFunc(a.byUser[user], (*mqtt.Client).Closed)
		others := 0
		for _, c := range live {
			if c.ID != id {
				others++
			}
		}
		if a.perUser > 0 && others >= a.perUser {
			a.byUser[user] = live
			a.log.Warn("connection refused: its user name has as many clients connected as mqtt.max_connections_per_device allows",
				slog.String("user", user), slog.Int("connected", others), slog.String("client", id), slog.String("remote", cl.Net.Remote))
			return packets.ErrQuotaExceeded, refusedPerDevice
		}
		a.byUser[user] = append(live, cl)
	}
	a.byID[id] = cl
	return packets.CodeSuccess, ""
}

// disconnected forgets cl.
func (a *admission) disconnected(cl *mqtt.Client) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byID[cl.ID] == cl {
		delete(a.byID, cl.ID)
	}
	user := string(cl.Properties.Username)
	if user == "" {
		return
	}
	live := slices.DeleteFunc(a.byUser[user], func(c *mqtt.Client) bool { return c == cl || c.Closed() })
	if len(live) == 0 {
		delete(a.byUser, user)
	} else {
		a.byUser[user] = live
	}
}
