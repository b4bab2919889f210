package modbus

import "fmt"

// A problem is an error whose text is made of a format and its arguments,
// kept apart so that a page can say it in its reader's language (Say): the
// English format is the message's key, as a gettext msgid is. An argument
// that is an error is said in the same language.
type problem struct {
	format string
	args   []any
}

// problemf returns the problem of format (whose verbs are fmt's, %v for
// an error) and args.
func problemf(format string, args ...any) error {
	return &problem{format: format, args: args}
}

func (p *problem) Error() string { return fmt.Sprintf(p.format, p.args...) }

// Unwrap returns the errors among p's arguments, for errors.Is and As.
func (p *problem) Unwrap() []error {
	var errs []error
	for _, a := range p.args {
		if err, ok := a.(error); ok {
			errs = append(errs, err)
		}
	}
	return errs
}

// Say returns err's text with the format of each problem in it replaced by
// its entry in formats, the English format's words in another language; a
// format without an entry, and an error that is no problem (the Modbus
// library's, the network's), are said as they are. formats' entries take
// the same verbs, in the same order, as the English formats (the
// dashboard's TestModbusProblemsSaid checks that every format here has
// one).
func Say(err error, formats map[string]string) string {
	switch e := err.(type) {
	case nil:
		return ""
	case *InvalidError:
		return Say(e.Err, formats)
	case *problem:
		args := make([]any, len(e.args))
		for i, a := range e.args {
			if ae, ok := a.(error); ok {
				a = Say(ae, formats)
			}
			args[i] = a
		}
		f := e.format
		if t, ok := formats[f]; ok {
			f = t
		}
		return fmt.Sprintf(f, args...)
	}
	return err.Error()
}
