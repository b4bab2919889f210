package api

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// parseLimit parses a count parameter: empty gives def, otherwise a whole
// number from 1 to max.
func parseLimit(name, s string, def, max int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, &paramError{Name: name, Detail: fmt.Sprintf("%q is not a whole number from 1 to %d", clip(s), max)}
	}
	return n, nil
}

// parseTime parses an RFC 3339 time parameter with an offset; empty gives def.
func parseTime(name, s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, &paramError{Name: name, Detail: fmt.Sprintf("%q is not an RFC 3339 time with an offset, e.g. 2026-11-25T10:00:00Z", clip(s))}
	}
	if t.Year() < 1970 || t.Year() > 2500 {
		return time.Time{}, &paramError{Name: name, Detail: fmt.Sprintf("%q is outside the years 1970 to 2500", clip(s))}
	}
	return t, nil
}

// clip shortens user input quoted back in an error.
func clip(s string) string {
	if len(s) > 64 {
		return cutUTF8(s, 64) + "…"
	}
	return s
}

// cutUTF8 returns s cut to at most n bytes, at a character's start: a
// character cut in two would be answered as U+FFFD.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
