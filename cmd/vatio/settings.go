package main

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/automation"
	"github.com/vatio-energy/vatio/internal/config"
	"github.com/vatio-energy/vatio/internal/crypt"
	"github.com/vatio-energy/vatio/internal/meter"
	"github.com/vatio-energy/vatio/internal/tariff"
)

// The configuration describes; the objects Vatio runs with are built here
// from the sections they need. A builder's errors name the keys, as
// config.Validate's do, and checkSettings runs every builder at start-up,
// so that one start lists everything wrong with a config file.

// configErrors joins the errors of config.Validate and checkSettings into
// one list in the order of the keys they name, as config.yaml has them
// (then by item: periods[0] before periods[1]), so that one item's errors
// stay together whichever check found them. Errors naming no key come
// last, in their order.
func configErrors(errs ...error) error {
	var all []error
	for _, err := range errs {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			all = append(all, j.Unwrap()...)
		} else if err != nil {
			all = append(all, err)
		}
	}
	rank := map[string]int{}
	for i, k := range config.Keys() {
		rank[k] = i
	}
	// An error's place: the key of its list, or its own key; its items'
	// indexes; its own key.
	type place struct {
		list, field int
		items       []int
	}
	index := regexp.MustCompile(`\[(\d+)\]`)
	// rankOf is the rank of key, or of the nearest key above it
	// ("alerts.rules[]" is "alerts.rules"); len(rank) for none.
	rankOf := func(key string) int {
		for key != "" {
			if r, ok := rank[key]; ok {
				return r
			}
			i := strings.LastIndexAny(key, ".[")
			if i <= 0 {
				break
			}
			key = key[:i]
		}
		return len(rank)
	}
	placeOf := func(err error) place {
		key, _, _ := strings.Cut(err.Error(), ":")
		key, _, _ = strings.Cut(key, " ") // "encryption.key (or VATIO_ENCRYPTION_KEY)"
		var p place
		for _, m := range index.FindAllStringSubmatch(key, -1) {
			n, _ := strconv.Atoi(m[1])
			p.items = append(p.items, n)
		}
		bare := index.ReplaceAllString(key, "[]")
		p.field = rankOf(bare)
		p.list = p.field
		if list, _, ok := strings.Cut(bare, "["); ok {
			p.list = rankOf(list)
		}
		return p
	}
	slices.SortStableFunc(all, func(a, b error) int {
		pa, pb := placeOf(a), placeOf(b)
		return cmp.Or(cmp.Compare(pa.list, pb.list), slices.Compare(pa.items, pb.items), cmp.Compare(pa.field, pb.field))
	})
	return errors.Join(all...)
}

// checkSettings reports what config.Validate cannot judge: what the domain
// packages refuse when the objects are built.
func checkSettings(cfg config.Config) error {
	var errs []error
	if _, err := encryptionKey(cfg.Encryption); err != nil {
		errs = append(errs, err)
	}
	for i, in := range cfg.Inputs {
		if err := inputSource(in).Check(); err != nil {
			field, detail, _ := strings.Cut(err.Error(), ":")
			errs = append(errs, fmt.Errorf("inputs[%d].%s: %s", i, field, strings.TrimSpace(detail)))
		}
	}
	if _, err := buildTariff(cfg.Tariff, time.UTC); err != nil {
		errs = append(errs, err)
	}
	for i, r := range cfg.Alerts.Rules {
		rule := alertRule(r)
		if err := rule.Check(); err != nil {
			var ie *alert.InvalidError
			if errors.As(err, &ie) {
				errs = append(errs, fmt.Errorf("alerts.rules[%d].%s: %s", i, ie.Field, ie.Reason))
			} else {
				errs = append(errs, fmt.Errorf("alerts.rules[%d]: %v", i, err))
			}
		}
	}
	if body := cfg.Alerts.Webhook.Body; body != "" {
		if _, err := alert.ParseBody(body); err != nil {
			errs = append(errs, fmt.Errorf("alerts.webhook.body: %v", err))
		}
	}
	for _, pr := range mailSpec(cfg.Alerts.Email).Check() {
		errs = append(errs, fmt.Errorf("alerts.email.%s: %s", pr.Field, pr.Reason))
	}
	if cfg.Shedding.Enabled {
		if _, err := buildShedding(cfg.Shedding); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// encryptionKey is the key of backups and archives; nil when none is set.
// Its error never holds the key.
func encryptionKey(e config.Encryption) (*crypt.Key, error) {
	if e.Key == "" {
		return nil, nil
	}
	k, err := crypt.ParseKey(e.Key)
	if err != nil {
		return nil, fmt.Errorf("encryption.key (or %s): %w", config.EnvEncryptionKey, err)
	}
	return k, nil
}

// ingestLimits are the limits readings are validated within.
func ingestLimits(in config.Ingest) meter.Limits {
	return meter.Limits{MinPowerW: in.MinPowerW, MaxPowerW: in.MaxPowerW, MaxFuture: in.MaxFuture, MaxPayloadBytes: in.MaxPayloadBytes}
}

// inputSource is a configured input as the meter package describes it.
func inputSource(in config.Input) meter.Input {
	return meter.Input{Name: in.Name, Topic: in.Topic, Format: in.Format, Field: in.Field, Unit: in.Unit,
		EnergyField: in.EnergyField, EnergyUnit: in.EnergyUnit, PFField: in.PFField, Meter: in.Meter, Scale: in.Scale}
}

// tariffSpec is config.yaml's tariff section as the tariff package reads
// it, from config.yaml or from the API and the dashboard.
func tariffSpec(t config.Tariff) tariff.Spec {
	out := tariff.Spec{Currency: t.Currency, PriceKWh: t.PriceKWh, ExportPriceKWh: t.ExportPriceKWh, DailyCharge: t.DailyCharge,
		DemandChargeKW: t.DemandChargeKW, CO2GramsKWh: t.CO2GramsKWh, ReactivePriceKVArh: t.ReactivePriceKVArh, Holidays: t.Holidays}
	for _, p := range t.Periods {
		out.Periods = append(out.Periods, tariff.PeriodSpec{Name: p.Name, PriceKWh: p.PriceKWh, Days: p.Days, From: p.From, To: p.To})
	}
	return out
}

// buildTariff is the tariff in the time zone loc, or what is wrong with
// it, each error naming its key (tariff.periods[0].from): the tariff
// package judges the whole section, as it judges a tariff saved on the
// dashboard.
func buildTariff(t config.Tariff, loc *time.Location) (*tariff.Tariff, error) {
	out, err := tariffSpec(t).Build(loc)
	if err != nil {
		var errs []error
		for _, fe := range tariff.FieldErrors(err) {
			errs = append(errs, fmt.Errorf("tariff.%s: %s", fe.Field, fe.Reason))
		}
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// alertRule is a configured rule as the alert package takes it.
func alertRule(r config.Rule) alert.Rule {
	var actions []alert.Action
	for _, a := range r.Actions {
		actions = append(actions, alert.Action{On: a.On, Command: automationCommand(a)})
	}
	return alert.Rule{ID: r.ID, Name: r.Name, Kind: r.Kind, Meter: r.Meter, Severity: r.Severity, Enabled: r.Enabled,
		ThresholdW: r.ThresholdW, For: alert.Duration(r.For), BudgetKWh: r.BudgetKWh, Period: r.Period,
		SilentFor: alert.Duration(r.SilentFor), Factor: r.Factor, HysteresisW: r.HysteresisW, Cooldown: alert.Duration(r.Cooldown),
		ThresholdPct: r.ThresholdPct, HysteresisPct: r.HysteresisPct, Actions: actions}
}

func automationCommand(a config.Action) automation.Command {
	return automation.Command{Topic: a.Topic, URL: a.URL, Payload: a.Payload}
}

// buildShedding is the load shedding, or what is wrong with its loads'
// meters and commands (the rest is config.Validate's).
func buildShedding(s config.Shedding) (automation.Shedding, error) {
	out := automation.Shedding{Site: s.Site, CapW: s.CapW, HysteresisW: s.HysteresisW, MinOff: s.MinOff, DryRun: s.DryRun}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("shedding.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	for i, l := range s.Loads {
		key := fmt.Sprintf("loads[%d].", i)
		if !meter.ValidID(l.Meter) {
			bad(key+"meter", "%q is not a meter id", l.Meter)
		}
		off, on := automationCommand(l.Off), automationCommand(l.On)
		if err := off.Check(); err != nil {
			bad(key+"off", "%v", err)
		}
		if err := on.Check(); err != nil {
			bad(key+"on", "%v", err)
		}
		out.Loads = append(out.Loads, automation.Load{Name: l.Name, Meter: l.Meter, Off: off, On: on})
	}
	return out, errors.Join(errs...)
}

// mailSpec is config.yaml's alerts.email as alert.Mail takes it.
func mailSpec(e config.Email) alert.MailSpec {
	return alert.MailSpec{Addr: e.Addr, From: e.From, To: e.To, Username: e.Username, Password: e.Password, TLS: e.TLS,
		Timeout: alert.Duration(e.Timeout)}
}
