package dashboard

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/auth"
)

// mailForm is the settings page's SMTP form, as typed.
type mailForm struct {
	Addr, From, To, Username, TLS, Timeout string
	// PasswordSet says a password is kept when the field is left blank.
	PasswordSet bool
	// Errors are the settings refused, by key (addr, to[1]), in the
	// reader's language.
	Errors map[string]string
	// TestTo is the test mail's recipient as typed; TestError why the
	// server did not take it.
	TestTo, TestError string
}

// mailFormOf fills the form with settings v.
func mailFormOf(v alert.MailView) *mailForm {
	f := &mailForm{Addr: v.Addr, From: v.From, To: strings.Join(v.To, "\n"), Username: v.Username,
		TLS: cmp.Or(v.TLS, "starttls"), PasswordSet: v.PasswordSet}
	if v.Timeout != 0 {
		f.Timeout = time.Duration(v.Timeout).String()
	}
	return f
}

// recipients reads the addresses typed in a form's field: one per line,
// or separated by commas or semicolons outside a quoted name ("Smith; J"
// <j@example.org> is one).
func recipients(s string) []string {
	var out []string
	for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		quoted, start := false, 0
		for i, r := range line + "," {
			switch {
			case r == '"':
				quoted = !quoted
			case (r == ',' || r == ';') && !quoted:
				if a := strings.TrimSpace(line[start:min(i, len(line))]); a != "" {
					out = append(out, a)
				}
				start = i + 1
			}
		}
	}
	return out
}

// mailSection fills the page's SMTP section.
func (d *Dashboard) mailSection(c *fiber.Ctx, data *configureData) {
	if d.mail == nil {
		return
	}
	role := auth.WhoFrom(c.UserContext()).Role
	data.MailOn = true
	data.CanMail = d.auth == nil || auth.Allows(role, auth.Admin)
	if !data.CanMail {
		return // the server and its login are the admins'
	}
	data.Mail = d.mail.State()
	data.MailForm = mailFormOf(data.Mail.Mail)
}

// saveMail serves POST /settings/email (admin): the SMTP form, checked as
// config.yaml's alerts.email is; saved, it mails alerts and statements at
// once. A blank password keeps the one in force while the server and
// the username stay the same.
func (d *Dashboard) saveMail(c *fiber.Ctx) error {
	b := d.newBase(c, "configure", "configure.title")
	form := &mailForm{Addr: strings.TrimSpace(c.FormValue("addr")), From: strings.TrimSpace(c.FormValue("from")),
		To: c.FormValue("to"), Username: strings.TrimSpace(c.FormValue("username")), TLS: c.FormValue("tls"),
		Timeout: strings.TrimSpace(c.FormValue("timeout"))}
	password := c.FormValue("password")
	spec := alert.MailSpec{Addr: form.Addr, From: form.From, To: recipients(form.To), Username: form.Username,
		Password: password, TLS: form.TLS}
	bad := map[string]string{}
	if form.Timeout != "" {
		t, err := parseDuration(form.Timeout)
		if err != nil {
			bad["timeout"] = b.Lang.T("mailerr.timeout")
		}
		spec.Timeout = alert.Duration(t)
	}
	if len(bad) == 0 {
		st, err := d.mail.Save(spec, password == "", auth.WhoFrom(c.UserContext()).User, d.now())
		if err == nil {
			audit.Note(c.UserContext(), "SMTP settings saved: "+st.Mail.Summary())
			return back(c, "mail_saved", "", "email")
		}
		var me *alert.MailInvalidError
		if !errors.As(err, &me) {
			return err
		}
		for _, p := range me.Problems {
			bad[p.Field] = p.Reason
			if text, ok := b.Lang.texts["mailerr."+fieldIndex.ReplaceAllString(p.Field, "")]; ok {
				bad[p.Field] = text // what the setting takes, in the reader's language
				if i := recipientIndex(p.Field); i >= 0 && i < len(spec.To) {
					bad[p.Field] = spec.To[i] + ": " + text // which of them
				}
			}
		}
	}
	data := d.configureData(c, b)
	cur := data.MailForm
	form.Errors, form.PasswordSet = bad, cur != nil && cur.PasswordSet
	data.MailForm = form
	return d.refused(c, b, data)
}

// removeMail serves POST /settings/email/remove (admin): config.yaml's
// SMTP settings are in force again (or none).
func (d *Dashboard) removeMail(c *fiber.Ctx) error {
	if _, err := d.mail.Remove(); err != nil {
		return err
	}
	audit.Note(c.UserContext(), "saved SMTP settings removed: config.yaml's are in force")
	return back(c, "mail_removed", "", "email")
}

// testMail serves POST /settings/email/test (admin): a short mail through
// the server in force to the address typed, or to the alerts' recipients.
func (d *Dashboard) testMail(c *fiber.Ctx) error {
	b := d.newBase(c, "configure", "configure.title")
	typed := strings.TrimSpace(c.FormValue("test_to"))
	to, err := d.mail.Test(c.UserContext(), recipients(typed), d.now())
	if err == nil {
		audit.Note(c.UserContext(), "test mail sent to "+strings.Join(to, ", "))
		return c.Redirect("/settings?"+url.Values{"done": {"mail_tested"}, "to": {strings.Join(to, ", ")}}.Encode()+"#email", fiber.StatusSeeOther)
	}
	var me *alert.MailInvalidError
	switch {
	case errors.Is(err, alert.ErrNoMail):
		err = errors.New(b.Lang.T("mail.none"))
	case errors.As(err, &me) && me.Problems[0].Field == "to":
		err = errors.New(b.Lang.T("mail.test_nobody"))
	case errors.As(err, &me):
		err = errors.New(b.Lang.T("mailerr.to"))
	default:
		audit.Note(c.UserContext(), "test mail failed: "+err.Error())
		err = errors.New(b.Lang.T("mail.test_failed") + " " + err.Error()) // the server's words stay its own
	}
	data := d.configureData(c, b)
	if data.MailForm != nil {
		data.MailForm.TestTo, data.MailForm.TestError = typed, err.Error()
	}
	return d.refused(c, b, data)
}

// recipientIndex is i in the key to[i], else -1.
func recipientIndex(field string) int {
	var i int
	if _, err := fmt.Sscanf(field, "to[%d]", &i); err != nil {
		return -1
	}
	return i
}
