package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.yaml.in/yaml/v3"

	"github.com/vatio-energy/vatio/internal/alert"
	"github.com/vatio-energy/vatio/internal/audit"
	"github.com/vatio-energy/vatio/internal/auth"
	"github.com/vatio-energy/vatio/internal/modbus"
)

// The settings page's Modbus section lists the Modbus meters, config.yaml's
// read-only and those saved here or through the API, with whether each
// answers; admins add, change and delete the saved ones with a plain form
// (a register map as the API's JSON list, for a meter without a profile).

// modbusView is a device as the section lists it.
type modbusView struct {
	modbus.Entry
	// What is its profile, or how many registers it reads.
	What string
	// Interval is its poll interval as the page writes durations.
	Interval string
	// Polled is whether the poller reads it; Online, LastError and
	// LastAnswer what its last poll did.
	Polled, Online bool
	LastError      string
	LastAnswer     time.Time
	// MeterKnown is whether its meter has a page yet.
	MeterKnown bool
	// ProblemText is Problem in the page's language; Shadowed is set for
	// a saved device config.yaml's of its name hides (it can only be
	// deleted).
	ProblemText string
	Shadowed    bool
}

// modbusForm is the device form as typed, with its error.
type modbusForm struct {
	// Editing is the name of the device changed, "" for a new one.
	Editing                                     string
	Name, URL, Unit, Profile, Interval, Timeout string
	Speed, Parity, StopBits, Registers          string
	Error                                       string
}

// modbusFormOf is e in the form.
func modbusFormOf(e modbus.Entry) *modbusForm {
	f := &modbusForm{Editing: e.Name, Name: e.Name, URL: e.URL, Profile: e.Profile, Parity: e.Parity}
	if e.Unit != 0 {
		f.Unit = strconv.Itoa(e.Unit)
	}
	if e.Interval != 0 {
		f.Interval = pollDuration(time.Duration(e.Interval))
	}
	if e.Timeout != 0 {
		f.Timeout = pollDuration(time.Duration(e.Timeout))
	}
	if e.Speed != 0 {
		f.Speed = strconv.Itoa(e.Speed)
	}
	if e.StopBits != 0 {
		f.StopBits = strconv.Itoa(e.StopBits)
	}
	if len(e.Registers) > 0 {
		b, _ := json.MarshalIndent(e.Registers, "", "  ")
		f.Registers = string(b)
	}
	return f
}

// parseRegisters reads a register map typed in the form: a YAML list as
// config.yaml's registers (hex addresses such as 0x28 too), with or
// without its "registers:" key, or the API's JSON list (JSON is YAML).
func parseRegisters(text string) ([]modbus.Register, error) {
	var list []modbus.Register
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	err := dec.Decode(&list)
	if err == nil {
		return list, nil
	}
	var doc struct {
		Registers []modbus.Register `yaml:"registers"`
	}
	dec = yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if derr := dec.Decode(&doc); derr == nil && len(doc.Registers) > 0 {
		return doc.Registers, nil
	}
	return nil, err
}

// pollDuration writes d as the page writes durations, those with parts of
// a second in milliseconds ("200 ms", "1500 ms"), which the form reads
// back.
func pollDuration(d time.Duration) string {
	if d%time.Second != 0 {
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	}
	return alert.HumanDuration(d)
}

// maxRegistersText bounds the register map typed in the form.
const maxRegistersText = 64 << 10

// postedModbus reads the device form of c: the form as typed, and the
// device it says, or why it says none.
func postedModbus(c *fiber.Ctx, l *language) (*modbusForm, modbus.Spec, error) {
	args := c.Request().PostArgs()
	field := func(name string) string { return strings.TrimSpace(string(args.Peek(name))) }
	f := &modbusForm{Editing: field("editing"), Name: field("name"), URL: field("url"), Unit: field("unit"), Profile: field("profile"),
		Interval: field("interval"), Timeout: field("timeout"), Speed: field("speed"), Parity: field("parity"),
		StopBits: field("stop_bits"), Registers: field("registers")}
	if f.Editing != "" {
		f.Name = f.Editing // a device's name is not changed
	}
	spec := modbus.Spec{Name: f.Name, URL: f.URL, Profile: f.Profile, Parity: f.Parity}
	whole := func(key, s string, into *int) error {
		if s == "" {
			return nil
		}
		v, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%s: %s", key, fmt.Sprintf(l.T("form.not_number"), s))
		}
		*into = v
		return nil
	}
	dur := func(key, s string, into *modbus.Duration) error {
		if s == "" {
			return nil
		}
		v, err := parseDuration(s)
		if err != nil {
			return fmt.Errorf("%s: %s", key, fmt.Sprintf(l.T("form.not_duration"), s))
		}
		*into = modbus.Duration(v)
		return nil
	}
	err := errors.Join(whole("unit", f.Unit, &spec.Unit), whole("speed", f.Speed, &spec.Speed), whole("stop_bits", f.StopBits, &spec.StopBits),
		dur("interval", f.Interval, &spec.Interval), dur("timeout", f.Timeout, &spec.Timeout))
	if err != nil {
		return f, spec, err
	}
	if f.Registers != "" {
		if len(f.Registers) > maxRegistersText {
			return f, spec, fmt.Errorf("registers: %s", fmt.Sprintf(l.T("modbus.registers_long"), maxRegistersText>>10))
		}
		regs, err := parseRegisters(f.Registers)
		if err != nil {
			return f, spec, fmt.Errorf("registers: %s (%v)", l.T("modbus.registers_json"), err)
		}
		spec.Registers = regs
	}
	return f, spec, nil
}

// modbusSection fills data's Modbus section.
func (d *Dashboard) modbusSection(data *configureData, meters []string) {
	if d.modbusDevices == nil {
		return
	}
	data.ModbusOn, data.Profiles = true, modbus.ProfileNames()
	status := map[string]modbus.Status{}
	if d.modbus != nil {
		for _, s := range d.modbus.Status() {
			status[s.Name] = s
		}
	}
	for _, e := range d.modbusDevices.List() {
		v := modbusView{Entry: e, What: e.Profile, MeterKnown: slices.Contains(meters, e.Name), ProblemText: e.Explain(data.Lang.modbusFormats())}
		v.Shadowed = e.Source == modbus.FromDatabase && slices.ContainsFunc(data.Modbus, func(o modbusView) bool { return o.Name == e.Name })
		if v.What == "" {
			v.What = fmt.Sprintf(data.Lang.T("modbus.n_registers"), len(e.Registers))
		}
		iv := time.Duration(e.Interval)
		if iv == 0 {
			iv = modbus.DefaultInterval
		}
		v.Interval = pollDuration(iv)
		if s, ok := status[e.Name]; ok && e.Problem == "" {
			v.Polled, v.Online, v.LastError, v.LastAnswer = true, s.Online, s.LastError, s.LastAnswer
		}
		data.Modbus = append(data.Modbus, v)
	}
	data.ModbusForm = &modbusForm{}
}

// saveModbus serves POST /settings/modbus (admin): the device form makes a
// device, or changes the one it edits; it is polled at once.
func (d *Dashboard) saveModbus(c *fiber.Ctx) error {
	b := d.newBase(c, "configure", "configure.title")
	form, spec, err := postedModbus(c, b.Lang)
	if err == nil {
		old, getErr := d.modbusDevices.Get(spec.Name)
		switch {
		case getErr == nil && old.Source == modbus.FromConfig:
			err = errors.New(b.Lang.T("modbus.in_config"))
		case getErr == nil && form.Editing == "":
			err = fmt.Errorf("name: %s", fmt.Sprintf(b.Lang.T("modbus.exists"), spec.Name))
		case getErr != nil && form.Editing != "":
			err = fmt.Errorf("name: %s", b.Lang.T("modbus.gone"))
		default:
			var (
				e       modbus.Entry
				created bool
			)
			if e, created, err = d.modbusDevices.Put(spec, auth.WhoFrom(c.UserContext()).User, d.now()); err == nil {
				verb := "saved"
				if created {
					verb = "created"
				}
				audit.Note(c.UserContext(), "modbus device "+spec.Name+" "+verb+": "+e.Summary())
				return back(c, "modbus_saved", spec.Name, "modbus")
			}
			var ie *modbus.InvalidError
			switch {
			case errors.Is(err, modbus.ErrConfigDevice):
				err = errors.New(b.Lang.T("modbus.in_config"))
			case errors.Is(err, modbus.ErrTooMany):
				err = fmt.Errorf(b.Lang.T("modbus.too_many"), modbus.MaxDevices)
			case errors.As(err, &ie):
				err = errors.New(modbus.Say(ie.Err, b.Lang.modbusFormats())) // names the setting, as config.yaml's errors do
			default:
				return err
			}
		}
	}
	data := d.configureData(c, b)
	form.Error = err.Error()
	data.ModbusForm = form
	return d.refused(c, b, data)
}

// deleteModbus serves POST /settings/modbus/{name}/delete (admin): the
// device is no longer polled; its meters and readings stay.
func (d *Dashboard) deleteModbus(c *fiber.Ctx) error {
	name := strings.Clone(c.Params("name"))
	if err := d.modbusDevices.Delete(name); err != nil {
		switch {
		case errors.Is(err, modbus.ErrUnknownDevice):
			return fiber.NewError(fiber.StatusNotFound, err.Error())
		case errors.Is(err, modbus.ErrConfigDevice):
			return fiber.NewError(fiber.StatusConflict, err.Error())
		}
		return err
	}
	audit.Note(c.UserContext(), "modbus device "+name+" deleted")
	return back(c, "modbus_deleted", name, "modbus")
}
