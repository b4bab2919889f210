package api_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/store"
)

// TestArchivedImportsChartTheirPower imports the user guide's garage file
// (power every 15 minutes) and a Datadis file (hourly energy), archives
// their raw readings as retention does past 30 days, and reads them back
// per minute and per hour: every bucket with energy has the interval's
// mean power to draw (power_w), none 0 W, and the hours after the data
// have none.
func TestArchivedImportsChartTheirPower(t *testing.T) {
	h := startWith(t, store.Options{Retention: store.Retention{Raw: 30 * 24 * time.Hour}})
	garage := "timestamp,power_w\n2026-10-01T00:00:00+02:00,420\n2026-10-01T00:15:00+02:00,380\n2026-10-01T00:30:00+02:00,400\n2026-10-01T00:45:00+02:00,410\n2026-10-01T01:00:00+02:00,390\n"
	datadis := "CUPS;Fecha;Hora;Consumo_kWh;Metodo_obtencion\nES0031405123456789JN0F;01/10/2026;1;0,231;Real\nES0031405123456789JN0F;01/10/2026;2;0,187;Real\nES0031405123456789JN0F;01/10/2026;3;0,154;Estimada\n"
	zone := map[string]string{"piso": "?zone=Europe/Madrid"} // a Datadis file's hours are local
	for id, body := range map[string]string{"garage": garage, "piso": datadis} {
		var e struct{ Error, Detail string }
		if code := h.post(t, "/api/v1/meters/"+id+"/import"+zone[id], "text/csv", body, &e); code != 200 {
			t.Fatalf("import %s = %d %+v", id, code, e)
		}
	}
	if _, err := h.store.ApplyRetention(context.Background(), time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if recs, _, err := h.store.Range("garage", time.Date(2026, 9, 30, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 2, 0, 0, 0, 0, time.UTC), 10); err != nil || len(recs) != 0 {
		t.Fatalf("garage's raw readings after retention: %d, %v; want them archived", len(recs), err)
	}

	type point struct {
		T         time.Time `json:"t"`
		N         int       `json:"n"`
		PowerW    *float64  `json:"power_w"`
		EnergyKWh float64   `json:"energy_kwh"`
	}
	var r struct {
		Step   string  `json:"step"`
		Points []point `json:"points"`
	}
	cases := []struct {
		meter, step, from, to string
		points                int
		lowW, highW           float64 // what the intervals' mean powers span
	}{
		{"garage", "1m", "2026-09-30T22:00:00Z", "2026-09-30T23:00:00Z", 60, 380, 420},
		{"garage", "1h", "2026-09-30T22:00:00Z", "2026-09-30T23:00:00Z", 1, 380, 420},
		{"piso", "1m", "2026-09-30T22:00:00Z", "2026-10-01T01:00:00Z", 180, 154, 231},
		{"piso", "1h", "2026-09-30T22:00:00Z", "2026-10-01T01:00:00Z", 3, 154, 231},
	}
	for _, c := range cases {
		r.Points = nil
		q := "/api/v1/meters/" + c.meter + "/readings?step=" + c.step + "&from=" + c.from + "&to=" + c.to
		if code := h.get(t, q, &r); code != 200 || len(r.Points) != c.points {
			t.Errorf("%s: %d with %d points, want %d", q, code, len(r.Points), c.points)
			continue
		}
		empty := 0
		for _, p := range r.Points {
			if p.N == 0 {
				empty++
			}
			if p.PowerW == nil || *p.PowerW < c.lowW-1 || *p.PowerW > c.highW+1 {
				t.Errorf("%s: %s (%d readings, %g kWh) power_w %v, want within [%g, %g] W", q, p.T, p.N, p.EnergyKWh, p.PowerW, c.lowW, c.highW)
				continue
			}
			if p.N == 0 { // drawn from its energy: the two agree
				step := map[string]float64{"1m": 1.0 / 60, "1h": 1}[c.step]
				if wh := *p.PowerW * step; math.Abs(wh-p.EnergyKWh*1000) > 1e-6 {
					t.Errorf("%s: %s power_w %g W over %s is %g Wh, energy %g kWh", q, p.T, *p.PowerW, c.step, wh, p.EnergyKWh)
				}
			}
		}
		if c.step == "1m" && empty < c.points/2 {
			t.Errorf("%s: %d of %d minutes without a reading; the test wants mostly empty minutes", q, empty, c.points)
		}
	}
	// After the files' last interval: nothing to draw.
	r.Points = nil
	h.get(t, "/api/v1/meters/piso/readings?step=1m&from=2026-10-01T01:00:00Z&to=2026-10-01T02:00:00Z", &r)
	for _, p := range r.Points {
		if p.PowerW != nil {
			t.Errorf("after the data: %+v, want no power", p)
		}
	}
}
