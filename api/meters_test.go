package api_test

import (
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
)

type meterAnswer struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	Source          string    `json:"source"`
	Site            string    `json:"site"`
	Parent          string    `json:"parent"`
	Children        []string  `json:"children"`
	Tags            []string  `json:"tags"`
	ExpectedMinW    *float64  `json:"expected_min_w"`
	ExpectedMaxW    *float64  `json:"expected_max_w"`
	Critical        bool      `json:"critical"`
	Created         time.Time `json:"created"`
	PowerW          float64   `json:"power_w"`
	UnmeteredPowerW *float64  `json:"unmetered_power_w"`
	Readings        int       `json:"readings"`
	Status          string    `json:"status"`
	OfflineReason   string    `json:"offline_reason"`
}

// hour returns an hour of readings of m every 10 s at w watts.
func hour(m string, w float64) []meter.Reading {
	var rs []meter.Reading
	for sec := 0; sec <= 3600; sec += 10 {
		rs = append(rs, at(m, sec, w))
	}
	return rs
}

func TestMeterRegistryAPI(t *testing.T) {
	h := start(t)
	r := at("plug", 0, 25)
	r.Source = "shelly"
	h.add(t, r, at("main", 0, 3000))

	var m meterAnswer
	// A new meter: its source, the default site, nothing said about it
	// yet, and online, since it was just seen.
	if code := h.get(t, "/api/v1/meters/plug", &m); code != 200 || m.Source != "shelly" || m.Site != "default" ||
		m.Name != "" || m.Tags == nil || m.Children == nil || m.ExpectedMaxW != nil || m.Status != "online" || m.Created.IsZero() {
		t.Errorf("GET plug = %d %+v", code, m)
	}
	patch := func(path, ct, body string, into any) int {
		t.Helper()
		return h.do(t, http.MethodPatch, path, ct, body, into)
	}
	body := `{"name": "Coffee machine", "site": "Casa Madrid", "tags": ["kitchen", "appliance", "kitchen"],
		"expected_min_w": 0, "expected_max_w": 1800, "critical": true}`
	if code := patch("/api/v1/meters/plug", "application/merge-patch+json", body, &m); code != 200 {
		t.Fatalf("PATCH = %d", code)
	}
	if m.Name != "Coffee machine" || m.Site != "Casa Madrid" || !slices.Equal(m.Tags, []string{"appliance", "kitchen"}) ||
		m.ExpectedMinW == nil || *m.ExpectedMinW != 0 || m.ExpectedMaxW == nil || *m.ExpectedMaxW != 1800 || !m.Critical {
		t.Errorf("after PATCH: %+v", m)
	}
	// Fields left out are kept; null clears.
	if code := patch("/api/v1/meters/plug", "application/json", `{"expected_max_w": null, "tags": null}`, &m); code != 200 ||
		m.ExpectedMaxW != nil || len(m.Tags) != 0 || m.Name != "Coffee machine" || !m.Critical || *m.ExpectedMinW != 0 {
		t.Errorf("PATCH with nulls = %d %+v", code, m)
	}
	for _, c := range []struct{ body, param string }{
		{`{"colour": "red"}`, "body"},
		{`{"name": 5}`, "name"},
		{`{"name": "` + strings.Repeat("x", 101) + `"}`, "name"},
		{`{"site": "a/b"}`, "site"},
		{`{"site": " padded"}`, "site"},
		{`{"tags": ["ok", ""]}`, "tags"},
		{`{"tags": "one"}`, "tags"},
		{`{"expected_min_w": "high"}`, "expected_min_w"},
		{`{"expected_min_w": 2000, "expected_max_w": 100}`, "expected_min_w"},
		{`{"critical": "yes"}`, "critical"},
		{`{"parent": "plug"}`, "parent"},
		{`{"parent": "nowhere"}`, "parent"},
		{`{"parent": "../etc"}`, "parent"},
		{`[1]`, "body"},
		{`{"name": "a"} {"name": "b"}`, "body"},
	} {
		var e apiError
		if code := patch("/api/v1/meters/plug", "application/json", c.body, &e); code != 400 || !strings.Contains(e.Error, `"`+c.param+`"`) {
			t.Errorf("PATCH %.40s = %d %+v, want 400 naming %q", c.body, code, e, c.param)
		}
	}
	if code := patch("/api/v1/meters/plug", "text/plain", `{"name": "x"}`, nil); code != 415 {
		t.Errorf("PATCH as text/plain = %d, want 415", code)
	}
	if code := patch("/api/v1/meters/ghost", "application/json", `{"name": "x"}`, nil); code != 404 {
		t.Errorf("PATCH unknown meter = %d, want 404", code)
	}
	h.get(t, "/api/v1/meters/plug", &m)
	if m.Name != "Coffee machine" || m.Site != "Casa Madrid" {
		t.Errorf("refused PATCHes changed the meter: %+v", m)
	}

	// Hierarchy: plug under main; a sub-meter takes its parent's site.
	if code := patch("/api/v1/meters/plug", "application/json", `{"parent": "main"}`, &m); code != 200 || m.Site != "default" || m.Parent != "main" {
		t.Errorf("PATCH parent = %d %+v", code, m)
	}
	var e apiError
	if code := patch("/api/v1/meters/main", "application/json", `{"parent": "plug"}`, &e); code != 400 || !strings.Contains(e.Detail, "loop") {
		t.Errorf("PATCH making a loop = %d %+v", code, e)
	}
	h.get(t, "/api/v1/meters/main", &m)
	if !slices.Equal(m.Children, []string{"plug"}) || m.UnmeteredPowerW == nil || *m.UnmeteredPowerW != 2975 {
		t.Errorf("main = %+v, want child plug and 2975 W unmetered", m)
	}
	var list struct{ Meters []meterAnswer }
	if h.get(t, "/api/v1/meters?site=default", &list); len(list.Meters) != 2 {
		t.Errorf("meters of site default = %+v", list.Meters)
	}
	if code := h.get(t, "/api/v1/meters?site=a%2Fb", &e); code != 400 {
		t.Errorf("bad site filter = %d", code)
	}

	// DELETE erases the meter and its data; main is a plain meter again.
	var del struct {
		Deleted  string `json:"deleted"`
		Readings int    `json:"readings"`
	}
	if code := h.do(t, http.MethodDelete, "/api/v1/meters/plug", "", "", &del); code != 200 || del.Deleted != "plug" || del.Readings != 1 {
		t.Errorf("DELETE = %d %+v", code, del)
	}
	for _, path := range []string{"/api/v1/meters/plug", "/api/v1/meters/plug/readings", "/api/v1/meters/plug/energy"} {
		if code := h.get(t, path, nil); code != 404 {
			t.Errorf("GET %s after DELETE = %d, want 404", path, code)
		}
	}
	if code := h.do(t, http.MethodDelete, "/api/v1/meters/plug", "", "", nil); code != 404 {
		t.Errorf("second DELETE = %d, want 404", code)
	}
	m = meterAnswer{}
	h.get(t, "/api/v1/meters/main", &m)
	if len(m.Children) != 0 || m.UnmeteredPowerW != nil {
		t.Errorf("main after its child's delete = %+v", m)
	}
}

func TestEnergyNeverCountsASubMeterTwice(t *testing.T) {
	h := start(t)
	// Site home: main 3 kW with kitchen 1 kW below it and oven 0.4 kW below
	// kitchen, and solar exporting 2 kW beside main. Site plant: press.
	var rs []meter.Reading
	for _, m := range []struct {
		id string
		w  float64
	}{{"main", 3000}, {"kitchen", 1000}, {"oven", 400}, {"pv:1", -500}, {"solar", -2000}, {"press", 5000}} {
		rs = append(rs, hour(m.id, m.w)...)
	}
	h.add(t, rs...)
	for _, p := range []struct{ id, body string }{
		{"main", `{"site": "home"}`}, {"solar", `{"site": "home"}`}, {"press", `{"site": "plant"}`},
		{"kitchen", `{"parent": "main"}`}, {"oven", `{"parent": "kitchen"}`}, {"pv%3A1", `{"parent": "kitchen"}`},
	} {
		if code := h.do(t, http.MethodPatch, "/api/v1/meters/"+p.id, "application/json", p.body, nil); code != 200 {
			var e apiError
			h.do(t, http.MethodPatch, "/api/v1/meters/"+p.id, "application/json", p.body, &e)
			t.Fatalf("PATCH %s = %d %+v", p.id, code, e)
		}
	}
	type energy struct {
		Meters   []string `json:"meters"`
		Children []string `json:"children"`
		Points   []struct {
			T            time.Time `json:"t"`
			EnergyKWh    float64   `json:"energy_kwh"`
			ExportKWh    float64   `json:"export_kwh"`
			ChildrenKWh  *float64  `json:"children_kwh"`
			UnmeteredKWh *float64  `json:"unmetered_kwh"`
		} `json:"points"`
		Total struct {
			EnergyKWh    float64  `json:"energy_kwh"`
			ExportKWh    float64  `json:"export_kwh"`
			Cost         float64  `json:"cost"`
			CO2Kg        float64  `json:"co2_kg"`
			ChildrenKWh  *float64 `json:"children_kwh"`
			UnmeteredKWh *float64 `json:"unmetered_kwh"`
		} `json:"total"`
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	q := "?from=2026-11-25T10:00:00Z&to=2026-11-25T11:00:00Z&interval=hour"
	var e energy
	if code := h.get(t, "/api/v1/meters/main/energy"+q, &e); code != 200 || len(e.Points) != 1 || !slices.Equal(e.Children, []string{"kitchen"}) {
		t.Fatalf("main energy = %d %+v", code, e)
	}
	p := e.Points[0]
	if !near(p.EnergyKWh, 3) || p.ChildrenKWh == nil || !near(*p.ChildrenKWh, 1) || !near(*p.UnmeteredKWh, 2) ||
		!near(e.Total.EnergyKWh, 3) || !near(*e.Total.UnmeteredKWh, 2) {
		t.Errorf("main's hour = %+v, total %+v; want 3 kWh, 1 kWh below it, 2 kWh unmetered", p, e.Total)
	}
	if !near(e.Total.Cost, 3*0.2) || !near(e.Total.CO2Kg, 3*0.25) {
		t.Errorf("main's cost %g and CO2 %g kg, want 0.60 and 0.75 (0.2/kWh, 250 g/kWh)", e.Total.Cost, e.Total.CO2Kg)
	}
	e = energy{}
	h.get(t, "/api/v1/meters/kitchen/energy"+q, &e)
	// Net energy: the oven drew 0.4 kWh, the panel behind the kitchen sent
	// 0.5 kWh back, so the kitchen's other loads drew 1 - (0.4 - 0.5).
	if len(e.Points) != 1 || !near(e.Points[0].EnergyKWh, 1) || !near(*e.Points[0].ChildrenKWh, -0.1) || !near(*e.Points[0].UnmeteredKWh, 1.1) {
		t.Errorf("kitchen's hour = %+v", e.Points)
	}
	e = energy{}
	h.get(t, "/api/v1/meters/oven/energy"+q, &e)
	if len(e.Points) != 1 || !near(e.Points[0].EnergyKWh, 0.4) || e.Points[0].ChildrenKWh != nil || e.Children == nil {
		t.Errorf("oven's hour = %+v", e)
	}
	e = energy{}
	if code := h.get(t, "/api/v1/sites/home/energy"+q, &e); code != 200 || !slices.Equal(e.Meters, []string{"main", "solar"}) ||
		!near(e.Total.EnergyKWh, 3) || !near(e.Total.ExportKWh, 2) {
		t.Errorf("site home = %d %+v; want main and solar only: 3 kWh drawn, 2 exported", code, e)
	}
	if h.get(t, "/api/v1/sites/plant/energy?from=2026-11-25T10:00:00Z&to=2026-11-26T00:00:00Z&interval=day", &e); !near(e.Total.EnergyKWh, 5) {
		t.Errorf("site plant = %+v", e)
	}
	var sites struct {
		Sites []struct {
			Site      string   `json:"site"`
			Meters    []string `json:"meters"`
			SubMeters []string `json:"sub_meters"`
			PowerW    float64  `json:"power_w"`
		} `json:"sites"`
	}
	// A site's power is its main meters' power now: readings live, now.
	h.add(t, meter.Reading{Meter: "main", Time: time.Now(), PowerW: 3000}, meter.Reading{Meter: "kitchen", Time: time.Now(), PowerW: 1000},
		meter.Reading{Meter: "solar", Time: time.Now(), PowerW: -2000})
	h.get(t, "/api/v1/sites", &sites)
	if len(sites.Sites) != 2 || sites.Sites[0].Site != "home" || !slices.Equal(sites.Sites[0].SubMeters, []string{"kitchen", "oven", "pv:1"}) ||
		sites.Sites[0].PowerW != 1000 || sites.Sites[1].Site != "plant" {
		t.Errorf("sites = %+v; want home (3000 - 2000 W, two sub-meters) and plant", sites.Sites)
	}
	for _, bad := range []string{
		"/api/v1/sites/nowhere/energy",
		"/api/v1/meters/main/energy?interval=raw",
		"/api/v1/meters/main/energy?interval=hour&from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
		"/api/v1/meters/main/energy?from=2026-11-25T12:00:00Z&to=2026-11-25T10:00:00Z",
		"/api/v1/sites/a%2Fb/energy",
	} {
		if code := h.get(t, bad, nil); code != 400 && code != 404 {
			t.Errorf("GET %s = %d, want 400 or 404", bad, code)
		}
	}
}

// TestImportOfAnImplausibleCounterIsKept checks that an imported reading
// whose counter jumps (a meter replaced) is kept with its power, its
// counter left out, rather than failing the import; and that imported
// meters say where they came from.
func TestImportOfAnImplausibleCounterIsKept(t *testing.T) {
	h := start(t)
	body := "2026-11-25T10:00:00Z,100,1000\n2026-11-25T10:01:00Z,100,9000000000000\n"
	if code := h.post(t, "/api/v1/meters/imp/import", "text/csv", body, nil); code != 200 {
		t.Fatalf("import = %d, want 200", code)
	}
	var m meterAnswer
	if h.get(t, "/api/v1/meters/imp", &m); m.Source != "import" || m.Readings != 2 {
		t.Errorf("imported meter: %+v, want 2 readings from import", m)
	}
	recs, _, err := h.store.Range("imp", time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC), 10)
	if err != nil || len(recs) != 2 || !recs[0].HasEnergy || recs[1].HasEnergy || recs[1].PowerW != 100 {
		t.Errorf("stored %+v %v; want the jumping reading's power without its counter", recs, err)
	}
}
