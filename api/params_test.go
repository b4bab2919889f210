package api

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

// FuzzParseLimit checks that a limit is either in range or an error that
// names the parameter.
func FuzzParseLimit(f *testing.F) {
	for _, s := range []string{"", "1", "1000", "0", "-1", "1001", "ten", "1e3", " 5", "0x10", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseLimit("limit", s, 100, 1000)
		if err != nil {
			var pe *paramError
			if !errors.As(err, &pe) || pe.Name != "limit" {
				t.Fatalf("parseLimit(%q) error %v does not name the parameter", s, err)
			}
			return
		}
		if n < 1 || n > 1000 || (s == "" && n != 100) {
			t.Fatalf("parseLimit(%q) = %d, outside 1..1000", s, n)
		}
		if m, err := strconv.Atoi(s); s != "" && (err != nil || m != n) {
			t.Fatalf("parseLimit(%q) = %d, not the number given", s, n)
		}
	})
}

// FuzzParseTime checks that a time is either a sane RFC 3339 instant or an
// error that names the parameter.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"", "2026-11-25T10:00:00Z", "2026-11-25T10:00:00.123+01:00", "2026-11-25T10:00:00", "yesterday", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"} {
		f.Add(s)
	}
	def := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTime("from", s, def)
		if err != nil {
			var pe *paramError
			if !errors.As(err, &pe) || pe.Name != "from" {
				t.Fatalf("parseTime(%q) error %v does not name the parameter", s, err)
			}
			return
		}
		if got.Year() < 1970 || got.Year() > 2500 {
			t.Fatalf("parseTime(%q) = %v, outside 1970..2500", s, got)
		}
		if s == "" && !got.Equal(def) {
			t.Fatalf("parseTime(\"\") = %v, want the default", got)
		}
	})
}

// FuzzParsePatch checks that any PATCH body is either refused with an error
// naming a parameter, or makes an edit whose result keeps every field within
// its rules (or refuses an inverted expected range).
func FuzzParsePatch(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"name": "Cocina"}`, `{"name": null, "site": "Casa Madrid", "tags": ["a", "b", "a"]}`,
		`{"parent": "main"}`, `{"expected_min_w": 0, "expected_max_w": 3680, "critical": true}`,
		`{"expected_min_w": 1e400}`, `{"tags": [""]}`, `{"colour": 1}`, `[]`, `null`, `{"name": "a"} x`,
		`{"site": "a/b"}`, `{"name": "\u0000"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		apply, err := parsePatch([]byte(body))
		if err != nil {
			var pe *paramError
			if !errors.As(err, &pe) || pe.Name == "" {
				t.Fatalf("parsePatch(%q) error %v names no parameter", body, err)
			}
			return
		}
		m := store.MeterInfo{Name: "kept", Tags: []string{"kept"}}
		if err := apply(&m); err != nil {
			if !strings.HasPrefix(err.Error(), "expected_min_w: ") {
				t.Fatalf("edit of %q refused with %v", body, err)
			}
			return
		}
		if !validLabel(m.Name, maxNameLen) || (m.Site != "" && !validSite(m.Site)) || (m.Parent != "" && !meter.ValidID(m.Parent)) || len(m.Tags) > maxTags {
			t.Fatalf("edit of %q gave %+v", body, m)
		}
		for _, v := range []*float64{m.ExpectedMinW, m.ExpectedMaxW} {
			if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
				t.Fatalf("edit of %q gave a non-finite expected power", body)
			}
		}
	})
}
