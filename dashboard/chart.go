package dashboard

import (
	"fmt"
	"html/template"
	"strings"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
	"github.com/go-echarts/go-echarts/v2/render"
	"github.com/go-echarts/go-echarts/v2/templates"

	"github.com/vatio-energy/vatio/store"
)

// chartID names the chart's element and so its ECharts instance: the
// rendered script defines goecharts_power, and app.js finds the instance with
// echarts.getInstanceByDom(document.getElementById("power")).
const chartID = "power"

// chartPoints is how many of each meter's newest readings the chart shows.
// app.js keeps the same number as new readings arrive.
const chartPoints = 500

// meterSeries is one meter's readings on the chart, oldest first.
type meterSeries struct {
	meter   string
	records []store.Record
}

// chartSnippet is the rendered chart: its element, its inline script, and
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
// readings (BenchmarkRenderPage).
var (
	elementTemplate = render.MustTemplate(render.ModChart, []string{templates.BaseTpl, templates.BaseElementTpl})
	scriptTemplate  = render.MustTemplate(render.ModChart, []string{templates.BaseTpl, templates.BaseScriptTpl})
	// funcMarkers strips the markers go-echarts puts around JavaScript
	// functions in the option's JSON, as its regexp does.
	funcMarkers = strings.NewReplacer(`__f__"`, "", `"__f__`, "", "__f__", "")
)

// powerChart renders a line chart of power in kW over time, one series per
// meter, with [Unix ms, kW] points. Meter ids reach the inline script
// unescaped (go-echarts writes its JSON without HTML escaping); callers
// must pass only ids that meter.ValidID accepts, which cannot close a script.
func powerChart(series []meterSeries) (chartSnippet, error) {
	return renderChart(powerLine(series))
}

// powerLine builds the chart of powerChart.
func powerLine(series []meterSeries) *charts.Line {
	line := charts.NewLine()
	line.SetGlobalOptions(
		charts.WithInitializationOpts(opts.Initialization{
			ChartID: chartID,
			Width:   "100%",
			// CSS sets a min-height for short landscape phones.
			Height:     "60vh",
			PageTitle:  "Vatio",
			AssetsHost: "/assets/vendor/",
		}),
		charts.WithAnimation(false),
		charts.WithAriaOpts(&opts.Aria{Enabled: opts.Bool(true)}),
		charts.WithTooltipOpts(opts.Tooltip{
			Show:    opts.Bool(true),
			Trigger: "axis",
			// Single quotes only: go-echarts pastes the function out of a
			// JSON string, where double quotes would stay escaped.
			ValueFormatter: opts.FuncOpts(`function (kW) { return typeof kW === 'number' ? kW.toFixed(3) + ' kW' : '-'; }`),
		}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Type: "scroll", Top: "0"}),
		charts.WithGridOpts(opts.Grid{Left: "8", Right: "24", Top: "48", Bottom: "56", ContainLabel: opts.Bool(true)}),
		charts.WithXAxisOpts(opts.XAxis{Type: "time", AxisLabel: &opts.AxisLabel{HideOverlap: opts.Bool(true)}}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "kW"}),
		charts.WithDataZoomOpts(
			opts.DataZoom{Type: "inside", FilterMode: "none"},
			opts.DataZoom{Type: "slider", FilterMode: "none", Start: 0, End: 100},
		),
	)
	for _, s := range series {
		line.AddSeries(s.meter, nil,
			charts.WithSeriesId(s.meter),
			// A lone reading has no line to draw: show it as a point.
			charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(len(s.records) < 2)}),
		)
		// Bare [Unix ms, kW] pairs: a third smaller than opts.LineData's
		// {"value": [...]} objects, and what app.js appends.
		data := make([][2]float64, len(s.records))
		for i, r := range s.records {
			kW := r.PowerW / 1000
			data[i] = [2]float64{float64(r.Time.UnixMilli()), kW}
		}
		line.MultiSeries[len(line.MultiSeries)-1].Data = data
	}
	return line
}

// renderChart renders line as its RenderSnippet does.
func renderChart(line *charts.Line) (chartSnippet, error) {
	line.Validate()
	var element, script strings.Builder
	if err := elementTemplate.ExecuteTemplate(&element, render.ModChart, line); err != nil {
		return chartSnippet{}, fmt.Errorf("dashboard: render chart element: %w", err)
	}
	if err := scriptTemplate.ExecuteTemplate(&script, render.ModChart, line); err != nil {
		return chartSnippet{}, fmt.Errorf("dashboard: render chart script: %w", err)
	}
	s := funcMarkers.Replace(script.String())
	return chartSnippet{
		Element: template.HTML(funcMarkers.Replace(element.String())),
		Script:  template.HTML(s),
		body:    scriptBody(s),
	}, nil
}

// scriptBody returns the text between a <script> element's tags, exactly
// as the browser hashes it for a Content-Security-Policy.
func scriptBody(script string) string {
	_, body, _ := strings.Cut(script, ">")
	body, _, _ = strings.Cut(body, "</script>")
	return body
}
