package dashboard_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/dashboard"
	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

// TestImportedHistoryIsNotPowerNow: a meter with only imported history
// (its newest reading yesterday, at 2.51 kW) shows offline with when its
// newest reading was taken and that it was never heard, on the overview,
// the meters list and its page, in English and Spanish; "Power now" adds
// only the meter heard live.
func TestImportedHistoryIsNotPowerNow(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	yesterday := time.Now().Add(-24 * time.Hour).Truncate(time.Minute)
	var hist []meter.Reading
	for i := range 60 {
		hist = append(hist, meter.Reading{Source: "import", Meter: "old", Time: yesterday.Add(time.Duration(i) * time.Minute), PowerW: 2510, Stamped: true})
	}
	if _, err := st.Import(hist, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(meter.Reading{Meter: "live", Time: time.Now(), PowerW: 300}, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.Flush(); err != nil {
		t.Fatal(err)
	}
	app := fiber.New()
	dashboard.New(st, dashboard.Options{
		Logger: slog.New(slog.DiscardHandler), Location: time.UTC,
		Tariff: energy.FixedTariff(&tariff.Tariff{Currency: "EUR", PriceKWh: 0.2, Location: time.UTC}),
	}).Register(app)

	for _, c := range []struct {
		lang                 string
		newest, heard, never string
		history              string
	}{
		{"en", "Newest reading", "Last heard", "never (history only)", "only imported history: never heard live"},
		{"es", "Lectura más reciente", "Última señal", "nunca (solo historial)", "solo historial importado: nunca se ha recibido en directo"},
	} {
		res, page := get(t, app, "/", "Accept-Language", c.lang)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: overview = %d", c.lang, res.StatusCode)
		}
		oldCard := cut(page, `data-meter="old"`, "</article>")
		liveCard := cut(page, `data-meter="live"`, "</article>")
		for _, want := range []string{`id="site-power" value="300"`, `<span id="online-count">1</span> / 2`,
			`<article class="card offline" data-meter="old"`, `<article class="card online" data-meter="live"`} {
			if !strings.Contains(page, want) {
				t.Errorf("%s: overview lacks %q", c.lang, want)
			}
		}
		for _, want := range []string{`data-heard=""`, `data-now="false"`, c.newest, `datetime="` + yesterday.Add(59*time.Minute).UTC().Format(time.RFC3339Nano) + `"`, c.heard + ` <span class="seen">` + c.never} {
			if !strings.Contains(oldCard, want) {
				t.Errorf("%s: the imported meter's card lacks %q:\n%s", c.lang, want, oldCard)
			}
		}
		for _, want := range []string{`data-now="true"`, c.heard + ` <time class="seen"`} {
			if !strings.Contains(liveCard, want) {
				t.Errorf("%s: the live meter's card lacks %q:\n%s", c.lang, want, liveCard)
			}
		}
		_, list := get(t, app, "/meters", "Accept-Language", c.lang)
		if row := cut(list, `<tr data-meter="old">`, "</tr>"); !strings.Contains(row, c.never) || !strings.Contains(list, "<th scope=\"col\">"+c.newest+"</th>") ||
			!strings.Contains(row, `<data class="power" value="">–</data>`) {
			t.Errorf("%s: meters list row of the imported meter (never heard, its power \"–\" as on its page):\n%s", c.lang, row)
		}
		if row := cut(list, `<tr data-meter="live">`, "</tr>"); !strings.Contains(row, `<data class="power" value="300">`) {
			t.Errorf("%s: meters list row of the live meter lacks its power now, 300 W:\n%s", c.lang, row)
		}
		_, mp := get(t, app, "/meters/old", "Accept-Language", c.lang)
		for _, want := range []string{`id="meter-power" value="">–</data>`, c.history, c.never} {
			if !strings.Contains(mp, want) {
				t.Errorf("%s: the imported meter's page lacks %q", c.lang, want)
			}
		}
		// An imported meter is not "missing": the alerts page lists only
		// meters that went quiet.
		if _, ap := get(t, app, "/alerts", "Accept-Language", c.lang); strings.Contains(ap, `href="/meters/old"`) {
			t.Errorf("%s: the alerts page lists the imported meter as offline", c.lang)
		}
	}
}

// cut returns the part of s from the first from to the next to after it.
func cut(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.Index(s, to); j >= 0 {
		return s[:j]
	}
	return s
}

// TestAlertsInTheReadersLanguage: the alerts page and the overview show a
// rule's alert, stored as a message key and values, in Spanish to a
// Spanish reader and in English to others; an alert stored before keys
// shows its text.
func TestAlertsInTheReadersLanguage(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Append(meter.Reading{Meter: "oven", Time: time.Now(), PowerW: 3500}, nil); err != nil {
		t.Fatal(err)
	}
	for _, a := range []store.Alert{
		{Severity: "info", Meter: "oven", Source: "rule", Message: "oven: an old alert, before keys", Time: time.Now()},
		{Severity: "warning", Meter: "oven", Source: "rule", Rule: "hot", State: store.AlertFiring, Time: time.Now(),
			Message: "oven: power 3.50 kW above 3.00 kW for 30s", Key: alert.MsgPowerAbove,
			Args: map[string]string{"meter": "oven", "power_w": "3500", "threshold_w": "3000", "for": "30s"}},
	} {
		if err := st.AddAlert(&a); err != nil {
			t.Fatal(err)
		}
	}
	app := fiber.New()
	dashboard.New(st, dashboard.Options{Logger: slog.New(slog.DiscardHandler), Location: time.UTC,
		Tariff: energy.FixedTariff(&tariff.Tariff{Currency: "EUR", PriceKWh: 0.2, Location: time.UTC})}).Register(app)
	for lang, want := range map[string]string{
		"es": "potencia de 3,50 kW por encima de 3,00 kW durante 30 s",
		"en": "power 3.50 kW above 3.00 kW for 30 s",
	} {
		for _, path := range []string{"/alerts", "/"} {
			_, page := get(t, app, path, "Accept-Language", lang)
			if !strings.Contains(page, `<a href="/meters/oven">oven</a>: `+want+`</li>`) && !strings.Contains(page, `<a href="/meters/oven">oven</a>: `+want+` `) {
				t.Errorf("%s %s lacks the alert %q", lang, path, want)
			}
			if !strings.Contains(page, "oven: an old alert, before keys") {
				t.Errorf("%s %s lacks the alert stored before keys", lang, path)
			}
		}
	}
}
