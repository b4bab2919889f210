package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/vatio-energy/vatio/store"
)

const restoreUsage = `Usage:
  vatio restore [flags] FILE

Replaces the database in the data directory with the backup FILE (from
GET /api/v1/backup or <data_dir>/backups). Stop Vatio first. FILE is checked
before anything changes; the database it replaces is kept beside it as
vatio.db.before-restore-<UTC time>.

Flags:
`

// restore is `vatio restore`: the data directory is found as the server
// finds it (flag > environment > config file > default).
func restore(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fset := newCommand("vatio restore", restoreUsage, stderr)
	cfg, err := commandConfig(fset, args, getenv, stderr)
	if err != nil {
		return err // flag.ErrHelp after -h: run says nothing more
	}
	if fset.NArg() != 1 {
		return errors.New("restore takes one backup FILE, after the flags (see vatio restore -h)")
	}
	src := fset.Arg(0)
	previous, err := store.Restore(src, cfg.DataDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s to %s (checked before and after copying)\n", src, filepath.Join(cfg.DataDir, store.FileName))
	if previous != "" {
		fmt.Fprintf(stdout, "the previous database is kept as %s; delete it once the restore is confirmed\n", previous)
	} else {
		fmt.Fprintln(stdout, "there was no previous database")
	}
	return nil
}
