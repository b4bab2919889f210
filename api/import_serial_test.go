package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestImportsRunOneAtATime sends an import while another is still being
// read: it is refused at once, 503 with Retry-After, and nothing of it is
// stored; the first then completes, and an import after it runs.
func TestImportsRunOneAtATime(t *testing.T) {
	h := start(t)
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, h.url+"/api/v1/meters/m1/import", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/csv")
	first := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			resp = nil
		}
		first <- resp
	}()
	// Once 8 MB of (blank) lines are taken, more than any buffer on the
	// way holds, the server is reading the first import's body.
	if _, err := io.WriteString(pw, "timestamp,power_w\n"+strings.Repeat("\n", 8<<20)); err != nil {
		t.Fatal(err)
	}
	reading := t0.Format(time.RFC3339) + ",100\n"
	resp, err := http.Post(h.url+"/api/v1/meters/m2/import", "text/csv", strings.NewReader("timestamp,power_w\n"+reading))
	if err != nil {
		t.Fatal(err)
	}
	var e apiError
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(e.Error+e.Detail, "another import is running") {
		t.Errorf("import during another = %d (Retry-After %q) %+v, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), e)
	}
	if _, err := h.store.Meter("m2"); err == nil {
		t.Error("the refused import stored meter m2")
	}
	io.WriteString(pw, reading)
	pw.Close()
	if r := <-first; r == nil || r.StatusCode != 200 {
		t.Fatalf("first import = %v, want 200", r)
	} else {
		r.Body.Close()
	}
	if code := h.post(t, "/api/v1/meters/m2/import", "text/csv", "timestamp,power_w\n"+reading, nil); code != 200 {
		t.Errorf("import after the first = %d, want 200", code)
	}
}

// TestImportRefusesTooManyReadingsAndTheFuture sends 26 years of daily kWh,
// which would be stored as 1.4 M readings, and a reading two minutes ahead
// of the server's clock: each is refused, 400 naming why, with nothing
// stored.
func TestImportRefusesTooManyReadingsAndTheFuture(t *testing.T) {
	h := start(t)
	var b strings.Builder
	b.WriteString("start,energy_kwh\n")
	for i := range 9800 {
		b.WriteString(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i).Format(time.RFC3339) + ",12\n")
	}
	var e apiError
	if code := h.post(t, "/api/v1/meters/m1/import?interval=24h", "text/csv", b.String(), &e); code != 400 || !strings.Contains(e.Detail, "more than 600000 readings") || !strings.Contains(e.Detail, "nothing was imported") {
		t.Errorf("26 years of days = %d %+v, want 400 naming the limit", code, e)
	}
	ahead := "timestamp,power_w\n" + time.Now().Add(2*time.Minute).UTC().Format(time.RFC3339) + ",50000\n"
	if code := h.post(t, "/api/v1/meters/m1/import", "text/csv", ahead, &e); code != 400 || !strings.Contains(e.Detail, "later than the import's time") {
		t.Errorf("a reading ahead = %d %+v, want 400", code, e)
	}
	if _, err := h.store.Meter("m1"); err == nil {
		t.Error("a refused import stored meter m1")
	}
}
