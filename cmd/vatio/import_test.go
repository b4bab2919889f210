package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math"
	neturl "net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/store"
)

func TestImportCommand(t *testing.T) {
	dir := t.TempDir()
	csvPath := filepath.Join(t.TempDir(), "history.csv.gz")
	f, err := os.Create(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	fmt.Fprintln(zw, "timestamp,power_w,energy_wh")
	t0 := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(zw, "%d,%d,%d\n", t0.Add(time.Duration(i)*time.Minute).Unix(), 500+i%100, i*10)
	}
	zw.Close()
	f.Close()

	noEnv := func(string) string { return "" }
	var out, errOut strings.Builder
	args := []string{"import", "-config", emptyConfig(t), "-data-dir", dir, "-meter", "plant-1", csvPath}
	if err := run(context.Background(), args, noEnv, &out, &errOut); err != nil {
		t.Fatalf("vatio import: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "imported 1000 readings of meter plant-1") || !strings.Contains(errOut.String(), "read 1001 lines") || !strings.Contains(errOut.String(), "stored 1000 of 1000") {
		t.Errorf("output %q, progress %q", out.String(), errOut.String())
	}

	// A file of energy intervals says its rows, and the points they became.
	hours := filepath.Join(t.TempDir(), "hours.csv")
	os.WriteFile(hours, []byte("start,energy_kwh\n2026-09-01T00:00:00Z,0.5\n2026-09-01T01:00:00Z,0.4\n2026-09-01T02:00:00Z,0.3\n2026-09-01T03:00:00Z,0.2\n"), 0o600)
	out.Reset()
	if err := run(context.Background(), []string{"import", "-config", emptyConfig(t), "-data-dir", dir, "-meter", "garage", hours}, noEnv, &out, io.Discard); err != nil {
		t.Fatalf("vatio import of intervals: %v", err)
	}
	points := regexp.MustCompile(`^imported 4 intervals of energy of meter garage from .*: (\d+) points stored, (\d+) new`).FindStringSubmatch(out.String())
	if points == nil || points[1] != points[2] || points[1] == "4" {
		t.Errorf("output of 4 hourly intervals %q, want them counted as 4 intervals and the (more) points they became", out.String())
	}

	bad := filepath.Join(t.TempDir(), "bad.csv")
	os.WriteFile(bad, []byte("2026-11-01T00:00:00Z,100\n2026-11-01T00:01:00Z,oops\n"), 0o600)
	err = run(context.Background(), []string{"import", "-config", emptyConfig(t), "-data-dir", dir, "-meter", "plant-1", bad}, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad file: %v, want an error naming line 2", err)
	}

	st, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.Meter("plant-1")
	if err != nil || m.Readings != 1000 || !m.First.Equal(t0) {
		t.Errorf("after import Meter = %+v, %v; want the 1000 readings of the good file only", m, err)
	}
	if err := st.CheckRollups("plant-1"); err != nil {
		t.Error(err)
	}
	// While the database is in use, import says how to reach the server.
	err = run(context.Background(), args, noEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "/api/v1/meters/plant-1/import") {
		t.Errorf("import while in use: %v", err)
	}
	st.Close()
}

// utilityDay is a day of a utility's file: its local date, and the kWh it
// gives as drawn and as sent to the grid.
type utilityDay struct {
	date    string
	in, out float64
}

// utilityFiles are files of the layouts utilities give, with the totals
// per day the files hold (summed from their rows when they were written).
var utilityFiles = []struct {
	name, file, zone, format, meter string
	told                            string // the format the answer names
	days                            []utilityDay
}{
	{"datadis", "datadis-dst.csv", "Europe/Madrid", "", "ES0031405123456789JN0F", "datadis", []utilityDay{
		{"2026-03-28", 25.868, 0}, {"2026-03-29", 26.490, 0}, // 23 hours
		{"2026-10-25", 22.332, 2.099}, {"2026-10-26", 17.622, 1.548}, // 25 hours
	}},
	{"datadis by the clock", "datadis-clock.csv", "Europe/Madrid", "datadis", "casa", "datadis", []utilityDay{
		{"2026-03-28", 25.868, 0}, {"2026-03-29", 26.490, 0},
		{"2026-10-25", 22.332, 2.099}, {"2026-10-26", 17.622, 1.548},
	}},
	{"green button", "greenbutton-dst.xml", "America/Los_Angeles", "", "home", "greenbutton", []utilityDay{
		{"2026-03-07", 26.939, 1.714495}, {"2026-03-08", 25.522, 2.795176}, // 23 hours
	}},
}

// utilityConfig is a configuration in zone with a flat tariff.
func utilityConfig(t *testing.T, zone string) string {
	p := filepath.Join(t.TempDir(), "config.yaml")
	cfg := "dashboard:\n  timezone: " + zone + "\ntariff:\n  currency: EUR\n  price_kwh: 0.2\n  export_price_kwh: 0.05\n"
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkDays asks inst for meter's energy per day and compares it with the
// file's days: kWh to the file's precision, and their cost.
func checkDays(t *testing.T, inst *instance, meterID, zone string, days []utilityDay) {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := time.ParseInLocation("2006-01-02", days[0].date, loc)
	last, _ := time.ParseInLocation("2006-01-02", days[len(days)-1].date, loc)
	url := fmt.Sprintf("http://%s/api/v1/meters/%s/energy?interval=day&from=%s&to=%s", inst.http, meterID,
		neturl.QueryEscape(first.Format(time.RFC3339)), neturl.QueryEscape(last.AddDate(0, 0, 1).Format(time.RFC3339)))
	var got struct {
		Points []struct {
			T         time.Time `json:"t"`
			EnergyKWh float64   `json:"energy_kwh"`
			ExportKWh float64   `json:"export_kwh"`
			Cost      float64   `json:"cost"`
		} `json:"points"`
	}
	if code := getJSON(t, url, &got); code != 200 {
		t.Fatalf("GET %s = %d", url, code)
	}
	byDate := map[string]int{}
	for i, p := range got.Points {
		byDate[p.T.In(loc).Format("2006-01-02")] = i
		if p.EnergyKWh != 0 || p.ExportKWh != 0 {
			if !slices.ContainsFunc(days, func(d utilityDay) bool { return d.date == p.T.In(loc).Format("2006-01-02") }) {
				t.Errorf("%s: %g kWh on %s, a day the file does not have", meterID, p.EnergyKWh, p.T.In(loc))
			}
		}
	}
	for _, d := range days {
		i, ok := byDate[d.date]
		if !ok {
			t.Errorf("%s: no point for %s in %+v", meterID, d.date, got.Points)
			continue
		}
		p := got.Points[i]
		cost := 0.2*d.in - 0.05*d.out // the API rounds it to four decimals
		if math.Abs(p.EnergyKWh-d.in) > 1e-9 || math.Abs(p.ExportKWh-d.out) > 1e-9 || math.Abs(p.Cost-cost) > 0.5e-4+1e-9 {
			t.Errorf("%s on %s: %.9f kWh drawn, %.9f sent, cost %.4f; the file says %.6f and %.6f, cost %.4f",
				meterID, d.date, p.EnergyKWh, p.ExportKWh, p.Cost, d.in, d.out, cost)
		}
	}
}

// TestImportUtilityFiles imports each utility's file through the HTTP API
// of a running Vatio and with `vatio import` into a stopped one, and checks
// that the API's energy per day (DST days included) is the file's.
func TestImportUtilityFiles(t *testing.T) {
	for _, f := range utilityFiles {
		t.Run(f.name, func(t *testing.T) {
			body, err := os.ReadFile(repoPath("internal/meter/testdata/history", f.file))
			if err != nil {
				t.Fatal(err)
			}
			cfg := utilityConfig(t, f.zone)

			// Through the API of a running Vatio.
			inst := startVatioWith(t, t.TempDir(), cfg)
			url := fmt.Sprintf("http://%s/api/v1/meters/%s/import", inst.http, f.meter)
			if f.format != "" {
				url += "?format=" + f.format
			}
			resp, err := apiClient.Post(url, "text/csv", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(answer), `"format":"`+f.told+`"`) {
				t.Fatalf("POST %s = %d %s", url, resp.StatusCode, answer)
			}
			checkDays(t, inst, f.meter, f.zone, f.days)
			inst.stop(t)

			// With vatio import, Vatio stopped.
			dir := t.TempDir()
			path := filepath.Join(t.TempDir(), f.file)
			os.WriteFile(path, body, 0o600)
			args := []string{"import", "-config", cfg, "-data-dir", dir}
			if f.format != "" {
				args = append(args, "-format", f.format)
			}
			if f.meter != "ES0031405123456789JN0F" { // a Datadis file names its meter by its CUPS
				args = append(args, "-meter", f.meter)
			}
			var out, errOut strings.Builder
			if err := run(context.Background(), append(args, path), testEnv, &out, &errOut); err != nil {
				t.Fatalf("vatio import: %v\n%s", err, errOut.String())
			}
			if !strings.Contains(out.String(), "of meter "+f.meter+" ") {
				t.Errorf("vatio import said %q", out.String())
			}
			st, err := store.Open(dir, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.CheckRollups(f.meter); err != nil {
				t.Error(err)
			}
			st.Close()
			checkDays(t, startVatioWith(t, dir, cfg), f.meter, f.zone, f.days)
		})
	}
}

// TestImportRefusesBadUtilityFiles checks that a bad row is named, by line,
// and leaves nothing stored, through the API and the command.
func TestImportRefusesBadUtilityFiles(t *testing.T) {
	bad := "CUPS;Fecha;Hora;Consumo_kWh;Metodo_obtencion\nES0031405123456789JN0F;01/10/2026;1;0,5;Real\nES0031405123456789JN0F;01/10/2026;25;0,5;Real\n"
	inst := startVatio(t, t.TempDir())
	resp, err := apiClient.Post("http://"+inst.http+"/api/v1/meters/casa/import", "text/csv", strings.NewReader(bad))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(answer), "line 3") || !strings.Contains(string(answer), "has 24 hours") {
		t.Errorf("bad Datadis file = %d %s, want 400 naming line 3", resp.StatusCode, answer)
	}
	if code := getJSON(t, "http://"+inst.http+"/api/v1/meters/casa", nil); code != 404 {
		t.Errorf("meter after a refused import: %d, want 404", code)
	}
	for _, q := range []string{"format=xls", "interval=0s", "interval=2d", "time=middle", "zone=Local", "zone=..%2Fetc"} {
		resp, err := apiClient.Post("http://"+inst.http+"/api/v1/meters/casa/import?"+q, "text/csv", strings.NewReader("start,energy_kwh\n"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("import?%s = %d, want 400", q, resp.StatusCode)
		}
	}
	inst.stop(t)

	path := filepath.Join(t.TempDir(), "bad.csv")
	os.WriteFile(path, []byte(bad), 0o600)
	err = run(context.Background(), []string{"import", "-config", emptyConfig(t), "-data-dir", t.TempDir(), path}, testEnv, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("vatio import of a bad file: %v, want line 3 named", err)
	}
}
