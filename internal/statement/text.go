package statement

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// Lang is a statement's language: its words, and how it writes numbers and
// dates.
type Lang struct {
	Code           string
	decimal, group string
	months         [12]string // full names
	short          [12]string
	words          map[string]string
}

// English and Spanish are the languages statements are written in.
var (
	English = &Lang{Code: "en", decimal: ".", group: ",",
		months: [12]string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"},
		short:  [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"},
		words: map[string]string{
			"title": "Energy statement", "subject.site": "Site", "subject.tenant": "Tenant", "subject.meter": "Meter",
			"period": "Period", "to_date": "to date (the period is not over)", "zone": "Time zone", "made": "Made",
			"summary": "Summary", "import": "Energy drawn", "export": "Energy exported", "outside": "outside every period",
			"energy_cost": "Energy", "export_credit": "Paid for energy exported", "fixed": "Fixed charge",
			"demand": "Demand charge", "share": "share of the site's", "total": "Total", "peak": "Peak demand (15 min)",
			"co2": "CO2", "compare": "Compared with", "previous": "The period before", "year_before": "A year before",
			"change": "Change", "days": "Energy per day (kWh)", "meters": "Meters", "meter": "Meter",
			"unmetered": "not sub-metered", "tariff": "Tariff", "tariff.config": "config.yaml's tariff section",
			"tariff.database": "the tariff set in Vatio", "price": "Price per kWh",
			"periods": "Periods", "export_price": "Paid per kWh exported", "daily": "Fixed charge per day",
			"demand_price": "Demand charge per kW", "co2_factor": "CO2 per kWh", "base": "outside every period",
			"tariff_period": "Tariff period", "kwh": "kWh", "cost": "Cost", "page": "Page", "none": "–",
			"all": "every day", "weekdays": "weekdays", "weekend": "weekends", "holidays": "Holidays (priced as Sundays)",
			"mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri", "sat": "Sat", "sun": "Sun",
			"no_data": "No energy recorded in this period.", "no_record": "no data",
			"site_peak": "the site's peak demand (15 min)", "ending": "in the 15 min to",
		}}
	Spanish = &Lang{Code: "es", decimal: ",", group: ".",
		months: [12]string{"enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre"},
		short:  [12]string{"ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic"},
		words: map[string]string{
			"title": "Extracto de energía", "subject.site": "Sitio", "subject.tenant": "Inquilino", "subject.meter": "Medidor",
			"period": "Periodo", "to_date": "hasta la fecha (el periodo no ha terminado)", "zone": "Zona horaria", "made": "Emitido",
			"summary": "Resumen", "import": "Energía consumida", "export": "Energía vertida", "outside": "fuera de todo periodo",
			"energy_cost": "Energía", "export_credit": "Pagado por la energía vertida", "fixed": "Término fijo",
			"demand": "Término de potencia", "share": "del sitio", "total": "Total", "peak": "Potencia máxima (15 min)",
			"co2": "CO2", "compare": "Comparado con", "previous": "El periodo anterior", "year_before": "Un año antes",
			"change": "Cambio", "days": "Energía por día (kWh)", "meters": "Medidores", "meter": "Medidor",
			"unmetered": "sin submedidor", "tariff": "Tarifa", "tariff.config": "la sección tariff de config.yaml",
			"tariff.database": "la tarifa configurada en Vatio", "price": "Precio por kWh",
			"periods": "Periodos", "export_price": "Pagado por kWh vertido", "daily": "Término fijo por día",
			"demand_price": "Término de potencia por kW", "co2_factor": "CO2 por kWh", "base": "fuera de todo periodo",
			"tariff_period": "Periodo tarifario", "kwh": "kWh", "cost": "Coste", "page": "Página", "none": "–",
			"all": "todos los días", "weekdays": "laborables", "weekend": "fines de semana", "holidays": "Festivos (como domingos)",
			"mon": "lun", "tue": "mar", "wed": "mié", "thu": "jue", "fri": "vie", "sat": "sáb", "sun": "dom",
			"no_data": "No hay energía registrada en este periodo.", "no_record": "sin datos",
			"site_peak": "potencia máxima del sitio (15 min)", "ending": "en los 15 min hasta el",
		}}
)

// LangOf returns the language of code (en or es), English for others.
func LangOf(code string) *Lang {
	if strings.HasPrefix(strings.ToLower(code), "es") {
		return Spanish
	}
	return English
}

// T is the word of key.
func (l *Lang) T(key string) string {
	if w, ok := l.words[key]; ok {
		return w
	}
	return key
}

// Number writes v with decimals places, grouped by thousands.
func (l *Lang) Number(v float64, decimals int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return l.T("none")
	}
	s := strconv.FormatFloat(math.Abs(halfUp(v, decimals)), 'f', decimals, 64)
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if v < 0 && strings.Trim(s, "0.") != "" {
		b.WriteString("-")
	}
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteString(l.group)
		}
		b.WriteRune(c)
	}
	if frac != "" {
		b.WriteString(l.decimal + frac)
	}
	return b.String()
}

// Money writes an amount of currency with two decimals.
func (l *Lang) Money(v float64, currency string) string {
	s := l.Number(v, 2)
	if currency == "" {
		return s
	}
	return s + " " + currency
}

// Percent writes a change in percent, signed; "–" for none.
func (l *Lang) Percent(p *float64) string {
	if p == nil {
		return l.T("none")
	}
	s := l.Number(*p, 1) + " %"
	if *p > 0 {
		s = "+" + s
	}
	return s
}

// Date writes a day: 14 Nov 2026.
func (l *Lang) Date(t time.Time) string {
	return strconv.Itoa(t.Day()) + " " + l.short[t.Month()-1] + " " + strconv.Itoa(t.Year())
}

// DateTime writes a moment: 14 Nov 2026 10:15.
func (l *Lang) DateTime(t time.Time) string {
	return l.Date(t) + " " + t.Format("15:04")
}

// PeriodName writes a period: November 2026 (noviembre de 2026), or its
// first and last days.
func (l *Lang) PeriodName(p Period) string {
	if p.Month {
		if l.Code == "es" {
			return l.months[p.From.Month()-1] + " de " + strconv.Itoa(p.From.Year())
		}
		return l.months[p.From.Month()-1] + " " + strconv.Itoa(p.From.Year())
	}
	first, last := p.From, p.To.AddDate(0, 0, -1)
	switch {
	case first.Year() != last.Year():
		return l.Date(first) + " – " + l.Date(last)
	case first.Month() != last.Month():
		return strconv.Itoa(first.Day()) + " " + l.short[first.Month()-1] + " – " + l.Date(last)
	case first.Day() != last.Day():
		return strconv.Itoa(first.Day()) + "–" + l.Date(last)
	}
	return l.Date(first)
}

// halfUp rounds v to decimals, a half away from zero as invoices do, on
// the value as written rather than as stored: 48.375 (stored a hair
// below) is 48.38, as 648.975 is 648.98.
func halfUp(v float64, decimals int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || decimals > 12 {
		return v
	}
	q := math.Round(math.Abs(v) * math.Pow10(decimals+2)) // hundredths of the last digit, float noise gone
	r := math.Floor((q + 50) / 100)
	return math.Copysign(r/math.Pow10(decimals), v)
}
