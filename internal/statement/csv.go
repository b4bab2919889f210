package statement

import (
	"encoding/csv"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// CSVHeader is the first row of a statement's CSV.
var CSVHeader = []string{"section", "name", "date", "import_kwh", "export_kwh", "price_kwh", "amount", "unit"}

// WriteCSV writes s as one table of CSVHeader's columns, a row per figure,
// numbers as the API gives them (a point for decimals, at most six
// decimals, changes in percent with two) and times in RFC 3339 in the statement's zone:
//
//	subject     the subject (site:home), its title, the period's first day
//	period      the period (2026-11), final or to_date, its last day
//	energy      per tariff period (name "" outside them): kWh, mean price, cost
//	export      the energy exported, the price paid, the credit (negative)
//	charge      fixed and demand, their amounts
//	peak        the highest 15-minute demand, when it ended, in kW
//	co2         the carbon of the energy drawn, in kg
//	total       net_energy (the energy answers' cost) and statement (all in)
//	day         each day's import, export and net cost
//	meter       each meter's part (name "id (unmetered)" for a remainder)
//	previous    the period before: its import and total, the change in %
//	year_before the same period a year before: the same
func WriteCSV(w io.Writer, s *Statement) error {
	cw := csv.NewWriter(w)
	num := func(v float64) string {
		v = math.Round(v*1e6) / 1e6 // 3885, not 3884.999999999: a sum's float noise
		if v == 0 {
			v = 0 // not -0
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	day := func(t time.Time) string { return t.Format(time.DateOnly) }
	state := "final"
	if !s.Final {
		state = "to_date"
	}
	rows := [][]string{
		CSVHeader,
		{"subject", s.Subject.String(), day(s.From), "", "", "", "", text(s.Title)},
		{"period", s.Period, day(s.To.AddDate(0, 0, -1)), "", "", "", "", state},
	}
	for _, p := range s.Energy {
		rows = append(rows, []string{"energy", text(p.Name), "", num(p.KWh), "", num(p.PriceKWh), num(p.Cost), s.Currency})
	}
	rows = append(rows,
		[]string{"export", "credit", "", "", num(s.ExportKWh), num(s.Tariff.ExportPriceKWh), num(-s.ExportCredit), s.Currency},
		[]string{"charge", "fixed", "", "", "", "", num(s.FixedCharge), s.Currency},
		[]string{"charge", "demand", "", "", "", "", num(s.DemandCharge), s.Currency})
	if s.Peak != nil {
		rows = append(rows, []string{"peak", "demand_15min", s.Peak.At.Format(time.RFC3339), "", "", "", num(s.Peak.KW), "kW"})
	}
	rows = append(rows,
		[]string{"co2", "", "", "", "", "", num(s.CO2Kg), "kg"},
		[]string{"total", "net_energy", "", num(s.ImportKWh), num(s.ExportKWh), "", num(s.NetEnergyCost), s.Currency},
		[]string{"total", "statement", "", num(s.ImportKWh), num(s.ExportKWh), "", num(s.Total), s.Currency})
	for _, d := range s.Days {
		rows = append(rows, []string{"day", "", day(d.Date), num(d.ImportKWh), num(d.ExportKWh), "", num(d.Cost), s.Currency})
	}
	for _, l := range s.Lines {
		name := l.Meter
		if l.Unmetered {
			name += " (unmetered)"
		}
		rows = append(rows, []string{"meter", name, "", num(l.ImportKWh), num(l.ExportKWh), "", num(l.Cost), s.Currency})
	}
	pct := func(p *float64) string {
		if p == nil {
			return ""
		}
		return num(math.Round(*p*100) / 100) // -3.94, not -3.9408866995073892
	}
	for _, c := range []struct {
		name string
		c    Comparison
	}{{"previous", s.Previous}, {"year_before", s.YearBefore}} {
		rows = append(rows,
			[]string{c.name, c.c.Period, "", num(c.c.ImportKWh), "", "", num(c.c.Total), s.Currency},
			[]string{c.name + "_change_pct", c.c.Period, "", pct(c.c.ImportChangePct), "", "", pct(c.c.TotalChangePct), "%"})
	}
	if err := cw.WriteAll(rows); err != nil {
		return err
	}
	return cw.Error()
}

// text keeps a free text (a tenant's name, a period's) from being read as
// a formula by a spreadsheet: one starting with = + - @ or a control
// character is quoted with a leading apostrophe, as OWASP advises.
func text(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
