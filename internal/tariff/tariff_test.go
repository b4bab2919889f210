package tariff

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// spain20TD is Spain's 2.0TD time-of-use tariff: peak 10-14 and 18-22,
// flat 8-10, 14-18 and 22-24 on weekdays; valley (the default) at night,
// on weekends and on national holidays.
func spain20TD(t *testing.T) *Tariff {
	t.Helper()
	madrid, err := time.LoadLocation("Europe/Madrid")
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := ParseDays([]string{"weekdays"})
	clock := func(s string) int {
		m, err := ParseClock(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	xmas, _ := ParseDate("2026-12-25")
	return &Tariff{
		Currency: "EUR", PriceKWh: 0.08, ExportPriceKWh: 0.05, CO2GramsKWh: 200, Location: madrid,
		Holidays: map[Date]bool{xmas: true},
		Periods: []Period{
			{Name: "punta", PriceKWh: 0.25, Days: wd, From: clock("10:00"), To: clock("14:00")},
			{Name: "punta", PriceKWh: 0.25, Days: wd, From: clock("18:00"), To: clock("22:00")},
			{Name: "llano", PriceKWh: 0.15, Days: wd, From: clock("08:00"), To: clock("10:00")},
			{Name: "llano", PriceKWh: 0.15, Days: wd, From: clock("14:00"), To: clock("18:00")},
			{Name: "llano", PriceKWh: 0.15, Days: wd, From: clock("22:00"), To: clock("24:00")},
		},
	}
}

func TestTimeOfUse(t *testing.T) {
	tr := spain20TD(t)
	at := func(s string) time.Time {
		x, err := time.ParseInLocation("2006-01-02 15:04", s, tr.Location)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	for _, c := range []struct {
		when  string
		price float64
		name  string
	}{
		{"2026-11-25 07:59", 0.08, ""},      // Wednesday night: valley
		{"2026-11-25 08:00", 0.15, "llano"}, // flat from 8
		{"2026-11-25 10:00", 0.25, "punta"},
		{"2026-11-25 13:59", 0.25, "punta"},
		{"2026-11-25 14:00", 0.15, "llano"},
		{"2026-11-25 23:30", 0.15, "llano"},
		{"2026-11-28 12:00", 0.08, ""},      // Saturday
		{"2026-12-25 12:00", 0.08, ""},      // Christmas, a Friday: a holiday
		{"2026-03-30 10:30", 0.25, "punta"}, // the Monday after the clocks went forward
	} {
		if got := tr.Price(at(c.when)); got != c.price {
			t.Errorf("price at %s = %g, want %g", c.when, got, c.price)
		}
		if got := tr.PeriodName(at(c.when)); got != c.name {
			t.Errorf("period at %s = %q, want %q", c.when, got, c.name)
		}
	}
	// An hour a period ends inside: 13:30 to 14:30 is half peak, half flat.
	tr.Periods[0].To = 14*60 + 0
	half := at("2026-11-25 13:30")
	if got := tr.HourPrice(half); math.Abs(got-(0.25+0.15)/2) > 1e-12 {
		t.Errorf("hour from 13:30 = %g, want the mean of 0.25 and 0.15", got)
	}
	c := tr.Hour(at("2026-11-25 10:00"), 2, 1)
	if math.Abs(c.Energy-(2*0.25-1*0.05)) > 1e-12 || math.Abs(c.CO2Kg-0.4) > 1e-12 {
		t.Errorf("cost of 2 kWh in, 1 out at peak = %+v", c)
	}
}

func TestPeriodPastMidnight(t *testing.T) {
	utc := time.UTC
	mon, _ := ParseDays([]string{"mon"})
	tr := &Tariff{PriceKWh: 0.3, Location: utc, Periods: []Period{{Name: "night", PriceKWh: 0.1, Days: mon, From: 22 * 60, To: 6 * 60}}}
	for _, c := range []struct {
		at    time.Time
		price float64
	}{
		{time.Date(2026, 11, 23, 21, 59, 0, 0, utc), 0.3}, // Monday
		{time.Date(2026, 11, 23, 22, 0, 0, 0, utc), 0.1},
		{time.Date(2026, 11, 24, 5, 59, 0, 0, utc), 0.1}, // Tuesday morning: Monday's night
		{time.Date(2026, 11, 24, 6, 0, 0, 0, utc), 0.3},
		{time.Date(2026, 11, 24, 23, 0, 0, 0, utc), 0.3}, // Tuesday night: not Monday's
		{time.Date(2026, 11, 23, 3, 0, 0, 0, utc), 0.3},  // Monday morning: Sunday's night
	} {
		if got := tr.Price(c.at); got != c.price {
			t.Errorf("price at %s = %g, want %g", c.at, got, c.price)
		}
	}
}

func TestParse(t *testing.T) {
	for _, s := range []string{"00:00", "09:30", "24:00"} {
		if _, err := ParseClock(s); err != nil {
			t.Errorf("ParseClock(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "9:30", " 9:30", "+9:30", "24:30", "25:00", "12:60", "12-30", "ab:cd"} {
		if _, err := ParseClock(s); err == nil {
			t.Errorf("ParseClock(%q) succeeded", s)
		}
	}
	if _, err := ParseDays([]string{"mon", "funday"}); err == nil {
		t.Error("ParseDays(funday) succeeded")
	}
	if ds, err := ParseDays([]string{"weekend", "sat"}); err != nil || len(ds) != 2 {
		t.Errorf("ParseDays(weekend, sat) = %v, %v", ds, err)
	}
	if _, err := ParseDate("2026-02-30"); err == nil {
		t.Error("ParseDate(2026-02-30) succeeded")
	}
}

// FuzzParseClock checks that a parsed time of day is within a day.
func FuzzParseClock(f *testing.F) {
	for _, s := range []string{"00:00", "24:00", "12:34", "1:2", "99:99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseClock(s)
		if err == nil && (m < 0 || m > 1440) {
			t.Fatalf("ParseClock(%q) = %d", s, m)
		}
	})
}

// TestHourPastMidnight prices an hour that crosses midnight, as hours do in
// zones half an hour off UTC, minute by minute.
func TestHourPastMidnight(t *testing.T) {
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	all, _ := ParseDays([]string{"all"})
	tr := &Tariff{PriceKWh: 0.3, Location: kolkata, Periods: []Period{{Name: "night", PriceKWh: 0.1, Days: all, From: 0, To: 6 * 60}}}
	start := time.Date(2026, 11, 25, 23, 30, 0, 0, kolkata)
	if got := tr.HourPrice(start); math.Abs(got-0.2) > 1e-12 {
		t.Errorf("23:30 to 00:30 = %g, want the mean of 0.3 and 0.1", got)
	}
}

// TestSpecRoundTrip: a tariff written back as a Spec builds the same
// tariff, and Build names every wrong field in key order.
func TestSpecRoundTrip(t *testing.T) {
	spec := Spec{Currency: "EUR", PriceKWh: 0.08, ExportPriceKWh: 0.05, DailyCharge: 0.2, DemandChargeKW: 3, CO2GramsKWh: 200,
		Periods: []PeriodSpec{
			{Name: "punta", PriceKWh: 0.25, Days: []string{"weekdays"}, From: "10:00", To: "14:00"},
			{Name: "night", PriceKWh: 0.1, Days: []string{"sat", "mon"}, From: "22:00", To: "06:00"},
			{Name: "all", PriceKWh: 0.3, Days: []string{"weekend", "weekdays"}, From: "20:00", To: "24:00"},
		},
		Holidays: []string{"2026-12-25", "2026-01-01"}}
	tr, err := spec.Build(time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	back := tr.Spec()
	if got := back.Periods[1].Days; len(got) != 2 || got[0] != "mon" || got[1] != "sat" {
		t.Errorf("days of the night period written back = %q, want [mon sat]", got)
	}
	if back.Periods[2].Days[0] != "all" || back.Periods[0].Days[0] != "weekdays" || back.Periods[2].To != "24:00" {
		t.Errorf("periods written back = %+v", back.Periods)
	}
	if back.Holidays[0] != "2026-01-01" {
		t.Errorf("holidays written back = %q, want them in date order", back.Holidays)
	}
	again, err := back.Build(time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	for at := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC); at.Before(time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)); at = at.Add(30 * time.Minute) {
		if a, b := tr.Price(at), again.Price(at); a != b {
			t.Fatalf("price at %s: %g written back, %g as written", at, b, a)
		}
	}
	bad := Spec{Currency: "eur", PriceKWh: math.NaN(), DailyCharge: -1, CO2GramsKWh: 9000,
		Periods: []PeriodSpec{{Name: " ", PriceKWh: 500, Days: nil, From: "9", To: "10:00"}}, Holidays: []string{"2026-02-30"}}
	_, err = bad.Build(time.UTC)
	var got []string
	for _, fe := range FieldErrors(err) {
		got = append(got, fe.Field)
	}
	want := []string{"currency", "price_kwh", "daily_charge", "co2_g_kwh", "periods[0].name", "periods[0].price_kwh", "periods[0].days", "periods[0].from", "holidays[0]"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("errors name %q, want %q (%v)", got, want, err)
	}
}

// FuzzSpec decodes a tariff as PUT /api/v1/tariff does and builds it: a
// tariff built is within Build's limits, and written back it builds the
// same prices.
func FuzzSpec(f *testing.F) {
	for _, s := range []string{
		`{"currency": "EUR", "price_kwh": 0.08, "periods": [{"name": "punta", "price_kwh": 0.25, "days": ["weekdays"], "from": "10:00", "to": "14:00"}], "holidays": ["2026-12-25"]}`,
		`{"currency": "USD", "price_kwh": 0.3, "periods": [{"name": "night", "price_kwh": 0.1, "days": ["sat", "mon"], "from": "22:00", "to": "06:00"}]}`,
		`{"currency": "eur", "price_kwh": 1e308, "periods": [{"name": "", "days": ["funday"], "from": "25:00", "to": "24:00"}]}`,
		`{"currency": "GBP", "daily_charge": -1, "co2_g_kwh": 5001, "holidays": ["2026-02-30"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Spec
		if json.Unmarshal(b, &s) != nil {
			return
		}
		tr, err := s.Build(time.UTC)
		if err != nil {
			if len(FieldErrors(err)) == 0 {
				t.Fatalf("Build(%s) = %v, naming no field", b, err)
			}
			return
		}
		if tr.PriceKWh < -100 || tr.PriceKWh > 100 || len(tr.Periods) > MaxPeriods {
			t.Fatalf("Build(%s) built %+v", b, tr)
		}
		again, err := tr.Spec().Build(time.UTC)
		if err != nil {
			t.Fatalf("Build(%s) written back = %+v: %v", b, tr.Spec(), err)
		}
		for at := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC); at.Before(time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)); at = at.Add(time.Hour) {
			if x, y := tr.Price(at), again.Price(at); x != y {
				t.Fatalf("Build(%s): price at %s %g, written back %g", b, at, x, y)
			}
		}
	})
}

// TestWholeDayPeriod builds a period from 00:00 to 24:00, as the guide's
// 24:00 allows: it prices all of its days, and nothing of the others. A
// period from and to the same time is still refused.
func TestWholeDayPeriod(t *testing.T) {
	s := Spec{Currency: "EUR", PriceKWh: 0.3, Periods: []PeriodSpec{{Name: "valle", PriceKWh: 0.1, Days: []string{"weekend"}, From: "00:00", To: "24:00"}}}
	tr, err := s.Build(time.UTC)
	if err != nil {
		t.Fatalf("00:00 to 24:00: %v", err)
	}
	for _, c := range []struct {
		at    time.Time
		price float64
	}{
		{time.Date(2026, 11, 27, 23, 59, 0, 0, time.UTC), 0.3}, // Friday
		{time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC), 0.1},   // Saturday
		{time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC), 0.1},
		{time.Date(2026, 11, 29, 23, 59, 0, 0, time.UTC), 0.1}, // Sunday
		{time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), 0.3},   // Monday
	} {
		if got := tr.Price(c.at); got != c.price {
			t.Errorf("price at %s = %g, want %g", c.at, got, c.price)
		}
	}
	for _, ft := range [][2]string{{"10:00", "10:00"}, {"00:00", "00:00"}, {"24:00", "00:00"}, {"24:00", "24:00"}} {
		s.Periods[0].From, s.Periods[0].To = ft[0], ft[1]
		if _, err := s.Build(time.UTC); err == nil || !strings.Contains(err.Error(), "same time as from") {
			t.Errorf("%s to %s: %v, want it refused", ft[0], ft[1], err)
		}
	}
}
