package api

import (
	"context"
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/audit"
)

// getMail serves GET /api/v1/email (admin): the SMTP server in force,
// where it comes from (saved settings override config.yaml's), config.yaml's
// and the saved ones. A password is never shown, only whether there is one.
func (s *Server) getMail(c *fiber.Ctx) error {
	return c.JSON(s.mail.State())
}

// mailBody is PUT /api/v1/email's body: the keys of config.yaml's
// alerts.email. A password left out keeps the one in force while the
// server and the username stay the same.
type mailBody struct {
	Addr     string         `json:"addr"`
	From     string         `json:"from"`
	To       []string       `json:"to"`
	Username string         `json:"username"`
	Password *string        `json:"password"`
	TLS      string         `json:"tls"`
	Timeout  alert.Duration `json:"timeout"`
}

// putMail serves PUT /api/v1/email (admin): the settings, checked as
// config.yaml's alerts.email is, are saved and in force at once for
// alerts and statements, on every instance sharing the store.
func (s *Server) putMail(c *fiber.Ctx) error {
	var b mailBody
	if err := readJSON(c, "SMTP settings", "SMTP settings (the keys of config.yaml's alerts.email)", &b); err != nil {
		return err
	}
	spec := alert.MailSpec{Addr: b.Addr, From: b.From, To: b.To, Username: b.Username, TLS: b.TLS, Timeout: b.Timeout}
	if b.Password != nil {
		spec.Password = *b.Password
	}
	st, err := s.mail.Save(spec, b.Password == nil, who(c).User, s.now())
	if err != nil {
		return err
	}
	audit.Note(c.UserContext(), "SMTP settings saved: "+st.Mail.Summary())
	return c.JSON(st)
}

// deleteMail serves DELETE /api/v1/email (admin): the saved settings are
// removed and config.yaml's are in force again.
func (s *Server) deleteMail(c *fiber.Ctx) error {
	st, err := s.mail.Remove()
	if err != nil {
		return err
	}
	audit.Note(c.UserContext(), "saved SMTP settings removed: config.yaml's are in force")
	return c.JSON(st)
}

// testMail serves POST /api/v1/email/test (admin): a short mail, through
// the server in force, to {"to": [...]} or, without a body, to the
// alerts' recipients. A server that refuses answers 502 with its words.
func (s *Server) testMail(c *fiber.Ctx) error {
	var b struct {
		To []string `json:"to"`
	}
	if len(c.Body()) > 0 {
		if err := readJSON(c, "test", `test {"to": [addresses]}`, &b); err != nil {
			return err
		}
	}
	to, err := s.mail.Test(c.UserContext(), b.To, s.now())
	var me *alert.MailInvalidError
	switch {
	case errors.Is(err, alert.ErrNoMail):
		return c.Status(fiber.StatusConflict).JSON(errorBody{Error: err.Error()})
	case errors.As(err, &me):
		body := errorBody{Error: "invalid test recipients", Detail: me.Error()}
		for _, p := range me.Problems {
			body.Problems = append(body.Problems, fieldProblem{Field: p.Field, Reason: p.Reason})
		}
		return c.Status(fiber.StatusBadRequest).JSON(body)
	case errors.Is(err, context.Canceled):
		return err
	case err != nil:
		audit.Note(c.UserContext(), "test mail failed: "+err.Error())
		return c.Status(fiber.StatusBadGateway).JSON(errorBody{Error: "the SMTP server did not take the mail", Detail: err.Error()})
	}
	audit.Note(c.UserContext(), "test mail sent to "+strings.Join(to, ", "))
	return c.JSON(fiber.Map{"sent_to": to})
}

// mailError maps SMTP settings refused to 400 with each setting wrong,
// named by its key in config.yaml (alerts.email.to[1]).
func mailError(err error) (int, errorBody, bool) {
	if errors.Is(err, alert.ErrMailFixed) {
		return fiber.StatusConflict, errorBody{Error: err.Error()}, true
	}
	var me *alert.MailInvalidError
	if !errors.As(err, &me) {
		return 0, errorBody{}, false
	}
	body := errorBody{Error: "invalid SMTP settings"}
	var lines []string
	for _, p := range me.Problems {
		body.Problems = append(body.Problems, fieldProblem{Field: "alerts.email." + p.Field, Reason: p.Reason})
		lines = append(lines, "alerts.email."+p.Field+": "+p.Reason)
	}
	body.Detail = strings.Join(lines, "; ")
	return fiber.StatusBadRequest, body, true
}
