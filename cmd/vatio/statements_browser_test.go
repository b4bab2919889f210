package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/vatio-energy/vatio/internal/testutil/smtptest"
)

// TestStatementsInBrowser opens the Statements page in headless Chromium
// as an admin: a tenant added with its form, last month's statement of
// the site previewed with its figures, its PDF fetched from the page's
// link, all on a desktop and a 360 px phone.
func TestStatementsInBrowser(t *testing.T) {
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
	// Last month's history of a main meter and a sub-meter: 1 kW and 400 W
	// for its first two days.
	first := time.Now().AddDate(0, -1, 0)
	first = time.Date(first.Year(), first.Month(), 1, 0, 0, 0, 0, time.Local)
	var csv strings.Builder
	csv.WriteString("time,power_w\n")
	for at := first; at.Before(first.AddDate(0, 0, 2)); at = at.Add(5 * time.Minute) {
		fmt.Fprintf(&csv, "%s,1000\n", at.UTC().Format(time.RFC3339))
	}
	for _, id := range []string{"office", "office-2a"} {
		body := csv.String()
		if id == "office-2a" {
			body = strings.ReplaceAll(body, ",1000\n", ",400\n")
		}
		req, _ := http.NewRequest("POST", origin+"/api/v1/meters/"+id+"/import", strings.NewReader(body))
		req.Header.Set("Content-Type", "text/csv")
		resp, err := apiClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("import %s: %v %v", id, resp, err)
		}
		resp.Body.Close()
	}
	req, _ := http.NewRequest("PATCH", origin+"/api/v1/meters/office-2a", strings.NewReader(`{"parent": "office"}`))
	req.Header.Set("Content-Type", "application/merge-patch+json")
	if resp, err := apiClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("parent: %v %v", resp, err)
	}
	// A tenant, with the page's form.
	err = chromedp.Do(ctx, chromedp.Navigate(origin+"/statements"), chromedp.WaitVisible("#tenant-form"),
		chromedp.SendKeys("#tenant-id", "acme"),
		chromedp.SendKeys("#tenant-name", "Acmé S.L."),
		chromedp.SendKeys("#tenant-meters", "office-2a"),
		chromedp.Click("#tenant-save"),
		chromedp.WaitVisible("#statements-done"))
	if err != nil {
		t.Fatal(err)
	}
	// The site's statement of last month, chosen in the form.
	err = chromedp.Do(ctx, chromedp.SetValue("#statement-subject", "site:default"),
		chromedp.SetValue("#statement-month", first.Format("2006-01")),
		chromedp.Click("#statement-show"),
		chromedp.WaitVisible(`//h2[@id="statement-heading"][text()="default"]`))
	if err != nil {
		t.Fatal(err)
	}
	text := waitEval(t, ctx, "the statement", `document.getElementById("statement").innerText`, func(s string) bool { return strings.Contains(s, "Total") })
	// 47 h 55 min at 1 kW.
	if !strings.Contains(text, "47.92") || !strings.Contains(text, "Download PDF") {
		t.Errorf("the statement on the page:\n%s", text)
	}
	lines := waitEval(t, ctx, "the meters' parts", `document.getElementById("statement-lines").innerText`, func(string) bool { return true })
	if !strings.Contains(lines, "office-2a") || !strings.Contains(lines, "not sub-metered") {
		t.Errorf("the meters' parts:\n%s", lines)
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async function () {
		var r = await fetch(document.getElementById("statement-pdf").href);
		var b = new Uint8Array(await r.arrayBuffer());
		return r.status + " " + r.headers.get("Content-Type") + " " + String.fromCharCode(b[0], b[1], b[2], b[3]);
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if got != "200 application/pdf %PDF" {
		t.Errorf("the PDF link gives %q", got)
	}
	for _, w := range []int64{1280, 360} {
		screenshot(t, ctx, fmt.Sprintf("statements-%d", w), w, 900, "#statement-summary")
	}

	// No config file: the page says no SMTP server is set and leads to
	// the Settings page's form, whose test mail and schedule's "send now"
	// reach a real SMTP server.
	box := smtptest.Start(t)
	err = chromedp.Do(ctx, chromedp.Navigate(origin+"/statements"), chromedp.WaitVisible("#schedules-no-mail"),
		chromedp.Click("#schedules-set-mail"), chromedp.WaitVisible("#mail-form"),
		chromedp.SendKeys("#mail-addr", box.Addr),
		chromedp.SetValue("#mail-tls", "none"),
		chromedp.SendKeys("#mail-from", "Vatio <vatio@example.org>"),
		chromedp.SendKeys("#mail-to", "ops@example.org"),
		chromedp.Click("#mail-save"),
		chromedp.WaitVisible(`#mail-source[data-source="database"]`),
		chromedp.SendKeys("#mail-test-to", "me@example.org"),
		chromedp.Click("#mail-test"),
		chromedp.WaitVisible("#mail-tested"))
	if err != nil {
		t.Fatal(err)
	}
	if box.Count() != 1 || !strings.Contains(box.Data(0), "To: me@example.org") {
		t.Fatalf("the test mail: %d mails", box.Count())
	}
	err = chromedp.Do(ctx, chromedp.Navigate(origin+"/statements"), chromedp.WaitVisible("#schedule-form"),
		chromedp.SendKeys("#schedule-id", "acme-monthly"),
		chromedp.SetValue("#schedule-subject", "tenant:acme"),
		chromedp.SendKeys("#schedule-day", "1"),
		chromedp.SendKeys("#schedule-to", "billing@acme.example"),
		chromedp.Click("#schedule-save"),
		chromedp.WaitVisible("#schedule-acme-monthly-send"),
		chromedp.Click("#schedule-acme-monthly-send"),
		chromedp.WaitVisible(`#schedule-acme-monthly p.delivery[data-state="sent"]`)) // not the banner of the save before
	if err != nil {
		t.Fatal(err)
	}
	if box.Count() != 2 || !strings.Contains(box.Data(1), "Content-Type: application/pdf") || !strings.Contains(box.Data(1), "To: billing@acme.example") {
		t.Fatalf("the statement by mail: %d mails", box.Count())
	}
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#schedules-no-mail").length`)); n != 0 {
		t.Error("the page still says no SMTP server is set")
	}
	// Sent, the period's button sends it again only once asked.
	again, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("schedule-acme-monthly-send").textContent + "|" +
		(document.getElementById("schedule-acme-monthly-send").form.dataset.confirm || "")`))
	if err != nil || !strings.Contains(again, " again|") || !strings.Contains(again, "was sent already") {
		t.Errorf("the send button once sent: %q %v", again, err)
	}
	blog.check(t, origin)
}
