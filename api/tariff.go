package api

import (
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/tariff"
)

// getTariff serves GET /api/v1/tariff: the tariff in force, where it comes
// from (a saved one overrides config.yaml's), config.yaml's and the saved
// one.
func (s *Server) getTariff(c *fiber.Ctx) error {
	return c.JSON(s.tariffs.State())
}

// putTariff serves PUT /api/v1/tariff (admin): the body, with the keys of
// config.yaml's tariff section, is checked as that section is and, valid,
// saved and in force at once, on every instance sharing the store.
func (s *Server) putTariff(c *fiber.Ctx) error {
	var spec tariff.Spec
	if err := readJSON(c, "tariff", "tariff (the keys of config.yaml's tariff section)", &spec); err != nil {
		return err
	}
	st, err := s.tariffs.Save(spec, who(c).User, s.now())
	if err != nil {
		return err
	}
	audit.Note(c.UserContext(), "tariff saved: "+spec.Summary())
	return c.JSON(st)
}

// deleteTariff serves DELETE /api/v1/tariff (admin): the saved tariff is
// removed and config.yaml's is in force again.
func (s *Server) deleteTariff(c *fiber.Ctx) error {
	st, err := s.tariffs.Remove()
	if err != nil {
		return err
	}
	audit.Note(c.UserContext(), "saved tariff removed: config.yaml's is in force")
	return c.JSON(st)
}

// tariffError maps a tariff refused to 400 with each field wrong, named
// by its key in config.yaml (tariff.periods[0].from), and a tariff that
// cannot be changed to 409.
func tariffError(err error) (int, errorBody, bool) {
	if errors.Is(err, energy.ErrFixedTariff) {
		return fiber.StatusConflict, errorBody{Error: err.Error()}, true
	}
	fes := tariff.FieldErrors(err)
	if len(fes) == 0 {
		return 0, errorBody{}, false
	}
	body := errorBody{Error: "invalid tariff"}
	var lines []string
	for _, fe := range fes {
		body.Problems = append(body.Problems, fieldProblem{Field: "tariff." + fe.Field, Reason: fe.Reason})
		lines = append(lines, "tariff."+fe.Field+": "+fe.Reason)
	}
	body.Detail = strings.Join(lines, "; ")
	return fiber.StatusBadRequest, body, true
}
