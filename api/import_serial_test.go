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
