package energy

import (
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/tariff"
	"github.com/vatio-energy/vatio/internal/testutil/pgtest"
	"github.com/vatio-energy/vatio/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var flat = tariff.Spec{Currency: "EUR", PriceKWh: 0.15, CO2GramsKWh: 250}

func configTariff(t *testing.T, loc *time.Location) *tariff.Tariff {
	t.Helper()
	tr, err := flat.Build(loc)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestSavedTariffOverridesConfig: a saved tariff is in force over
// config.yaml's, survives a restart, is refused as config.yaml's would be
// when wrong (nothing saved changes), and once removed config.yaml's is in
// force again.
func TestSavedTariffOverridesConfig(t *testing.T) {
	dir := t.TempDir()
	madrid, err := time.LoadLocation("Europe/Madrid")
	if err != nil {
		t.Fatal(err)
	}
	open := func() (*store.Store, *Tariffs) {
		st, err := store.Open(dir, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tt, err := NewTariffs(st, configTariff(t, madrid), nil)
		if err != nil {
			t.Fatal(err)
		}
		return st, tt
	}
	st, tt := open()
	if s := tt.State(); s.Source != FromConfig || s.Saved != nil || s.Tariff.PriceKWh != 0.15 || s.TimeZone != "Europe/Madrid" {
		t.Fatalf("state before any save = %+v, want config.yaml's", s)
	}
	tou := tariff.Spec{Currency: "EUR", PriceKWh: 0.08, ExportPriceKWh: 0.05, DailyCharge: 0.3, DemandChargeKW: 4, CO2GramsKWh: 180,
		Periods:  []tariff.PeriodSpec{{Name: "punta", PriceKWh: 0.25, Days: []string{"weekdays"}, From: "10:00", To: "14:00"}},
		Holidays: []string{"2026-12-25"}}
	saved := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	s, err := tt.Save(tou, "ana", saved)
	if err != nil {
		t.Fatal(err)
	}
	if s.Source != FromDatabase || s.Saved == nil || s.Saved.SavedBy != "ana" || !s.Saved.SavedAt.Equal(saved) || s.Config.PriceKWh != 0.15 {
		t.Errorf("state after a save = %+v", s)
	}
	peak := time.Date(2026, 11, 25, 11, 0, 0, 0, madrid) // a Wednesday
	if p := tt.Current().Price(peak); p != 0.25 {
		t.Errorf("price at Wednesday 11:00 = %g, want the saved tariff's 0.25", p)
	}
	bad := tou
	bad.Currency, bad.Periods = "eur", []tariff.PeriodSpec{{Name: "x", PriceKWh: 0.2, Days: []string{"funday"}, From: "10:00", To: "25:00"}}
	_, err = tt.Save(bad, "ana", saved)
	var fields []string
	for _, fe := range tariff.FieldErrors(err) {
		fields = append(fields, fe.Field)
	}
	if got := strings.Join(fields, " "); got != "currency periods[0].days periods[0].to" {
		t.Errorf("a wrong tariff's errors name %q, want currency periods[0].days periods[0].to (%v)", got, err)
	}
	st.Close()

	st, tt = open()
	defer st.Close()
	if p := tt.Current().Price(peak); p != 0.25 {
		t.Errorf("after a restart the price at 11:00 = %g, want the saved tariff's 0.25", p)
	}
	if s := tt.State(); s.Saved == nil || s.Saved.Tariff.DemandChargeKW != 4 || len(s.Tariff.Holidays) != 1 {
		t.Errorf("after a restart the state = %+v", s)
	}
	if s, err := tt.Remove(); err != nil || s.Source != FromConfig || s.Saved != nil {
		t.Errorf("Remove() = %+v, %v", s, err)
	}
	if p := tt.Current().Price(peak); p != 0.15 {
		t.Errorf("after Remove the price = %g, want config.yaml's 0.15", p)
	}
}

// TestSavedTariffShared: instances sharing PostgreSQL price with a tariff
// saved on any of them from their next use, and drop it when one removes
// it.
func TestSavedTariffShared(t *testing.T) {
	dsn := pgtest.Database(t)
	open := func() *Tariffs {
		st, err := store.OpenPostgres(dsn, t.TempDir(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		tt, err := NewTariffs(st, configTariff(t, time.UTC), nil)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	a, b := open(), open()
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	if p := b.Current().Price(now); p != 0.15 {
		t.Fatalf("b's price = %g, want config.yaml's 0.15", p)
	}
	if _, err := a.Save(tariff.Spec{Currency: "EUR", PriceKWh: 0.31}, "ana", now); err != nil {
		t.Fatal(err)
	}
	if p := b.Current().Price(now); p != 0.31 {
		t.Errorf("b's price after a saved 0.31 = %g", p)
	}
	if s := b.State(); s.Source != FromDatabase || s.Saved == nil || s.Saved.SavedBy != "ana" {
		t.Errorf("b's state = %+v", s)
	}
	if _, err := b.Remove(); err != nil {
		t.Fatal(err)
	}
	if p := a.Current().Price(now); p != 0.15 {
		t.Errorf("a's price after b removed the saved tariff = %g, want 0.15", p)
	}
}
