package dashboard

import (
	"testing"
	"time"

	"github.com/vatio-energy/vatio/store"
)

// TestRenderChartAsGoECharts checks that renderChart, which renders with
// go-echarts' templates parsed once, writes what go-echarts' own
// RenderSnippet writes.
func TestRenderChartAsGoECharts(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	series := []meterSeries{
		{meter: "a", records: []store.Record{{Time: t0, PowerW: 1500}, {Time: t0.Add(time.Second), PowerW: 2500}}},
		{meter: "b:2", records: []store.Record{{Time: t0, PowerW: -300}}},
	}
	got, err := renderChart(powerLine(series))
	if err != nil {
		t.Fatal(err)
	}
	want := powerLine(series).RenderSnippet()
	if string(got.Element) != want.Element {
		t.Errorf("element:\n%s\nwant (go-echarts):\n%s", got.Element, want.Element)
	}
	if string(got.Script) != want.Script {
		t.Errorf("script:\n%s\nwant (go-echarts):\n%s", got.Script, want.Script)
	}
}
