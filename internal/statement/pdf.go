package statement

import (
	_ "embed"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"
)

// The font the PDF embeds, for every accent and symbol to render: DejaVu
// Sans (Bitstream Vera licence, fonts/LICENSE).
var (
	//go:embed fonts/DejaVuSans.ttf
	fontRegular []byte
	//go:embed fonts/DejaVuSans-Bold.ttf
	fontBold []byte
)

// Page geometry, in millimetres (A4).
const (
	pageW, margin = 210.0, 18.0
	textW         = pageW - 2*margin
	lineH         = 5.5
)

// WritePDF writes s as an A4 PDF in language l: text that can be selected
// and searched, the daily chart drawn as vector graphics, the tariff that
// priced it and where it comes from. made is when it is issued.
func WritePDF(w io.Writer, s *Statement, l *Lang, made time.Time) error {
	loc := s.From.Location()
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetMargins(margin, margin, margin)
	pdf.SetAutoPageBreak(true, margin)
	pdf.AddUTF8FontFromBytes("sans", "", fontRegular)
	pdf.AddUTF8FontFromBytes("sans", "B", fontBold)
	pdf.SetTitle(l.T("title")+" · "+s.Title+" · "+s.Period, true)
	pdf.SetCreator("Vatio", true)
	pdf.SetLang(l.Code)
	pdf.SetCreationDate(made)
	pdf.SetModificationDate(made)
	pdf.AliasNbPages("{nb}")
	pdf.SetFooterFunc(func() {
		pdf.SetY(-12)
		pdf.SetFont("sans", "", 8)
		pdf.SetTextColor(110, 110, 110)
		pdf.CellFormat(textW-30, 4, clipTo(pdf, "Vatio · "+s.Title+" · "+l.PeriodName(Period{From: s.From, To: s.To, Month: isMonth(s.From, s.To)}), textW-32), "", 0, "L", false, 0, "")
		pdf.CellFormat(30, 4, fmt.Sprintf("%s %d / {nb}", l.T("page"), pdf.PageNo()), "", 0, "R", false, 0, "")
		pdf.SetTextColor(0, 0, 0)
	})
	pdf.AddPage()

	// The head: what, of whom, when.
	pdf.SetFont("sans", "B", 18)
	pdf.CellFormat(textW, 9, l.T("title"), "", 1, "L", false, 0, "")
	pdf.SetFont("sans", "B", 13)
	pdf.MultiCell(textW, 6.5, s.Title, "", "L", false)
	pdf.SetFont("sans", "", 9.5)
	if s.Tenant != nil && s.Tenant.Address != "" {
		pdf.MultiCell(textW, 4.5, s.Tenant.Address, "", "L", false)
	}
	pdf.Ln(1.5)
	period := l.PeriodName(Period{From: s.From, To: s.To, Month: isMonth(s.From, s.To)})
	if !s.Final {
		period += " · " + l.T("to_date")
	}
	facts := [][2]string{
		{l.T("subject." + s.Subject.Kind), s.Subject.Name},
		{l.T("period"), period},
		{l.T("zone"), s.TimeZone},
		{l.T("made"), l.DateTime(made.In(loc))},
	}
	for _, f := range facts {
		pdf.SetFont("sans", "B", 9.5)
		pdf.CellFormat(32, lineH, f[0], "", 0, "L", false, 0, "")
		pdf.SetFont("sans", "", 9.5)
		pdf.CellFormat(textW-32, lineH, f[1], "", 1, "L", false, 0, "")
	}

	// The summary: energy by tariff period, credits, charges, total.
	heading(pdf, l.T("summary"))
	kwh := func(v float64) string { return l.Number(v, 2) + " kWh" }
	money := func(v float64) string { return l.Money(v, s.Currency) }
	cols := []float64{textW - 95, 30, 30, 35}
	row := func(bold bool, cells ...string) {
		style := ""
		if bold {
			style = "B"
		}
		pdf.SetFont("sans", style, 9.5)
		for i, c := range cells {
			align := "R"
			if i == 0 {
				align = "L"
			}
			if i == 0 {
				c = clipTo(pdf, c, cols[0]-2) // never over the figures beside it
			}
			pdf.CellFormat(cols[i], lineH, c, "", 0, align, false, 0, "")
		}
		pdf.Ln(lineH)
	}
	pdf.SetFont("sans", "B", 8.5)
	pdf.SetTextColor(90, 90, 90)
	for i, c := range []string{l.T("tariff_period"), l.T("kwh"), l.T("price"), l.T("cost")} {
		align := "R"
		if i == 0 {
			align = "L"
		}
		pdf.CellFormat(cols[i], lineH, c, "B", 0, align, false, 0, "")
	}
	pdf.Ln(lineH)
	pdf.SetTextColor(0, 0, 0)
	bill := s.Bill() // printed to the cent, the lines add up to the total
	for i, p := range s.Energy {
		name := p.Name
		if name == "" {
			name = l.T("outside")
		}
		row(false, l.T("energy_cost")+" · "+name, kwh(p.KWh), l.Number(p.PriceKWh, 4), money(bill.Energy[i]))
	}
	if len(s.Energy) == 0 {
		row(false, l.T("energy_cost"), kwh(0), "", money(0))
	}
	if s.ExportKWh > 0 || s.ExportCredit != 0 {
		row(false, l.T("export_credit"), kwh(s.ExportKWh), l.Number(s.Tariff.ExportPriceKWh, 4), money(bill.ExportCredit))
	}
	share := ""
	if s.Subject.Kind == KindTenant {
		share = " (" + l.Number(s.Share*100, 1) + " % " + l.T("share") + ")"
	}
	row(false, l.T("fixed")+share, "", "", money(bill.Fixed))
	demand := l.T("demand") + share
	row(false, demand, "", "", money(bill.Demand))
	if s.SitePeak != nil { // the peak the tenant's share of it comes from
		pdf.SetFont("sans", "", 8)
		pdf.SetTextColor(90, 90, 90)
		pdf.CellFormat(textW, 4, "   "+l.T("site_peak")+": "+l.Number(s.SitePeak.KW, 2)+" kW · "+l.T("ending")+" "+l.DateTime(s.SitePeak.At.In(loc)), "", 1, "L", false, 0, "")
		pdf.SetTextColor(0, 0, 0)
	}
	y := pdf.GetY()
	pdf.Line(margin, y, margin+textW, y)
	row(true, l.T("total"), kwh(s.ImportKWh), "", money(s.Total))
	pdf.Ln(1)
	pdf.SetFont("sans", "", 9.5)
	line := func(k, v string) {
		pdf.SetFont("sans", "B", 9.5)
		w := max(55, pdf.GetStringWidth(k)+3) // a long label pushes its value, never into it
		pdf.CellFormat(w, lineH, k, "", 0, "L", false, 0, "")
		pdf.SetFont("sans", "", 9.5)
		pdf.MultiCell(textW-w, lineH, v, "", "L", false)
	}
	line(l.T("import"), kwh(s.ImportKWh))
	line(l.T("export"), kwh(s.ExportKWh))
	if s.Peak != nil {
		line(l.T("peak"), l.Number(s.Peak.KW, 2)+" kW · "+l.T("ending")+" "+l.DateTime(s.Peak.At.In(loc)))
	} else {
		line(l.T("peak"), l.T("none"))
	}
	line(l.T("co2"), l.Number(s.CO2Kg, 1)+" kg")

	// The comparisons.
	heading(pdf, l.T("compare"))
	for _, c := range []struct {
		label string
		c     Comparison
	}{{l.T("previous"), s.Previous}, {l.T("year_before"), s.YearBefore}} {
		p, _ := ParsePeriod(c.c.Period, loc)
		if c.c.ImportKWh == 0 && c.c.Total == 0 { // nothing recorded then: not "you used nothing"
			row(false, c.label+" ("+l.PeriodName(p)+")", l.T("no_record"), "", l.T("no_record"))
			continue
		}
		row(false, c.label+" ("+l.PeriodName(p)+")", kwh(c.c.ImportKWh)+" "+l.Percent(c.c.ImportChangePct), "", money(c.c.Total)+" "+l.Percent(c.c.TotalChangePct))
	}

	// The days, as bars.
	heading(pdf, l.T("days"))
	chart(pdf, s, l)

	// Each meter's part.
	if len(s.Lines) > 0 {
		keep(pdf, 12+float64(min(len(s.Lines), 3)+1)*lineH) // the heading with its first rows
		heading(pdf, l.T("meters"))
		pdf.SetFont("sans", "B", 8.5)
		pdf.SetTextColor(90, 90, 90)
		for i, c := range []string{l.T("meter"), l.T("import"), l.T("export"), l.T("cost")} {
			align := "R"
			if i == 0 {
				align = "L"
			}
			pdf.CellFormat(cols[i], lineH, c, "B", 0, align, false, 0, "")
		}
		pdf.Ln(lineH)
		pdf.SetTextColor(0, 0, 0)
		for _, m := range s.Lines {
			name := m.Name
			if name != m.Meter {
				name += " (" + m.Meter + ")"
			}
			if m.Unmetered {
				name = m.Meter + ": " + l.T("unmetered")
			}
			row(false, clipTo(pdf, name, cols[0]-2), kwh(m.ImportKWh), kwh(m.ExportKWh), money(m.Cost))
		}
	}

	// The tariff, and where it comes from: on one page.
	t := s.Tariff
	lines := 6 + len(t.Periods)
	if len(t.Holidays) > 0 {
		lines++
	}
	keep(pdf, 12+float64(lines)*lineH)
	heading(pdf, l.T("tariff"))
	line(l.T("tariff"), l.T("tariff."+s.TariffSource))
	line(l.T("price"), l.Number(t.PriceKWh, 4)+" "+t.Currency+" ("+l.T("base")+")")
	for _, p := range t.Periods {
		days := make([]string, len(p.Days))
		for i, d := range p.Days {
			days[i] = l.T(strings.ToLower(d))
		}
		line(l.T("periods")+" · "+p.Name, l.Number(p.PriceKWh, 4)+" "+t.Currency+" · "+strings.Join(days, ", ")+" · "+p.From+"–"+p.To)
	}
	line(l.T("export_price"), l.Number(t.ExportPriceKWh, 4)+" "+t.Currency)
	line(l.T("daily"), l.Number(t.DailyCharge, 4)+" "+t.Currency)
	line(l.T("demand_price"), l.Number(t.DemandChargeKW, 4)+" "+t.Currency)
	line(l.T("co2_factor"), l.Number(t.CO2GramsKWh, 0)+" g")
	if len(t.Holidays) > 0 {
		line(l.T("holidays"), strings.Join(t.Holidays, ", "))
	}
	return pdf.Output(w)
}

// isMonth reports whether [from, to) is one calendar month.
func isMonth(from, to time.Time) bool {
	return from.Day() == 1 && from.Hour() == 0 && to.Equal(from.AddDate(0, 1, 0))
}

// keep starts a new page unless h millimetres fit on this one, so that a
// short section is not split.
func keep(pdf *fpdf.Fpdf, h float64) {
	if pdf.GetY()+h > 297-margin {
		pdf.AddPage()
	}
}

// heading starts a section.
func heading(pdf *fpdf.Fpdf, text string) {
	pdf.Ln(4)
	pdf.SetFont("sans", "B", 11.5)
	pdf.CellFormat(textW, 7, text, "", 1, "L", false, 0, "")
	pdf.SetDrawColor(200, 200, 200)
	y := pdf.GetY()
	pdf.Line(margin, y, margin+textW, y)
	pdf.SetDrawColor(0, 0, 0)
	pdf.Ln(1)
}

// clipTo cuts s to fit w millimetres in the current font.
func clipTo(pdf *fpdf.Fpdf, s string, w float64) string {
	if pdf.GetStringWidth(s) <= w {
		return s
	}
	r := []rune(s)
	for len(r) > 1 && pdf.GetStringWidth(string(r)+"…") > w {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}

// chart draws the days' energy drawn as bars, with a scale.
func chart(pdf *fpdf.Fpdf, s *Statement, l *Lang) {
	const h, axisW = 45.0, 14.0
	if len(s.Days) == 0 {
		return
	}
	top := 0.0
	for _, d := range s.Days {
		top = max(top, d.ImportKWh)
	}
	if pdf.GetY()+h+12 > 297-margin {
		pdf.AddPage()
	}
	x0, y0 := margin+axisW, pdf.GetY()+3
	plotW := textW - axisW
	step := niceStep(top / 4)
	if step == 0 {
		step = 1
	}
	maxV := math.Ceil(top/step) * step
	if maxV == 0 {
		maxV = step
	}
	pdf.SetFont("sans", "", 7.5)
	pdf.SetDrawColor(215, 215, 215)
	pdf.SetLineWidth(0.2)
	for v := 0.0; v <= maxV+step/2; v += step {
		y := y0 + h - v/maxV*h
		pdf.Line(x0, y, x0+plotW, y)
		pdf.SetXY(margin, y-2)
		pdf.CellFormat(axisW-1.5, 4, l.Number(v, decimalsFor(step)), "", 0, "R", false, 0, "")
	}
	n := float64(len(s.Days))
	slot := plotW / n
	bar := slot * 0.7
	pdf.SetFillColor(58, 110, 165)
	for i, d := range s.Days {
		bh := d.ImportKWh / maxV * h
		x := x0 + float64(i)*slot + (slot-bar)/2
		if bh > 0 {
			pdf.Rect(x, y0+h-bh, bar, bh, "F")
		}
		// Every day's number under a month's bars; every few for longer.
		every := int(math.Ceil(n / 31))
		if i%every == 0 {
			pdf.SetXY(x0+float64(i)*slot, y0+h+0.5)
			pdf.CellFormat(slot*float64(every), 3.5, fmt.Sprint(d.Date.Day()), "", 0, "L", false, 0, "")
		}
	}
	pdf.SetDrawColor(0, 0, 0)
	pdf.SetY(y0 + h + 6)
	if s.ImportKWh == 0 {
		pdf.SetFont("sans", "", 9)
		pdf.CellFormat(textW, lineH, l.T("no_data"), "", 1, "L", false, 0, "")
	}
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 0
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func decimalsFor(step float64) int {
	if step >= 1 {
		return 0
	}
	return int(math.Ceil(-math.Log10(step)))
}
