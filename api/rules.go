package api

import (
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/audit"
)

// ruleJSON is a rule with the meters it is firing for, and what keeps it
// from firing that is no error (a meter that has sent nothing yet).
type ruleJSON struct {
	alert.Rule
	Firing   []string `json:"firing"`
	Warnings []string `json:"warnings,omitempty"`
}

func (s *Server) ruleJSON(r alert.Rule, states map[string]alert.RuleState) ruleJSON {
	out := ruleJSON{Rule: r, Firing: []string{}, Warnings: s.rules.Warnings(r)}
	for k, st := range states {
		if rule, m, _ := strings.Cut(k, "|"); rule == r.ID && st.Firing {
			out.Firing = append(out.Firing, m)
		}
	}
	return out
}

// listRules serves GET /api/v1/rules.
func (s *Server) listRules(c *fiber.Ctx) error {
	states := s.rules.States()
	out := []ruleJSON{}
	for _, r := range s.rules.List() {
		out = append(out, s.ruleJSON(r, states))
	}
	return c.JSON(fiber.Map{"rules": out})
}

// getRule serves GET /api/v1/rules/{id}.
func (s *Server) getRule(c *fiber.Ctx) error {
	r, err := s.rules.Get(strings.Clone(c.Params("id")))
	if err != nil {
		return err
	}
	return c.JSON(s.ruleJSON(r, s.rules.States()))
}

// decodeRule reads a rule from the body, refusing unknown fields.
func decodeRule(c *fiber.Ctx) (alert.Rule, error) {
	var r alert.Rule
	err := readJSON(c, "rule", "rule", &r)
	return r, err
}

// createRule serves POST /api/v1/rules: 201 with the rule; 409 if its id
// is taken.
func (s *Server) createRule(c *fiber.Ctx) error {
	r, err := decodeRule(c)
	if err != nil {
		return err
	}
	if _, err := s.rules.Get(r.ID); err == nil {
		return fiber.NewError(fiber.StatusConflict, "a rule "+r.ID+" exists: PUT /api/v1/rules/"+r.ID+" to change it")
	}
	saved, err := s.rules.Put(r)
	if err != nil {
		return err
	}
	audit.Note(c.UserContext(), "rule "+saved.ID+" created: "+saved.Summary())
	return c.Status(fiber.StatusCreated).JSON(s.ruleJSON(saved, nil))
}

// putRule serves PUT /api/v1/rules/{id}: creates or replaces the rule.
func (s *Server) putRule(c *fiber.Ctx) error {
	id := strings.Clone(c.Params("id"))
	r, err := decodeRule(c)
	if err != nil {
		return err
	}
	if r.ID == "" {
		r.ID = id
	}
	if r.ID != id {
		return &paramError{Name: "id", Detail: "the body's id is not the path's"}
	}
	saved, err := s.rules.Put(r)
	if err != nil {
		return err
	}
	audit.Note(c.UserContext(), "rule "+saved.ID+" saved: "+saved.Summary())
	return c.JSON(s.ruleJSON(saved, s.rules.States()))
}

// deleteRule serves DELETE /api/v1/rules/{id}: 204; alerts it has firing
// are resolved.
func (s *Server) deleteRule(c *fiber.Ctx) error {
	id := strings.Clone(c.Params("id"))
	if err := s.rules.Delete(id); err != nil {
		return err
	}
	audit.Note(c.UserContext(), "rule "+id+" deleted")
	return c.SendStatus(fiber.StatusNoContent)
}

// ruleError maps the rule engine's errors to statuses.
func ruleError(err error) (int, bool) {
	switch {
	case errors.Is(err, alert.ErrUnknownRule):
		return fiber.StatusNotFound, true
	case errors.Is(err, alert.ErrConfigRule):
		return fiber.StatusConflict, true
	}
	return 0, false
}

// shedding serves GET /api/v1/shedding: load shedding's cap, the site's
// power, the loads shed now and the latest actions (?limit=, default 100).
func (s *Server) shedding(c *fiber.Ctx) error {
	if s.shedder == nil {
		return c.JSON(fiber.Map{"enabled": false})
	}
	limit, err := parseLimit("limit", c.Query("limit"), 100, 1000)
	if err != nil {
		return err
	}
	st, err := s.shedder.Status(s.now(), limit)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"enabled": true, "status": st})
}
