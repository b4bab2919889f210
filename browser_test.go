package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/vatio-energy/vatio/internal/mqtttest"
)

// screenshotDir is where the browser test leaves screenshots of the
// dashboard, for people to look at (CI keeps them as artefacts).
const screenshotDir = "testdata/screenshots"

// browser starts headless Chromium (Debian's chromium package). Outside CI a
// machine without it skips the browser tests; in CI (CI=true) it fails.
func browser(t *testing.T) (context.Context, *browserLog) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium not found: .ci/run must install Debian's chromium package")
		}
		t.Skip("chromium not found: apt-get install chromium to run the browser tests")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	log := &browserLog{}
	err = chromedp.Listen(ctx, func(ev any) {
		log.mu.Lock()
		defer log.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			log.requests = append(log.requests, ev.Request.URL)
		case *runtime.EventExceptionThrown:
			msg := ev.ExceptionDetails.Text
			if ex := ev.ExceptionDetails.Exception; ex != nil {
				msg += " " + ex.Description
			}
			log.errors = append(log.errors, msg)
		case *runtime.EventConsoleAPICalled:
			if string(ev.Type) == "error" {
				var args []string
				for _, a := range ev.Args {
					args = append(args, fmt.Sprint(a.Description, string(a.Value)))
				}
				log.errors = append(log.errors, "console.error "+strings.Join(args, " "))
			}
		}
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	return ctx, log
}

type browserLog struct {
	mu       sync.Mutex
	requests []string
	errors   []string
}

func (l *browserLog) check(t *testing.T, origin string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, u := range l.requests {
		if !strings.HasPrefix(u, origin+"/") && !strings.HasPrefix(u, "data:") {
			t.Errorf("the page requested %s, outside %s", u, origin)
		}
	}
	for _, e := range l.errors {
		t.Errorf("browser error: %s", e)
	}
}

// cardPower is the text of a meter's power on the page, "" without a card.
func cardPower(meterID string) string {
	return fmt.Sprintf(`(function () {
		var el = document.querySelector('article.card[data-meter=%q] .power');
		return el ? el.textContent : "";
	})()`, meterID)
}

// chartPoints counts the points of a meter's series on the chart.
func chartPoints(meterID string) string {
	return fmt.Sprintf(`(function () {
		var el = document.getElementById("power");
		var chart = el && window.echarts && echarts.getInstanceByDom(el);
		if (!chart) return -1;
		var s = chart.getOption().series.filter(function (s) { return s.id === %q; })[0];
		return s ? s.data.length : 0;
	})()`, meterID)
}

func waitEval(t *testing.T, ctx context.Context, what, expr string, ok func(string) bool) string {
	t.Helper()
	var last string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		last = fmt.Sprint(v)
		if ok(last) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: still %q after 15s", what, last)
	return last
}

// TestDashboardInBrowser loads the dashboard in headless Chromium: the empty
// page, a first reading appearing without a reload, a later reading updating
// the card and the chart within the polling interval, no request leaving
// Vatio, no script error, and no horizontal scrolling on a 360 px phone.
func TestDashboardInBrowser(t *testing.T) {
	ctx, blog := browser(t)
	v := startVatio(t, t.TempDir())
	origin := "http://" + v.http
	if err := chromedp.Do(ctx, chromedp.Navigate(origin+"/"), chromedp.WaitVisible("#empty")); err != nil {
		t.Fatal(err)
	}
	c := mqtttest.V3(t, v.mqtt)
	mqtttest.Publish3(t, c, "energy/consumption", 1, false, "2.5")
	waitEval(t, ctx, "first reading's card", cardPower("default"), func(s string) bool { return strings.Contains(s, "2.5") })
	waitEval(t, ctx, "chart with the first reading", chartPoints("default"), func(s string) bool { return s == "1" })

	mqtttest.Publish3(t, c, "energy/consumption", 1, false, "3.75")
	mqtttest.Publish3(t, c, "energy/consumption/plant-1", 1, false, `{"power_w": 1200}`)
	waitEval(t, ctx, "updated card", cardPower("default"), func(s string) bool { return strings.Contains(s, "3.75") })
	waitEval(t, ctx, "chart with both readings", chartPoints("default"), func(s string) bool { return s == "2" })
	waitEval(t, ctx, "new meter's card", cardPower("plant-1"), func(s string) bool { return strings.Contains(s, "1.2") })
	waitEval(t, ctx, "new meter's series", chartPoints("plant-1"), func(s string) bool { return s == "1" })

	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	shoot := func(name string, w, h int64) {
		err := chromedp.Do(ctx, chromedp.EmulateViewport(w, h), chromedp.Reload(), chromedp.WaitVisible("#power"),
			chromedp.Sleep(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(screenshotDir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shoot("overview-desktop.png", 1280, 900)
	shoot("overview-phone.png", 360, 740)
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > document.documentElement.clientWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		t.Error("at 360 px the page scrolls horizontally")
	}
	blog.check(t, origin)
}
