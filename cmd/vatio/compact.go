package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/vatio-energy/vatio/store"
)

const compactUsage = `Usage:
  vatio compact [flags]

Rewrites the database in the data directory without its free pages and
prints its size before and after. Stop Vatio first. The database never
grows without bound under retention (freed pages are reused), but it does
not shrink by itself either: compact after deleting much data, or after
turning retention on over a large history. It needs free disk space for a
copy; the copy is checked before it replaces the database. With
store.driver postgres it refuses: PostgreSQL reclaims space itself.

Flags:
`

// compact is `vatio compact`: the data directory is found as the server
// finds it (flag > environment > config file > default).
func compact(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fset := newCommand("vatio compact", compactUsage, stderr)
	cfg, err := commandConfig(fset, args, getenv, stderr)
	if err != nil {
		return err // flag.ErrHelp after -h: run says nothing more
	}
	if fset.NArg() != 0 {
		return fmt.Errorf("unexpected argument %q (see vatio compact -h)", fset.Arg(0))
	}
	if err := refuseOnPostgres(cfg, "compact", "PostgreSQL reuses the space of deleted rows itself (autovacuum); VACUUM FULL readings gives it back to the disk"); err != nil {
		return err
	}
	before, after, err := store.CompactFile(cfg.DataDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "compacted %s: %s -> %s\n", filepath.Join(cfg.DataDir, store.FileName), mib(before), mib(after))
	return nil
}

// mib formats a size in bytes for people.
func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n)
}
