package dashboard_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/api"
)

// datadisFile is the Datadis file of the tests: two days of each DST change.
var datadisFile = filepath.Join("..", "internal", "meter", "testdata", "history", "datadis-dst.csv")

// datadisDays reads a Datadis file's CUPS and its kWh by local date
// (2006-01-02), as a user would add them up.
func datadisDays(t *testing.T, file []byte) (string, map[string]float64) {
	t.Helper()
	days := map[string]float64{}
	cups := ""
	for i, line := range strings.Split(strings.TrimSpace(string(file)), "\n") {
		if i == 0 {
			continue
		}
		f := strings.Split(strings.TrimSpace(line), ";")
		kwh, err := strconv.ParseFloat(strings.Replace(f[3], ",", ".", 1), 64)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		d, err := time.Parse("02/01/2006", f[1])
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		cups = f[0]
		days[d.Format(time.DateOnly)] += kwh
	}
	return cups, days
}

// importPost posts the import form as a browser does: multipart, its
// fields (the CSRF token first) before its file. lang, when not "", is the
// page's language.
func (b *browser) importPost(fields [][2]string, name string, file []byte, lang string) (*http.Response, string) {
	b.t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for _, f := range fields {
		w.WriteField(f[0], f[1])
	}
	if file != nil {
		fw, err := w.CreateFormFile("file", name)
		if err != nil {
			b.t.Fatal(err)
		}
		fw.Write(file)
	}
	w.Close()
	req, err := http.NewRequest("POST", b.s.url+"/meters/import", &body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	cookie := b.cookie
	if lang != "" {
		cookie += "; vatio_lang=" + lang
	}
	req.Header.Set("Cookie", cookie)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res, string(out)
}

// importFields are the form's fields as a user leaves them: the meter and
// the advanced ones empty (auto).
func (b *browser) importFields(meterID string) [][2]string {
	return [][2]string{{"csrf", b.csrf}, {"meter", meterID}, {"format", ""}, {"interval", ""}, {"time", ""}, {"zone", ""}}
}

var importErrors = regexp.MustCompile(`(?s)<ul class="errors" id="import-errors" role="alert">(.*?)</ul>`)

// TestImportForm: an operator imports a Datadis file through the Meters
// page's form, without naming the meter (its CUPS names it); the redirect
// says what was imported and links to the meter, whose days the API gives
// as the file's totals and whose page charts them; a viewer sees no form
// and may not post it, nor may a post without the CSRF token; a bad file
// comes back with its line, in the reader's language, and nothing stored.
func TestImportForm(t *testing.T) {
	s := startSite(t)
	file, err := os.ReadFile(datadisFile)
	if err != nil {
		t.Fatal(err)
	}
	cups, days := datadisDays(t, file)

	viewer := s.login(t, "viewer")
	if _, page := viewer.get("/meters"); strings.Contains(page, `id="import-form"`) {
		t.Error("a viewer sees the import form")
	}
	if res, body := viewer.importPost(viewer.importFields(""), "datadis.csv", file, ""); res.StatusCode != http.StatusForbidden {
		t.Errorf("a viewer's import: %d %s, want 403", res.StatusCode, body)
	}
	op := s.login(t, "operator")
	noCSRF := op.importFields("")[1:]
	if res, body := op.importPost(noCSRF, "datadis.csv", file, ""); res.StatusCode != http.StatusForbidden {
		t.Errorf("an import without the CSRF token: %d %s, want 403", res.StatusCode, body)
	}
	if _, err := s.st.Meter(cups); err == nil {
		t.Fatalf("meter %s exists after refused imports", cups)
	}

	_, page := op.get("/meters")
	for _, id := range []string{"import-form", "import-file", "import-meter", "import-submit", "import-format", "import-interval", "import-time", "import-zone"} {
		if !strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("the operator's Meters page has no #%s", id)
		}
	}

	res, body := op.importPost(op.importFields(""), "datadis.csv", file, "")
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("import: %d, want 303\n%s", res.StatusCode, body)
	}
	loc := res.Header.Get("Location")
	u, err := url.Parse(loc)
	if err != nil || u.Path != "/meters" || u.Query().Get("imported") != cups || u.Query().Get("format") != "datadis" ||
		u.Query().Get("first") != "2026-03-28" || u.Query().Get("last") != "2026-10-26" ||
		u.Query().Get("rows") != strconv.Itoa(strings.Count(string(file), "\n")-1) || u.Query().Get("intervals") != u.Query().Get("rows") {
		t.Fatalf("import redirects to %q", loc)
	}
	_, page = op.get(u.RequestURI())
	result := regexp.MustCompile(`(?s)<p class="notice done" id="import-result"[^>]*>(.*?)</p>`).FindStringSubmatch(page)
	if result == nil {
		t.Fatalf("no #import-result after the import:\n%s", page)
	}
	for _, want := range []string{cups, "Datadis", "28 Mar 2026", "26 Oct 2026", `href="/meters/` + cups + `#daily"`,
		u.Query().Get("rows") + " intervals of energy", "(" + u.Query().Get("readings") + " points stored)"} {
		if !strings.Contains(result[1], want) {
			t.Errorf("#import-result %q lacks %q", result[1], want)
		}
	}

	// The file's days, DST days (23 and 25 hours) included, through the API.
	madridDay := func(d string) time.Time { t0, _ := time.ParseInLocation(time.DateOnly, d, madrid); return t0 }
	q := url.Values{"interval": {"day"}, "from": {madridDay("2026-03-28").Format(time.RFC3339)}, "to": {madridDay("2026-10-27").Format(time.RFC3339)}}
	res, body = op.get("/api/v1/meters/" + cups + "/energy?" + q.Encode())
	if res.StatusCode != http.StatusOK {
		t.Fatalf("energy: %d %s", res.StatusCode, body)
	}
	var got struct {
		Points []struct {
			T         time.Time `json:"t"`
			EnergyKWh float64   `json:"energy_kwh"`
		} `json:"points"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	seen := map[string]float64{}
	for _, p := range got.Points {
		if p.EnergyKWh != 0 {
			seen[p.T.In(madrid).Format(time.DateOnly)] = p.EnergyKWh
		}
	}
	if len(seen) != len(days) {
		t.Errorf("days with energy %v, the file's %v", seen, days)
	}
	for d, kwh := range days {
		if math.Abs(seen[d]-kwh) > 1e-9 {
			t.Errorf("%s: %.9f kWh, the file says %.3f", d, seen[d], kwh)
		}
	}

	// The meter's page charts the imported days (the last ones, 30 days up
	// to its newest reading).
	_, page = op.get("/meters/" + cups)
	daily := seriesDataOf(t, chartOption(t, page, "daily"))
	for _, d := range []string{"2026-10-25", "2026-10-26"} {
		want := strconv.FormatFloat(math.Round(days[d]*1000)/1000, 'f', -1, 64)
		if !strings.Contains(daily, want) {
			t.Errorf("the meter page's daily chart %s lacks %s's %s kWh", daily, d, want)
		}
	}

	if i := strings.Index(page, "30 days to"); i < 0 || !strings.Contains(page[i:i+40], "26 Oct") {
		t.Errorf("the meter page does not say its 30 days end on 26 Oct, the file's last day")
	}

	// The meter's page links to the form, its id filled in, for
	// operators only.
	if want := `id="meter-import-link" href="/meters?meter=` + cups + `#import"`; !strings.Contains(page, want) {
		t.Errorf("the operator's meter page lacks %s", want)
	}
	if _, form := op.get("/meters?meter=" + cups); !strings.Contains(form, `id="import-meter" name="meter" value="`+cups+`"`) {
		t.Error("/meters?meter= does not fill in the import form's meter")
	}
	if _, vpage := viewer.get("/meters/" + cups); strings.Contains(vpage, "meter-import-link") {
		t.Error("a viewer's meter page links to the import form")
	}

	// The import is audited as the operator's change.
	entries, err := s.audit.List(50, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		if e.Who == "operator" && strings.Contains(e.Detail, "history of "+cups+" imported") {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit entry of the import in %+v", entries)
	}

	// A bad line: its number beside the form, in Spanish for a Spanish
	// reader, and nothing stored.
	bad := []byte("timestamp,power_w\n2026-11-01T10:00:00Z,100\n2026-11-01T10:01:00Z,lots\n")
	res, body = op.importPost(op.importFields("garage"), "garage.csv", bad, "es")
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("a bad file: %d, want 400", res.StatusCode)
	}
	errs := importErrors.FindStringSubmatch(body)
	if errs == nil || !strings.Contains(errs[1], "La línea 3 del archivo") {
		t.Errorf("a bad file's errors: %v", errs)
	}
	if !strings.Contains(body, `id="import-meter" name="meter" value="garage"`) {
		t.Error("the refused form lost the meter typed")
	}
	if _, err := s.st.Meter("garage"); err == nil {
		t.Error("a bad file stored a meter")
	}
	// The same in English.
	_, body = op.importPost(op.importFields("garage"), "garage.csv", bad, "en")
	if errs := importErrors.FindStringSubmatch(body); errs == nil || !strings.Contains(errs[1], "Line 3 of the file") {
		t.Errorf("a bad file's errors in English: %v", errs)
	}
}

// seriesDataOf returns the data of a chart's first series as JSON.
func seriesDataOf(t *testing.T, opt map[string]any) string {
	t.Helper()
	series, _ := opt["series"].([]any)
	if len(series) == 0 {
		t.Fatal("a chart without series")
	}
	b, _ := json.Marshal(series[0].(map[string]any)["data"])
	return string(b)
}

// TestImportFormRefusals: each field the form refuses comes back with its
// error beside it, and nothing is stored: a meter id that is none, a CSV
// that names no meter, an unknown format, a bad interval or zone, a file
// past the import limit, and no file at all.
func TestImportFormRefusals(t *testing.T) {
	s := startSite(t, func(o *api.Options) { o.ImportLimitBytes = 2048 })
	op := s.login(t, "operator")
	csv := []byte("timestamp,power_w\n2026-11-01T10:00:00Z,100\n2026-11-01T10:01:00Z,120\n")
	big := []byte("timestamp,power_w\n" + strings.Repeat("2026-11-01T10:00:00Z,100\n", 200))
	with := func(meterID, key, value string) [][2]string {
		f := op.importFields(meterID)
		for i := range f {
			if f[i][0] == key {
				f[i][1] = value
			}
		}
		return f
	}
	for _, tc := range []struct {
		name   string
		fields [][2]string
		file   []byte
		field  string
		want   string
	}{
		{"bad meter id", op.importFields("a b/c"), csv, "meter", "Not a meter id"},
		{"csv without meter", op.importFields(""), csv, "meter", "Say which meter"},
		{"unknown format", with("garage", "format", "xlsx"), csv, "format", "Unknown format"},
		{"bad interval", with("garage", "interval", "soon"), csv, "interval", "Give a duration"},
		{"bad zone", with("garage", "zone", "Mars/Olympus"), csv, "zone", "IANA time zone"},
		{"zone of a csv", with("garage", "zone", "Europe/Madrid"), csv, "file", "zone is for Datadis files"},
		{"too big", op.importFields("garage"), big, "file", "import limit"},
		{"no file", op.importFields("garage"), nil, "file", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := op.importPost(tc.fields, "garage.csv", tc.file, "en")
			if res.StatusCode != http.StatusBadRequest {
				t.Fatalf("%d, want 400\n%s", res.StatusCode, body)
			}
			errs := importErrors.FindStringSubmatch(body)
			if errs == nil || !strings.Contains(errs[1], fmt.Sprintf(`data-field="%s"`, tc.field)) || !strings.Contains(errs[1], tc.want) {
				t.Errorf("errors %v, want field %s saying %q", errs, tc.field, tc.want)
			}
			if _, err := s.st.Meter("garage"); err == nil {
				t.Error("a refused import stored a meter")
			}
		})
	}
}

// TestImportRefusalsInSpanish posts bad files of each format on the Spanish
// page: the reason is in Spanish, the file's own values quoted as they
// were, and nothing is stored.
func TestImportRefusalsInSpanish(t *testing.T) {
	s := startSite(t)
	op := s.login(t, "operator")
	gb := func(flow string) []byte {
		return []byte(`<feed xmlns="http://www.w3.org/2005/Atom"><entry><link rel="self" href="U/1/MeterReading/1"/><link rel="related" href="RT/1"/><content><MeterReading/></content></entry>` +
			`<entry><link rel="self" href="RT/1"/><content><ReadingType><flowDirection>` + flow + `</flowDirection><uom>72</uom></ReadingType></content></entry>` +
			`<entry><link rel="up" href="U/1/MeterReading/1/IntervalBlock"/><content><IntervalBlock><IntervalReading><timePeriod><duration>3600</duration><start>1764000000</start></timePeriod><value>100</value></IntervalReading></IntervalBlock></content></entry></feed>`)
	}
	for _, tc := range []struct {
		name, file string
		body       []byte
		want       string
	}{
		{"datadis hour 25", "datadis.csv", []byte("CUPS;Fecha;Hora;Consumo_kWh\nES0031405123456789JN0F;05/11/2026;25;0,2\n"),
			"La línea 2 del archivo no es válida, así que no se importó nada: hora 25: el 05/11/2026 tiene 24 horas"},
		{"datadis decimal", "datadis.csv", []byte("CUPS;Fecha;Hora;Consumo_kWh\nES0031405123456789JN0F;05/11/2026;1;1.000,2,5\n"),
			`consumo: "1.000,2,5": coma o punto decimal, no ambos`},
		{"csv comma", "casa.csv", []byte("timestamp,power_w\n2026-11-01T10:00:00Z;100\n"),
			"se espera timestamp,power_w[,energy_wh] y hay 1 campos"},
		{"csv not a number", "casa.csv", []byte("timestamp,power_w\n2026-11-01T10:00:00Z,mucho\n"),
			`power_w: not_a_number: "mucho" no es un número`},
		{"green button flow", "casa.xml", gb("7"),
			"ReadingType flowDirection 7: Vatio importa 1 (consumida), 19 (vertida) y 4 (neta)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := op.importPost(op.importFields("casa"), tc.file, tc.body, "es")
			if res.StatusCode != http.StatusBadRequest {
				t.Fatalf("%d, want 400\n%s", res.StatusCode, body)
			}
			errs := importErrors.FindStringSubmatch(body)
			if errs == nil || !strings.Contains(html.UnescapeString(errs[1]), tc.want) {
				t.Errorf("errors %v, want %q", errs, tc.want)
			}
			if _, err := s.st.Meter("casa"); err == nil {
				t.Error("a refused import stored a meter")
			}
		})
	}
}
