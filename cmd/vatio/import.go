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
  vatio import [flags] -meter ID FILE.csv

Imports a meter's history: one reading a line, timestamp,power_w[,energy_wh]
(header optional; timestamps RFC 3339 with an offset, or Unix seconds or
milliseconds; FILE may be gzipped, and encrypted, as Vatio's own archives are). Every line is
validated as a published reading; the first bad line stops the import, named,
and nothing is stored. Readings at instants already stored replace them.
On a bbolt store, stop Vatio first (on PostgreSQL, store.driver postgres,
it may run), or send the file to the running server instead:
  curl --data-binary @FILE.csv -H 'Content-Type: text/csv' \
       http://localhost:5000/api/v1/meters/ID/import

Flags:
`

// importHistory is `vatio import`.
func importHistory(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fset := newCommand("vatio import", importUsage, stderr)
	meterID := fset.String("meter", "", "the meter's id (required)")
	cfg, err := commandConfig(fset, args, getenv, stderr)
	if err != nil {
		return err // flag.ErrHelp after -h: run says nothing more
	}
	if fset.NArg() != 1 || *meterID == "" {
		return errors.New("import takes -meter ID and one FILE (see vatio import -h)")
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

	st, err := openCommandStore(cfg, store.Options{MaxGap: cfg.Store.MaxGap, MaxPowerW: cfg.Ingest.MaxPowerW},
		"POST the file to /api/v1/meters/"+*meterID+"/import")
	if err != nil {
		return err
	}
	defer st.Close()

	start := time.Now()
	dec := &meter.Decoder{Topic: cfg.Ingest.Topic, Limits: ingestLimits(cfg.Ingest)}
	cr, err := dec.NewCSVReader(r, *meterID, start)
	if err != nil {
		return err
	}
	cr.Progress = func(lines int) { fmt.Fprintf(stderr, "\rread %d lines", lines) }
	reading := true
	read, added, err := st.ImportFrom(func() (meter.Reading, error) {
		r, err := cr.Next()
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
	fmt.Fprintf(stdout, "imported %d readings of meter %s from %s in %s: %d new, %d replaced\n",
		read, *meterID, path, time.Since(start).Round(time.Millisecond), added, read-added)
	return nil
}

// isGzip reports whether br starts as gzip data does.
func isGzip(br *bufio.Reader) bool {
	b, _ := br.Peek(2)
	return len(b) == 2 && b[0] == 0x1f && b[1] == 0x8b
}
