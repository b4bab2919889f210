package dashboard

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/auth"
)

// loginData is what login.html and setup.html render.
type loginData struct {
	*base
	Next    string
	Message string
	Name    string
	// NeedsToken asks setup for the admin token: one exists.
	NeedsToken bool
}

// crossSite reports whether a form post comes from another site's page:
// its Origin names another host than the one it was sent to, or the
// browser says so (Sec-Fetch-Site). The login and setup forms have no
// session, so no CSRF token, to check instead: without this a page on
// the LAN could make a visitor's browser claim a new Vatio's setup, or log
// it in as the attacker.
func crossSite(c *fiber.Ctx) bool {
	if c.Get("Sec-Fetch-Site") == "cross-site" {
		return true
	}
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" {
		return false // not a browser, or a same-origin GET-less client
	}
	u, err := url.Parse(origin)
	// Host names only: a reverse proxy may pass the Host without the port
	// the browser used (nginx's $host).
	return err != nil || !strings.EqualFold(u.Hostname(), hostOnly(c.Hostname()))
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return strings.Trim(h, "[]")
	}
	return strings.Trim(hostport, "[]")
}

// refuseCrossSite answers 403 to a cross-site form post.
func refuseCrossSite(c *fiber.Ctx) error {
	return fiber.NewError(fiber.StatusForbidden, "a form posted from another site's page is refused: open Vatio itself and use its form")
}

// formValue returns a field of a URL-encoded or multipart form body (the
// body is bounded by the API's limitBody); never the query string.
func formValue(c *fiber.Ctx, key string) string {
	if v := c.Request().PostArgs().Peek(key); len(v) > 0 {
		return string(v)
	}
	if f, err := c.MultipartForm(); err == nil {
		if v := f.Value[key]; len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// safeNext returns next when it is a path of this site, else "/": no
// scheme or host, no control characters (browsers drop tabs and newlines,
// so "/\t/evil.example" would become "//evil.example").
func safeNext(next string) string {
	for i := 0; i < len(next); i++ {
		if next[i] < 0x20 || next[i] == 0x7f || next[i] == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") ||
		strings.HasPrefix(next, "//") {
		return "/"
	}
	return u.RequestURI()
}

// newPublicBase starts the data of a page shown before a log-in.
func (d *Dashboard) newPublicBase(c *fiber.Ctx, page, titleKey string) *base {
	b := d.newBase(c, page, titleKey)
	b.Public = true
	return b
}

// loginPage serves GET /login.
func (d *Dashboard) loginPage(c *fiber.Ctx) error {
	if d.auth.NeedsSetup() {
		return c.Redirect("/setup", fiber.StatusSeeOther)
	}
	b := d.newPublicBase(c, "login", "login.title")
	return d.render(c, "login", b, &loginData{base: b, Next: safeNext(c.Query("next"))})
}

// login serves POST /login: a session cookie and back to the page, or the
// form again with why.
func (d *Dashboard) login(c *fiber.Ctx) error {
	if crossSite(c) {
		return refuseCrossSite(c)
	}
	name, next := strings.TrimSpace(formValue(c, "user")), safeNext(formValue(c, "next"))
	id, x, err := d.auth.Login(name, formValue(c, "password"), c.IP())
	if err != nil {
		b := d.newPublicBase(c, "login", "login.title")
		msg, status := b.Lang.T("login.wrong"), fiber.StatusUnauthorized
		switch {
		case errors.Is(err, auth.ErrLocked):
			msg, status = b.Lang.T("login.locked"), fiber.StatusTooManyRequests
		case errors.Is(err, auth.ErrBusy):
			msg, status = b.Lang.T("login.busy"), fiber.StatusTooManyRequests
			c.Set(fiber.HeaderRetryAfter, "1")
		}
		d.record(name, "login_failed", c, status)
		c.Status(status)
		return d.render(c, "login", b, &loginData{base: b, Next: next, Message: msg, Name: name})
	}
	d.record(x.User, "login", c, fiber.StatusSeeOther)
	d.setSession(c, id, x.Expires)
	return c.Redirect(next, fiber.StatusSeeOther)
}

func (d *Dashboard) setSession(c *fiber.Ctx, id string, expires time.Time) {
	c.Cookie(&fiber.Cookie{Name: auth.SessionCookie, Value: id, Path: "/", Expires: expires, HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode, Secure: c.Protocol() == "https"})
}

// logout serves POST /logout.
func (d *Dashboard) logout(c *fiber.Ctx) error {
	if id := c.Cookies(auth.SessionCookie); id != "" {
		d.auth.Logout(id)
	}
	d.record(auth.WhoFrom(c.UserContext()).User, "logout", c, fiber.StatusSeeOther)
	c.ClearCookie(auth.SessionCookie)
	return c.Redirect("/login", fiber.StatusSeeOther)
}

// setupPage serves GET /setup: the one-time creation of the admin.
func (d *Dashboard) setupPage(c *fiber.Ctx) error {
	if !d.auth.NeedsSetup() {
		return c.Redirect("/login", fiber.StatusSeeOther)
	}
	b := d.newPublicBase(c, "setup", "setup.title")
	return d.render(c, "setup", b, &loginData{base: b, Name: "admin", NeedsToken: d.auth.SetupNeedsToken()})
}

// setup serves POST /setup: the admin is made and logged in.
func (d *Dashboard) setup(c *fiber.Ctx) error {
	if crossSite(c) {
		return refuseCrossSite(c)
	}
	if !d.auth.NeedsSetup() {
		return fiber.NewError(fiber.StatusConflict, "an admin exists already: log in")
	}
	name, pw := strings.TrimSpace(formValue(c, "user")), formValue(c, "password")
	b := d.newPublicBase(c, "setup", "setup.title")
	data := &loginData{base: b, Name: name, NeedsToken: d.auth.SetupNeedsToken()}
	if pw != formValue(c, "confirm") {
		c.Status(fiber.StatusBadRequest)
		data.Message = b.Lang.T("setup.mismatch")
		return d.render(c, "setup", b, data)
	}
	if _, err := d.auth.Setup(name, pw, strings.TrimSpace(formValue(c, "token"))); err != nil {
		c.Status(fiber.StatusBadRequest)
		switch {
		case errors.Is(err, auth.ErrSetupToken):
			c.Status(fiber.StatusForbidden)
			data.Message = b.Lang.T("setup.badtoken")
			d.record(name, "setup_refused", c, fiber.StatusForbidden)
		case errors.Is(err, auth.ErrPasswordShort):
			data.Message = fmt.Sprintf(b.Lang.T("setup.password_short"), auth.MinPasswordChars)
		case errors.Is(err, auth.ErrPasswordLong):
			data.Message = fmt.Sprintf(b.Lang.T("setup.password_long"), auth.MaxPasswordBytes)
		case errors.Is(err, auth.ErrUserName):
			data.Message = fmt.Sprintf(b.Lang.T("setup.bad_user"), auth.MaxUserNameChars)
		default:
			data.Message = b.Lang.T("setup.invalid") + " " + err.Error()
		}
		return d.render(c, "setup", b, data)
	}
	d.record(name, "setup", c, fiber.StatusSeeOther)
	id, x, err := d.auth.Login(name, pw, c.IP())
	if err != nil {
		return err
	}
	d.setSession(c, id, x.Expires)
	return c.Redirect("/", fiber.StatusSeeOther)
}

func (d *Dashboard) record(who, action string, c *fiber.Ctx, status int) {
	if d.audit != nil {
		d.audit.Record(audit.Entry{Who: who, Action: action, Target: c.Path(), Addr: c.IP(), Status: status})
	}
}
