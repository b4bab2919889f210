package api

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

// FuzzImportForm feeds any multipart body to the import form's reader: it
// reads at most maxFormFields short fields before the file, never past
// the import limit, and either refuses the form or hands the file part
// on; nothing panics.
func FuzzImportForm(f *testing.F) {
	form := func(fields [][2]string, file string) []byte {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		w.SetBoundary("b0undary")
		for _, kv := range fields {
			w.WriteField(kv[0], kv[1])
		}
		if file != "" {
			fw, _ := w.CreateFormFile("file", "history.csv")
			fw.Write([]byte(file))
		}
		w.Close()
		return b.Bytes()
	}
	f.Add(form([][2]string{{"csrf", "x"}, {"meter", "kitchen"}, {"format", "csv"}}, "timestamp,power_w\n2026-01-01T00:00:00Z,5\n"))
	f.Add(form([][2]string{{"csrf", "x"}}, ""))
	f.Add(form(nil, "CUPS;Fecha;Hora;Consumo_kWh\n"))
	f.Add([]byte("--b0undary\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nx"))
	const limit = 4096
	f.Fuzz(func(t *testing.T, body []byte) {
		s := &Server{importLimit: limit, readTimeout: time.Second}
		app := fiber.New(fiber.Config{DisablePreParseMultipartForm: true})
		var file []byte
		app.Post(importFormPath, func(c *fiber.Ctx) error {
			form, err := s.openImportForm(c)
			if err != nil {
				if _, ok := err.(*fiber.Error); !ok {
					t.Fatalf("error %T %v, want a *fiber.Error", err, err)
				}
				return err
			}
			defer form.done()
			if len(form.fields) > maxFormFields {
				t.Fatalf("%d fields read before the file", len(form.fields))
			}
			for k, v := range form.fields {
				if len(v) > maxFormFieldBytes {
					t.Fatalf("field %q of %d bytes", k, len(v))
				}
			}
			if form.file != nil {
				file, err = io.ReadAll(form.file)
				_ = err // a broken part ends the file; the import then fails
			}
			return nil
		})
		req := httptest.NewRequest("POST", importFormPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "multipart/form-data; boundary=b0undary")
		if _, err := app.Test(req, -1); err != nil {
			t.Fatal(err)
		}
		if len(file) > limit {
			t.Fatalf("a file of %d bytes past the import limit %d", len(file), limit)
		}
	})
}
