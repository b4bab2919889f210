package main

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/store"
)

const importUsage = `Usage:
  vatio import [flags] [-meter ID] FILE

Imports a meter's history from FILE, in one of these formats (-format, told
from the file when not given):
  csv          Vatio's CSV: power readings timestamp,power_w[,energy_wh] (header
               optional; energy_wh is the device's counter), or energy per
               interval under a header: start|end,energy_wh|energy_kwh
               [,export_wh|export_kwh] (a column named timestamp needs -time)
  datadis      the hourly consumption CSV of datadis.es (CUPS;Fecha;Hora;
               Consumo_kWh;...): the CUPS is the meter's id unless -meter says
  greenbutton  a Green Button (ESPI XML) download of a North American utility
Timestamps are RFC 3339 with an offset, or Unix seconds or milliseconds.
FILE may be gzipped, and encrypted, as Vatio's own archives are. Every line
is validated as a published reading; the first bad line stops the import,
named, and nothing is stored. Readings at instants already stored replace
them. Energy per interval is stored as the interval's mean power, so that
daily kWh and cost come out as the file's (see the user guide).
On a bbolt store, stop Vatio first (on PostgreSQL, store.driver postgres,
it may run), or send the file to the running server instead:
  curl --data-binary @FILE.csv -H 'Content-Type: text/csv' \
       -H "Authorization: Bearer $TOKEN" \
       http://localhost:5000/api/v1/meters/ID/import
(TOKEN: an API token of an operator or admin, made on the Access page)

Flags:
`

// importHistory is `vatio import`.
func importHistory(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fset := newCommand("vatio import", importUsage, stderr)
	meterID := fset.String("meter", "", "the meter's id (required, but for a Datadis file: its CUPS by default)")
	format := fset.String("format", "auto", "the file's format: auto, csv, datadis or greenbutton")
	interval := fset.Duration("interval", 0, "the meter's sampling interval, such as 15m or 1h (default: learned from the file)")
	stamp := fset.String("time", "", "whether a CSV's interval times are the intervals' start or end (default: the column's name)")
	zone := fset.String("zone", "", "the time zone of a Datadis file's hours (default Europe/Madrid; Atlantic/Canary for the Canary Islands)")
	cfg, err := commandConfig(fset, args, getenv, stderr)
	if err != nil {
		return err // flag.ErrHelp after -h: run says nothing more
	}
	if fset.NArg() != 1 {
		return errors.New("import takes one FILE (see vatio import -h)")
	}
	// The store opens once the file has named its meter (a Datadis file's
	// first row): until then no meter was heard.
	var st *store.Store
	opts := meter.ImportOptions{Interval: *interval, MaxGap: cfg.Store.MaxGap, Heard: func(id string) time.Time {
		if st == nil {
			return time.Time{}
		}
		m, err := st.Meter(id)
		if err != nil {
			return time.Time{}
		}
		return m.NewestLive()
	}}
	if opts.Format, err = meter.ParseFormat(*format); err != nil {
		return err
	}
	if opts.Stamp, err = meter.ParseStamp(*stamp); err != nil {
		return err
	}
	if *zone != "" {
		if opts.Zone, err = meter.ParseZone(*zone); err != nil {
			return err
		}
	}
	path := fset.Arg(0)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := plainReader(bufio.NewReader(f), path, cfg) // an encrypted archive
	if err != nil {
		return err
	}
	if br := bufio.NewReader(r); isGzip(br) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	} else {
		r = br
	}

	start := time.Now()
	dec := &meter.Decoder{Topic: cfg.Ingest.Topic, Limits: ingestLimits(cfg.Ingest)}
	hr, err := dec.NewHistoryReader(r, *meterID, start, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	// A Datadis file names its meter on its first row.
	first, firstErr := hr.Next()
	if firstErr != nil && firstErr != io.EOF {
		return fmt.Errorf("%s: %w (nothing was imported)", path, firstErr)
	}
	id := hr.MeterID()
	opened, err := openCommandStore(cfg, store.Options{MaxGap: cfg.Store.MaxGap, MaxPowerW: cfg.Ingest.MaxPowerW},
		"POST the file to /api/v1/meters/"+id+"/import")
	if err != nil {
		return err
	}
	defer opened.Close()
	st = opened
	if heard := opts.Heard(id); firstErr == nil && !heard.IsZero() && first.Time.After(heard) {
		return fmt.Errorf("%s: its first reading, at %s, is after %s, when meter %s last reported live: a history holds what came before its live readings (nothing was imported)",
			path, first.Time.UTC().Format(time.RFC3339), heard.UTC().Format(time.RFC3339), id)
	}

	pending := firstErr == nil
	next := func() (meter.Reading, error) {
		if pending {
			pending = false
			return first, nil
		}
		return hr.Next()
	}
	hr.Progress = func(lines int) { fmt.Fprintf(stderr, "\rread %d lines", lines) }
	reading := true
	read, added, err := st.ImportFrom(func() (meter.Reading, error) {
		r, err := next()
		if err != nil && reading {
			reading = false
			fmt.Fprintln(stderr)
		}
		return r, err
	}, func(n, all int) { fmt.Fprintf(stderr, "\rstored %d of %d readings", n, all) })
	if err != nil {
		var le *meter.LineError
		if errors.As(err, &le) {
			return fmt.Errorf("%s: %w (nothing was imported)", path, err)
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintln(stderr)
	if read == 0 {
		return fmt.Errorf("%s: no readings", path)
	}
	rows := fmt.Sprintf("%d readings", hr.Rows())
	if n := hr.Intervals(); n > 0 {
		rows = fmt.Sprintf("%d intervals of energy", n)
		if n < hr.Rows() {
			rows = fmt.Sprintf("%d rows (%d intervals of energy)", hr.Rows(), n)
		}
	}
	fmt.Fprintf(stdout, "imported %s of meter %s from %s (%s) in %s: %d points stored, %d new, %d replaced\n",
		rows, id, path, hr.Format(), time.Since(start).Round(time.Millisecond), read, added, read-added)
	return nil
}

// isGzip reports whether br starts as gzip data does.
func isGzip(br *bufio.Reader) bool {
	b, _ := br.Peek(2)
	return len(b) == 2 && b[0] == 0x1f && b[1] == 0x8b
}
