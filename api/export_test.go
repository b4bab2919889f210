package api_test

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

// fetchExport GETs path and returns the status, body and headers, checking
// that Content-Length tells the body's size.
func fetchExport(t *testing.T, h *harness, path string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(h.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == 200 && resp.ContentLength != int64(len(b)) {
		t.Errorf("%s: Content-Length %d for %d bytes", path, resp.ContentLength, len(b))
	}
	return resp.StatusCode, string(b), resp.Header
}

type exportedMeter struct {
	Info struct {
		ID   string `json:"id"`
		Site string `json:"site"`
	} `json:"info"`
	Alerts   []store.Alert `json:"alerts"`
	Readings []struct {
		T        time.Time `json:"t"`
		PowerW   float64   `json:"power_w"`
		EnergyWh *float64  `json:"energy_wh"`
	} `json:"readings"`
}

// A meter's export holds its record, its alerts and every reading; its CSV
// goes back in through the import as it is; a site's holds its meters and
// no other.
func TestExport(t *testing.T) {
	h := start(t)
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	var rs []meter.Reading
	for i := range 50 {
		r := meter.Reading{Meter: "plug", Time: t0.Add(time.Duration(i) * 10 * time.Second), PowerW: 100 + float64(i) + 0.125, Stamped: true}
		if i%5 == 0 {
			r.EnergyWh, r.HasEnergy = 5000+float64(i), true
		}
		rs = append(rs, r)
	}
	h.add(t, rs...)
	h.add(t, meter.Reading{Meter: "heater", Time: t0, PowerW: 2000, Stamped: true},
		meter.Reading{Meter: "neighbour", Time: t0, PowerW: 1, Stamped: true})
	for _, id := range []string{"plug", "heater"} {
		if code := h.do(t, http.MethodPatch, "/api/v1/meters/"+id, "application/json", `{"site": "home"}`, nil); code != 200 {
			t.Fatalf("PATCH %s: %d", id, code)
		}
	}
	if err := h.store.AddAlert(&store.Alert{Time: t0, Severity: "warning", Message: "plug too high", Meter: "plug", Source: "api"}); err != nil {
		t.Fatal(err)
	}
	if err := h.store.AddAlert(&store.Alert{Time: t0, Severity: "warning", Message: "other", Meter: "heater", Source: "api"}); err != nil {
		t.Fatal(err)
	}

	code, body, hdr := fetchExport(t, h, "/api/v1/meters/plug/export")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") ||
		!strings.Contains(hdr.Get("Content-Disposition"), `filename="vatio-plug-`) {
		t.Fatalf("JSON export: %d %v\n%s", code, hdr, body)
	}
	var doc struct {
		ExportedAt time.Time     `json:"exported_at"`
		Meter      exportedMeter `json:"meter"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("JSON export does not parse: %v", err)
	}
	if doc.ExportedAt.IsZero() || doc.Meter.Info.ID != "plug" || len(doc.Meter.Alerts) != 1 || doc.Meter.Alerts[0].Message != "plug too high" {
		t.Errorf("export record: %+v", doc)
	}
	if len(doc.Meter.Readings) != len(rs) {
		t.Fatalf("JSON export: %d readings, want %d", len(doc.Meter.Readings), len(rs))
	}
	for i, r := range doc.Meter.Readings {
		w := rs[i]
		if !r.T.Equal(w.Time) || r.PowerW != w.PowerW || (r.EnergyWh != nil) != w.HasEnergy || (r.EnergyWh != nil && *r.EnergyWh != w.EnergyWh) {
			t.Fatalf("JSON reading %d = %+v, want %+v", i, r, w)
		}
	}

	code, body, hdr = fetchExport(t, h, "/api/v1/meters/plug/export?format=csv")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV export: %d %v", code, hdr)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) != len(rs)+1 || strings.Join(rows[0], ",") != "timestamp,power_w,energy_wh" {
		t.Fatalf("CSV export: %d rows, %v\n%s", len(rows), err, body)
	}
	for i, row := range rows[1:] {
		ts, _ := time.Parse(time.RFC3339Nano, row[0])
		p, _ := strconv.ParseFloat(row[1], 64)
		if !ts.Equal(rs[i].Time) || p != rs[i].PowerW || (row[2] != "") != rs[i].HasEnergy {
			t.Fatalf("CSV row %d = %v, want %+v", i, row, rs[i])
		}
	}
	var imported struct{ Readings, Added int }
	if code := h.post(t, "/api/v1/meters/plug-copy/import", "text/csv", body, &imported); code != 200 || imported.Added != len(rs) {
		t.Errorf("importing the CSV export: %d, %+v", code, imported)
	}
	if _, again, _ := fetchExport(t, h, "/api/v1/meters/plug-copy/export?format=csv"); again != body {
		t.Error("the imported copy exports differently")
	}

	code, body, _ = fetchExport(t, h, "/api/v1/sites/home/export")
	var site struct {
		Site   string          `json:"site"`
		Meters []exportedMeter `json:"meters"`
	}
	if err := json.Unmarshal([]byte(body), &site); code != 200 || err != nil {
		t.Fatalf("site export: %d %v", code, err)
	}
	if site.Site != "home" || len(site.Meters) != 2 || site.Meters[0].Info.ID != "heater" || site.Meters[1].Info.ID != "plug" ||
		len(site.Meters[0].Readings) != 1 || len(site.Meters[1].Readings) != len(rs) {
		t.Errorf("site export: %s %d meters", site.Site, len(site.Meters))
	}
	_, body, _ = fetchExport(t, h, "/api/v1/sites/home/export?format=csv")
	rows, _ = csv.NewReader(strings.NewReader(body)).ReadAll()
	if len(rows) != 1+1+len(rs) || strings.Join(rows[0], ",") != "meter,timestamp,power_w,energy_wh" || rows[1][0] != "heater" || rows[2][0] != "plug" {
		t.Errorf("site CSV: %d rows, first %v", len(rows), rows[:min(3, len(rows))])
	}
	if strings.Contains(body, "neighbour") {
		t.Error("a site's export holds a meter of another site")
	}

	for path, want := range map[string]int{
		"/api/v1/meters/plug/export?format=xml": 400,
		"/api/v1/meters/nobody/export":          404,
		"/api/v1/sites/nowhere/export":          404,
	} {
		if code, body, _ := fetchExport(t, h, path); code != want || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want %d with an error", path, code, body, want)
		}
	}
}
