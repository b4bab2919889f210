package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/vatio-energy/vatio/config"
	"github.com/vatio-energy/vatio/crypt"
	"github.com/vatio-energy/vatio/store"
)

const restoreUsage = `Usage:
  vatio restore [flags] FILE

Replaces the database in the data directory with the backup FILE (from
GET /api/v1/backup or <data_dir>/backups; an encrypted one, .db.enc, is
decrypted with encryption.key or VATIO_ENCRYPTION_KEY). Stop Vatio first.
FILE is checked before anything changes; the database it replaces is kept
beside it as vatio.db.before-restore-<UTC time>.

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
	plain, cleanup, err := decryptBackup(src, cfg)
	if err != nil {
		return err
	}
	defer cleanup()
	previous, err := store.Restore(plain, cfg.DataDir)
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

// decryptBackup returns the path of src in plain: src itself when it is not
// encrypted, else a temporary decrypted copy (mode 0600) in the data
// directory, which cleanup removes.
func decryptBackup(src string, cfg config.Config) (plain string, cleanup func(), err error) {
	f, err := os.Open(src)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	if !crypt.IsEncrypted(br) {
		return src, func() {}, nil
	}
	r, err := plainReader(br, src, cfg)
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return "", nil, err
	}
	tmp, err := os.CreateTemp(cfg.DataDir, ".vatio-restore-*.tmp")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.Remove(tmp.Name()) }
	_, err = io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("%s: %w (nothing was restored)", src, err)
	}
	return tmp.Name(), cleanup, nil
}
