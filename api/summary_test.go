package api_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/api"
	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/tariff"
)

// every returns readings of m every 10 s over [from, to), at power(t).
func every(m string, from, to time.Time, power func(time.Time) float64) []meter.Reading {
	var rs []meter.Reading
	for ts := from; ts.Before(to); ts = ts.Add(10 * time.Second) {
		rs = append(rs, meter.Reading{Meter: m, Time: ts, PowerW: power(ts), Stamped: true})
	}
	return rs
}

func TestSummaryAndDemand(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tr := &tariff.Tariff{Currency: "EUR", PriceKWh: 0.2, DailyCharge: 1, DemandChargeKW: 5, CO2GramsKWh: 250, Location: time.UTC}
	h := startOpts(t, api.Options{Tariff: energy.FixedTariff(tr), Now: func() time.Time { return now }})
	// Site home: main meter m draws 1 kW, 4 kW from 11:00 to 11:30 today,
	// with sub-meter sub below it. Site plant: p draws 2 kW since midnight.
	peak := func(ts time.Time) float64 {
		if !ts.Before(now.Add(-time.Hour)) && ts.Before(now.Add(-30*time.Minute)) {
			return 4000
		}
		return 1000
	}
	var rs []meter.Reading
	rs = append(rs, every("m", now.Add(-36*time.Hour), now.Add(time.Second), peak)...)
	rs = append(rs, every("sub", now.Add(-36*time.Hour), now.Add(time.Second), func(time.Time) float64 { return 500 })...)
	rs = append(rs, every("p", now.Add(-12*time.Hour), now.Add(time.Second), func(time.Time) float64 { return 2000 })...)
	if _, err := h.store.Import(rs, nil); err != nil {
		t.Fatal(err)
	}
	for id, body := range map[string]string{"m": `{"site": "home"}`, "p": `{"site": "plant"}`, "sub": `{"parent": "m"}`} {
		if code := h.do(t, "PATCH", "/api/v1/meters/"+id, "application/json", body, nil); code != 200 {
			t.Fatalf("PATCH %s = %d", id, code)
		}
	}
	type period struct {
		EnergyKWh    float64    `json:"energy_kwh"`
		EnergyCost   float64    `json:"energy_cost"`
		FixedCharge  float64    `json:"fixed_charge"`
		DemandCharge float64    `json:"demand_charge"`
		Cost         float64    `json:"cost"`
		CO2Kg        float64    `json:"co2_kg"`
		PeakDemandKW float64    `json:"peak_demand_kw"`
		PeakAt       *time.Time `json:"peak_at"`
	}
	var sum struct {
		Sites    []string `json:"sites"`
		Currency string   `json:"currency"`
		DemandKW float64  `json:"demand_kw"`
		Today    period   `json:"today"`
		Month    period   `json:"month"`
	}
	near := func(a, b, tol float64) bool { return math.Abs(a-b) <= tol }
	if code := h.get(t, "/api/v1/summary?site=home", &sum); code != 200 {
		t.Fatalf("summary = %d", code)
	}
	// Today: 11.5 h at 1 kW and 0.5 h at 4 kW; the month adds yesterday's
	// 24 kWh (the import started at 00:00). The sub-meter counts for nothing.
	today, month := 11.5+2.0, 24+11.5+2.0
	if !near(sum.Today.EnergyKWh, today, 0.02) || !near(sum.Today.EnergyCost, today*0.2, 0.005) || sum.Today.FixedCharge != 1 ||
		!near(sum.Today.Cost, today*0.2+1, 0.005) || !near(sum.Today.CO2Kg, today*0.25, 0.01) {
		t.Errorf("today = %+v, want %g kWh, %.2f + 1 EUR", sum.Today, today, today*0.2)
	}
	// The daily charge counts from the day the site's data begins (the
	// 24th), not for the month's days before Vatio knew of it.
	if !near(sum.Month.EnergyKWh, month, 0.02) || sum.Month.FixedCharge != 2 || !near(sum.Month.PeakDemandKW, 4, 0.01) ||
		!near(sum.Month.DemandCharge, 20, 0.05) || !near(sum.Month.Cost, month*0.2+2+20, 0.06) {
		t.Errorf("month = %+v, want %g kWh, 2 days of fixed charge (24th and 25th), a 4 kW peak charged 20", sum.Month, month)
	}
	if at := sum.Month.PeakAt; at == nil || at.Before(now.Add(-45*time.Minute)) || at.After(now.Add(-30*time.Minute)) {
		t.Errorf("peak at %v, want a window inside 11:00-11:30", at)
	}
	if !near(sum.DemandKW, 1, 0.01) || sum.Currency != "EUR" {
		t.Errorf("demand now %g %s, want 1 kW EUR", sum.DemandKW, sum.Currency)
	}
	// Every site: plant adds its 24 kWh today, a day's fixed charge (its
	// data begins today) and its own 2 kW peak's charge; the reported peak
	// is the busiest site's.
	h.get(t, "/api/v1/summary", &sum)
	if len(sum.Sites) != 2 || !near(sum.Today.EnergyKWh, today+24, 0.02) || sum.Today.FixedCharge != 2 || sum.Month.FixedCharge != 3 ||
		!near(sum.Month.DemandCharge, 20+10, 0.05) || !near(sum.Month.PeakDemandKW, 4, 0.01) || !near(sum.DemandKW, 3, 0.01) {
		t.Errorf("all sites = %+v", sum)
	}
	if code := h.get(t, "/api/v1/summary?site=nowhere", nil); code != 404 {
		t.Errorf("unknown site = %d", code)
	}
	if code := h.get(t, "/api/v1/summary?site=a%2Fb", nil); code != 400 {
		t.Errorf("bad site = %d", code)
	}

	var d struct {
		DemandKW     float64    `json:"demand_kw"`
		PeakDemandKW float64    `json:"peak_demand_kw"`
		PeakAt       *time.Time `json:"peak_at"`
	}
	if code := h.get(t, "/api/v1/meters/m/demand", &d); code != 200 || !near(d.PeakDemandKW, 4, 0.01) || !near(d.DemandKW, 1, 0.01) || d.PeakAt == nil {
		t.Errorf("demand = %d %+v", code, d)
	}
	d = struct {
		DemandKW     float64    `json:"demand_kw"`
		PeakDemandKW float64    `json:"peak_demand_kw"`
		PeakAt       *time.Time `json:"peak_at"`
	}{}
	if code := h.get(t, "/api/v1/meters/m/demand?month=2026-10", &d); code != 200 || d.PeakDemandKW != 0 || d.PeakAt != nil {
		t.Errorf("October's demand = %d %+v, want nothing", code, d)
	}
	for _, q := range []string{"?month=2026-13", "?month=next", "?month=2027-01"} {
		if code := h.get(t, "/api/v1/meters/m/demand"+q, nil); code != 400 {
			t.Errorf("demand%s = %d, want 400", q, code)
		}
	}
	if code := h.get(t, "/api/v1/meters/ghost/demand", nil); code != 404 {
		t.Errorf("unknown meter's demand = %d", code)
	}
}

func TestRecommendationsAndForecastAPI(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	h := startOpts(t, api.Options{Now: func() time.Time { return now }})
	// Two weeks of a house drawing 300 W at night and 1 kW by day.
	rs := every("house", now.Add(-15*24*time.Hour), now, func(ts time.Time) float64 {
		if ts.Hour() >= 1 && ts.Hour() < 5 {
			return 300
		}
		return 1000
	})
	if _, err := h.store.Import(rs, nil); err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Currency        string  `json:"currency"`
		SavingPerYear   float64 `json:"saving_per_year"`
		Recommendations []struct {
			Kind     string             `json:"kind"`
			Meter    string             `json:"meter"`
			Evidence map[string]float64 `json:"evidence"`
		} `json:"recommendations"`
	}
	if code := h.get(t, "/api/v1/recommendations", &rec); code != 200 || len(rec.Recommendations) == 0 || rec.Recommendations[0].Kind != "baseload" ||
		rec.Recommendations[0].Evidence["baseload_w"] != 300 || rec.Currency != "EUR" || rec.SavingPerYear <= 0 {
		t.Errorf("recommendations = %d %+v", code, rec)
	}
	var fc struct {
		Points []struct {
			T      time.Time `json:"t"`
			PowerW float64   `json:"power_w"`
		} `json:"points"`
	}
	if code := h.get(t, "/api/v1/meters/house/forecast?hours=6", &fc); code != 200 || len(fc.Points) != 6 ||
		!fc.Points[0].T.Equal(now.Add(time.Hour)) || math.Abs(fc.Points[0].PowerW-1000) > 20 {
		t.Errorf("forecast = %d %+v", code, fc)
	}
	if code := h.get(t, "/api/v1/sites/default/forecast", &fc); code != 200 || len(fc.Points) != 24 {
		t.Errorf("site forecast = %d, %d points", code, len(fc.Points))
	}
	for _, path := range []string{"/api/v1/meters/house/forecast?hours=0", "/api/v1/meters/house/forecast?hours=1000", "/api/v1/recommendations?site=a%2Fb"} {
		if code := h.get(t, path, nil); code != 400 {
			t.Errorf("GET %s = %d, want 400", path, code)
		}
	}
	if code := h.get(t, "/api/v1/meters/ghost/forecast", nil); code != 404 {
		t.Errorf("unknown meter's forecast = %d", code)
	}
}

// TestImportedHistoryIsNotLive: a meter imported through the API (POST
// .../import) with history up to yesterday is offline ("history"), never
// heard, with no power now, and adds nothing to the summary's or its
// site's power; a meter publishing live counts, and shows when it was
// heard as well as when its newest reading was taken.
func TestImportedHistoryIsNotLive(t *testing.T) {
	h := start(t)
	yesterday := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Minute)
	var csv strings.Builder
	for i := range 60 {
		fmt.Fprintf(&csv, "%s,2510\n", yesterday.Add(time.Duration(i)*time.Minute).Format(time.RFC3339))
	}
	if code := h.post(t, "/api/v1/meters/old/import", "text/csv", csv.String(), nil); code != 200 {
		t.Fatalf("import = %d", code)
	}
	h.add(t, meter.Reading{Meter: "live", Time: time.Now(), PowerW: 300})
	type meterAnswer struct {
		Status        string     `json:"status"`
		OfflineReason string     `json:"offline_reason"`
		Last          time.Time  `json:"last"`
		LastHeard     *time.Time `json:"last_heard"`
		LastSeen      *time.Time `json:"last_seen"`
		PowerW        float64    `json:"power_w"`
		PowerNowW     *float64   `json:"power_now_w"`
	}
	var old, live meterAnswer
	if code := h.get(t, "/api/v1/meters/old", &old); code != 200 {
		t.Fatalf("GET old = %d", code)
	}
	if old.Status != "offline" || old.OfflineReason != "history" || old.LastHeard != nil || old.LastSeen != nil ||
		old.PowerNowW != nil || old.PowerW != 2510 || !old.Last.Equal(yesterday.Add(59*time.Minute)) {
		t.Errorf("imported meter = %+v, want offline (history), never heard, no power now, newest reading %s", old, yesterday.Add(59*time.Minute))
	}
	if code := h.get(t, "/api/v1/meters/live", &live); code != 200 {
		t.Fatalf("GET live = %d", code)
	}
	if live.Status != "online" || live.LastHeard == nil || time.Since(*live.LastHeard) > time.Minute || live.LastSeen == nil ||
		!live.LastSeen.Equal(*live.LastHeard) || live.PowerNowW == nil || *live.PowerNowW != 300 {
		t.Errorf("live meter = %+v, want online, heard now, 300 W now", live)
	}
	var list struct {
		Meters []meterAnswer `json:"meters"`
	}
	if code := h.get(t, "/api/v1/meters", &list); code != 200 || len(list.Meters) != 2 || list.Meters[0].Status != "online" || list.Meters[1].Status != "offline" {
		t.Errorf("meters = %d %+v", code, list.Meters)
	}
	var sum struct {
		PowerW float64 `json:"power_w"`
	}
	if code := h.get(t, "/api/v1/summary", &sum); code != 200 || sum.PowerW != 300 {
		t.Errorf("summary power = %d %g W, want 300 W (the imported meter's 2510 W is history)", code, sum.PowerW)
	}
	var sites struct {
		Sites []struct {
			PowerW float64 `json:"power_w"`
			Online int     `json:"online"`
		} `json:"sites"`
	}
	if code := h.get(t, "/api/v1/sites", &sites); code != 200 || len(sites.Sites) != 1 || sites.Sites[0].PowerW != 300 || sites.Sites[0].Online != 1 {
		t.Errorf("sites = %d %+v, want 300 W, 1 online", code, sites)
	}
}
