package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/store"
)

const tokenUsage = `Usage:
  vatio token [flags]

Makes an API token and prints it: send it as "Authorization: Bearer <token>".
It is shown this once; Vatio keeps only its hash. On a bbolt store, stop
Vatio first, or make one in the running server with POST /api/v1/tokens
(admin); on PostgreSQL (store.driver postgres) running instances take it
at its first use.

Flags:
`

// makeToken is `vatio token`.
func makeToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fset := newCommand("vatio token", tokenUsage, stderr)
	name := fset.String("name", "cli", "what the token is for")
	role := fset.String("role", auth.Viewer, "admin, operator or viewer")
	valid := fset.Duration("expires", 0, "how long it is valid, e.g. 720h (0: until revoked)")
	cfg, err := commandConfig(fset, args, getenv, stderr)
	if err != nil {
		return err
	}
	if fset.NArg() != 0 {
		return errors.New("token takes flags only (see vatio token -h)")
	}
	st, err := openCommandStore(cfg, store.Options{}, "POST /api/v1/tokens as an admin")
	if err != nil {
		return err
	}
	defer st.Close()
	users, err := auth.New(st, nil)
	if err != nil {
		return err
	}
	var expires *time.Time
	if *valid > 0 {
		at := time.Now().Add(*valid)
		expires = &at
	}
	t, secret, err := users.NewToken(*name, *role, expires)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, secret)
	fmt.Fprintf(stderr, "token %s (%s, role %s) made; it is not shown again\n", t.ID, t.Name, t.Role)
	return nil
}
