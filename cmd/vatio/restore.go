package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/vatio-energy/vatio/internal/config"
	"github.com/vatio-energy/vatio/internal/crypt"
	"github.com/vatio-energy/vatio/internal/offsite"
	"github.com/vatio-energy/vatio/store"
)

const restoreUsage = `Usage:
  vatio restore [flags] FILE
  vatio restore -offsite latest|NAME
  vatio restore -offsite -list

Replaces the database in the data directory with the backup FILE (from
GET /api/v1/backup or <data_dir>/backups; an encrypted one, .db.enc, is
decrypted with encryption.key or VATIO_ENCRYPTION_KEY). Stop Vatio first.
FILE is checked before anything changes; the database it replaces is kept
beside it as vatio.db.before-restore-<UTC time>.

With -offsite, the backup comes from the object storage of the offsite
settings (the newest with latest), decrypted as it downloads; -list lists
the backups there. With store.driver postgres it refuses: a PostgreSQL
store is backed up and restored by PostgreSQL (pg_dump, base backups).

Flags:
`

// restore is `vatio restore`: the data directory is found as the server
// finds it (flag > environment > config file > default).
func restore(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fset := newCommand("vatio restore", restoreUsage, stderr)
	fromOffsite := fset.Bool("offsite", false, "take the backup from the off-site object storage (offsite in config.yaml)")
	list := fset.Bool("list", false, "with -offsite: list the backups there, newest first")
	cfg, err := commandConfig(fset, args, getenv, stderr)
	if err != nil {
		return err // flag.ErrHelp after -h: run says nothing more
	}
	if err := refuseOnPostgres(cfg, "restore", "restore PostgreSQL with its own tools (pg_restore of a pg_dump, or a base backup): see the operator guide"); err != nil {
		return err
	}
	if *list {
		if !*fromOffsite {
			return errors.New("-list goes with -offsite")
		}
		return listOffsite(cfg, stdout)
	}
	if fset.NArg() != 1 {
		return errors.New("restore takes one backup FILE, after the flags (see vatio restore -h)")
	}
	src := fset.Arg(0)
	var plain string
	var cleanup func()
	if *fromOffsite {
		plain, cleanup, src, err = fetchOffsite(src, cfg)
	} else {
		plain, cleanup, err = decryptBackup(src, cfg)
	}
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
		if _, err := os.Stat(previous + ".wal"); err == nil {
			fmt.Fprintf(stdout, "its write-ahead log, with readings it did not hold yet, is kept as %s.wal: restoring %s brings it back\n", previous, previous)
		}
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

// offsiteRemote returns the object storage of cfg, for the commands.
func offsiteRemote(cfg config.Config) (*offsite.Remote, error) {
	if cfg.Offsite.Endpoint == "" || cfg.Offsite.Bucket == "" {
		return nil, errors.New("no off-site storage: set offsite.endpoint and offsite.bucket in config.yaml")
	}
	key, err := encryptionKey(cfg.Encryption)
	if err != nil {
		return nil, err
	}
	return newRemote(cfg, key, slog.New(slog.DiscardHandler))
}

// listOffsite prints the backups in the object storage, newest first.
func listOffsite(cfg config.Config, stdout io.Writer) error {
	r, err := offsiteRemote(cfg)
	if err != nil {
		return err
	}
	bs, err := r.Backups(context.Background())
	if err != nil {
		return err
	}
	for _, b := range bs {
		fmt.Fprintf(stdout, "%s\t%d\t%s\n", path.Base(b.Name), b.Size, b.Modified.UTC().Format(time.RFC3339))
	}
	return nil
}

// fetchOffsite downloads the backup name ("latest" for the newest),
// decrypted, to a temporary file (mode 0600) in the data directory, which
// cleanup removes; it returns the file and the backup's name.
func fetchOffsite(name string, cfg config.Config) (plain string, cleanup func(), got string, err error) {
	r, err := offsiteRemote(cfg)
	if err != nil {
		return "", nil, "", err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return "", nil, "", err
	}
	tmp, err := os.CreateTemp(cfg.DataDir, ".vatio-restore-*.tmp")
	if err != nil {
		return "", nil, "", err
	}
	cleanup = func() { os.Remove(tmp.Name()) }
	got, err = r.Fetch(context.Background(), name, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return "", nil, "", fmt.Errorf("%w (nothing was restored)", err)
	}
	return tmp.Name(), cleanup, "offsite:" + got, nil
}
