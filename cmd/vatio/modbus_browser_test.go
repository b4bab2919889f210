package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vatio-energy/vatio/internal/testutil/modbustest"
)

// TestModbusInBrowser adds an SDM630 served by pymodbus on the settings
// page in headless Chromium, as an admin would, and reads its phases on
// its meter page, on a desktop and on a 360 px phone: every value on the
// screen, nothing cut off or scrolling sideways.
func TestModbusInBrowser(t *testing.T) {
	sim := modbustest.Start(t, "tcp", "127.0.0.1:0", nil, map[int][]modbustest.Value{5: sdm630()})
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

	// The form, filled as a person would, the profile chosen in its list.
	err = chromedp.Do(ctx, chromedp.Navigate(origin+"/settings"), chromedp.WaitVisible("#modbus-form"),
		chromedp.SendKeys("#modbus-name", "plant-main"),
		chromedp.SendKeys("#modbus-url", "tcp://"+sim.Addr),
		chromedp.SendKeys("#modbus-unit", "5"),
		chromedp.SetValue("#modbus-profile", "sdm630"),
		chromedp.SendKeys("#modbus-interval", "1 s"),
		chromedp.Click("#modbus-save"),
		chromedp.WaitVisible("#settings-done"))
	if err != nil {
		t.Fatal(err)
	}
	answering := `tr[data-device="plant-main"][data-answering="true"]`
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible("#modbus")); err != nil {
			t.Fatal(err)
		}
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('`+answering+`').length`))
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("plant-main is not shown answering on the settings page")
		}
	}
	screenshot(t, ctx, "settings-modbus-phone", 360, 740, "#modbus-form")

	// Its page has the Phases panel: every phase's values on the screen.
	if err := chromedp.Do(ctx, chromedp.Navigate(origin+"/meters/plant-main"), chromedp.WaitVisible("#phases-table")); err != nil {
		t.Fatal(err)
	}
	text := waitEval(t, ctx, "the Phases panel", `document.getElementById("phases").innerText`, func(s string) bool {
		return strings.Contains(s, "231.2 V")
	})
	for _, want := range []string{"L1", "L2", "L3", "230.1 V", "229.8 V", "6.49 A", "1.50 kW", "50.01 Hz", "Imbalance"} {
		if !strings.Contains(text, want) {
			t.Errorf("the Phases panel lacks %q:\n%s", want, text)
		}
	}
	for _, w := range []int64{1280, 360} {
		screenshot(t, ctx, fmt.Sprintf("meter-phases-%d", w), w, 800, "#phases-table")
		// Every cell of the panel within the screen and its panel (a
		// phone's table drops its header row, kept for screen readers).
		cut, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(function () {
			var panel = document.getElementById("phases").getBoundingClientRect();
			var out = [];
			document.querySelectorAll("#phases td, #phases th, #phases p").forEach(function (el) {
				var r = el.getBoundingClientRect();
				if (r.width === 0 || getComputedStyle(el.closest("thead") || el).clip === "rect(0px, 0px, 0px, 0px)") return; // hidden for screen readers only
				if (r.left < panel.left - 0.5 || r.right > panel.right + 0.5 || r.right > window.innerWidth) out.push(el.innerText + " " + Math.round(r.left) + "-" + Math.round(r.right));
			});
			return out.join("; ");
		})()`))
		if err != nil {
			t.Fatal(err)
		}
		if cut != "" {
			t.Errorf("at %d px, Phases panel cells outside the panel or the screen (panel %s): %s", w, "#phases", cut)
		}
	}
	blog.check(t, origin)
}
