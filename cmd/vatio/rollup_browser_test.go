package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestArchivedImportInBrowser: in a real browser, the user guide's Datadis
// file (hourly energy of 1 October 2026), imported through the API and
// archived by retention a minute after the start, is drawn at each hour's
// mean power on the meter's page, and again after zooming in, which
// fetches the per-minute rollups: no point at 0 W.
func TestArchivedImportInBrowser(t *testing.T) {
	ctx, blog := browser(t)
	v := startVatio(t, t.TempDir())
	origin := "http://" + v.http
	err := chromedp.Do(ctx, chromedp.Navigate(origin+"/"), chromedp.WaitVisible(`input[name="confirm"]`),
		chromedp.SetValue(`input[name="password"]`, "a long enough password"),
		chromedp.SetValue(`input[name="confirm"]`, "a long enough password"),
		chromedp.SetValue(`input[name="token"]`, testAdminToken),
		chromedp.Click(`button[type="submit"]`),
		chromedp.WaitVisible("#empty"))
	if err != nil {
		t.Fatal(err)
	}
	file := "CUPS;Fecha;Hora;Consumo_kWh;Metodo_obtencion\nES0031405123456789JN0F;01/10/2026;1;0,231;Real\nES0031405123456789JN0F;01/10/2026;2;0,187;Real\nES0031405123456789JN0F;01/10/2026;3;0,154;Estimada\n"
	req, _ := http.NewRequest(http.MethodPost, origin+"/api/v1/meters/piso/import?zone=Europe/Madrid", strings.NewReader(file))
	req.Header.Set("Content-Type", "text/csv")
	res, err := apiClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("import = %d", res.StatusCode)
	}
	// Retention's first pass, a minute after the start, archives October.
	raw := origin + "/api/v1/meters/piso/readings?step=raw&from=2026-09-30T00:00:00Z&to=2026-10-02T00:00:00Z"
	for deadline := time.Now().Add(3 * time.Minute); ; {
		var r struct {
			Points []any `json:"points"`
		}
		if getJSON(t, raw, &r); len(r.Points) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("piso's raw readings not archived after 3 minutes")
		}
		time.Sleep(time.Second) // retention runs on its own clock
	}
	// The values of the history's line, in kW, as "n min max".
	values := `(function () {
		var chart = echarts.getInstanceByDom(document.getElementById("history"));
		var ys = (chart.getOption().series[0].data || []).map(function (p) {
			var v = p && p.value ? p.value : p;
			return v[1];
		}).filter(function (y) { return y !== null; });
		return ys.length + " " + Math.min.apply(null, ys) + " " + Math.max.apply(null, ys);
	})()`
	inRange := func(n int) func(string) bool {
		return func(s string) bool {
			f := strings.Fields(s)
			if len(f) != 3 {
				return false
			}
			got, _ := strconv.Atoi(f[0])
			lo, _ := strconv.ParseFloat(f[1], 64)
			hi, _ := strconv.ParseFloat(f[2], 64)
			return got >= n && lo >= 0.154-1e-6 && hi <= 0.231+1e-6
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(origin+"/meters/piso"), chromedp.WaitVisible("#history")); err != nil {
		t.Fatal(err)
	}
	waitEval(t, ctx, "the history at each hour's mean power", values, inRange(180))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`echarts.getInstanceByDom(document.getElementById("history")).dispatchAction({type: "dataZoom", start: 97, end: 100})`)); err != nil {
		t.Fatal(err)
	}
	waitEval(t, ctx, "zoom fetches the archived minutes", `document.getElementById("history-step").textContent`, func(s string) bool { return s == "Resolution: per minute" })
	waitEval(t, ctx, "the zoomed history at each hour's mean power", values, inRange(150))
	blog.check(t, origin)
}
