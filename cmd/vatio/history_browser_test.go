package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vatio-energy/vatio/internal/testutil/mqtttest"
)

// TestHistoryIsNotPowerNowInBrowser: in a real browser, a meter imported
// through the API with yesterday's history is offline, never heard, and
// not in "Power now"; a meter replaying its buffer over MQTT (readings it
// stamped an hour ago) turns online but adds nothing until it sends a
// reading of the present; the live view keeps that as readings arrive.
func TestHistoryIsNotPowerNowInBrowser(t *testing.T) {
	ctx, blog := browser(t)
	v := startVatio(t, t.TempDir())
	origin := "http://" + v.http
	err := chromedp.Do(ctx, chromedp.Navigate(origin+"/"), chromedp.WaitVisible(`input[name="confirm"]`),
		chromedp.SetValue(`input[name="password"]`, "a long enough password"),
		chromedp.SetValue(`input[name="confirm"]`, "a long enough password"),
		chromedp.SetValue(`input[name="token"]`, testAdminToken),
		chromedp.Click(`button[type="submit"]`),
		chromedp.WaitVisible("#empty"),
		chromedp.Navigate(origin+"/meters")) // the empty overview reloads at the first reading
	if err != nil {
		t.Fatal(err)
	}
	yesterday := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Minute)
	var csv strings.Builder
	for i := range 60 {
		fmt.Fprintf(&csv, "%s,2510\n", yesterday.Add(time.Duration(i)*time.Minute).Format(time.RFC3339))
	}
	req, _ := http.NewRequest(http.MethodPost, origin+"/api/v1/meters/old/import", strings.NewReader(csv.String()))
	req.Header.Set("Content-Type", "text/csv")
	res, err := apiClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("import = %d", res.StatusCode)
	}
	// An hour's energy from the utility: its newest reading is the hour's
	// end, not a minute before it (stored a nanosecond before).
	hourStart := time.Now().UTC().Add(-30 * time.Hour).Truncate(time.Hour)
	req, _ = http.NewRequest(http.MethodPost, origin+"/api/v1/meters/hourly/import?interval=1h",
		strings.NewReader("start,energy_kwh\n"+hourStart.Format(time.RFC3339)+",0.5\n"))
	req.Header.Set("Content-Type", "text/csv")
	if res, err = apiClient.Do(req); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("interval import = %d", res.StatusCode)
	}
	c := mqtttest.V3(t, v.mqtt)
	mqtttest.Publish3(t, c, "energy/consumption/live", 1, false, `{"power_w": 300}`)
	stamped := func(ago time.Duration, w int) string {
		return fmt.Sprintf(`{"power_w": %d, "ts": %q}`, w, time.Now().Add(-ago).UTC().Format(time.RFC3339))
	}
	mqtttest.Publish3(t, c, "energy/consumption/buffered", 1, false, stamped(2*time.Hour, 4000))
	if err := chromedp.Do(ctx, chromedp.Navigate(origin+"/"), chromedp.WaitVisible("#cards")); err != nil {
		t.Fatal(err)
	}
	sitePower := `document.getElementById("site-power").textContent`
	waitEval(t, ctx, "Power now without the imported and the replaying meter", sitePower, func(s string) bool { return s == "300 W" })
	waitEval(t, ctx, "online count", `document.getElementById("online-count").textContent`, func(s string) bool { return s == "2" })
	waitEval(t, ctx, "the imported meter's card", `document.querySelector('article.card[data-meter="old"]').className + " | " +
		document.querySelector('article.card[data-meter="old"] .card-seen').textContent`, func(s string) bool {
		return strings.Contains(s, "offline") && strings.Contains(s, "Last heard never (history only)")
	})
	end := hourStart.Add(time.Hour).In(time.Local).Format("15:04")
	waitEval(t, ctx, "the imported hour's newest reading", `document.querySelector('article.card[data-meter="hourly"] time.read').textContent`,
		func(s string) bool { return strings.HasSuffix(s, end) })
	// The replay goes on: an hour ago now. Heard, online, not now.
	mqtttest.Publish3(t, c, "energy/consumption/buffered", 1, false, stamped(time.Hour, 4100))
	waitEval(t, ctx, "the replayed reading on its card", cardPower("buffered"), func(s string) bool { return s == "4.10 kW" })
	mqtttest.Publish3(t, c, "energy/consumption/live", 1, false, `{"power_w": 500}`)
	waitEval(t, ctx, "a live reading", cardPower("live"), func(s string) bool { return s == "500 W" })
	waitEval(t, ctx, "Power now without the replayed reading", sitePower, func(s string) bool { return s == "500 W" })
	// Its card is greyed, online but not now; the live one's is not.
	cardClass := func(id string) string {
		return `document.querySelector('article.card[data-meter="` + id + `"]').className`
	}
	waitEval(t, ctx, "the replaying meter's card greyed", cardClass("buffered"), func(s string) bool {
		return strings.Contains(s, "online") && strings.Contains(s, "not-now")
	})
	waitEval(t, ctx, "the live meter's card", cardClass("live"), func(s string) bool { return !strings.Contains(s, "not-now") })
	// Caught up: a reading of the present counts.
	mqtttest.Publish3(t, c, "energy/consumption/buffered", 1, false, `{"power_w": 1000}`)
	waitEval(t, ctx, "Power now with the meter caught up", sitePower, func(s string) bool { return s == "1.50 kW" })
	waitEval(t, ctx, "the caught-up meter's card", cardClass("buffered"), func(s string) bool { return !strings.Contains(s, "not-now") })
	blog.check(t, origin)
}
