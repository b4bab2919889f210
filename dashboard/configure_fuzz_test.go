package dashboard

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/tariff"
)

// fuzzForm posts body as a form to a handler that runs check on it and
// reports what check found wrong.
func fuzzForm(t *testing.T, body string, check func(c *fiber.Ctx) error) {
	app := fiber.New()
	var found error
	app.Post("/", func(c *fiber.Ctx) error {
		found = check(c)
		return nil
	})
	req := httptest.NewRequest("POST", "/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if found != nil {
		t.Fatalf("form %q: %v", body, found)
	}
}

// FuzzTariffForm reads the settings page's tariff form: every period typed
// is one the spec has, no more than the page can show; a form whose
// numbers read is judged by Build, each error naming a field.
func FuzzTariffForm(f *testing.F) {
	for _, s := range []string{
		"currency=EUR&price_kwh=0.1&period_name=punta&period_price_kwh=0,25&period_days=weekdays&period_from=10:00&period_to=14:00&holidays=2026-12-25",
		"currency=eur&price_kwh=cheap&period_name=&period_name=x&period_days=funday&period_to=25:00",
		"period_name=a&period_name=b&period_name=c&period_price_kwh=1e400&holidays=2026-02-30,%20x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		fuzzForm(t, body, func(c *fiber.Ctx) error {
			form, spec, bad := postedTariff(c, english)
			if len(form.Periods) != len(spec.Periods) || len(form.Periods) > tariff.MaxPeriods+blankPeriods {
				return fmt.Errorf("%d periods typed, %d in the spec", len(form.Periods), len(spec.Periods))
			}
			if len(bad) > 0 {
				return nil
			}
			if _, err := spec.Build(time.UTC); err != nil && len(tariff.FieldErrors(err)) == 0 {
				return fmt.Errorf("Build: %v, naming no field", err)
			}
			return nil
		})
	})
}

// FuzzRuleForm reads the settings page's rule form: a rule that reads is
// judged by Check, its error naming a field.
func FuzzRuleForm(f *testing.F) {
	for _, s := range []string{
		"id=oven&kind=power_above&meter=kitchen&severity=warning&enabled=true&threshold_w=1500&for=30s",
		"editing=x&id=y&kind=silent&meter=*&severity=info&silent_for=soon",
		"id=Bad%20Id&kind=anomaly&factor=NaN&cooldown=-1h",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		fuzzForm(t, body, func(c *fiber.Ctx) error {
			form, r, bad := postedRule(c, english)
			if form.Editing != "" && r.ID != form.Editing {
				return fmt.Errorf("editing %q changed the id to %q", form.Editing, r.ID)
			}
			if len(bad) > 0 {
				return nil
			}
			var ie *alert.InvalidError
			if err := r.Check(); err != nil && !errors.As(err, &ie) {
				return fmt.Errorf("Check: %v, naming no field", err)
			}
			return nil
		})
	})
}
