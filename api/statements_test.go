package api_test

import (
	"bytes"
	"encoding/csv"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/api"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/statement"
	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

// statementSite is an office in Madrid from 1 September 2026 to now
// (20 October, 12:00): a main meter drawing 3 kW (with a solar inverter's
// export of 400 W by day on it), sub-metered tenants acme (1 kW) and beta
// (0.5 kW); a time-of-use tariff with daily, demand and export prices.
func statementSite(t *testing.T) (*harness, map[string]string, time.Time) {
	t.Helper()
	loc, _ := time.LoadLocation("Europe/Madrid")
	now := time.Date(2026, 10, 20, 12, 0, 0, 0, loc)
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var rs []meter.Reading
	for id, w := range map[string]float64{"main": 3000, "acme": 1000, "beta": 500} {
		for at := time.Date(2026, 9, 1, 0, 0, 0, 0, loc); !at.After(now); at = at.Add(5 * time.Minute) {
			p := w
			if id == "main" && at.Hour() >= 11 && at.Hour() < 15 {
				p = -400 // the sun
			}
			rs = append(rs, meter.Reading{Meter: id, Time: at, PowerW: p, Stamped: true, Source: "import"})
		}
	}
	if _, err := st.Import(rs, nil); err != nil {
		t.Fatal(err)
	}
	for id, parent := range map[string]string{"acme": "main", "beta": "main"} {
		if _, err := st.EditMeter(id, func(i *store.MeterInfo) error { i.Parent = parent; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.EditMeter("main", func(i *store.MeterInfo) error { i.Site = "office"; return nil }); err != nil {
		t.Fatal(err)
	}
	spec := tariff.Spec{Currency: "EUR", PriceKWh: 0.1, ExportPriceKWh: 0.05, DailyCharge: 0.5, DemandChargeKW: 4, CO2GramsKWh: 200,
		Periods: []tariff.PeriodSpec{{Name: "peak", PriceKWh: 0.3, Days: []string{"weekdays"}, From: "10:30", To: "14:00"}}}
	tr, err := spec.Build(loc)
	if err != nil {
		t.Fatal(err)
	}
	tariffs, err := energy.NewTariffs(st, tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	tenants, err := statement.NewTenants(st)
	if err != nil {
		t.Fatal(err)
	}
	h, tokens, _, _ := securedOn(t, st, api.Options{Tariff: tariffs, Tenants: tenants, Now: func() time.Time { return now }})
	return h, tokens, now
}

// TestStatementsAddUp: a statement's figures are the energy and summary
// answers' for the same meters and period, to the cent and the Wh: the
// month so far against /api/v1/summary, the site against its energy
// answer, each tenant against its meters'.
func TestStatementsAddUp(t *testing.T) {
	h, tokens, _ := statementSite(t)
	admin, viewer := tokens[auth.Admin], tokens[auth.Viewer]
	for _, x := range []string{`{"name": "Acme S.L.", "meters": ["acme"]}`, `{"name": "Beta", "meters": ["beta"], "fixed_share": "percent", "fixed_percent": 25}`} {
		id := "acme"
		if strings.Contains(x, "Beta") {
			id = "beta"
		}
		if code := request(t, h, admin, "PUT", "/api/v1/tenants/"+id, x, nil); code != http.StatusCreated {
			t.Fatalf("PUT tenant %s: %d", id, code)
		}
	}
	type statementJSON struct {
		Subject       map[string]string `json:"subject"`
		Final         bool              `json:"final"`
		ImportKWh     float64           `json:"import_kwh"`
		ExportKWh     float64           `json:"export_kwh"`
		NetEnergyCost float64           `json:"net_energy_cost"`
		FixedCharge   float64           `json:"fixed_charge"`
		DemandCharge  float64           `json:"demand_charge"`
		Total         float64           `json:"total"`
		Share         float64           `json:"share"`
		Peak          *struct {
			KW float64   `json:"kw"`
			At time.Time `json:"at"`
		} `json:"peak"`
		Energy []struct {
			Name string  `json:"name"`
			KWh  float64 `json:"kwh"`
			Cost float64 `json:"cost"`
		} `json:"energy"`
		EnergyCost   float64 `json:"energy_cost"`
		ExportCredit float64 `json:"export_credit"`
	}
	var site statementJSON
	if code := request(t, h, viewer, "GET", "/api/v1/statements?subject=site:office&period=2026-10", "", &site); code != 200 {
		t.Fatalf("GET the site's statement: %d", code)
	}
	var sum struct {
		Month struct {
			EnergyKWh    float64    `json:"energy_kwh"`
			ExportKWh    float64    `json:"export_kwh"`
			EnergyCost   float64    `json:"energy_cost"`
			FixedCharge  float64    `json:"fixed_charge"`
			DemandCharge float64    `json:"demand_charge"`
			Cost         float64    `json:"cost"`
			PeakDemandKW float64    `json:"peak_demand_kw"`
			PeakAt       *time.Time `json:"peak_at"`
		} `json:"month"`
	}
	if site.Subject["kind"] != "site" || site.Subject["name"] != "office" {
		t.Errorf("the statement's subject: %v", site.Subject)
	}
	request(t, h, viewer, "GET", "/api/v1/summary?site=office", "", &sum)
	m := sum.Month
	if site.Final || site.ImportKWh != m.EnergyKWh || site.ExportKWh != m.ExportKWh || site.NetEnergyCost != m.EnergyCost ||
		site.FixedCharge != m.FixedCharge || site.DemandCharge != m.DemandCharge || site.Total != m.Cost ||
		site.Peak == nil || site.Peak.KW != m.PeakDemandKW || m.PeakAt == nil || !site.Peak.At.Equal(*m.PeakAt) {
		t.Errorf("the month's statement %+v\nis not the summary's month %+v", site, m)
	}
	if site.ExportKWh == 0 || site.ExportCredit == 0 || math.Abs(site.EnergyCost-site.ExportCredit-site.NetEnergyCost) > 1e-4 {
		t.Errorf("export: %v kWh, credit %v, energy %v, net %v", site.ExportKWh, site.ExportCredit, site.EnergyCost, site.NetEnergyCost)
	}
	var periodCost float64
	for _, p := range site.Energy {
		periodCost += p.Cost
	}
	if len(site.Energy) != 2 || math.Abs(periodCost-site.EnergyCost) > 1e-4 {
		t.Errorf("energy by period %+v adds to %v, not %v", site.Energy, periodCost, site.EnergyCost)
	}
	type energyJSON struct {
		Total struct {
			EnergyKWh float64 `json:"energy_kwh"`
			ExportKWh float64 `json:"export_kwh"`
			Cost      float64 `json:"cost"`
		} `json:"total"`
	}
	// A whole past month against the site's energy answer.
	var sep statementJSON
	request(t, h, viewer, "GET", "/api/v1/statements?subject=site:office&period=2026-09", "", &sep)
	var e energyJSON
	request(t, h, viewer, "GET", "/api/v1/sites/office/energy?interval=day&from=2026-09-01T00:00:00%2B02:00&to=2026-10-01T00:00:00%2B02:00", "", &e)
	if !sep.Final || sep.ImportKWh != e.Total.EnergyKWh || sep.ExportKWh != e.Total.ExportKWh || sep.NetEnergyCost != e.Total.Cost || !nearly(sep.FixedCharge, 15) {
		t.Errorf("September's statement %+v is not the energy answer's %+v", sep, e.Total)
	}
	// Tenants: their meter's energy answer; charges by share.
	for id, share := range map[string]float64{"acme": -1, "beta": 0.25} {
		var s statementJSON
		if code := request(t, h, viewer, "GET", "/api/v1/statements?subject=tenant:"+id+"&period=2026-09", "", &s); code != 200 {
			t.Fatalf("tenant %s: %d", id, code)
		}
		var me energyJSON
		request(t, h, viewer, "GET", "/api/v1/meters/"+id+"/energy?interval=day&from=2026-09-01T00:00:00%2B02:00&to=2026-10-01T00:00:00%2B02:00", "", &me)
		if share < 0 {
			share = me.Total.EnergyKWh / sep.ImportKWh
		}
		if s.ImportKWh != me.Total.EnergyKWh || s.NetEnergyCost != me.Total.Cost || !nearly(s.Share, share) ||
			!nearly(s.FixedCharge, tariff.Round(sep.FixedCharge*share)) || !nearly(s.DemandCharge, tariff.Round(sep.DemandCharge*share)) {
			t.Errorf("tenant %s: %+v, want its meter's %+v and %.4f of the site's charges", id, s, me.Total, share)
		}
	}

	// CSV and PDF, as attachments; the CSV's total is the JSON's.
	req, _ := http.NewRequest("GET", h.url+"/api/v1/statements?subject=site:office&period=2026-09&format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+viewer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Disposition") != `attachment; filename="vatio-site-office-2026-09.csv"` {
		t.Fatalf("CSV: %d %v", resp.StatusCode, resp.Header)
	}
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rows {
		if r[0] == "total" && r[1] == "statement" {
			v, _ := strconv.ParseFloat(r[6], 64)
			found = v == sep.Total
		}
	}
	if !found {
		t.Errorf("no CSV total of %v in %v", sep.Total, rows)
	}
	req, _ = http.NewRequest("GET", h.url+"/api/v1/statements?subject=tenant:acme&period=2026-09&format=pdf&lang=es", nil)
	req.Header.Set("Authorization", "Bearer "+viewer)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pdf" || !bytes.HasPrefix(body, []byte("%PDF-")) {
		t.Errorf("PDF: %d %v", resp.StatusCode, resp.Header)
	}

	// Refusals.
	for _, c := range []struct {
		query string
		code  int
	}{
		{"subject=office", 400}, {"subject=site:office&period=2026-13", 400}, {"subject=site:office&period=2026-12", 400},
		{"subject=site:office&format=docx", 400}, {"subject=site:nowhere&period=2026-09", 404}, {"subject=tenant:nobody&period=2026-09", 404},
		{"subject=site:office&period=2026-09&format=pdf&lang=fr", 400}, // not silently English
	} {
		if code := request(t, h, viewer, "GET", "/api/v1/statements?"+c.query, "", nil); code != c.code {
			t.Errorf("GET /api/v1/statements?%s: %d, want %d", c.query, code, c.code)
		}
	}
	// Tenants: only admins change them; a meter is one tenant's.
	if code := request(t, h, tokens[auth.Operator], "PUT", "/api/v1/tenants/gamma", `{"name": "G"}`, nil); code != http.StatusForbidden {
		t.Errorf("an operator's PUT tenant: %d", code)
	}
	var bad struct {
		Error, Detail string
	}
	if code := request(t, h, admin, "PUT", "/api/v1/tenants/gamma", `{"name": "G", "meters": ["acme"]}`, &bad); code != 400 || !strings.Contains(bad.Detail, "belongs to tenant acme") {
		t.Errorf("a meter of two tenants: %d %+v", code, bad)
	}
	var list struct {
		Tenants []statement.Tenant `json:"tenants"`
	}
	if request(t, h, viewer, "GET", "/api/v1/tenants", "", &list); len(list.Tenants) != 2 || list.Tenants[0].Name != "Acme S.L." || list.Tenants[1].FixedPercent != 25 {
		t.Errorf("tenants: %+v", list)
	}
	// A meter's edit that would bill one energy twice, or a tenant across
	// two sites, is refused until the tenant changes; others go through.
	for _, c := range []struct {
		body string
		code int
	}{
		{`{"parent": "beta"}`, 409},                    // acme's meter under beta's
		{`{"name": "Acme, floor 2"}`, 200},             // no tenant's business
		{`{"parent": null, "site": "elsewhere"}`, 200}, // acme's one meter: the tenant moves with it
	} {
		var e struct{ Error string }
		if code := request(t, h, admin, "PATCH", "/api/v1/meters/acme", c.body, &e); code != c.code {
			t.Errorf("PATCH acme %s: %d %s, want %d", c.body, code, e.Error, c.code)
		}
	}
	if code := request(t, h, admin, "DELETE", "/api/v1/tenants/beta", "", nil); code != 204 {
		t.Errorf("DELETE beta: %d", code)
	}
	if code := request(t, h, viewer, "GET", "/api/v1/tenants/beta", "", nil); code != 404 {
		t.Errorf("GET beta once deleted: %d", code)
	}
	// A meter deleted (erased) leaves its tenant; the tenant's statement
	// lists nothing, as lists, not null.
	if code := request(t, h, admin, "DELETE", "/api/v1/meters/acme", "", nil); code != 200 {
		t.Fatalf("DELETE the meter acme: %d", code)
	}
	var acme statement.Tenant
	if request(t, h, viewer, "GET", "/api/v1/tenants/acme", "", &acme); len(acme.Meters) != 0 || acme.Name != "Acme S.L." {
		t.Errorf("tenant acme once its meter is gone: %+v", acme)
	}
	var empty map[string]any
	if code := request(t, h, viewer, "GET", "/api/v1/statements?subject=tenant:acme&period=2026-09", "", &empty); code != 200 {
		t.Fatalf("acme's statement without meters: %d", code)
	}
	for _, k := range []string{"energy", "days", "lines", "meters"} {
		if _, ok := empty[k].([]any); !ok {
			t.Errorf("%s: %v, want a list", k, empty[k])
		}
	}
}

func nearly(a, b float64) bool { return math.Abs(a-b) < 1e-4 }
