package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/vatio-energy/vatio/internal/config"
	"github.com/vatio-energy/vatio/internal/crypt"
)

const decryptUsage = `Usage:
  vatio decrypt [flags] FILE > PLAIN

Writes FILE, an encrypted backup or archive, decrypted to stdout, with the
key of encryption.key (or VATIO_ENCRYPTION_KEY): a backup is then a
database file, an archive a gzipped CSV (vatio decrypt ARCHIVE | zcat).
Nothing is written if the key is wrong; a damaged or cut file stops with
an error at the first bad chunk. vatio restore and vatio import take
encrypted files as they are. It reads the file, not the store, so it works
alike with either store.driver.

Flags:
`

// decrypt is `vatio decrypt`.
func decrypt(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fset := newCommand("vatio decrypt", decryptUsage, stderr)
	cfg, err := commandConfig(fset, args, getenv, stderr)
	if err != nil {
		return err
	}
	if fset.NArg() != 1 {
		return errors.New("decrypt takes one FILE (see vatio decrypt -h)")
	}
	f, err := os.Open(fset.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	if !crypt.IsEncrypted(br) {
		return fmt.Errorf("%s is not encrypted", fset.Arg(0))
	}
	r, err := plainReader(br, fset.Arg(0), cfg)
	if err != nil {
		return err
	}
	if _, err := io.Copy(stdout, r); err != nil {
		return fmt.Errorf("%s: %w", fset.Arg(0), err)
	}
	return nil
}

// plainReader returns what br holds: itself when it is not encrypted, its
// decryption with the configured key when it is.
func plainReader(br *bufio.Reader, name string, cfg config.Config) (io.Reader, error) {
	if !crypt.IsEncrypted(br) {
		return br, nil
	}
	key, err := encryptionKey(cfg.Encryption)
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, fmt.Errorf("%s is encrypted: set %s (or encryption.key) to the key it was written with", name, config.EnvEncryptionKey)
	}
	r, err := crypt.NewReader(br, key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return r, nil
}
