package dashboard

import (
	"cmp"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
	"github.com/go-echarts/go-echarts/v2/render"
	"github.com/go-echarts/go-echarts/v2/templates"
)

// Chart element ids. Each names its chart's element and so its ECharts
// instance: app.js finds it with echarts.getInstanceByDom.
const (
	gaugeID   = "gauge"
	liveID    = "live"
	historyID = "history"
	dailyID   = "daily"
	profileID = "profile"
	yearID    = "year"
	dayCostID = "daycost"
	monthsID  = "months"
	dayID     = "day"
)

// livePoints is how many of each meter's readings of the last hour the
// overview's chart starts with; app.js keeps the last hour as readings
// arrive.
const livePoints = 720

// meterSeries is one meter's power on a chart: [Unix ms, kW] points,
// oldest first, and the silence that breaks its line (see breakAfter).
type meterSeries struct {
	meter   string
	name    string
	points  [][2]float64
	breakMs float64
	// first is when the meter's first reading was taken: older meters
	// keep their colour as meters are added (see meterColours).
	first time.Time
}

// window is the span of time a chart's x axis shows, whatever its data
// covers: the last hour is the last hour with one reading in it.
type window struct {
	from, to time.Time
}

func (w window) fromMs() float64 { return float64(w.from.UnixMilli()) }
func (w window) toMs() float64   { return float64(w.to.UnixMilli()) }

// timeAxis is the x axis of a chart of power over w. Its labels keep 12
// px under the plot (ECharts' 8 let the first touch the y axis's "0" on a
// phone).
func timeAxis(w window) opts.XAxis {
	return opts.XAxis{Type: "time", Min: w.fromMs(), Max: w.toMs(), AxisLabel: &opts.AxisLabel{HideOverlap: opts.Bool(true), Margin: 12}}
}

// powerLine is a line series' look: broken where its data holds a null
// (see withBreaks), and no symbols but those its lone points name.
var powerLine = opts.LineChart{ConnectNulls: opts.Bool(false), ShowSymbol: opts.Bool(true), Symbol: "none"}

// bottomLegend puts a chart's legend under its plot and scrolls it when it
// does not fit one line: at the top, on a phone, it ran into the axis
// name above the plot.
var bottomLegend = opts.Legend{Show: opts.Bool(true), Type: "scroll", Bottom: "0", Left: "8", Right: "8"}

// chartSnippet is a rendered chart: its element, its inline script, and
// the script's body (what a Content-Security-Policy hash covers).
type chartSnippet struct {
	Element template.HTML
	Script  template.HTML
	body    string
}

// elementTemplate and scriptTemplate are go-echarts' own templates for a
// chart's element and script, parsed once. Its RenderSnippet parses them on
// every call, renders the option a third time and strips the function
// markers with a regexp: ten times slower on a page of 10 meters of 500
// readings (BenchmarkRenderPage). The charts here use no JavaScript
// functions in their options (app.js sets the formatters), so there are no
// markers to strip: text a user chose (a meter's name) stays text.
var (
	elementTemplate = render.MustTemplate(render.ModChart, []string{templates.BaseTpl, templates.BaseElementTpl})
	scriptTemplate  = render.MustTemplate(render.ModChart, []string{templates.BaseTpl, templates.BaseScriptTpl})
)

// chartInit is the initialization every chart shares.
func chartInit(id, height string) charts.GlobalOpts {
	return charts.WithInitializationOpts(opts.Initialization{
		ChartID: id, Width: "100%", Height: height, AssetsHost: "/assets/vendor/",
	})
}

// gaugeChart renders the power-now gauge: the site's power in kW, on a
// scale up to a round number above today's peak.
func gaugeChart(l *language, powerW, peakW float64) (chartSnippet, error) {
	g := charts.NewGauge()
	g.SetGlobalOptions(chartInit(gaugeID, "220px"), charts.WithAnimation(false), charts.WithLegendOpts(opts.Legend{Show: opts.Bool(false)}),
		charts.WithAriaOpts(&opts.Aria{Enabled: opts.Bool(true)}))
	// Unrounded: the page words it as the card does (rounding twice could
	// make 3854.5 W "3.86 kW" beside the card's "3.85 kW").
	g.AddSeries(l.T("chart.power_now"), []opts.GaugeData{{Name: "kW", Value: powerW / 1000}})
	top := niceCeil(max(peakW, powerW, 1000) * 1.1 / 1000)
	g.AddJSFuncs(fmt.Sprintf(`goecharts_%s.setOption({series: [{min: 0, max: %s, radius: '95%%', center: ['50%%', '58%%'], title: {show: false}, detail: {formatter: '{value} kW', fontSize: 20, offsetCenter: [0, '72%%']}, axisLabel: {distance: 16}}]});`,
		gaugeID, strconv.FormatFloat(top, 'g', -1, 64)))
	return renderChart(g)
}

// niceCeil returns the least of 1, 2, 2.5, 5 times a power of ten that is
// at least v.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// liveChart renders the overview's line chart of w (the last hour), one
// series per meter. Meter ids reach the inline script unescaped (go-echarts
// writes its JSON without HTML escaping); callers pass only ids that
// meter.ValidID accepts, which cannot close a script.
func liveChart(l *language, series []meterSeries, w window) (chartSnippet, error) {
	return renderChart(liveLine(l, series, w))
}

// liveLine builds the chart of liveChart.
func liveLine(l *language, series []meterSeries, w window) *charts.Line {
	line := charts.NewLine()
	line.SetGlobalOptions(
		chartInit(liveID, "22rem"),
		charts.WithAnimation(false),
		charts.WithAriaOpts(&opts.Aria{Enabled: opts.Bool(true)}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(bottomLegend),
		charts.WithGridOpts(opts.Grid{Left: "8", Right: "24", Top: "32", Bottom: "32", ContainLabel: opts.Bool(true)}),
		charts.WithXAxisOpts(timeAxis(w)),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "kW"}),
	)
	// The legend names only the meters with points in the hour: a list of
	// every meter, history-only ones too, paged on a phone and hid the
	// one line drawn. Every meter keeps its series, so that app.js draws
	// (and names) one that starts reporting.
	legend := []string{}
	colours := meterColours(series)
	for _, s := range series {
		name := cmpOr(s.name, s.meter)
		c := colours[s.meter]
		line.AddSeries(name, nil, charts.WithSeriesId(s.meter), charts.WithLineChartOpts(powerLine),
			charts.WithItemStyleOpts(opts.ItemStyle{Color: c}), charts.WithLineStyleOpts(opts.LineStyle{Color: c}))
		// Bare [Unix ms, kW] pairs: a third smaller than opts.LineData's
		// {"value": [...]} objects, and what app.js appends.
		line.MultiSeries[len(line.MultiSeries)-1].Data = withBreaks(s.points, s.breakMs)
		if len(s.points) > 0 {
			legend = append(legend, name)
		}
	}
	line.Legend.Data = legend
	return line
}

// palette is ECharts' default palette, which meterColour picks from.
var palette = [...]string{"#5470c6", "#91cc75", "#fac858", "#ee6666", "#73c0de", "#3ba272", "#fc8452", "#9a60b4", "#ea7ccc"}

// meterColours returns each meter's line colour. ECharts colours series
// by their place, so a meter added before another in the list changed the
// colours of all after it. Here a meter takes the colour its id hashes to
// (FNV-1a), or the next one free, the oldest meters choosing first: a new
// meter takes what is left and the others keep theirs, and up to
// len(palette) meters all differ.
func meterColours(series []meterSeries) map[string]string {
	order := make([]meterSeries, len(series))
	copy(order, series)
	slices.SortStableFunc(order, func(a, b meterSeries) int {
		return cmp.Or(a.first.Compare(b.first), strings.Compare(a.meter, b.meter))
	})
	out := make(map[string]string, len(series))
	taken := make([]int, len(palette)) // how many meters have each colour
	for i, s := range order {
		h := uint32(2166136261)
		for j := 0; j < len(s.meter); j++ {
			h ^= uint32(s.meter[j])
			h *= 16777619
		}
		round := i / len(palette) // past len(palette) meters, colours repeat
		k := int(h % uint32(len(palette)))
		for taken[k] > round {
			k = (k + 1) % len(palette)
		}
		taken[k]++
		out[s.meter] = palette[k]
	}
	return out
}

// historyChart renders a meter's power over w with zoom, its line broken
// at silences longer than breakMs; it opens zoomed to the points when they
// cover a small part of w (see zoomToData). app.js fetches finer data from
// the API as the zoom narrows.
func historyChart(l *language, id string, w window, pts [][2]float64, breakMs float64, forecast [][2]float64) (chartSnippet, error) {
	start, end := zoomToData(w.fromMs(), w.toMs(), pts)
	line := charts.NewLine()
	line.SetGlobalOptions(
		chartInit(historyID, "22rem"),
		charts.WithAnimation(false),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(false)}),
		charts.WithAriaOpts(&opts.Aria{Enabled: opts.Bool(true)}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithGridOpts(opts.Grid{Left: "8", Right: "24", Top: "32", Bottom: "56", ContainLabel: opts.Bool(true)}),
		charts.WithXAxisOpts(timeAxis(w)),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "kW"}),
		charts.WithDataZoomOpts(
			opts.DataZoom{Type: "inside", FilterMode: "none", Start: float32(start), End: float32(end)},
			opts.DataZoom{Type: "slider", FilterMode: "none", Start: float32(start), End: float32(end)},
		),
	)
	line.AddSeries(l.T("chart.power"), nil, charts.WithSeriesId(id), charts.WithLineChartOpts(powerLine))
	line.MultiSeries[0].Data = withBreaks(pts, breakMs)
	if len(forecast) > 0 {
		// The next day's forecast, dashed beside the actual line.
		line.AddSeries(l.T("chart.forecast"), nil, charts.WithSeriesId("forecast"),
			charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false), Step: "end"}),
			charts.WithLineStyleOpts(opts.LineStyle{Type: "dashed", Width: 1.5}))
		line.MultiSeries[1].Data = forecast
	}
	return renderChart(line)
}

// dayChart renders the site's power hour by hour over w, the last 24 hours
// and the next: the hours with data, broken where hours are missing, and
// the forecast dashed beside them.
func dayChart(l *language, w window, actual, forecast [][2]float64) (chartSnippet, error) {
	line := charts.NewLine()
	line.SetGlobalOptions(
		chartInit(dayID, "18rem"),
		charts.WithAnimation(false),
		charts.WithAriaOpts(&opts.Aria{Enabled: opts.Bool(true)}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(bottomLegend),
		charts.WithGridOpts(opts.Grid{Left: "8", Right: "24", Top: "32", Bottom: "32", ContainLabel: opts.Bool(true)}),
		charts.WithXAxisOpts(timeAxis(w)),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "kW"}),
	)
	hourly := powerLine
	hourly.Step = "end"
	line.AddSeries(l.T("chart.power"), nil, charts.WithSeriesId("actual"), charts.WithLineChartOpts(hourly))
	hour := float64(time.Hour.Milliseconds())
	line.MultiSeries[0].Data = withBreaksAt(actual, breakSlack*hour, hour)
	line.AddSeries(l.T("chart.forecast"), nil, charts.WithSeriesId("forecast"),
		charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false), Step: "end"}),
		charts.WithLineStyleOpts(opts.LineStyle{Type: "dashed", Width: 1.5}))
	line.MultiSeries[1].Data = forecast
	return renderChart(line)
}

// costChart renders bars of cost per bucket, in the currency.
func costChart(l *language, id, currency string, labels []string, cost []float64) (chartSnippet, error) {
	bar := charts.NewBar()
	bar.SetGlobalOptions(
		chartInit(id, "18rem"),
		charts.WithAnimation(false),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(false)}),
		charts.WithAriaOpts(&opts.Aria{Enabled: opts.Bool(true)}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithGridOpts(opts.Grid{Left: "8", Right: "16", Top: "32", Bottom: "8", ContainLabel: opts.Bool(true)}),
		// The axis writes two decimals (app.js's plain): ticks closer than
		// a cent would read 0, 0, 0.01, 0.01 under a month of a few cents.
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: currency, MinInterval: 0.01}),
	)
	data := make([]opts.BarData, len(cost))
	for i, v := range cost {
		data[i] = opts.BarData{Value: roundTo(v, 2)}
	}
	bar.SetXAxis(labels).AddSeries(l.T("chart.cost"), data)
	return renderChart(bar)
}

// dailyChart renders bars of daily energy in kWh.
func dailyChart(l *language, labels []string, kwh []float64) (chartSnippet, error) {
	bar := charts.NewBar()
	bar.SetGlobalOptions(
		chartInit(dailyID, "18rem"),
		charts.WithAnimation(false),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(false)}),
		charts.WithAriaOpts(&opts.Aria{Enabled: opts.Bool(true)}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithGridOpts(opts.Grid{Left: "8", Right: "16", Top: "32", Bottom: "8", ContainLabel: opts.Bool(true)}),
		// Ticks no closer than the axis's two decimals (see costChart).
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "kWh", MinInterval: 0.01}),
	)
	data := make([]opts.BarData, len(kwh))
	for i, v := range kwh {
		data[i] = opts.BarData{Value: roundTo(v, 3)}
	}
	bar.SetXAxis(labels).AddSeries(l.T("chart.energy"), data)
	return renderChart(bar)
}

// profileChart renders the load profile: mean power (kW) by hour of day
// (x) and weekday (y, Monday first).
func profileChart(l *language, cells [][3]float64) (chartSnippet, error) {
	hm := charts.NewHeatMap()
	hours := make([]string, 24)
	for h := range hours {
		hours[h] = fmt.Sprintf("%02d", h)
	}
	top := 0.0
	data := make([]opts.HeatMapData, len(cells))
	for i, c := range cells {
		data[i] = opts.HeatMapData{Value: [3]float64{c[0], c[1], roundTo(c[2], 3)}}
		top = max(top, c[2])
	}
	hm.SetGlobalOptions(
		chartInit(profileID, "18rem"),
		charts.WithAnimation(false),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(false)}),
		charts.WithAriaOpts(&opts.Aria{Enabled: opts.Bool(true)}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true)}),
		charts.WithGridOpts(opts.Grid{Left: "8", Right: "8", Top: "8", Bottom: "64", ContainLabel: opts.Bool(true)}),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", Data: hours, SplitArea: &opts.SplitArea{Show: opts.Bool(true)}}),
		charts.WithYAxisOpts(opts.YAxis{Type: "category", Data: l.weekdays[:], SplitArea: &opts.SplitArea{Show: opts.Bool(true)}}),
		charts.WithVisualMapOpts(opts.VisualMap{Calculable: opts.Bool(true), Min: 0, Max: float32(niceCeil(max(top, 0.1))),
			Orient: "horizontal", Left: "center", Bottom: "0", Text: []string{"kW", ""}}),
	)
	hm.SetXAxis(hours).AddSeries(l.T("chart.mean_power"), data)
	return renderChart(hm)
}

// calendarChart renders a year's daily energy as a calendar heatmap of
// ["YYYY-MM-DD", kWh] days.
func calendarChart(l *language, year int, days [][2]any) (chartSnippet, error) {
	hm := charts.NewHeatMap()
	top := 0.0
	data := make([]opts.HeatMapData, len(days))
	for i, d := range days {
		data[i] = opts.HeatMapData{Value: d}
		top = max(top, d[1].(float64))
	}
	hm.SetGlobalOptions(
		chartInit(yearID, "15rem"),
		charts.WithAnimation(false),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(false)}),
		charts.WithAriaOpts(&opts.Aria{Enabled: opts.Bool(true)}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true)}),
		charts.WithVisualMapOpts(opts.VisualMap{Calculable: opts.Bool(true), Min: 0, Max: float32(niceCeil(max(top, 0.1))),
			Orient: "horizontal", Left: "center", Bottom: "0", Text: []string{"kWh", ""}}),
	)
	hm.AddCalendar(&opts.Calendar{Range: []string{strconv.Itoa(year)}, Top: "24", Left: "32", Right: "8", Bottom: "56", CellSize: "auto",
		DayLabel: &opts.CalendarLabel{FirstDay: 1}, YearLabel: &opts.CalendarLabel{Show: opts.Bool(false)}})
	hm.AddSeries(l.T("chart.energy"), data, charts.WithCoordinateSystem("calendar"), charts.WithCalendarIndex(0))
	// go-echarts has no field for the labels' names: set them in the
	// language after the chart is made.
	names, err := json.Marshal(map[string]any{"calendar": []any{map[string]any{
		"dayLabel": map[string]any{"nameMap": l.calendarDays()}, "monthLabel": map[string]any{"nameMap": l.calendarMonths()}}}})
	if err != nil {
		return chartSnippet{}, err
	}
	hm.AddJSFuncs(fmt.Sprintf("goecharts_%s.setOption(%s);", yearID, names))
	return renderChart(hm)
}

// calendarDays and calendarMonths are the calendar's labels: the first
// letters of the days (Sunday first, as ECharts wants) and the months.
func (l *language) calendarDays() any {
	out := make([]string, 7)
	for i := range out {
		out[i] = string([]rune(l.weekdays[(i+6)%7])[:1])
	}
	return out
}

func (l *language) calendarMonths() any { return l.months[:] }

// chartRenderer is any go-echarts chart.
type chartRenderer interface{ Validate() }

// renderChart renders c as its RenderSnippet does.
func renderChart(c chartRenderer) (chartSnippet, error) {
	c.Validate()
	var element, script strings.Builder
	if err := elementTemplate.ExecuteTemplate(&element, render.ModChart, c); err != nil {
		return chartSnippet{}, fmt.Errorf("dashboard: render chart element: %w", err)
	}
	if err := scriptTemplate.ExecuteTemplate(&script, render.ModChart, c); err != nil {
		return chartSnippet{}, fmt.Errorf("dashboard: render chart script: %w", err)
	}
	// go-echarts writes the option's JSON without HTML escaping: a '<' in
	// a user's text could close the script. Inside the script, '<' appears
	// only in strings, where \u003c means the same.
	open, rest, _ := strings.Cut(script.String(), ">")
	last := strings.LastIndex(rest, "</script>")
	body, end := rest[:last], rest[last+len("</script>"):]
	body = strings.ReplaceAll(body, "<", `\u003c`)
	s := open + ">" + body + "</script>" + end
	return chartSnippet{
		Element: template.HTML(element.String()),
		Script:  template.HTML(s),
		body:    body,
	}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
