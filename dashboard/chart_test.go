package dashboard

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-echarts/go-echarts/v2/charts"
)

// TestRenderChartAsGoECharts checks that renderChart, which renders with
// go-echarts' templates parsed once, writes what go-echarts' own
// RenderSnippet writes.
func TestRenderChartAsGoECharts(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	ms := float64(t0.UnixMilli())
	series := []meterSeries{
		{meter: "a", points: [][2]float64{{ms, 1.5}, {ms + 1000, 2.5}, {ms + 900_000, 2}}, breakMs: 15000},
		{meter: "b:2", name: "Kitchen", points: [][2]float64{{ms, -0.3}}, breakMs: 15000},
	}
	// liveChart's line, rendered both ways.
	for _, build := range []func() (*charts.Line, error){
		func() (*charts.Line, error) { return liveLine(english, series, window{t0.Add(-time.Hour), t0}), nil },
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
	c, err := liveChart(english, []meterSeries{{meter: "plug__f__", name: evil, points: [][2]float64{{float64(t0.UnixMilli()), 0.001}}}}, window{t0.Add(-time.Hour), t0})
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

// TestDayChartBreaksAtMissingHours checks that the day chart's hourly line
// breaks where an hour has no data, and spans its window.
func TestDayChartBreaksAtMissingHours(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	h := float64(time.Hour.Milliseconds())
	ms := float64(t0.UnixMilli())
	c, err := dayChart(english, window{t0.Add(-24 * time.Hour), t0.Add(25 * time.Hour)},
		[][2]float64{{ms - 12*h, 5}, {ms - 5*h, 1}, {ms - 4*h, 2}, {ms - 2*h, 3}, {ms - h, 4}}, [][2]float64{{ms + h, 2}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		// Each hour's step ends where the hour does, not halfway across the
		// silence after it (-12 h held for 3.5 hours).
		fmt.Sprintf(`"data":[{"value":[%d,5],"symbol":"circle"},[%d,null],[%d,1],[%d,2],[%d,null],[%d,3],[%d,4]]`, t0.Add(-12*time.Hour).UnixMilli(), t0.Add(-11*time.Hour).UnixMilli(),
			t0.Add(-5*time.Hour).UnixMilli(), t0.Add(-4*time.Hour).UnixMilli(),
			t0.Add(-3*time.Hour).UnixMilli(), t0.Add(-2*time.Hour).UnixMilli(), t0.Add(-time.Hour).UnixMilli()),
		fmt.Sprintf(`"min":%d,"max":%d`, t0.Add(-24*time.Hour).UnixMilli(), t0.Add(25*time.Hour).UnixMilli()),
	} {
		if !strings.Contains(c.body, want) {
			t.Errorf("the day chart lacks %s:\n%s", want, c.body)
		}
	}
}

// TestLiveLegendAndColours checks that the last hour's legend names only
// the meters with points in it, and that a meter's colour stays the same
// when meters are added before it.
func TestLiveLegendAndColours(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	ms := float64(t0.UnixMilli())
	w := window{t0.Add(-time.Hour), t0}
	colours := func(series []meterSeries) map[string]string {
		line := liveLine(english, series, w)
		out := map[string]string{}
		for _, s := range line.MultiSeries {
			if s.ItemStyle == nil {
				t.Fatalf("series %s has no colour", s.Name)
			}
			out[s.Name] = s.ItemStyle.Color
		}
		return out
	}
	few := []meterSeries{{meter: "main", points: [][2]float64{{ms, 1}}, first: t0.Add(-48 * time.Hour)}, {meter: "old", first: t0.Add(-72 * time.Hour)}}
	line := liveLine(english, few, w)
	if got, ok := line.Legend.Data.([]string); !ok || len(got) != 1 || got[0] != "main" {
		t.Errorf("legend = %#v, want only main (old has no points in the hour)", line.Legend.Data)
	}
	if len(line.MultiSeries) != 2 {
		t.Errorf("%d series, want 2: old keeps its series for the readings to come", len(line.MultiSeries))
	}
	before := colours(few)
	more := append([]meterSeries{{meter: "aaa", first: t0}, {meter: "boiler", first: t0}, {meter: "car", first: t0}}, few...)
	after := colours(more)
	for name, c := range before {
		if after[name] != c {
			t.Errorf("%s's colour changed from %s to %s as meters were added", name, c, after[name])
		}
	}
	var nine []meterSeries
	for _, id := range []string{"main", "old", "aaa", "boiler", "car", "kitchen", "plug", "solar", "gappy"} {
		nine = append(nine, meterSeries{meter: id, first: t0})
	}
	distinct := map[string]bool{}
	for _, c := range meterColours(nine) {
		distinct[c] = true
	}
	if len(distinct) != len(palette) {
		t.Errorf("%d meters get %d colours, want all different", len(nine), len(distinct))
	}
}
