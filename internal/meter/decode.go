package meter

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Reason names why a reading was rejected. Reasons are stable: they label
// metrics and appear in logs and MQTT 5 reason strings.
type Reason string

// The reasons a payload or topic can be rejected for.
const (
	ReasonPayloadTooLarge Reason = "payload_too_large"
	ReasonEmpty           Reason = "empty_payload"
	ReasonNotANumber      Reason = "not_a_number"
	ReasonBadJSON         Reason = "bad_json"
	ReasonMissingValue    Reason = "missing_value"
	ReasonAmbiguous       Reason = "ambiguous_value"
	ReasonNotFinite       Reason = "not_finite"
	ReasonOutOfRange      Reason = "out_of_range"
	ReasonBadTimestamp    Reason = "bad_timestamp"
	ReasonFuture          Reason = "future_timestamp"
	ReasonTooOld          Reason = "timestamp_too_old"
	ReasonBadTopic        Reason = "bad_topic"
	ReasonBadMeterID      Reason = "bad_meter_id"
	// ReasonImplausibleEnergy is an energy counter that rose by more than
	// the meter's maximum power can draw in the time since its last reading.
	ReasonImplausibleEnergy Reason = "implausible_energy"
	// ReasonOtherDevice is a reading, sent with one device's credentials,
	// of a meter named after another device (a gateway's topic naming it).
	ReasonOtherDevice Reason = "other_devices_meter"
)

// Reasons lists every Reason, so that counters can start at zero.
var Reasons = []Reason{
	ReasonPayloadTooLarge, ReasonEmpty, ReasonNotANumber, ReasonBadJSON,
	ReasonMissingValue, ReasonAmbiguous, ReasonNotFinite, ReasonOutOfRange,
	ReasonBadTimestamp, ReasonFuture, ReasonTooOld, ReasonBadTopic, ReasonBadMeterID,
	ReasonImplausibleEnergy, ReasonOtherDevice,
}

// RejectError is the error for a payload that is not a valid reading.
type RejectError struct {
	Reason Reason
	Detail string
	detail error // Detail as a problem, for Say
}

func (e *RejectError) Error() string { return string(e.Reason) + ": " + e.Detail }

func reject(r Reason, format string, args ...any) error {
	detail := problemf(format, args...)
	return &RejectError{Reason: r, Detail: detail.Error(), detail: detail}
}

// ReasonOf returns the Reason of a *RejectError in err's chain, or "" if there
// is none.
func ReasonOf(err error) Reason {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

// Oldest is the earliest timestamp a reading may carry. Anything before it
// comes from a device whose clock is unset (Tasmota reports 1970).
var Oldest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// MaxEnergyWh bounds an energy counter: 10 TWh, beyond any single meter.
const MaxEnergyWh = 1e13

// Limits bounds what a valid reading is.
type Limits struct {
	// MinPowerW and MaxPowerW bound the power, in watts. Negative power is
	// export to the grid.
	MinPowerW, MaxPowerW float64
	// MaxFuture is how far ahead of the receive time a device timestamp may
	// be, to allow for clock skew.
	MaxFuture time.Duration
	// MaxPayloadBytes is the largest payload decoded; larger ones are
	// rejected unread.
	MaxPayloadBytes int
}

// checkSize rejects a payload larger than MaxPayloadBytes, unread.
func (l Limits) checkSize(payload []byte) error {
	if l.MaxPayloadBytes > 0 && len(payload) > l.MaxPayloadBytes {
		return reject(ReasonPayloadTooLarge, "%d bytes, at most %d", len(payload), l.MaxPayloadBytes)
	}
	return nil
}

// plainNumber reads a payload that is one decimal number.
func plainNumber(payload []byte) (float64, error) {
	body := bytes.TrimSpace(payload)
	if len(body) == 0 {
		return 0, reject(ReasonEmpty, "no value")
	}
	return parseNumber(body)
}

// DefaultLimits returns the limits Vatio starts with: -1 MW to +10 MW,
// 5 minutes of clock skew, 16 KiB payloads (a Shelly's NotifyFullStatus is
// several KiB).
func DefaultLimits() Limits {
	return Limits{MinPowerW: -1e6, MaxPowerW: 10e6, MaxFuture: 5 * time.Minute, MaxPayloadBytes: 16384}
}

// Decoder turns publishes on the energy topics into readings. Its zero value
// is not usable: set Topic and Limits.
type Decoder struct {
	// Topic is the ingest topic: Topic itself carries readings of meter
	// DefaultID, Topic/<meter> readings of <meter>.
	Topic  string
	Limits Limits
}

// Match reports whether topic is an energy topic this decoder owns: Topic
// itself or any topic below it.
func (d *Decoder) Match(topic string) bool {
	return topic == d.Topic || (strings.HasPrefix(topic, d.Topic) && len(topic) > len(d.Topic) && topic[len(d.Topic)] == '/')
}

// MeterID returns the meter id that topic names, which must Match.
func (d *Decoder) MeterID(topic string) (string, error) {
	if topic == d.Topic {
		return DefaultID, nil
	}
	id := topic[len(d.Topic)+1:]
	if strings.Contains(id, "/") {
		return "", reject(ReasonBadTopic, "topic %q has more than one level below %s: use %s/<meter>", truncate(topic), d.Topic, d.Topic)
	}
	if !ValidID(id) {
		return "", reject(ReasonBadMeterID, "meter id %q: use 1 to %d letters, digits, '.', '_', ':' or '-'", truncate(id), MaxIDLength)
	}
	return id, nil
}

// Decode decodes and validates one publish on an energy topic received at
// now. The payload is a number in kW as text ("2.5"), or a JSON object with
// "power_w" (W) or "consumption" (kW), an optional "energy_wh" (the device's
// cumulative energy counter, Wh) and an optional "ts" (RFC 3339 with an
// offset, or Unix seconds or milliseconds). Errors are *RejectError.
func (d *Decoder) Decode(topic string, payload []byte, now time.Time) (Reading, error) {
	id, err := d.MeterID(topic)
	if err != nil {
		return Reading{}, err
	}
	if err := d.Limits.checkSize(payload); err != nil {
		return Reading{}, err
	}
	body := bytes.TrimSpace(payload)
	if len(body) == 0 {
		return Reading{}, reject(ReasonEmpty, "no value")
	}
	r := Reading{Meter: id, Time: now.UTC()}
	if body[0] == '{' {
		err = decodeJSON(body, &r)
	} else {
		if _, err = parseNumber(body); err == nil {
			r.PowerW = kilo(string(body))
		}
	}
	if err != nil {
		return Reading{}, err
	}
	if err := d.Validate(r, now); err != nil {
		return Reading{}, err
	}
	return r, nil
}

// Validate checks a reading against the limits, as received at now: finite
// power in range, a sane counter, and, for a device timestamp, not too far
// ahead of now nor before Oldest. Errors are *RejectError.
func (d *Decoder) Validate(r Reading, now time.Time) error {
	if math.IsNaN(r.PowerW) || math.IsInf(r.PowerW, 0) {
		return reject(ReasonNotFinite, "power is %v", r.PowerW)
	}
	if r.PowerW < d.Limits.MinPowerW || r.PowerW > d.Limits.MaxPowerW {
		return reject(ReasonOutOfRange, "%g W is outside [%g, %g] W", r.PowerW, d.Limits.MinPowerW, d.Limits.MaxPowerW)
	}
	if r.HasEnergy {
		if err := checkEnergy(r.EnergyWh); err != nil {
			return err
		}
	}
	if r.HasPF && !(r.PowerFactor >= -1 && r.PowerFactor <= 1) {
		return reject(ReasonOutOfRange, "power factor %g is outside [-1, 1]", r.PowerFactor)
	}
	if r.Stamped {
		if r.Time.After(now.Add(d.Limits.MaxFuture)) {
			return reject(ReasonFuture, "%s is more than %s ahead of the server clock", r.Time.Format(time.RFC3339), d.Limits.MaxFuture)
		}
		if r.Time.Before(Oldest) {
			return reject(ReasonTooOld, "%s is before %s: is the device clock set?", r.Time.Format(time.RFC3339), Oldest.Format("2006-01-02"))
		}
	}
	return nil
}

// checkEnergy rejects an energy counter outside [0, MaxEnergyWh], as
// Validate does. Sources use it for a counter that gives no reading yet.
func checkEnergy(wh float64) error {
	if wh < 0 || wh > MaxEnergyWh || math.IsNaN(wh) {
		return reject(ReasonOutOfRange, "energy counter %g Wh is outside [0, %g] Wh", wh, MaxEnergyWh)
	}
	return nil
}

// parseNumber parses a plain decimal number: an optional sign, digits, an
// optional fraction and exponent. It refuses what strconv would also take
// (NaN, Inf, hex floats, underscores) since no meter means those.
func parseNumber(b []byte) (float64, error) {
	s := string(b)
	if !isDecimal(s) {
		if strings.Count(s, ",") == 1 && isDecimal(strings.Replace(s, ",", ".", 1)) {
			return 0, reject(ReasonNotANumber, "%q: use '.' as the decimal separator", truncate(s))
		}
		lower := strings.ToLower(strings.TrimLeft(s, "+-"))
		if lower == "nan" || lower == "inf" || lower == "infinity" {
			return 0, reject(ReasonNotFinite, "%q", truncate(s))
		}
		return 0, reject(ReasonNotANumber, "%q is not a number", truncate(s))
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil { // only ErrRange is possible after isDecimal
		return 0, reject(ReasonNotFinite, "%q overflows a float64", truncate(s))
	}
	return v, nil
}

func isDecimal(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			exp++
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}

type jsonReading struct {
	PowerW      json.RawMessage `json:"power_w"`
	Consumption json.RawMessage `json:"consumption"`
	EnergyWh    json.RawMessage `json:"energy_wh"`
	TS          json.RawMessage `json:"ts"`
}

func decodeJSON(b []byte, r *Reading) error {
	var j jsonReading
	if err := json.Unmarshal(b, &j); err != nil {
		return reject(ReasonBadJSON, "%v", err)
	}
	hasW, hasKW := present(j.PowerW), present(j.Consumption)
	switch {
	case hasW && hasKW:
		return reject(ReasonAmbiguous, `both "power_w" and "consumption": send one`)
	case hasW:
		w, err := jsonNumber("power_w", j.PowerW)
		if err != nil {
			return err
		}
		r.PowerW = w
	case hasKW:
		if _, err := jsonNumber("consumption", j.Consumption); err != nil {
			return err
		}
		r.PowerW = kilo(string(j.Consumption))
	default:
		return reject(ReasonMissingValue, `JSON needs "power_w" (W) or "consumption" (kW)`)
	}
	if present(j.EnergyWh) {
		wh, err := jsonNumber("energy_wh", j.EnergyWh)
		if err != nil {
			return err
		}
		r.EnergyWh, r.HasEnergy = wh, true
	}
	if present(j.TS) {
		t, err := parseTimestamp(j.TS)
		if err != nil {
			return err
		}
		r.Time, r.Stamped = t.UTC(), true
	}
	return nil
}

func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// jsonNumber reads a JSON number field. Numbers too large for a float64 are
// not finite; strings and other types are not numbers.
func jsonNumber(field string, raw json.RawMessage) (float64, error) {
	s := string(raw)
	if !isDecimal(s) || s[0] == '+' {
		return 0, reject(ReasonNotANumber, "%q must be a JSON number, got %s", field, truncate(s))
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, reject(ReasonNotFinite, "%q: %s overflows a float64", field, truncate(s))
	}
	return v, nil
}

// kilo returns 1000 times the decimal number s (already checked by
// isDecimal), rounded once from the decimal: "1.2345" gives exactly 1234.5,
// where 1.2345*1000 would be a float64 one unit off in the last place.
func kilo(s string) float64 {
	if !strings.ContainsAny(s, "eE") {
		if v, err := strconv.ParseFloat(s+"e3", 64); err == nil {
			return v
		}
	}
	v, _ := strconv.ParseFloat(s, 64)
	return v * 1000
}

// Unix timestamps at or above this are milliseconds: as seconds they would
// be past the year 5138.
const unixMillisThreshold = 1e11

// ParseTime parses a timestamp as readings carry it: RFC 3339 with an
// offset, or Unix seconds or milliseconds (fractions allowed).
func ParseTime(s string) (time.Time, error) {
	if isDecimal(s) {
		return parseTimestamp(json.RawMessage(s))
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, reject(ReasonBadTimestamp, "%q is not RFC 3339 with an offset (2026-11-25T10:00:00Z) nor Unix seconds or milliseconds", truncate(s))
	}
	return t, nil
}

func parseTimestamp(raw json.RawMessage) (time.Time, error) {
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, reject(ReasonBadTimestamp, "%v", err)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, reject(ReasonBadTimestamp, `"ts" %q is not RFC 3339 with an offset (2026-11-25T10:00:00Z)`, truncate(s))
		}
		return t, nil
	}
	n, err := jsonNumber("ts", raw)
	if err != nil {
		return time.Time{}, reject(ReasonBadTimestamp, `"ts" must be RFC 3339 text or Unix seconds or milliseconds, got %s`, truncate(string(raw)))
	}
	if n < 0 || n > 1e15 {
		return time.Time{}, reject(ReasonBadTimestamp, `"ts" %s is not a Unix time`, truncate(string(raw)))
	}
	whole, frac := math.Modf(n)
	if n >= unixMillisThreshold {
		return time.UnixMilli(int64(whole)).Add(time.Duration(math.Round(frac * 1e6))), nil
	}
	return time.Unix(int64(whole), int64(math.Round(frac*1e9))), nil
}

// truncate shortens untrusted text quoted in error messages and logs.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut-- // not within a character
	}
	return s[:cut] + "…"
}
