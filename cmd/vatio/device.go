package main

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/vatio-energy/vatio/internal/devices"
	"github.com/vatio-energy/vatio/store"
)

const deviceUsage = `Usage:
  vatio device add [flags] NAME

Gives a device MQTT credentials and prints the settings to type into it
(Tasmota, Shelly, or any client): user NAME and a new password, shown this
once. The device may publish only on its own topics (energy/consumption/NAME,
tele/NAME/#, stat/NAME/#, NAME/#, shellies/NAME/#, emon/NAME/#) and subscribe
only to its commands, unless -publish and -subscribe list its topics (a
gateway's). NAME may not be a device family's or Vatio's topic level (energy,
tele, zigbee2mqtt, vatio, shelly..., ...), and no topic may reach into
another device's. On a bbolt store, stop Vatio first, or POST
/api/v1/devices as an admin; on PostgreSQL (store.driver postgres) a
running instance takes the device at its first CONNECT. With
broker.mode external it refuses: devices log in to that broker.

Flags:
`

// addDevice is `vatio device add`.
func addDevice(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "add" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			args = []string{"add", "-h"}
		} else {
			return errors.New("use: vatio device add NAME (see vatio device add -h)")
		}
	}
	fset := newCommand("vatio device add", deviceUsage, stderr)
	host := fset.String("host", "", "the address devices reach Vatio at, for the printed settings (default: this machine's name)")
	publish := fset.String("publish", "", "comma-separated topic filters the device may publish on (default: its own topics)")
	subscribe := fset.String("subscribe", "", "comma-separated topic filters the device may subscribe to (default: its own command topics)")
	cfg, err := commandConfig(fset, args[1:], getenv, stderr)
	if err != nil {
		return err
	}
	if fset.NArg() != 1 {
		return errors.New("device add takes one NAME (see vatio device add -h)")
	}
	if cfg.Broker.Mode == "external" {
		return errors.New("broker.mode is external: devices log in to that broker with its own credentials, not Vatio's")
	}
	st, err := openCommandStore(cfg, store.Options{}, "POST /api/v1/devices as an admin")
	if err != nil {
		return err
	}
	defer st.Close()
	reg, err := devices.New(st, nil, devices.WithReserved(reservedTopics(cfg)...))
	if err != nil {
		return err
	}
	d, password, err := reg.Add(fset.Arg(0), splitList(*publish), splitList(*subscribe))
	if err != nil {
		return err
	}
	h := *host
	if h == "" {
		h = hostname()
	}
	tlsAddr := ""
	if cfg.TLS.Enabled {
		tlsAddr = cfg.MQTT.TLSAddr
	}
	settings := devices.Settings(d.Name, password, h, cfg.MQTT.Addr, tlsAddr)
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(stdout, "%-9s %s\n", k+":", settings[k])
	}
	fmt.Fprintln(stderr, "the password is not shown again")
	return nil
}

// splitList splits a comma-separated flag, dropping empty items.
func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
