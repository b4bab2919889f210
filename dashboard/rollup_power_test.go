package dashboard_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/dashboard"
	"github.com/vatio-energy/vatio/internal/energy"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/store"
)

// TestArchivedImportChartsItsPower imports the user guide's Datadis file
// (hourly energy: 231, 187 and 154 Wh), archives its raw readings as
// retention does past 30 days, and opens the meter's page: its history,
// per minute, draws each hour's mean power on every minute of it, none at
// 0 W.
func TestArchivedImportChartsItsPower(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{Retention: store.Retention{Raw: 30 * 24 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	file := "CUPS;Fecha;Hora;Consumo_kWh;Metodo_obtencion\nES0031405123456789JN0F;01/10/2026;1;0,231;Real\nES0031405123456789JN0F;01/10/2026;2;0,187;Real\nES0031405123456789JN0F;01/10/2026;3;0,154;Estimada\n"
	dec := &meter.Decoder{Limits: meter.DefaultLimits()}
	rs, err := dec.ReadHistory(strings.NewReader(file), "piso", time.Now(), meter.ImportOptions{MaxGap: st.MaxGap()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Import(rs, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ApplyRetention(context.Background(), time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	app := fiber.New()
	dashboard.New(st, dashboard.Options{
		Logger: slog.New(slog.DiscardHandler), Location: time.UTC,
		Tariff: energy.FixedTariff(&tariff.Tariff{Currency: "EUR", PriceKWh: 0.2, Location: time.UTC}),
	}).Register(app)
	requireECharts(t, app)
	_, page := get(t, app, "/meters/piso")
	var pts [][2]*float64
	if err := json.Unmarshal([]byte(seriesData(t, chartOption(t, page, "history"), "piso")), &pts); err != nil {
		t.Fatal(err)
	}
	hour0 := time.Date(2026, 9, 30, 22, 0, 0, 0, time.UTC) // 00:00 in Madrid
	want := []float64{0.231, 0.187, 0.154}                 // kW
	drawn := 0
	for _, p := range pts {
		if p[0] == nil || p[1] == nil {
			continue // a break
		}
		at := time.UnixMilli(int64(*p[0])).UTC()
		h := int(at.Sub(hour0) / time.Hour)
		if h < 0 || h >= len(want) {
			t.Errorf("a point at %s, outside the file's hours", at)
			continue
		}
		drawn++
		if diff := *p[1] - want[h]; diff < -1e-6 || diff > 1e-6 {
			t.Errorf("at %s: %g kW, want %g", at, *p[1], want[h])
		}
	}
	if drawn != 180 {
		t.Errorf("%d minutes drawn, want 180:\n%s", drawn, seriesData(t, chartOption(t, page, "history"), "piso"))
	}
}
