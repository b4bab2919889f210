package dashboard

import (
	"strings"
	"testing"
	"time"

	"github.com/go-echarts/go-echarts/v2/charts"

	"github.com/vatio-energy/vatio/store"
)

// TestRenderChartAsGoECharts checks that renderChart, which renders with
// go-echarts' templates parsed once, writes what go-echarts' own
// RenderSnippet writes.
func TestRenderChartAsGoECharts(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	series := []meterSeries{
		{meter: "a", records: []store.Record{{Time: t0, PowerW: 1500}, {Time: t0.Add(time.Second), PowerW: 2500}}},
		{meter: "b:2", name: "Kitchen", records: []store.Record{{Time: t0, PowerW: -300}}},
	}
	// liveChart's line, rendered both ways.
	for _, build := range []func() (*charts.Line, error){
		func() (*charts.Line, error) { return liveLine(english, series), nil },
	} {
		line, _ := build()
		got, err := renderChart(line)
		if err != nil {
			t.Fatal(err)
		}
		line2, _ := build()
		want := line2.RenderSnippet()
		if string(got.Element) != want.Element {
			t.Errorf("element:\n%s\nwant (go-echarts):\n%s", got.Element, want.Element)
		}
		if string(got.Script) != want.Script {
			t.Errorf("script:\n%s\nwant (go-echarts):\n%s", got.Script, want.Script)
		}
	}
}

func TestNiceCeil(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{{0, 1}, {0.7, 1}, {1, 1}, {1.1, 2}, {2.2, 2.5}, {3, 5}, {7, 10}, {11, 20}, {4400, 5000}} {
		if got := niceCeil(c.in); got != c.want {
			t.Errorf("niceCeil(%g) = %g, want %g", c.in, got, c.want)
		}
	}
}

// TestChartTextStaysText checks that a meter's name, which any operator
// may set, cannot run as script or close the chart's script element.
func TestChartTextStaysText(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	evil := `__f__alert(document.domain)__f__</script><meta http-equiv=refresh content=0;url=//x>`
	c, err := liveChart(english, []meterSeries{{meter: "plug__f__", name: evil, records: []store.Record{{Time: t0, PowerW: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	script := string(c.Script)
	if strings.Count(script, "</script>") != 1 || strings.Contains(script, "<meta") {
		t.Errorf("the name closes the script:\n%s", script)
	}
	if !strings.Contains(script, `"name":"__f__alert(document.domain)__f__\u003c/script>\u003cmeta`) || !strings.Contains(script, `"id":"plug__f__"`) {
		t.Errorf("the name is not kept as a string:\n%s", script)
	}
	if strings.Contains(c.body, "<") {
		t.Error("the hashed body holds a '<'")
	}
}
