package statement

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

var madrid = mustZone("Europe/Madrid")

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// The synthetic office: a main meter, two tenants' sub-meters, readings
// every 10 minutes with an energy counter, constant power in each month.
var (
	septemberW = map[string]float64{"main": 2000, "acme-a": 600, "acme-b": 400, "beta": 500}
	octoberW   = map[string]float64{"main": 3000, "acme-a": 1000, "acme-b": 500, "beta": 1000}
)

// touSpec is a time-of-use tariff: 0.30 on weekdays 10-14 and 18-22, 0.10
// otherwise; 0.05 paid per kWh exported; 0.50 a day; 4 per kW of peak.
var touSpec = tariff.Spec{Currency: "EUR", PriceKWh: 0.10, ExportPriceKWh: 0.05, DailyCharge: 0.5, DemandChargeKW: 4, CO2GramsKWh: 200,
	Periods: []tariff.PeriodSpec{
		{Name: "peak", PriceKWh: 0.30, Days: []string{"weekdays"}, From: "10:00", To: "14:00"},
		{Name: "peak", PriceKWh: 0.30, Days: []string{"weekdays"}, From: "18:00", To: "22:00"},
	}}

// office builds the office's store, over September and October 2026 in
// Madrid (October holds the 25-hour day of the 25th), its tariff and its
// tenants: acme (acme-a and acme-b, fixed charges by energy) and beta
// (30 % of them).
func office(t *testing.T) Source {
	t.Helper()
	return officeWith(t, store.Options{})
}

// officeWith is office on a store opened with opts.
func officeWith(t *testing.T, opts store.Options) Source {
	t.Helper()
	st, err := store.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	start := time.Date(2026, 9, 1, 0, 0, 0, 0, madrid)
	oct := time.Date(2026, 10, 1, 0, 0, 0, 0, madrid)
	end := time.Date(2026, 11, 1, 0, 0, 0, 0, madrid)
	var rs []meter.Reading
	for _, id := range []string{"main", "acme-a", "acme-b", "beta"} {
		wh := 1000.0
		for at := start; !at.After(end); at = at.Add(10 * time.Minute) {
			w := octoberW[id]
			if !at.After(oct) { // the 10 minutes ending at at were September's
				w = septemberW[id]
			}
			if at.After(start) {
				wh += w * 10 / 60
			}
			rs = append(rs, meter.Reading{Meter: id, Time: at, PowerW: w, EnergyWh: wh, HasEnergy: true, Stamped: true, Source: "import"})
		}
	}
	if _, err := st.Import(rs, nil); err != nil {
		t.Fatal(err)
	}
	for id, info := range map[string]func(*store.MeterInfo){
		"main":   func(i *store.MeterInfo) { i.Site, i.Name = "office", "Main supply" },
		"acme-a": func(i *store.MeterInfo) { i.Parent = "main" },
		"acme-b": func(i *store.MeterInfo) { i.Parent = "main" },
		"beta":   func(i *store.MeterInfo) { i.Parent = "main" },
	} {
		if _, err := st.EditMeter(id, func(i *store.MeterInfo) error { info(i); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := touSpec.Build(madrid)
	if err != nil {
		t.Fatal(err)
	}
	tariffs, err := energy.NewTariffs(st, tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	tenants, err := NewTenants(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []Tenant{
		{ID: "acme", Name: "Acmé Ñandú S.L.", Address: "Calle de la Energía 5, 2º\n28001 Madrid", Meters: []string{"acme-a", "acme-b"}},
		{ID: "beta", Name: "Beta GmbH", Meters: []string{"beta"}, FixedShare: SharePercent, FixedPercent: 30},
	} {
		if _, _, err := tenants.Put(x); err != nil {
			t.Fatal(err)
		}
	}
	return Source{Store: st, Tariffs: tariffs, Tenants: tenants}
}

// expectedCost prices a constant power of w watts over the hours of
// [from, to) in Madrid by the time-of-use rules, worked out here from the
// calendar rather than by package tariff.
func expectedCost(w float64, from, to time.Time) (kwh, cost float64) {
	for h := from; h.Before(to); h = h.Add(time.Hour) {
		lt := h.In(madrid)
		price := 0.10
		if wd := lt.Weekday(); wd != time.Saturday && wd != time.Sunday && (lt.Hour() >= 10 && lt.Hour() < 14 || lt.Hour() >= 18 && lt.Hour() < 22) {
			price = 0.30
		}
		kwh += w / 1000
		cost += w / 1000 * price
	}
	return kwh, cost
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

var now = time.Date(2026, 11, 20, 12, 0, 0, 0, madrid)

// TestOfficeStatements builds October's statements of the office, each
// tenant and a meter, and checks every figure against the calendar's: the
// 745 hours of a month with a DST change, the time-of-use split, the
// charges and each tenant's share, the unmetered remainder, and the
// comparison with September.
func TestOfficeStatements(t *testing.T) {
	src := office(t)
	oct, err := ParsePeriod("2026-10", madrid)
	if err != nil {
		t.Fatal(err)
	}
	from, to := oct.From, oct.To
	if hours := to.Sub(from).Hours(); hours != 745 {
		t.Fatalf("October 2026 in Madrid has %v hours, want 745", hours)
	}
	mainKWh, mainCost := expectedCost(3000, from, to)
	peakKWh, _ := expectedCost(3000, from, to)
	_ = peakKWh

	site, err := src.Build(Subject{KindSite, "office"}, oct, now)
	if err != nil {
		t.Fatal(err)
	}
	if !site.Final || site.Title != "office" || !near(site.ImportKWh, 2235) || !near(site.ImportKWh, mainKWh) {
		t.Errorf("site: final %v, %q, %v kWh, want 2235", site.Final, site.Title, site.ImportKWh)
	}
	if !near(site.NetEnergyCost, tariff.Round(mainCost)) || !near(site.EnergyCost, tariff.Round(mainCost)) {
		t.Errorf("site energy cost %v (net %v), want %v", site.EnergyCost, site.NetEnergyCost, mainCost)
	}
	if !near(site.FixedCharge, 15.5) || !near(site.DemandCharge, 12) || site.Peak == nil || !near(site.Peak.KW, 3) {
		t.Errorf("site charges: fixed %v (want 31 days × 0.50), demand %v (want 3 kW × 4), peak %+v", site.FixedCharge, site.DemandCharge, site.Peak)
	}
	if want := tariff.Round(tariff.Round(mainCost) + 15.5 + 12); !near(site.Total, want) {
		t.Errorf("site total %v, want %v", site.Total, want)
	}
	if !near(site.CO2Kg, 2235*0.2) {
		t.Errorf("CO2 %v kg, want %v", site.CO2Kg, 2235*0.2)
	}
	// The time-of-use split adds up to the energy and its cost.
	var splitKWh, splitCost float64
	for _, p := range site.Energy {
		splitKWh += p.KWh
		splitCost += p.Cost
	}
	if len(site.Energy) != 2 || site.Energy[0].Name != "peak" || site.Energy[1].Name != "" || !near(splitKWh, 2235) || !near(tariff.Round(splitCost), site.EnergyCost) ||
		!near(site.Energy[0].PriceKWh, 0.30) || !near(site.Energy[1].PriceKWh, 0.10) {
		t.Errorf("energy by period: %+v", site.Energy)
	}
	// 22 weekdays in October 2026, 8 peak hours each.
	if !near(site.Energy[0].KWh, 22*8*3) {
		t.Errorf("peak energy %v kWh, want %v", site.Energy[0].KWh, 22*8*3)
	}
	// The days: 31, the 25th of 25 hours.
	if len(site.Days) != 31 || !near(site.Days[24].ImportKWh, 75) || !near(site.Days[0].ImportKWh, 72) || site.Days[24].Date.Day() != 25 {
		t.Errorf("days: %d, the 25th %+v, the 1st %+v", len(site.Days), site.Days[24], site.Days[0])
	}
	// The lines: each sub-meter and the remainder, adding up to the site.
	var linesKWh, linesCost float64
	for _, l := range site.Lines {
		linesKWh += l.ImportKWh
		linesCost += l.Cost
	}
	if len(site.Lines) != 4 || site.Lines[3].Meter != "main" || !site.Lines[3].Unmetered || !near(site.Lines[3].ImportKWh, 372.5) ||
		!near(linesKWh, site.ImportKWh) || !near(tariff.Round(linesCost), site.NetEnergyCost) {
		t.Errorf("lines %+v add to %v kWh %v EUR", site.Lines, linesKWh, linesCost)
	}
	// September: 720 hours at 2 kW.
	sepKWh, sepCost := expectedCost(2000, time.Date(2026, 9, 1, 0, 0, 0, 0, madrid), from)
	sepTotal := tariff.Round(tariff.Round(sepCost) + 30*0.5 + 2*4)
	if site.Previous.Period != "2026-09" || !near(site.Previous.ImportKWh, sepKWh) || !near(site.Previous.Total, sepTotal) ||
		site.Previous.ImportChangePct == nil || !near(*site.Previous.ImportChangePct, (2235-1440)/1440.0*100) {
		t.Errorf("previous: %+v, want 2026-09 at %v kWh, %v EUR", site.Previous, sepKWh, sepTotal)
	}
	if site.YearBefore.Period != "2025-10" || site.YearBefore.ImportKWh != 0 || site.YearBefore.ImportChangePct != nil {
		t.Errorf("year before: %+v, want nothing to compare with", site.YearBefore)
	}

	// Tenants: their own energy, and their share of the site's charges.
	acmeKWh, acmeCost := expectedCost(1500, from, to)
	acme, err := src.Build(Subject{KindTenant, "acme"}, oct, now)
	if err != nil {
		t.Fatal(err)
	}
	if acme.Title != "Acmé Ñandú S.L." || !near(acme.ImportKWh, acmeKWh) || !near(acme.NetEnergyCost, tariff.Round(acmeCost)) || !near(acme.Share, 0.5) ||
		!near(acme.FixedCharge, 7.75) || !near(acme.DemandCharge, 6) || !near(acme.Total, tariff.Round(tariff.Round(acmeCost)+7.75+6)) {
		t.Errorf("acme: %v kWh %v EUR, share %v, fixed %v, demand %v, total %v", acme.ImportKWh, acme.NetEnergyCost, acme.Share, acme.FixedCharge, acme.DemandCharge, acme.Total)
	}
	if acme.Peak == nil || !near(acme.Peak.KW, 1.5) || len(acme.Lines) != 2 {
		t.Errorf("acme's peak %+v, lines %+v", acme.Peak, acme.Lines)
	}
	_, betaCost := expectedCost(1000, from, to)
	beta, err := src.Build(Subject{KindTenant, "beta"}, oct, now)
	if err != nil {
		t.Fatal(err)
	}
	if !near(beta.ImportKWh, 745) || !near(beta.Share, 0.3) || !near(beta.FixedCharge, 4.65) || !near(beta.DemandCharge, 3.6) ||
		!near(beta.Total, tariff.Round(tariff.Round(betaCost)+4.65+3.6)) {
		t.Errorf("beta: %v kWh, share %v, fixed %v, demand %v, total %v", beta.ImportKWh, beta.Share, beta.FixedCharge, beta.DemandCharge, beta.Total)
	}

	// A meter: its energy, no charges (they are its site's).
	m, err := src.Build(Subject{KindMeter, "acme-b"}, oct, now)
	if err != nil {
		t.Fatal(err)
	}
	if !near(m.ImportKWh, 372.5) || m.FixedCharge != 0 || m.DemandCharge != 0 || m.Title != "acme-b" {
		t.Errorf("acme-b: %+v", m)
	}

	// A week bears its part of the month's demand charge, not all of it.
	week, _ := ParsePeriod("2026-10-05/2026-10-11", madrid)
	w, err := src.Build(Subject{KindSite, "office"}, week, now)
	if err != nil {
		t.Fatal(err)
	}
	if !near(w.DemandCharge, tariff.Round(3*4*7/31.0)) || !near(w.FixedCharge, 7*0.5) {
		t.Errorf("a week's charges: demand %v (want 7/31 of 12), fixed %v", w.DemandCharge, w.FixedCharge)
	}

	// A period not over yet gives what is known, charged to date.
	nov, _ := ParsePeriod("2026-11", madrid)
	part, err := src.Build(Subject{KindSite, "office"}, nov, now)
	if err != nil {
		t.Fatal(err)
	}
	if part.Final || !part.Until.Equal(now) || !near(part.FixedCharge, 20*0.5) {
		t.Errorf("November so far: final %v, until %v, fixed %v (want the 20 days to the 20th)", part.Final, part.Until, part.FixedCharge)
	}
	for _, c := range []struct {
		s    Subject
		want error
	}{{Subject{KindSite, "nowhere"}, ErrUnknownSubject}, {Subject{KindTenant, "nobody"}, ErrUnknownSubject}, {Subject{KindMeter, "none"}, ErrUnknownSubject}} {
		if _, err := src.Build(c.s, oct, now); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.s, err, c.want)
		}
	}
	dec, _ := ParsePeriod("2026-12", madrid)
	if _, err := src.Build(Subject{KindSite, "office"}, dec, now); !errors.Is(err, ErrFuture) {
		t.Errorf("a period to come: %v", err)
	}
}

// TestCSVAndPDF writes October's statement of acme as CSV and as PDF, in
// English and Spanish, and reads the figures back: the CSV's with
// encoding/csv, the PDF's text with pdftotext (Debian's poppler-utils).
func TestCSVAndPDF(t *testing.T) {
	src := office(t)
	oct, _ := ParsePeriod("2026-10", madrid)
	s, err := src.Build(Subject{KindTenant, "acme"}, oct, now)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteCSV(&b, s); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	find := func(section, name string) []string {
		for _, r := range rows {
			if r[0] == section && r[1] == name {
				return r
			}
		}
		t.Fatalf("no CSV row %s,%s in %v", section, name, rows)
		return nil
	}
	num := func(s string) float64 {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		return v
	}
	if r := find("total", "statement"); num(r[3]) != s.ImportKWh || num(r[6]) != s.Total || r[7] != "EUR" {
		t.Errorf("CSV total %v, want %v kWh, %v EUR", r, s.ImportKWh, s.Total)
	}
	if r := find("charge", "fixed"); num(r[6]) != 7.75 {
		t.Errorf("CSV fixed charge %v", r)
	}
	if r := find("subject", "tenant:acme"); r[7] != "Acmé Ñandú S.L." {
		t.Errorf("CSV subject %v", r)
	}
	days := 0
	var sum float64
	for _, r := range rows {
		if r[0] == "day" {
			days++
			sum += num(r[3])
		}
	}
	if days != 31 || !near(sum, s.ImportKWh) {
		t.Errorf("CSV days: %d summing %v kWh", days, sum)
	}

	// A tenant's statement says the site's peak its demand charge is a
	// share of.
	site, err := src.Build(Subject{KindSite, "office"}, oct, now)
	if err != nil {
		t.Fatal(err)
	}
	if s.SitePeak == nil || site.Peak == nil || *s.SitePeak != *site.Peak {
		t.Errorf("acme's site peak %+v, the site's %+v", s.SitePeak, site.Peak)
	}
	pdftotext, err := exec.LookPath("pdftotext")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no pdftotext: .ci/run must install Debian's poppler-utils")
		}
		t.Skip("no pdftotext: apt-get install poppler-utils")
	}
	for _, c := range []struct {
		lang *Lang
		want []string
	}{
		{English, []string{"Energy statement", "Acmé Ñandú S.L.", "Calle de la Energía 5, 2º", "October 2026", "Europe/Madrid",
			"1,117.50 kWh", English.Money(s.Total, "EUR"), "7.75 EUR", "6.00 EUR", "50.0 % share of the site's", "Peak demand (15 min)", "1.50 kW",
			"The period before (September 2026)", "config.yaml's tariff section", "Page 1 / ", "the site's peak demand (15 min): "}},
		{Spanish, []string{"Extracto de energía", "Acmé Ñandú S.L.", "octubre de 2026", "1.117,50 kWh", Spanish.Money(s.Total, "EUR"),
			"7,75 EUR", "Término fijo (50,0 % del sitio)", "Un año antes (octubre de 2025)", "la sección tariff de config.yaml", "laborables", "Página 1 / "}},
	} {
		var pdf bytes.Buffer
		if err := WritePDF(&pdf, s, c.lang, now); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(pdf.Bytes(), []byte("%PDF-")) {
			t.Fatal("not a PDF")
		}
		cmd := exec.Command(pdftotext, "-layout", "-", "-")
		cmd.Stdin = bytes.NewReader(pdf.Bytes())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("pdftotext: %v", err)
		}
		text := string(out)
		for _, w := range c.want {
			if !strings.Contains(text, w) {
				t.Errorf("the %s PDF lacks %q:\n%s", c.lang.Code, w, text)
			}
		}
	}
}

// TestTenantsChecked refuses tenants that would bill a meter twice or do
// not say what they need.
func TestTenantsChecked(t *testing.T) {
	src := office(t)
	for _, c := range []struct {
		x     Tenant
		field string
	}{
		{Tenant{ID: "Bad ID", Name: "x"}, "id"},
		{Tenant{ID: "x", Name: ""}, "name"},
		{Tenant{ID: "x", Name: "X", Meters: []string{"acme-a"}}, "meters[0]"},          // acme's
		{Tenant{ID: "x", Name: "X", Meters: []string{"nope"}}, "meters[0]"},            // no such meter
		{Tenant{ID: "beta", Name: "B", Meters: []string{"beta", "beta"}}, "meters[1]"}, // twice
		{Tenant{ID: "x", Name: "X", Meters: []string{"main"}}, "meters[0]"},            // above acme's and beta's meters
		{Tenant{ID: "x", Name: "X"}, "meters"},                                         // billed for nothing
		{Tenant{ID: "x", Name: "X", Meters: []string{"nope"}, FixedShare: "half"}, "fixed_share"},
		{Tenant{ID: "x", Name: "X", Meters: []string{"nope"}, FixedShare: SharePercent, FixedPercent: 120}, "fixed_percent"},
		{Tenant{ID: "x", Name: "X", Meters: []string{"nope"}, FixedPercent: 20}, "fixed_percent"},
	} {
		var ie *InvalidError
		if _, _, err := src.Tenants.Put(c.x); !errors.As(err, &ie) || ie.Field != c.field {
			t.Errorf("%+v: %v, want a problem with %s", c.x, err, c.field)
		}
	}
	// A sub-meter of a meter the tenant also lists would count twice.
	if _, err := src.Store.EditMeter("acme-b", func(i *store.MeterInfo) error { i.Parent = "acme-a"; return nil }); err != nil {
		t.Fatal(err)
	}
	var ie *InvalidError
	if _, _, err := src.Tenants.Put(Tenant{ID: "acme", Name: "A", Meters: []string{"acme-a", "acme-b"}}); !errors.As(err, &ie) || ie.Key != "sub_meter" {
		t.Errorf("acme-b under acme-a, both acme's: %v", err)
	}
	if _, err := src.Store.EditMeter("acme-b", func(i *store.MeterInfo) error { i.Parent = "main"; return nil }); err != nil {
		t.Fatal(err)
	}
	// A meter moves from one tenant to another once the first lets go.
	acme, _ := src.Tenants.Get("acme")
	acme.Meters = []string{"acme-a"}
	if _, created, err := src.Tenants.Put(acme); err != nil || created {
		t.Fatalf("acme without acme-b: %v %v", created, err)
	}
	if _, created, err := src.Tenants.Put(Tenant{ID: "gamma", Name: "Gamma", Meters: []string{"acme-b"}}); err != nil || !created {
		t.Fatalf("gamma with acme-b: %v %v", created, err)
	}
	if x, ok := src.Tenants.Of("acme-b"); !ok || x.ID != "gamma" {
		t.Errorf("acme-b's tenant: %+v %v", x, ok)
	}
	// Fixed percentages of one site's charges add up to 100 at most
	// (beta bears 30).
	gamma, _ := src.Tenants.Get("gamma")
	gamma.FixedShare, gamma.FixedPercent = SharePercent, 80
	if _, _, err := src.Tenants.Put(gamma); !errors.As(err, &ie) || ie.Key != "percent_sum" || !strings.Contains(ie.Reason, "110 %") {
		t.Errorf("gamma at 80 %% beside beta's 30: %v", err)
	}
	gamma.FixedPercent = 70
	if _, _, err := src.Tenants.Put(gamma); err != nil {
		t.Errorf("gamma at 70 %% beside beta's 30: %v", err)
	}
	// Names and addresses a CSV, a terminal or a PDF would show as
	// something else.
	for _, x := range []Tenant{
		{ID: "x", Name: "\x00\x1b[31mred\x07", Meters: []string{"main"}},
		{ID: "x", Name: "Acme\r\nBcc: all@example.org", Meters: []string{"main"}},
		{ID: "x", Name: "\u202eevil\u202c", Meters: []string{"main"}},
		{ID: "x", Name: "A\u2028B", Meters: []string{"main"}},
		{ID: "x", Name: "X", Address: "Calle \u0085Mayor", Meters: []string{"main"}},
	} {
		if _, _, err := src.Tenants.Put(x); !errors.As(err, &ie) || ie.Key != "printable" {
			t.Errorf("%q %q: %v", x.Name, x.Address, err)
		}
	}
	// A deleted meter leaves its tenant, which stays.
	if tid, err := src.Tenants.ForgetMeter("acme-b"); err != nil || tid != "gamma" {
		t.Errorf("forget acme-b: %q %v", tid, err)
	}
	if g, _ := src.Tenants.Get("gamma"); len(g.Meters) != 0 {
		t.Errorf("gamma after acme-b went: %+v", g)
	}
	if tid, err := src.Tenants.ForgetMeter("nobody"); err != nil || tid != "" {
		t.Errorf("forget a meter of no tenant: %q %v", tid, err)
	}
	if err := src.Tenants.Delete("gamma"); err != nil {
		t.Fatal(err)
	}
	if err := src.Tenants.Delete("gamma"); !errors.Is(err, ErrUnknownTenant) {
		t.Errorf("deleting gamma twice: %v", err)
	}
}

// TestParsePeriod reads months and ranges of days, and refuses others.
func TestParsePeriod(t *testing.T) {
	p, err := ParsePeriod("2026-11-01/2026-11-15", madrid)
	if err != nil || p.Month || p.String() != "2026-11-01/2026-11-15" || p.days() != 15 || p.Previous().String() != "2026-10-17/2026-10-31" {
		t.Errorf("a range: %+v %v, previous %s", p, err, p.Previous())
	}
	if p, _ := ParsePeriod("2026-11-01/2026-11-30", madrid); !p.Month || p.String() != "2026-11" {
		t.Errorf("a whole month as a range is the month: %+v", p)
	}
	for in, want := range map[string]string{"2026-11-15/2026-11-22": "15–22 Nov 2026", "2026-10-26/2026-11-01": "26 Oct – 1 Nov 2026",
		"2025-12-29/2026-01-04": "29 Dec 2025 – 4 Jan 2026", "2026-11-15/2026-11-15": "15 Nov 2026", "2026-11": "November 2026"} {
		if p, _ := ParsePeriod(in, madrid); English.PeriodName(p) != want {
			t.Errorf("%s is named %q, want %q", in, English.PeriodName(p), want)
		}
	}
	if p, _ := ParsePeriod("2026-03", madrid); p.Previous().String() != "2026-02" || p.YearBefore().String() != "2025-03" {
		t.Errorf("March's comparisons: %s %s", p.Previous(), p.YearBefore())
	}
	for _, bad := range []string{"", "2026", "2026-13", "2026-11-15/2026-11-01", "2025-01-01/2026-12-31", "x/y", "2026-11/2026-12",
		"0000-01", "0000-01-01/0000-12-31", "1999-12"} {
		if _, err := ParsePeriod(bad, madrid); err == nil {
			t.Errorf("period %q accepted", bad)
		}
	}
}

var updateDocs = flag.Bool("update-docs", false, "write docs/statement.png, the user guide's example statement")

// TestDocsStatement renders the first page of acme's October statement as
// the user guide shows it (docs/statement.png, from pdftoppm); with
// -update-docs it writes it, else it checks the guide has one.
func TestDocsStatement(t *testing.T) {
	const png = "../../docs/statement.png"
	if !*updateDocs {
		if _, err := os.Stat(png); err != nil {
			t.Fatalf("the user guide's example statement: %v (make docs writes it)", err)
		}
		return
	}
	pdftoppm, err := exec.LookPath("pdftoppm")
	if err != nil {
		t.Fatal("no pdftoppm: apt-get install poppler-utils")
	}
	src := office(t)
	oct, _ := ParsePeriod("2026-10", madrid)
	s, err := src.Build(Subject{KindTenant, "acme"}, oct, now)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "acme.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePDF(f, s, English, now); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command(pdftoppm, "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", filepath.Join(dir, "acme.pdf"), filepath.Join(dir, "page")).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "page.png"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(png, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestArchivedMonthKeepsItsCharges: once retention archives a past
// month's raw readings, its statement still charges its days (the rollups
// keep them).
func TestArchivedMonthKeepsItsCharges(t *testing.T) {
	src := officeWith(t, store.Options{Retention: store.Retention{Raw: 10 * 24 * time.Hour}})
	oct, _ := ParsePeriod("2026-10", madrid)
	before, err := src.Build(Subject{KindSite, "office"}, oct, now)
	if err != nil {
		t.Fatal(err)
	}
	// Keep 10 days of raw readings on 15 November: September's and October's go.
	if _, err := src.Store.ApplyRetention(context.Background(), time.Date(2026, 11, 15, 0, 0, 0, 0, madrid)); err != nil {
		t.Fatal(err)
	}
	if m, _ := src.Store.Meter("main"); m.ArchivedBefore.IsZero() {
		t.Fatal("retention archived nothing")
	}
	after, err := src.Build(Subject{KindSite, "office"}, oct, now)
	if err != nil {
		t.Fatal(err)
	}
	if after.FixedCharge != before.FixedCharge || after.Total != before.Total || !near(after.FixedCharge, 15.5) {
		t.Errorf("October's charges before archiving %v (total %v), after %v (total %v)", before.FixedCharge, before.Total, after.FixedCharge, after.Total)
	}
}

// TestPDFKeepsTheTariffOnOnePage: however many meters push it down the
// page, the tariff's section is never split across two pages, and the
// meters' heading never ends a page alone.
func TestPDFKeepsTheTariffOnOnePage(t *testing.T) {
	pdftotext, err := exec.LookPath("pdftotext")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no pdftotext: .ci/run must install Debian's poppler-utils")
		}
		t.Skip("no pdftotext: apt-get install poppler-utils")
	}
	src := office(t)
	oct, _ := ParsePeriod("2026-10", madrid)
	base, err := src.Build(Subject{KindSite, "office"}, oct, now)
	if err != nil {
		t.Fatal(err)
	}
	page := func(pdf []byte, n int) string {
		cmd := exec.Command(pdftotext, "-f", strconv.Itoa(n), "-l", strconv.Itoa(n), "-layout", "-", "-")
		cmd.Stdin = bytes.NewReader(pdf)
		out, err := cmd.Output()
		if err != nil {
			return ""
		}
		return string(out)
	}
	for n := 0; n <= 40; n += 2 {
		s := *base
		s.Lines = nil
		for i := range n {
			s.Lines = append(s.Lines, Line{Meter: fmt.Sprintf("m-%02d", i), Name: fmt.Sprintf("m-%02d", i), ImportKWh: 1, Cost: 0.2})
		}
		var b bytes.Buffer
		if err := WritePDF(&b, &s, English, now); err != nil {
			t.Fatal(err)
		}
		for p := 1; p <= 4; p++ {
			text := page(b.Bytes(), p)
			lines := strings.Split(strings.TrimRight(text, "\n\f "), "\n")
			for j, l := range lines {
				if strings.TrimSpace(l) == "Tariff" && !strings.Contains(strings.Join(lines[j:], "\n"), "CO2 per kWh") {
					t.Errorf("%d meters: the tariff's section is split after page %d", n, p)
				}
				if strings.TrimSpace(l) == "Meters" && j >= len(lines)-2 { // the heading, then the page's foot
					t.Errorf("%d meters: the meters' heading ends page %d", n, p)
				}
			}
		}
	}
}

// TestBillAddsUp: printed to the cent, a statement's lines add up to its
// total, each within a cent of its figure: a tenant's shares 19.9149 and
// 33.634 beside 530.40 of energy make 583.9489, printed 583.95.
func TestBillAddsUp(t *testing.T) {
	for _, c := range []struct {
		s    Statement
		want Bill
	}{
		{Statement{Energy: []PeriodLine{{Cost: 420}, {Cost: 25.2}, {Cost: 85.2}}, FixedCharge: 19.9149, DemandCharge: 33.634, Total: 583.9489},
			Bill{Energy: []float64{420, 25.2, 85.2}, Fixed: 19.92, Demand: 33.63, Total: 583.95}},
		{Statement{Energy: []PeriodLine{{Cost: 181.4}, {Cost: 108.84}, {Cost: 87.424}}, FixedCharge: 45, DemandCharge: 21.6, Total: 444.264},
			Bill{Energy: []float64{181.4, 108.84, 87.42}, Fixed: 45, Demand: 21.6, Total: 444.26}},
		{Statement{Energy: []PeriodLine{{Cost: 0.005}, {Cost: 0.005}, {Cost: 0.005}}, ExportCredit: 0.0049, Total: 0.0101},
			Bill{}}, // any lines that add up

	} {
		got := c.s.Bill()
		var sum int64
		for _, v := range append(append([]float64{}, got.Energy...), got.ExportCredit, got.Fixed, got.Demand) {
			sum += int64(math.Round(v * 100))
		}
		if sum != int64(math.Round(got.Total*100)) {
			t.Errorf("%+v: lines sum to %d cents, the total is %v", c.s, sum, got.Total)
		}
		if c.want.Energy != nil && !reflect.DeepEqual(got, c.want) {
			t.Errorf("%+v: bill %+v, want %+v", c.s, got, c.want)
		}
	}
}

// TestBuildsTakeTurns: while as many statements as the machine takes are
// being made, another waits its Wait, then gives up with ErrBusy; once
// one is done, it is made.
func TestBuildsTakeTurns(t *testing.T) {
	src := office(t)
	oct, _ := ParsePeriod("2026-10", madrid)
	for range cap(builds) {
		builds <- struct{}{} // statements being made
	}
	src.Wait = 50 * time.Millisecond
	if _, err := src.Build(Subject{KindTenant, "acme"}, oct, now); !errors.Is(err, ErrBusy) {
		t.Errorf("with every turn taken: %v, want ErrBusy", err)
	}
	<-builds
	// A caller with a statement under way gets no second turn.
	building.Lock()
	building.by["viewer"] = true
	building.Unlock()
	if _, err := src.BuildFor(context.Background(), "viewer", Subject{KindTenant, "acme"}, oct, now); !errors.Is(err, ErrBusy) {
		t.Errorf("a second statement of one caller: %v, want ErrBusy", err)
	}
	building.Lock()
	delete(building.by, "viewer")
	building.Unlock()
	s, err := src.BuildFor(context.Background(), "viewer", Subject{KindTenant, "acme"}, oct, now)
	if err != nil || s.ImportKWh == 0 {
		t.Errorf("with a turn free: %v", err)
	}
	for range cap(builds) - 1 {
		<-builds
	}
}

// TestMeterEditsKeepTenants: an edit of a meter's parent or site that
// would bill one energy to two tenants, or a tenant across two sites, is
// told apart from one that keeps every tenant whole.
func TestMeterEditsKeepTenants(t *testing.T) {
	src := office(t)
	info := func(id string) store.MeterInfo {
		m, err := src.Store.Meter(id)
		if err != nil {
			t.Fatal(err)
		}
		return m.Info
	}
	moved := func(id string, change func(*store.MeterInfo)) store.MeterInfo {
		i := info(id)
		change(&i)
		return i
	}
	for _, c := range []struct {
		what     string
		id       string
		info     store.MeterInfo
		conflict bool
	}{
		{"acme-b to another site, acme-a staying", "acme-b", moved("acme-b", func(i *store.MeterInfo) { i.Parent, i.Site = "", "elsewhere" }), true},
		{"acme-a under beta's meter", "acme-a", moved("acme-a", func(i *store.MeterInfo) { i.Parent = "beta" }), true},
		{"beta's meter under acme-a", "beta", moved("beta", func(i *store.MeterInfo) { i.Parent = "acme-a" }), true},
		{"the whole site renamed", "main", moved("main", func(i *store.MeterInfo) { i.Site = "office-2" }), false},
		{"acme-b renamed", "acme-b", moved("acme-b", func(i *store.MeterInfo) { i.Name = "Floor 2" }), false},
	} {
		err := src.Tenants.CheckEdit(c.id, c.info)
		if got := errors.Is(err, ErrTenantConflict); got != c.conflict {
			t.Errorf("%s: %v, want a conflict: %v", c.what, err, c.conflict)
		}
		if c.id == "beta" && !strings.Contains(fmt.Sprint(err), "tenant beta:") {
			t.Errorf("%s: %v, want the moved meter's tenant named", c.what, err)
		}
	}
}

// TestWeeksAddUpToTheMonthsDemand: a month's weekly statements bear, in
// all, the month's demand charge, whether its peak fell in its first week
// or its last (one hour at 100 kW in a month at 1 kW).
func TestWeeksAddUpToTheMonthsDemand(t *testing.T) {
	for _, spikeDay := range []int{3, 27} {
		st, err := store.Open(t.TempDir(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		from, to := time.Date(2026, 10, 1, 0, 0, 0, 0, madrid), time.Date(2026, 11, 1, 0, 0, 0, 0, madrid)
		spike := time.Date(2026, 10, spikeDay, 12, 0, 0, 0, madrid)
		var rs []meter.Reading
		for at := from; !at.After(to); at = at.Add(5 * time.Minute) {
			w := 1000.0
			if !at.Before(spike) && at.Before(spike.Add(time.Hour)) {
				w = 100000
			}
			rs = append(rs, meter.Reading{Meter: "spike", Time: at, PowerW: w, Stamped: true, Source: "import"})
		}
		if _, err := st.Import(rs, nil); err != nil {
			t.Fatal(err)
		}
		tr, err := (tariff.Spec{Currency: "EUR", PriceKWh: 0.1, DemandChargeKW: 3}).Build(madrid)
		if err != nil {
			t.Fatal(err)
		}
		src := Source{Store: st, Tariffs: energy.FixedTariff(tr)}
		month, _ := ParsePeriod("2026-10", madrid)
		m, err := src.Build(Subject{KindSite, store.DefaultSite}, month, now)
		if err != nil {
			t.Fatal(err)
		}
		if m.DemandCharge < 299 || m.DemandCharge > 301 {
			t.Fatalf("spike on the %d: the month's demand charge %v, want 100 kW × 3", spikeDay, m.DemandCharge)
		}
		var weeks float64
		for _, p := range []string{"2026-10-01/2026-10-07", "2026-10-08/2026-10-14", "2026-10-15/2026-10-21", "2026-10-22/2026-10-31"} {
			period, _ := ParsePeriod(p, madrid)
			w, err := src.Build(Subject{KindSite, store.DefaultSite}, period, now)
			if err != nil {
				t.Fatal(err)
			}
			weeks += w.DemandCharge
		}
		if math.Abs(weeks-m.DemandCharge) > 0.001 {
			t.Errorf("spike on the %d: the weeks bear %v of demand charge, the month %v", spikeDay, weeks, m.DemandCharge)
		}
	}
}

// TestCSVNumbers: a sum's float noise and a change's long fraction stay
// out of the CSV.
func TestCSVNumbers(t *testing.T) {
	change := -3.9408866995073892
	s := &Statement{Subject: Subject{KindSite, "home"}, Period: "2026-11", From: time.Date(2026, 11, 1, 0, 0, 0, 0, madrid),
		To: time.Date(2026, 12, 1, 0, 0, 0, 0, madrid), Currency: "EUR", ImportKWh: 3884.999999999, Total: 12.3456,
		Energy: []PeriodLine{{Name: "peak", KWh: 2555.999999999, Cost: 255.6}}, Previous: Comparison{Period: "2026-10", ImportChangePct: &change}}
	var b bytes.Buffer
	if err := WriteCSV(&b, s); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"energy,peak,,2556,", "total,statement,,3885,", ",-3.94,"} {
		if !strings.Contains(out, want) {
			t.Errorf("the CSV lacks %q:\n%s", want, out)
		}
	}
}

// TestHalfCents: a half cent rounds up as an invoice's does, whatever
// binary fraction stores it.
func TestHalfCents(t *testing.T) {
	for v, want := range map[float64]string{48.375: "48.38", 300.125: "300.13", 648.975: "648.98", 26.475: "26.48", -0.125: "-0.13", 0.004: "0.00", 1234.5: "1,234.50"} {
		if got := English.Number(v, 2); got != want {
			t.Errorf("%v: %s, want %s", v, got, want)
		}
	}
	// One line of a bill: the same half cent rounds the same way.
	b := (&Statement{Energy: []PeriodLine{{Cost: 48.375}}, FixedCharge: 10, Total: 58.375}).Bill()
	if b.Energy[0] != 48.38 || b.Total != 58.38 {
		t.Errorf("a bill of 48.375 and 10: %+v", b)
	}
}
