package meter

import (
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Madrid, on machines without /usr/share/zoneinfo
)

// datadisSource reads the hourly consumption CSV that datadis.es (and the
// Spanish distributors' own sites) export:
//
//	CUPS;Fecha;Hora;Consumo_kWh;Metodo_obtencion;Energia_vertida_kWh
//	ES0021000000000000AA0F;01/10/2026;1;0,231;Real;0,000
//
// Columns are found by their names, whatever their order or case, accents
// and spaces: the consumption is Consumo_kWh (or Consumo, or AE_kWh,
// "activa entrante"), the optional energy sent to the grid Energia_vertida
// _kWh (or AS_kWh, "activa saliente", or Excedentes); Metodo_obtencion (real
// or estimated) and any other column are ignored. Numbers take a decimal
// comma or point. Fecha is dd/mm/yyyy or yyyy/mm/dd ('-' too).
//
// Hora N is the hour of the day that ends at N:00 in Spain's peninsular
// time (Europe/Madrid, or the zone the import states: Atlantic/Canary for
// the Canary Islands): hour 1 is 00:00-01:00. On the day the clocks go
// forward the day has 23 hours and on the day they go back 25; files number
// them either in order (1-23, 1-25) or by the clock (on the 23-hour day
// no hour 3; on the 25-hour day the hour the clock repeats twice). Both are
// read: a day's rows are taken together and placed hour by hour from local
// midnight.
type datadisSource struct {
	ls                       *lineScanner
	zone                     *time.Location
	cups, fecha, hora        int
	consumo, vertida, fields int
	cupsSeen                 string
	// The rows of the day being read, and the first row of the next.
	day     []datadisRow
	dayDate time.Time
	pending *datadisRow
	out     []record
	eof     bool
}

type datadisRow struct {
	line               int
	date               time.Time // local midnight
	hour               int
	importWh, exportWh float64
	cups               string
}

// madrid is Spain's peninsular time zone, in which Datadis counts hours
// (but for the Canary Islands).
var madrid = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Madrid")
	if err != nil {
		panic(err) // time/tzdata is linked in
	}
	return loc
}()

// maxDatadisRowsPerDay bounds one day: 25 hours, and some slack for
// repeated rows (which are refused).
const maxDatadisRowsPerDay = 30

func newDatadisSource(r io.Reader, zone *time.Location) *datadisSource {
	return &datadisSource{ls: newLineScanner(r), zone: zone, cups: -1}
}

func (d *datadisSource) line() int { return d.ls.n }

func (d *datadisSource) next() (record, error) {
	for len(d.out) == 0 {
		if d.eof {
			return record{}, io.EOF
		}
		if err := d.readDay(); err != nil {
			return record{}, err
		}
	}
	rec := d.out[0]
	d.out = d.out[1:]
	return rec, nil
}

// readDay reads the rows of the next day and places its hours.
func (d *datadisSource) readDay() error {
	d.day = d.day[:0]
	if d.pending != nil {
		d.day = append(d.day, *d.pending)
		d.pending = nil
	}
	for {
		text, err := d.ls.scan()
		if err == io.EOF {
			d.eof = true
			break
		}
		if err != nil {
			return err
		}
		if d.cups < 0 {
			if err := d.readHeader(text); err != nil {
				return &LineError{Line: d.ls.n, Err: err}
			}
			continue
		}
		row, err := d.row(text)
		if err != nil {
			return &LineError{Line: d.ls.n, Err: err}
		}
		if len(d.day) > 0 && !row.date.Equal(d.day[0].date) {
			d.pending = &row
			break
		}
		if len(d.day) == maxDatadisRowsPerDay {
			return lineErr(row.line, "more than %d rows for %s", maxDatadisRowsPerDay, row.date.Format("02/01/2006"))
		}
		d.day = append(d.day, row)
	}
	if d.cups < 0 && d.eof {
		return lineErr(max(d.ls.n, 1), "no header: a Datadis file starts CUPS;Fecha;Hora;Consumo_kWh")
	}
	if len(d.day) == 0 {
		return nil
	}
	if !d.dayDate.IsZero() && !d.day[0].date.After(d.dayDate) {
		return lineErr(d.day[0].line, "%s comes after %s: a Datadis file lists each day once, in order", d.day[0].date.Format("02/01/2006"), d.dayDate.Format("02/01/2006"))
	}
	d.dayDate = d.day[0].date
	return d.place()
}

// place turns the day's rows into intervals of an hour.
func (d *datadisSource) place() error {
	date := d.day[0].date
	y, m, dd := date.Date()
	hours := int(time.Date(y, m, dd+1, 0, 0, 0, 0, d.zone).Sub(date) / time.Hour)
	name := date.Format("02/01/2006")
	// ordinal[i] is the hour of the day (1-based, from midnight) of row i.
	ordinal := make([]int, len(d.day))
	seen := map[int]int{} // label -> row
	repeated := -1        // the label given twice
	has := func(label int) bool { _, ok := seen[label]; return ok }
	for i, r := range d.day {
		if j, ok := seen[r.hour]; ok {
			if hours != 25 || repeated >= 0 {
				return lineErr(r.line, "hour %d of %s again (line %d has it)", r.hour, name, d.day[j].line)
			}
			repeated = r.hour
		}
		seen[r.hour] = i
	}
	byClock := (hours == 23 && has(24)) || (hours == 25 && repeated >= 0)
	second := false
	for i, r := range d.day {
		n := r.hour
		switch {
		case hours == 23 && byClock && n == 3:
			return lineErr(r.line, "hour 3 of %s: the clocks went from 02:00 to 03:00 that night, so no hour ends at 03:00", name)
		case hours == 23 && byClock && n > 3:
			n--
		case hours == 25 && byClock && n == repeated:
			if second {
				n++
			}
			second = true
		case hours == 25 && byClock && n > repeated:
			n++
		}
		if n < 1 || n > hours {
			return lineErr(r.line, "hour %d: %s has %d hours", r.hour, name, hours)
		}
		ordinal[i] = n
	}
	for i, r := range d.day {
		d.out = append(d.out, record{
			line: r.line, meter: r.cups, interval: true,
			at: date.Add(time.Duration(ordinal[i]-1) * time.Hour), length: time.Hour,
			importWh: r.importWh, exportWh: r.exportWh,
		})
	}
	slices.SortStableFunc(d.out, func(a, b record) int { return a.at.Compare(b.at) }) // hours in order
	return nil
}

// readHeader finds the columns.
func (d *datadisSource) readHeader(text string) error {
	fields := splitFields(text, ";")
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = plainName(f)
	}
	find := func(match func(string) bool) int {
		for i, n := range names {
			if match(n) {
				return i
			}
		}
		return -1
	}
	is := func(want ...string) func(string) bool {
		return func(n string) bool {
			for _, w := range want {
				if n == w {
					return true
				}
			}
			return false
		}
	}
	d.fields = len(fields)
	d.fecha = find(is("fecha", "date"))
	d.hora = find(is("hora", "time", "hour"))
	d.consumo = find(func(n string) bool { return strings.HasPrefix(n, "consumo") || n == "aekwh" || n == "ae" })
	d.vertida = find(func(n string) bool {
		return strings.Contains(n, "vertida") || strings.HasPrefix(n, "excedente") || n == "askwh" || n == "as" || strings.HasPrefix(n, "surplus")
	})
	cups := find(is("cups"))
	switch {
	case cups < 0:
		return problemf("no CUPS column in the header %q: a Datadis file starts CUPS;Fecha;Hora;Consumo_kWh", truncate(text))
	case d.fecha < 0 || d.hora < 0:
		return problemf("the header %q names no Fecha or no Hora column", truncate(text))
	case d.consumo < 0:
		return problemf("the header %q names no consumption (Consumo_kWh or AE_kWh)", truncate(text))
	}
	d.cups = cups
	return nil
}

// plainName lowers a column's name to ASCII letters and digits: "Energía
// vertida (kWh)" and "Energia_vertida_kWh" are both "energiavertidakwh"; a
// name in Latin-1 loses its accented letters ("energavertidakwh").
func plainName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch r {
		case 'á', 'à':
			r = 'a'
		case 'é', 'è':
			r = 'e'
		case 'í':
			r = 'i'
		case 'ó', 'ò':
			r = 'o'
		case 'ú', 'ü':
			r = 'u'
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func (d *datadisSource) row(text string) (datadisRow, error) {
	fields := splitFields(text, ";")
	if len(fields) < d.fields && len(fields) <= max(d.cups, d.fecha, d.hora, d.consumo, d.vertida) {
		return datadisRow{}, problemf("%d fields, the header names %d", len(fields), d.fields)
	}
	r := datadisRow{line: d.ls.n, cups: fields[d.cups]}
	if r.cups == "" {
		return r, problemf("no CUPS")
	}
	if d.cupsSeen == "" {
		d.cupsSeen = r.cups
	} else if r.cups != d.cupsSeen {
		return r, problemf("CUPS %s after %s: a file of one supply at a time", truncate(r.cups), d.cupsSeen)
	}
	var err error
	if r.date, err = datadisDate(fields[d.fecha], d.zone); err != nil {
		return r, err
	}
	if r.hour, err = datadisHour(fields[d.hora]); err != nil {
		return r, err
	}
	if r.importWh, err = datadisKWh(fields[d.consumo]); err != nil {
		return r, problemf("consumption: %v", err)
	}
	if d.vertida >= 0 && d.vertida < len(fields) {
		if r.exportWh, err = datadisKWh(fields[d.vertida]); err != nil {
			return r, problemf("energy exported: %v", err)
		}
	}
	return r, nil
}

// datadisDate parses dd/mm/yyyy or yyyy/mm/dd ('-' for '/' too) as local
// midnight in zone.
func datadisDate(s string, zone *time.Location) (time.Time, error) {
	s = strings.ReplaceAll(s, "-", "/")
	for _, layout := range []string{"02/01/2006", "2006/01/02", "2/1/2006", "2006/1/2"} {
		if t, err := time.Parse(layout, s); err == nil {
			return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, zone), nil
		}
	}
	return time.Time{}, problemf("date %q: want dd/mm/yyyy or yyyy/mm/dd", truncate(s))
}

// datadisHour parses an hour, 1 to 25, written N or N:00.
func datadisHour(s string) (int, error) {
	h, rest, clock := strings.Cut(s, ":")
	if clock && rest != "00" && rest != "00:00" {
		return 0, problemf("hour %q: Datadis gives whole hours (N or N:00)", truncate(s))
	}
	n, err := strconv.Atoi(h)
	if err != nil || n < 1 || n > 25 {
		return 0, problemf("hour %q: want 1 to 24 (25 on the day the clocks go back), the hour ending at N:00", truncate(s))
	}
	return n, nil
}

// datadisKWh parses kWh with a decimal comma or point (empty is 0) into Wh.
func datadisKWh(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	if strings.Contains(s, ",") {
		if strings.Contains(s, ".") {
			return 0, problemf("%q: a decimal comma or point, not both", truncate(s))
		}
		s = strings.Replace(s, ",", ".", 1)
	}
	kwh, err := parseNumber([]byte(s))
	if err != nil {
		return 0, err
	}
	if kwh < 0 {
		return 0, problemf("%g kWh is negative", kwh)
	}
	return math.Round(kwh*1e6) / 1000, nil // Wh, to the mWh the file's kWh give
}
