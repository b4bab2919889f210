package meter

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

// DSMRMeterID is the meter id of the smart meter DSMR-reader reads; on the
// split topics, DSMRExportID is the meter id of its export side.
const (
	DSMRMeterID  = "dsmr"
	DSMRExportID = "dsmr:export"
)

// NewDSMR returns the Source of DSMR-reader's MQTT output under prefix
// ("dsmr" when empty), for the Dutch/Belgian smart meter it reads. DSMR-reader
// writes numbers as text ("0.123"), in kW and kWh; they are parsed as strict
// decimals.
//
//   - <prefix>/json, the JSON telegram, gives the full reading of meter
//     "dsmr": power electricity_currently_delivered minus
//     electricity_currently_returned in W (negative is export), energy
//     electricity_delivered_1 + electricity_delivered_2 in Wh (the import
//     counter, set only when both tariffs are present), and time from
//     "timestamp" (or DSMR-reader's default "read_at") when it parses and
//     lies between Oldest and now plus MaxFuture; otherwise the receive time.
//     A telegram without electricity_currently_delivered gives no reading.
//   - <prefix>/reading/electricity_currently_delivered, a number in kW, gives
//     a reading of meter "dsmr" with the import power alone, and
//     <prefix>/reading/electricity_currently_returned a reading of meter
//     "dsmr:export" whose positive power is the power exported. A stateless
//     decoder cannot join the two publishes into one net power; prefer the
//     JSON topic. Counters and all other topics give no reading.
func NewDSMR(prefix string, limits Limits) Source {
	if prefix == "" {
		prefix = "dsmr"
	}
	return &dsmr{prefix: prefix, d: Decoder{Limits: limits}}
}

type dsmr struct {
	prefix string
	d      Decoder
}

func (s *dsmr) Name() string { return "dsmr" }

func (s *dsmr) Match(topic string) bool {
	return strings.HasPrefix(topic, s.prefix+"/")
}

func (s *dsmr) Decode(topic string, payload []byte, now time.Time) ([]Reading, error) {
	if !s.Match(topic) {
		return nil, reject(ReasonBadTopic, "topic %q is not below %s/", truncate(topic), s.prefix)
	}
	var id string
	switch topic[len(s.prefix)+1:] {
	case "json":
	case "reading/electricity_currently_delivered":
		id = DSMRMeterID
	case "reading/electricity_currently_returned":
		id = DSMRExportID
	default:
		return nil, nil
	}
	if err := s.d.Limits.checkSize(payload); err != nil {
		return nil, err
	}
	body := bytes.TrimSpace(payload)
	if len(body) == 0 {
		return nil, reject(ReasonEmpty, "no value")
	}
	var r Reading
	if id == "" {
		ok, err := s.telegram(body, now, &r)
		if err != nil || !ok {
			return nil, err
		}
	} else {
		if _, err := parseNumber(body); err != nil {
			return nil, err
		}
		r = Reading{Meter: id, Time: now.UTC(), PowerW: kilo(string(body))}
	}
	if err := s.d.Validate(r, now); err != nil {
		return nil, err
	}
	return []Reading{r}, nil
}

type dsmrTelegram struct {
	Delivered  json.RawMessage `json:"electricity_currently_delivered"`
	Returned   json.RawMessage `json:"electricity_currently_returned"`
	Delivered1 json.RawMessage `json:"electricity_delivered_1"`
	Delivered2 json.RawMessage `json:"electricity_delivered_2"`
	Timestamp  json.RawMessage `json:"timestamp"`
	ReadAt     json.RawMessage `json:"read_at"`
}

// telegram decodes the JSON telegram into r; ok is false when it carries no
// power.
func (s *dsmr) telegram(body []byte, now time.Time, r *Reading) (ok bool, err error) {
	if body[0] != '{' {
		return false, reject(ReasonBadJSON, "the telegram is a JSON object, got %s", truncate(string(body)))
	}
	var j dsmrTelegram
	if err := json.Unmarshal(body, &j); err != nil {
		return false, reject(ReasonBadJSON, "%v", err)
	}
	if !present(j.Delivered) {
		return false, nil
	}
	delivered, err := dsmrKilo("electricity_currently_delivered", j.Delivered)
	if err != nil {
		return false, err
	}
	var returned float64
	if present(j.Returned) {
		if returned, err = dsmrKilo("electricity_currently_returned", j.Returned); err != nil {
			return false, err
		}
	}
	*r = Reading{Meter: DSMRMeterID, Time: now.UTC(), PowerW: delivered - returned}
	if present(j.Delivered1) && present(j.Delivered2) {
		t1, err := dsmrKilo("electricity_delivered_1", j.Delivered1)
		if err != nil {
			return false, err
		}
		t2, err := dsmrKilo("electricity_delivered_2", j.Delivered2)
		if err != nil {
			return false, err
		}
		if t1 < 0 || t2 < 0 {
			return false, reject(ReasonOutOfRange, "a tariff counter is negative: %g Wh, %g Wh", t1, t2)
		}
		r.EnergyWh, r.HasEnergy = t1+t2, true
	}
	ts := j.Timestamp
	if !present(ts) {
		ts = j.ReadAt
	}
	if t, ok := dsmrTime(ts); ok && !t.Before(Oldest) && !t.After(now.Add(s.d.Limits.MaxFuture)) {
		r.Time, r.Stamped = t.UTC(), true
	}
	return true, nil
}

// dsmrKilo returns 1000 times a DSMR-reader value: a decimal as a JSON
// string ("0.123") or a JSON number.
func dsmrKilo(field string, raw json.RawMessage) (float64, error) {
	text := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &text); err != nil {
			return 0, reject(ReasonNotANumber, "%q: %v", field, err)
		}
		text = strings.TrimSpace(text)
	}
	if _, err := parseNumber([]byte(text)); err != nil {
		return 0, reject(ReasonOf(err), "%q: %v", field, err)
	}
	return kilo(text), nil
}

// dsmrTime parses DSMR-reader's timestamp: RFC 3339, or with a space for
// the 'T' as Python prints it.
func dsmrTime(raw json.RawMessage) (time.Time, bool) {
	var text string
	if !present(raw) || json.Unmarshal(raw, &text) != nil {
		return time.Time{}, false
	}
	if len(text) > 10 && text[10] == ' ' {
		text = text[:10] + "T" + text[11:]
	}
	t, err := time.Parse(time.RFC3339Nano, text)
	return t, err == nil
}
