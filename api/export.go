package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/vatio-energy/vatio/store"
)

// The export answers GDPR's right of access: all the data Vatio holds of a
// meter (or of every meter of a site), readings from the database and the
// archives alike, with the meter's record and its alerts.
//
//	GET /api/v1/meters/{id}/export?format=json|csv
//	GET /api/v1/sites/{site}/export?format=json|csv
//
// A meter's CSV is timestamp,power_w,energy_wh: an archive file's form, so
// `vatio import` takes it back. A site's CSV adds the meter as the first
// column. The export is written to a temporary file first, then sent with
// its length: a client can tell a complete export from a cut one, and no
// database transaction waits on a slow client.

// exportReading is a reading in a JSON export.
type exportReading struct {
	T      time.Time `json:"t"`
	PowerW float64   `json:"power_w"`
	// EnergyWh is the device's energy counter, when it sent one.
	EnergyWh *float64 `json:"energy_wh,omitempty"`
}

func exportFormat(c *fiber.Ctx) (string, error) {
	switch f := c.Query("format", "json"); f {
	case "json", "csv":
		return f, nil
	default:
		return "", &paramError{Name: "format", Detail: "json or csv"}
	}
}

// exportMeter serves GET /api/v1/meters/{id}/export.
func (s *Server) exportMeter(c *fiber.Ctx) error {
	id, err := meterID(c)
	if err != nil {
		return err
	}
	format, err := exportFormat(c)
	if err != nil {
		return err
	}
	m, err := s.store.Meter(id)
	if err != nil {
		return err
	}
	return s.sendExport(c, id, format, func(ctx context.Context, w *bufio.Writer) error {
		if format == "csv" {
			w.WriteString("timestamp,power_w,energy_wh\n")
			return s.store.Export(ctx, id, func(r store.Record) error { return writeCSVLine(w, "", r) })
		}
		fmt.Fprintf(w, `{"exported_at":%s,"meter":`, jsonTime(s.now()))
		if err := s.writeMeterExport(ctx, w, m); err != nil {
			return err
		}
		_, err := w.WriteString("}\n")
		return err
	})
}

// exportSite serves GET /api/v1/sites/{site}/export: every meter of the
// site, sub-meters included.
func (s *Server) exportSite(c *fiber.Ctx) error {
	site, err := siteParam(c)
	if err != nil {
		return err
	}
	format, err := exportFormat(c)
	if err != nil {
		return err
	}
	var ms []store.Meter
	for _, m := range s.store.Meters() {
		if m.Site == site {
			ms = append(ms, m)
		}
	}
	if len(ms) == 0 {
		return fiber.NewError(fiber.StatusNotFound, fmt.Sprintf("no meter in site %q", site))
	}
	slices.SortFunc(ms, func(a, b store.Meter) int { return strings.Compare(a.ID, b.ID) })
	return s.sendExport(c, "site-"+site, format, func(ctx context.Context, w *bufio.Writer) error {
		if format == "csv" {
			w.WriteString("meter,timestamp,power_w,energy_wh\n")
			for _, m := range ms {
				if err := s.store.Export(ctx, m.ID, func(r store.Record) error { return writeCSVLine(w, m.ID, r) }); err != nil {
					return err
				}
			}
			return nil
		}
		site, _ := json.Marshal(site)
		fmt.Fprintf(w, `{"exported_at":%s,"site":%s,"meters":[`, jsonTime(s.now()), site)
		for i, m := range ms {
			if i > 0 {
				w.WriteByte(',')
			}
			if err := s.writeMeterExport(ctx, w, m); err != nil {
				return err
			}
		}
		_, err := w.WriteString("]}\n")
		return err
	})
}

// writeMeterExport writes one meter as JSON: its record, its alerts and
// its readings.
func (s *Server) writeMeterExport(ctx context.Context, w *bufio.Writer, m store.Meter) error {
	info, err := json.Marshal(s.meterJSON(m, nil, s.now()))
	if err != nil {
		return err
	}
	alerts, err := s.store.Alerts(1<<30, func(a *store.Alert) bool { return a.Meter == m.ID })
	if err != nil {
		return err
	}
	if alerts == nil {
		alerts = []store.Alert{}
	}
	al, err := json.Marshal(alerts)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, `{"info":%s,"alerts":%s,"readings":[`, info, al)
	first := true
	enc := json.NewEncoder(w)
	err = s.store.Export(ctx, m.ID, func(r store.Record) error {
		if !first {
			w.WriteByte(',')
		}
		first = false
		e := exportReading{T: r.Time, PowerW: r.PowerW}
		if r.HasEnergy {
			e.EnergyWh = &r.EnergyWh
		}
		return enc.Encode(e) // a newline after each: a reading a line
	})
	if err != nil {
		return err
	}
	_, err = w.WriteString("]}")
	return err
}

func writeCSVLine(w *bufio.Writer, meterID string, r store.Record) error {
	var b [96]byte
	line := b[:0]
	if meterID != "" {
		line = append(append(line, meterID...), ',')
	}
	line = r.Time.UTC().AppendFormat(line, time.RFC3339Nano)
	line = append(line, ',')
	line = strconv.AppendFloat(line, r.PowerW, 'g', -1, 64)
	line = append(line, ',')
	if r.HasEnergy {
		line = strconv.AppendFloat(line, r.EnergyWh, 'g', -1, 64)
	}
	line = append(line, '\n')
	_, err := w.Write(line)
	return err
}

func jsonTime(t time.Time) string {
	b, _ := t.UTC().MarshalJSON()
	return string(b)
}

// sendExport writes an export with write to a temporary file, then sends
// the file as the download name.format; the file is gone once sent.
func (s *Server) sendExport(c *fiber.Ctx, name, format string, write func(context.Context, *bufio.Writer) error) error {
	// One export at a time: each holds retention off, and takes disk.
	select {
	case s.exporting <- struct{}{}:
	default:
		c.Set(fiber.HeaderRetryAfter, "30")
		return fiber.NewError(fiber.StatusServiceUnavailable, "another export is being built: retry in a while")
	}
	defer func() { <-s.exporting }()
	// In the data directory, not /tmp (often a small tmpfs), mode 0600,
	// and unlinked at once where the system allows: a crash leaves no
	// plain copy behind.
	f, err := os.CreateTemp(filepath.Dir(s.store.Path()), ".vatio-export-*.tmp")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	removed := os.Remove(f.Name()) == nil
	ok := false
	defer func() {
		if !ok {
			f.Close()
			if !removed {
				os.Remove(f.Name())
			}
		}
	}()
	w := bufio.NewWriterSize(f, 64<<10)
	if err := write(c.Context(), w); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	ctype := fiber.MIMEApplicationJSONCharsetUTF8
	if format == "csv" {
		ctype = "text/csv; charset=utf-8"
	}
	c.Set(fiber.HeaderContentType, ctype)
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="vatio-%s-%s.%s"`,
		strings.Map(safeFileRune, name), s.now().UTC().Format("20060102T150405Z"), format))
	c.Set(fiber.HeaderCacheControl, "no-store")
	length := -1 // chunked, if the size does not fit an int (32-bit ARM)
	if size <= math.MaxInt {
		length = int(size)
	}
	var body io.ReadCloser = f
	if !removed {
		body = removeOnClose{f}
	}
	c.Response().SetBodyStream(body, length)
	ok = true
	return nil
}

// safeFileRune keeps a download's name to letters, digits and - . _.
func safeFileRune(r rune) rune {
	if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._", r)) {
		return r
	}
	return '_'
}

// removeOnClose is a file that is removed when closed.
type removeOnClose struct{ *os.File }

func (r removeOnClose) Close() error {
	err := r.File.Close()
	os.Remove(r.File.Name())
	return err
}
