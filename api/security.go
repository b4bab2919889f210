package api

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/devices"
)

// who returns who made request c (the zero Who when auth is off); the
// pages read it with auth.WhoFrom(c.UserContext()).
func who(c *fiber.Ctx) auth.Who {
	return auth.WhoFrom(c.UserContext())
}

// open are the paths anyone may reach: the health check, the login and
// setup pages, and what they link to: the static files and the language
// switch (which sets a cookie and goes back to a page of this site).
func open(path string) bool {
	switch path {
	case "/healthz", "/login", "/setup", "/api/v1/openapi.json":
		return true
	}
	return strings.HasPrefix(path, "/assets/") || strings.HasPrefix(path, "/lang/")
}

// roleFor returns the least role that may make request method path.
// Viewers read; operators change meters, rules, alerts and imports;
// admins delete, back up, export, change the tariff, the Modbus devices
// and the tenants, see and change the SMTP server, and manage users,
// tokens and the audit log.
func roleFor(method, path string) string {
	// Routing is case-sensitive and strict (see New); the role is still
	// decided on the path as the most lenient router would read it.
	path = strings.ToLower(path)
	if len(path) > 1 {
		path = strings.TrimRight(path, "/")
	}
	switch {
	case strings.HasPrefix(path, "/api/v1/users"), strings.HasPrefix(path, "/api/v1/tokens"), strings.HasPrefix(path, "/api/v1/devices"),
		path == "/api/v1/audit", path == "/api/v1/backup", isExport(path), path == "/access",
		strings.HasPrefix(path, "/api/v1/offsite"), strings.HasPrefix(path, "/api/v1/statements/schedules"), strings.HasPrefix(path, "/statements/schedules"),
		path == "/api/v1/email" || strings.HasPrefix(path, "/api/v1/email/"), strings.HasPrefix(path, "/settings/email"):
		return auth.Admin
	case method != fiber.MethodGet && method != fiber.MethodHead && (path == "/api/v1/tariff" || strings.HasPrefix(path, "/settings/tariff") ||
		strings.HasPrefix(path, "/api/v1/modbus") || strings.HasPrefix(path, "/settings/modbus") ||
		strings.HasPrefix(path, "/api/v1/tenants") || strings.HasPrefix(path, "/statements/tenants")):
		return auth.Admin
	case method == fiber.MethodDelete && strings.HasPrefix(path, "/api/v1/meters/"):
		return auth.Admin
	case method == fiber.MethodGet || method == fiber.MethodHead:
		return auth.Viewer
	case path == "/logout":
		return auth.Viewer
	}
	return auth.Operator
}

// isExport reports whether path (lower case) is an export,
// /api/v1/meters/{id}/export or /api/v1/sites/{site}/export, and not, say,
// the meter named export.
func isExport(path string) bool {
	parts := strings.Split(path, "/")
	return len(parts) == 6 && parts[1] == "api" && parts[2] == "v1" && (parts[3] == "meters" || parts[3] == "sites") &&
		parts[4] != "" && parts[5] == "export"
}

// authenticate is the middleware that makes every request but those of
// open paths come from a valid token (Authorization: Bearer) or session
// (cookie, with its CSRF token on changes), with a role that may make it:
// 401 otherwise (pages redirect to the login), 403 for a role that may
// not.
func (s *Server) authenticate(c *fiber.Ctx) error {
	if s.auth == nil {
		return c.Next()
	}
	path := c.Path()
	if open(path) {
		return c.Next()
	}
	var who auth.Who
	var err error
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return s.unauthorized(c, "use Authorization: Bearer <token>")
		}
		if who, err = s.auth.Token(strings.TrimSpace(tok)); err != nil {
			// Which token, by its id and name, never its secret.
			user, detail := "", "not a Vatio token"
			if id := auth.TokenID(strings.TrimSpace(tok)); id != "" {
				detail = "token " + id + ": unknown, revoked, expired or with a wrong secret"
				if name, ok := s.auth.TokenName(id); ok {
					user = "token:" + name
				}
			}
			s.audit(user, "token_refused", path, c, fiber.StatusUnauthorized, detail)
			return s.unauthorized(c, "invalid or expired token")
		}
		s.noteToken(who, c)
	} else if id := c.Cookies(auth.SessionCookie); id != "" {
		if who, err = s.auth.Session(id); err != nil {
			return s.unauthorized(c, "session expired: log in again")
		}
		if m := c.Method(); m != fiber.MethodGet && m != fiber.MethodHead {
			sent := c.Get("X-CSRF-Token")
			if sent == "" {
				sent = formCSRF(c)
			}
			if sent == "" && m == fiber.MethodPost && path == importFormPath {
				// The import form streams: its csrf field comes before
				// its file, and is read (a few bytes, within the import
				// limit) from a session already known valid.
				f, err := s.openImportForm(c)
				if err != nil {
					return err
				}
				defer f.done()
				sent = f.fields["csrf"]
			}
			if subtle.ConstantTimeCompare([]byte(sent), []byte(who.CSRF)) != 1 {
				c.Context().SetConnectionClose() // a streaming body may be unread
				return fiber.NewError(fiber.StatusForbidden, "missing or wrong CSRF token")
			}
		}
	} else {
		return s.unauthorized(c, "log in, or send Authorization: Bearer <token>")
	}
	if need := roleFor(c.Method(), path); !auth.Allows(who.Role, need) {
		if c.Request().IsBodyStream() {
			c.Context().SetConnectionClose() // an import's body is unread
		}
		s.audit(who.User, "forbidden", c.Method()+" "+path, c, fiber.StatusForbidden, "")
		return fiber.NewError(fiber.StatusForbidden, "the "+who.Role+" role may not do this: it needs "+need)
	}
	ctx, note := audit.WithNote(auth.WithWho(c.UserContext(), who))
	c.SetUserContext(ctx)
	if err := c.Next(); err != nil {
		// Answered here, as the server would, so that the audit log has
		// the status the client got (a refused rule's 400, an unknown
		// one's 404), not the 200 the response held before.
		if err := s.writeError(c, err); err != nil {
			return err
		}
	}
	if m := c.Method(); m != fiber.MethodGet && m != fiber.MethodHead && path != "/logout" {
		action := "change"
		if m == fiber.MethodDelete {
			action = "delete"
		}
		s.audit(who.User, action, m+" "+path, c, c.Response().StatusCode(), *note)
	} else if path == "/api/v1/backup" || isExport(strings.ToLower(path)) {
		s.audit(who.User, "export", path, c, c.Response().StatusCode(), "")
	}
	return nil
}

// formCSRF returns the csrf field of a URL-encoded form body: never the
// query string (it ends up in logs and Referer headers), and never a body
// still streaming (an import's, read only once the request is allowed).
func formCSRF(c *fiber.Ctx) string {
	req := c.Request()
	if req.IsBodyStream() || !strings.HasPrefix(string(req.Header.ContentType()), fiber.MIMEApplicationForm) {
		return ""
	}
	return string(req.PostArgs().Peek("csrf"))
}

// unauthorized answers 401: JSON for the API, a redirect to the login (or
// the setup) for a page.
func (s *Server) unauthorized(c *fiber.Ctx, detail string) error {
	if c.Method() == fiber.MethodGet && !strings.HasPrefix(c.Path(), "/api/") && c.Path() != "/metrics" {
		if s.auth.NeedsSetup() {
			return c.Redirect("/setup", fiber.StatusSeeOther)
		}
		return c.Redirect("/login?next="+url.QueryEscape(string(c.Request().URI().RequestURI())), fiber.StatusSeeOther)
	}
	c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="vatio"`)
	return c.Status(fiber.StatusUnauthorized).JSON(errorBody{Error: "unauthorized", Detail: detail})
}

// audit records an event when there is an audit log.
func (s *Server) audit(who, action, target string, c *fiber.Ctx, status int, detail string) {
	if s.auditLog == nil {
		return
	}
	s.auditLog.Record(audit.Entry{Who: who, Action: action, Target: target, Addr: c.IP(), Status: status, Detail: detail})
}

// noteToken audits a token's use, at most once a minute per token.
func (s *Server) noteToken(who auth.Who, c *fiber.Ctx) {
	now := time.Now()
	if last, ok := s.tokenUses.Load(who.Token); ok && now.Sub(last.(time.Time)) < time.Minute {
		return
	}
	s.tokenUses.Store(who.Token, now)
	s.audit(who.User, "token_used", c.Method()+" "+c.Path(), c, 0, "")
}

// me serves GET /api/v1/me: who the request comes from, and the CSRF token
// a session's scripts send with changes.
func (s *Server) me(c *fiber.Ctx) error {
	w := who(c)
	return c.JSON(fiber.Map{"user": w.User, "role": w.Role, "csrf": w.CSRF})
}

// decodeJSON reads a JSON body into v, refusing unknown fields.
func decodeJSON(c *fiber.Ctx, v any) error {
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &paramError{Name: "body", Detail: "not the JSON expected: " + err.Error()}
	}
	return nil
}

// listTokens serves GET /api/v1/tokens (admin).
func (s *Server) listTokens(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"tokens": s.auth.Tokens()})
}

// createToken serves POST /api/v1/tokens (admin): {"name", "role",
// "expires"?}; the answer holds the token, shown this once.
func (s *Server) createToken(c *fiber.Ctx) error {
	var req struct {
		Name    string     `json:"name"`
		Role    string     `json:"role"`
		Expires *time.Time `json:"expires"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	t, secret, err := s.auth.NewToken(req.Name, req.Role, req.Expires)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"token": secret, "info": t})
}

// revokeToken serves DELETE /api/v1/tokens/{id} (admin).
func (s *Server) revokeToken(c *fiber.Ctx) error {
	if err := s.auth.RevokeToken(strings.Clone(c.Params("id"))); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// listUsers serves GET /api/v1/users (admin).
func (s *Server) listUsers(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"users": s.auth.Users()})
}

// createUser serves POST /api/v1/users (admin): {"name", "password", "role"}.
func (s *Server) createUser(c *fiber.Ctx) error {
	var req struct {
		Name     string `json:"name"`
		Password string `json:"password"`
		Role     string `json:"role"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	u, err := s.auth.AddUser(req.Name, req.Password, req.Role)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(u)
}

// deleteUser serves DELETE /api/v1/users/{name} (admin).
func (s *Server) deleteUser(c *fiber.Ctx) error {
	name, err := url.PathUnescape(c.Params("name")) // user@example.com arrives as user%40example.com
	if err != nil {
		return &paramError{Name: "name", Detail: "not a user name"}
	}
	if err := s.auth.DeleteUser(name); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// listAudit serves GET /api/v1/audit (admin): the newest entries first,
// ?limit= (default 100, at most 1000).
func (s *Server) listAudit(c *fiber.Ctx) error {
	limit, err := parseLimit("limit", c.Query("limit"), 100, 1000)
	if err != nil {
		return err
	}
	es, err := s.auditLog.List(limit, nil)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"entries": es})
}

// listDevices serves GET /api/v1/devices (admin).
func (s *Server) listDevices(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"devices": s.devices.List()})
}

// addDevice serves POST /api/v1/devices (admin): {"name", "publish"?,
// "subscribe"?}. The answer has the device's password, shown this once,
// and the settings to type into it.
func (s *Server) addDevice(c *fiber.Ctx) error {
	var req struct {
		Name      string   `json:"name"`
		Publish   []string `json:"publish"`
		Subscribe []string `json:"subscribe"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	d, password, err := s.devices.Add(req.Name, req.Publish, req.Subscribe)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"device": d, "password": password,
		"settings": devices.Settings(d.Name, password, c.Hostname(), s.mqttAddr, s.mqttTLSAddr)})
}

// removeDevice serves DELETE /api/v1/devices/{name} (admin).
func (s *Server) removeDevice(c *fiber.Ctx) error {
	if err := s.devices.Remove(strings.Clone(c.Params("name"))); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// authError maps the auth package's errors to statuses.
func authError(err error) (int, bool) {
	switch {
	case errors.Is(err, auth.ErrInvalid), errors.Is(err, devices.ErrInvalid):
		return fiber.StatusBadRequest, true
	case errors.Is(err, auth.ErrExists), errors.Is(err, auth.ErrSetupDone), errors.Is(err, devices.ErrExists):
		return fiber.StatusConflict, true
	case errors.Is(err, auth.ErrUnknown), errors.Is(err, devices.ErrUnknown):
		return fiber.StatusNotFound, true
	case errors.Is(err, auth.ErrLocked), errors.Is(err, auth.ErrBusy):
		return fiber.StatusTooManyRequests, true
	case errors.Is(err, auth.ErrSetupToken):
		return fiber.StatusForbidden, true
	case errors.Is(err, auth.ErrLogin), errors.Is(err, auth.ErrBadToken), errors.Is(err, auth.ErrBadSession):
		return fiber.StatusUnauthorized, true
	}
	if strings.HasPrefix(err.Error(), "auth: the last admin") {
		return fiber.StatusConflict, true
	}
	return 0, false
}
