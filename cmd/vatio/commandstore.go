package main

import (
	"errors"
	"fmt"

	"github.com/vatio-energy/vatio/internal/config"
	"github.com/vatio-energy/vatio/store"
)

// openCommandStore opens the store a command acts on, the server's: the
// PostgreSQL database of store.dsn with store.driver postgres (instances
// may be running: PostgreSQL takes writers side by side, and they read
// what the command wrote at its first use), else the bbolt file in the data
// directory, which one process holds at a time (running is what to do
// instead while Vatio runs).
func openCommandStore(cfg config.Config, opts store.Options, running string) (*store.Store, error) {
	if cfg.Store.Driver == "postgres" {
		opts.BackupInterval = 0
		st, err := store.OpenPostgres(cfg.Store.DSN, cfg.DataDir, opts)
		if err != nil {
			return nil, fmt.Errorf("store.driver is postgres: %w", err)
		}
		return st, nil
	}
	st, err := store.Open(cfg.DataDir, opts)
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%w\nVatio is running: stop it, or %s", err, running)
	}
	return st, err
}

// refuseOnPostgres returns the error of a command that acts on the bbolt
// file, with store.driver postgres: what it would do is PostgreSQL's.
func refuseOnPostgres(cfg config.Config, command, instead string) error {
	if cfg.Store.Driver != "postgres" {
		return nil
	}
	return fmt.Errorf("vatio %s acts on the bbolt database file, and store.driver is postgres: nothing was changed; %s", command, instead)
}
