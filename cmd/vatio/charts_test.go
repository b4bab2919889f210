package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	paho3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
)

// chartJS is what the chart checks run in the page, by chart element id:
// ECharts' own model of the chart (its axis extent, its pixels for a time)
// and what it drew (the texts zrender laid out, the canvas's pixels).
const chartJS = `
window.chartCheck = {
  chart: function (id) {
    var el = document.getElementById(id);
    return el && window.echarts ? echarts.getInstanceByDom(el) : null;
  },
  // extent is the x axis's [min, max] as drawn (ms).
  extent: function (id) {
    return this.chart(id).getModel().getComponent("xAxis", 0).axis.scale.getExtent();
  },
  // rect is the part of an element's bounding box on the chart that is
  // not clipped away (a scrolling legend clips its items), in CSS pixels.
  // A text is as tall as its font at least: zrender measures a line by the
  // width of a wide character, which a machine without CJK fonts makes
  // small.
  rect: function (el) {
    var r = el.getBoundingRect().clone();
    var px = el.style && el.style.font && /([\d.]+)px/.exec(el.style.font);
    if (px && r.height < +px[1]) {
      r.y -= (+px[1] - r.height) / 2;
      r.height = +px[1];
    }
    if (el.transform) r.applyTransform(el.transform);
    (el.__clipPaths || []).forEach(function (cp) {
      var c = cp.getBoundingRect().clone();
      if (cp.transform) c.applyTransform(cp.transform);
      var x0 = Math.max(r.x, c.x), y0 = Math.max(r.y, c.y);
      var x1 = Math.min(r.x + r.width, c.x + c.width), y1 = Math.min(r.y + r.height, c.y + c.height);
      r.x = x0; r.y = y0; r.width = Math.max(0, x1 - x0); r.height = Math.max(0, y1 - y0);
    });
    return r;
  },
  // meets is whether two boxes share some area.
  meets: function (a, b) {
    return a.width > 0 && a.height > 0 && b.width > 0 && b.height > 0 &&
      a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
  },
  // overlaps lists the texts drawn on the chart that overlap another, and
  // texts outside the legend that overlap it (its icons too).
  overlaps: function (id) {
    var chart = this.chart(id), self = this;
    var texts = chart.getZr().storage.getDisplayList(true).filter(function (el) {
      return el.style && typeof el.style.text === "string" && el.style.text.trim() !== "" && !el.ignore && !el.invisible;
    });
    var legendModel = chart.getModel().getComponent("legend");
    var legend = legendModel && chart.getViewOfComponentModel(legendModel).group;
    function inLegend(el) {
      for (var p = el; p; p = p.parent) if (p === legend) return true;
      return false;
    }
    var out = [];
    texts.forEach(function (a, i) {
      var ra = self.rect(a);
      texts.slice(i + 1).forEach(function (b) {
        if (self.meets(ra, self.rect(b))) out.push(JSON.stringify(a.style.text) + " overlaps " + JSON.stringify(b.style.text));
      });
      if (legend && !inLegend(a) && self.meets(ra, self.rect(legend))) out.push(JSON.stringify(a.style.text) + " overlaps the legend");
    });
    return out;
  },
  // texts is every text drawn, with its box, for the test's log.
  texts: function (id) {
    var self = this;
    return this.chart(id).getZr().storage.getDisplayList(true).filter(function (el) {
      return el.style && typeof el.style.text === "string" && el.style.text.trim() !== "";
    }).map(function (el) {
      var r = self.rect(el);
      return el.style.text + " @" + [r.x, r.y, r.width, r.height].map(Math.round).join(",");
    });
  },
  // inked counts the pixels in the column at time ms, inside the plot,
  // drawn in series seriesId's colour.
  inked: function (id, seriesId, ms) {
    var chart = this.chart(id), model = chart.getModel();
    var series = model.getSeries().filter(function (s) { return s.id === seriesId; })[0];
    var style = series.getData().getVisual("style");
    var c = document.createElement("canvas").getContext("2d");
    c.fillStyle = style.stroke || style.fill;
    var hex = c.fillStyle; // #rrggbb
    var want = [1, 3, 5].map(function (i) { return parseInt(hex.slice(i, i + 2), 16); });
    var canvas = chart.getDom().querySelector("canvas");
    var ratio = canvas.width / canvas.clientWidth;
    var x = chart.convertToPixel({ xAxisIndex: 0 }, ms);
    var grid = model.getComponent("grid", 0).coordinateSystem.getRect();
    var img = canvas.getContext("2d").getImageData(Math.round((x - 1) * ratio), Math.round(grid.y * ratio), Math.max(1, Math.round(3 * ratio)), Math.round(grid.height * ratio));
    var n = 0;
    for (var i = 0; i < img.data.length; i += 4) {
      var d = Math.abs(img.data[i] - want[0]) + Math.abs(img.data[i + 1] - want[1]) + Math.abs(img.data[i + 2] - want[2]);
      if (img.data[i + 3] > 128 && d < 90) n++;
    }
    return n;
  }
};
`

// chartExpr is an expression of chartCheck, defined first when the page
// does not have it yet.
func chartExpr(expr string) string {
	return `(function () { if (!window.chartCheck) {` + chartJS + `} return ` + expr + `; })()`
}

// chartEval runs chartCheck's call on the page and decodes its answer.
func chartEval[T any](t *testing.T, ctx context.Context, call string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](chartExpr("chartCheck."+call)))
	if err != nil {
		t.Fatalf("%s: %v", call, err)
	}
	return v
}

// publishAt publishes a reading of meterID taken at ts, as a meter that
// stamps its readings does.
func publishAt(t *testing.T, c paho3.Client, meterID string, ts time.Time, powerW float64) {
	t.Helper()
	mqtttest.Publish3(t, c, "energy/consumption/"+meterID, 1, false,
		fmt.Sprintf(`{"power_w": %g, "ts": %q}`, powerW, ts.UTC().Format(time.RFC3339Nano)))
}

// TestChartsInBrowser checks in headless Chromium, on a 360 px phone, that
// the charts read right: the "Last hour" axis spans the last hour even with
// a reading from two days ago; a silence longer than the meter's interval
// breaks the line, as drawn by the server and as readings arrive; no text
// of the chart overlaps another or the legend; and a meter page with 7
// minutes of data opens on those minutes, not a sliver of the week. Its
// screenshots are in testdata/screenshots (charts-*).
func TestChartsInBrowser(t *testing.T) {
	ctx, blog := browser(t)
	// max_gap stands for the interval of meters whose interval Vatio has
	// not learned (readings published in a burst): 30 s.
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("store:\n  max_gap: 30s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v := startVatioWith(t, t.TempDir(), cfg)
	origin := "http://" + v.http
	err := chromedp.Do(ctx, chromedp.EmulateViewport(360, 740), chromedp.Navigate(origin+"/"), chromedp.WaitVisible(`input[name="confirm"]`),
		chromedp.SetValue(`input[name="password"]`, "a long enough password"),
		chromedp.SetValue(`input[name="confirm"]`, "a long enough password"),
		chromedp.SetValue(`input[name="token"]`, testAdminToken),
		chromedp.Click(`button[type="submit"]`),
		chromedp.WaitVisible("#empty"))
	if err != nil {
		t.Fatal(err)
	}

	c := mqtttest.V3(t, v.mqtt)
	now := time.Now()
	// gappy reports every 10 s, but not from 35 to 12 minutes ago.
	for at := now.Add(-50 * time.Minute); at.Before(now.Add(-35 * time.Minute)); at = at.Add(10 * time.Second) {
		publishAt(t, c, "gappy", at, 1000)
	}
	for at := now.Add(-12 * time.Minute); !at.After(now.Add(-2 * time.Minute)); at = at.Add(10 * time.Second) {
		publishAt(t, c, "gappy", at, 2000)
	}
	// lone: one reading two days ago and one in the hour.
	publishAt(t, c, "lone", now.Add(-48*time.Hour), 500)
	publishAt(t, c, "lone", now.Add(-30*time.Minute), 700)
	// Meters with long names: a legend wider than a phone.
	for _, id := range []string{"kitchen-induction-hob", "heat-pump-outdoor-unit", "garage-car-charger", "solar-roof-inverter"} {
		for at := now.Add(-20 * time.Minute); at.Before(now); at = at.Add(time.Minute) {
			publishAt(t, c, id, at, 3000)
		}
	}
	// late: one reading two days ago, none in the hour (yet).
	publishAt(t, c, "late", now.Add(-48*time.Hour), 800)
	// fresh: 7 minutes of readings, to now.
	for at := now.Add(-7 * time.Minute); !at.After(now); at = at.Add(10 * time.Second) {
		publishAt(t, c, "fresh", at, 1500)
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(origin+"/"), chromedp.WaitVisible("#live")); err != nil {
		t.Fatal(err)
	}
	waitEval(t, ctx, "the live chart's series", seriesPoints("live", "gappy"), func(s string) bool { return s != "-1" && s != "0" })

	// The last hour is the last hour, to the server's now, though lone's
	// first reading is two days old.
	ext := chartEval[[]float64](t, ctx, `extent("live")`)
	if len(ext) != 2 || ext[1]-ext[0] != float64(time.Hour.Milliseconds()) {
		t.Errorf("the last hour's axis spans %v, want one hour", ext)
	} else if end := time.UnixMilli(int64(ext[1])); end.Before(now) || end.After(time.Now().Add(time.Minute)) {
		t.Errorf("the last hour ends at %s, want now (%s)", end, now)
	}

	// The silence from 35 to 12 minutes ago: no line in the middle of it,
	// a line where gappy reported.
	ms := func(t time.Time) float64 { return float64(t.UnixMilli()) }
	mid, before := ms(now.Add(-(35+12)*time.Minute/2)), ms(now.Add(-42*time.Minute))
	waitEval(t, ctx, "gappy's line drawn, and broken where it was silent",
		chartExpr(fmt.Sprintf(`chartCheck.inked("live", "gappy", %f) > 0 && chartCheck.inked("live", "gappy", %f) === 0`, before, mid)),
		func(s string) bool { return s == "true" })

	// No text runs into another or into the legend at 360 px.
	for _, id := range []string{"live", "day"} {
		if chartEval[bool](t, ctx, fmt.Sprintf(`chart(%q) !== null`, id)) {
			if o := chartEval[[]string](t, ctx, fmt.Sprintf(`overlaps(%q)`, id)); len(o) > 0 {
				t.Errorf("%s chart at 360 px: %s\ntexts: %s", id, strings.Join(o, "; "), strings.Join(chartEval[[]string](t, ctx, fmt.Sprintf(`texts(%q)`, id)), " | "))
			}
		}
	}
	screenshot(t, ctx, "charts-overview-desktop", 1280, 900, "#live")
	screenshot(t, ctx, "charts-overview-phone", 360, 740, "#live")

	// The legend names the meters drawn in the hour, not late; late joins
	// it with its first reading in the hour.
	legendHas := func(name string) string {
		return fmt.Sprintf(`echarts.getInstanceByDom(document.getElementById("live")).getOption().legend[0].data.indexOf(%q) >= 0`, name)
	}
	if chartEval[bool](t, ctx, `chart("live").getOption().legend[0].data.indexOf("late") >= 0`) || !chartEval[bool](t, ctx, `chart("live").getOption().legend[0].data.indexOf("gappy") >= 0`) {
		t.Errorf("the last hour's legend is %v, want gappy and not late (no point in the hour)", chartEval[[]string](t, ctx, `chart("live").getOption().legend[0].data`))
	}
	publishAt(t, c, "late", time.Now(), 900)
	waitEval(t, ctx, "late in the legend once it reports", legendHas("late"), func(s string) bool { return s == "true" })

	// A reading after two minutes of silence, as it arrives: the line
	// breaks in the browser too.
	arrived := time.Now()
	publishAt(t, c, "gappy", arrived, 2500)
	last := now.Add(-2 * time.Minute)
	waitEval(t, ctx, "the arriving reading after a silence breaks the line",
		fmt.Sprintf(`(function () {
			var s = echarts.getInstanceByDom(document.getElementById("live")).getOption().series.filter(function (s) { return s.id === "gappy"; })[0];
			var d = s.data.map(function (p) { return Array.isArray(p) ? p : p.value; });
			var n = d.length;
			return n >= 3 && d[n - 1][0] === %f && d[n - 2][1] === null && d[n - 3][0] === %f;
		})()`, ms(arrived.Truncate(time.Millisecond)), ms(last.Truncate(time.Millisecond))),
		func(s string) bool { return s == "true" })
	gapMid := (ms(last) + ms(arrived)) / 2
	waitEval(t, ctx, "and is drawn broken",
		chartExpr(fmt.Sprintf(`chartCheck.inked("live", "gappy", %f) > 0 && chartCheck.inked("live", "gappy", %f) === 0`, ms(last.Add(-time.Minute)), gapMid)),
		func(s string) bool { return s == "true" })

	// The meter page opens on fresh's 7 minutes.
	if err := chromedp.Do(ctx, chromedp.Navigate(origin+"/meters/fresh"), chromedp.WaitVisible("#history")); err != nil {
		t.Fatal(err)
	}
	waitEval(t, ctx, "the history's finer data for the zoomed minutes", `document.getElementById("history-step").textContent`, func(s string) bool { return s == "Resolution: every reading" })
	ext = chartEval[[]float64](t, ctx, `extent("history")`)
	if len(ext) != 2 || ext[0] > ms(now.Add(-7*time.Minute)) || ext[1] < ms(now) || ext[1]-ext[0] > float64(20*time.Minute.Milliseconds()) {
		t.Errorf("fresh's history shows %s to %s, want its 7 minutes to %s, and not much more", time.UnixMilli(int64(ext[0])), time.UnixMilli(int64(ext[1])), now)
	}
	if o := chartEval[[]string](t, ctx, `overlaps("history")`); len(o) > 0 {
		t.Errorf("history chart at 360 px: %s", strings.Join(o, "; "))
	}
	screenshot(t, ctx, "charts-meter-phone", 360, 740, "#history")
	screenshot(t, ctx, "charts-meter-desktop", 1280, 900, "#history")

	// lone's history spans two days: its axis labels name the days, at
	// even steps of the dashboard's clock.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(origin+"/meters/lone"), chromedp.WaitVisible("#history")); err != nil {
		t.Fatal(err)
	}
	waitEval(t, ctx, "the history's axis ticks", chartExpr(`(chartCheck.chart("history").getOption().xAxis[0].axisLabel.customValues || []).length > 2`),
		func(s string) bool { return s == "true" })
	ticks := chartEval[[]float64](t, ctx, `chart("history").getOption().xAxis[0].axisLabel.customValues`)
	for i := 2; i < len(ticks); i++ {
		if step, first := ticks[i]-ticks[i-1], ticks[1]-ticks[0]; step != first && math.Abs(step-first) != float64(time.Hour.Milliseconds()) { // an hour: a DST change
			t.Errorf("history ticks at uneven steps: %v", ticks)
			break
		}
	}
	dated := regexp.MustCompile(`^\d{1,2} [A-Z][a-z]{2}`)
	days := 0
	for _, s := range chartEval[[]string](t, ctx, `texts("history")`) {
		if dated.MatchString(s) {
			days++
		}
	}
	if days < 2 {
		t.Errorf("lone's two days of history name %d days on the axis, want 2 at least: %s", days, strings.Join(chartEval[[]string](t, ctx, `texts("history")`), " | "))
	}
	screenshot(t, ctx, "charts-meter-days", 1280, 900, "#history")
	blog.check(t, origin)
}
