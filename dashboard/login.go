package dashboard

import (
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/api"
	"github.com/vatio-energy/vatio/audit"
	"github.com/vatio-energy/vatio/auth"
)

// loginData is what login.html and setup.html render.
type loginData struct {
	*base
	Next    string
	Message string
	Name    string
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

// loginPage serves GET /login.
func (d *Dashboard) loginPage(c *fiber.Ctx) error {
	if d.auth.NeedsSetup() {
		return c.Redirect("/setup", fiber.StatusSeeOther)
	}
	b := d.newBase(c, "login", "login.title")
	return d.render(c, "login", b, &loginData{base: b, Next: safeNext(c.Query("next"))})
}

// login serves POST /login: a session cookie and back to the page, or the
// form again with why.
func (d *Dashboard) login(c *fiber.Ctx) error {
	name, next := strings.TrimSpace(c.FormValue("user")), safeNext(c.FormValue("next"))
	id, x, err := d.auth.Login(name, c.FormValue("password"), c.IP())
	if err != nil {
		b := d.newBase(c, "login", "login.title")
		msg, status := b.Lang.T("login.wrong"), fiber.StatusUnauthorized
		if errors.Is(err, auth.ErrLocked) {
			msg, status = b.Lang.T("login.locked"), fiber.StatusTooManyRequests
			if d.onLockout != nil {
				d.onLockout(name, c.IP())
			}
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
	c.Cookie(&fiber.Cookie{Name: api.SessionCookie, Value: id, Path: "/", Expires: expires, HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode, Secure: c.Protocol() == "https"})
}

// logout serves POST /logout.
func (d *Dashboard) logout(c *fiber.Ctx) error {
	if id := c.Cookies(api.SessionCookie); id != "" {
		d.auth.Logout(id)
	}
	d.record(api.Who(c).User, "logout", c, fiber.StatusSeeOther)
	c.ClearCookie(api.SessionCookie)
	return c.Redirect("/login", fiber.StatusSeeOther)
}

// setupPage serves GET /setup: the one-time creation of the admin.
func (d *Dashboard) setupPage(c *fiber.Ctx) error {
	if !d.auth.NeedsSetup() {
		return c.Redirect("/login", fiber.StatusSeeOther)
	}
	b := d.newBase(c, "setup", "setup.title")
	return d.render(c, "setup", b, &loginData{base: b, Name: "admin"})
}

// setup serves POST /setup: the admin is made and logged in.
func (d *Dashboard) setup(c *fiber.Ctx) error {
	if !d.auth.NeedsSetup() {
		return fiber.NewError(fiber.StatusConflict, "an admin exists already: log in")
	}
	name, pw := strings.TrimSpace(c.FormValue("user")), c.FormValue("password")
	b := d.newBase(c, "setup", "setup.title")
	if pw != c.FormValue("confirm") {
		c.Status(fiber.StatusBadRequest)
		return d.render(c, "setup", b, &loginData{base: b, Name: name, Message: b.Lang.T("setup.mismatch")})
	}
	if _, err := d.auth.Setup(name, pw); err != nil {
		c.Status(fiber.StatusBadRequest)
		return d.render(c, "setup", b, &loginData{base: b, Name: name, Message: b.Lang.T("setup.invalid") + " " + err.Error()})
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
