package main

import (
	"fmt"
	"strconv"
	"strings"
)

// option is one command-line flag. Names are given without dashes; on the
// command line a flag may be written with one or two dashes (-q, --q, -qf,
// --query-file), and its value either as the next argument or after '='.
type option struct {
	names   []string // spellings with dashes, e.g. "-k", "--key", "-qf"
	metavar string   // "" for a boolean flag
	help    string
	repeat  bool     // may be given several times (values accumulate)
	choices []string // allowed values, when restricted
	// optional, when set, makes the value optional: the next argument is
	// the flag's value only when optional accepts it; otherwise the flag
	// gets the value "".
	optional func(next string) bool

	vals []string
	set  bool
}

// isBool reports whether the flag takes no value.
func (o *option) isBool() bool { return o.metavar == "" }

// str returns the flag's last value, or def when it was not given.
func (o *option) str(def string) string {
	if len(o.vals) == 0 {
		return def
	}
	return o.vals[len(o.vals)-1]
}

// on reports whether a boolean flag was given (and not set to false).
func (o *option) on() bool {
	return o.set && o.str("true") == "true"
}

// label is the flag's spelling for usage and error messages: "-k, --key KEY".
func (o *option) label() string {
	s := strings.Join(o.names, ", ")
	if o.metavar != "" {
		s += " " + o.metavar
	}
	return s
}

// flagSet is the set of flags one command understands.
type flagSet struct {
	opts   []*option
	byName map[string]*option
}

func newFlagSet() *flagSet { return &flagSet{byName: map[string]*option{}} }

// add registers o. A later registration of a name shadows an earlier one, so
// a command's own flag wins over a global flag of the same name.
// Values already given to the shadowed flag (written before the command
// word, like `bit --format csv query ...`) carry over.
func (f *flagSet) add(o *option) *option {
	f.opts = append(f.opts, o)
	for _, n := range o.names {
		key := strings.TrimLeft(n, "-")
		if old := f.byName[key]; old != nil && old.set && !o.set && old.isBool() == o.isBool() {
			o.vals = append(o.vals, old.vals...)
			o.set = true
		}
		f.byName[key] = o
	}
	return o
}

// usageError is a mistake on the command line: exit status 2, with usage.
type usageError struct {
	msg string
	cmd *command // the command whose usage to print; nil for the top level
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd *command, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), cmd: cmd}
}

// lookup resolves one argument that starts with '-' into its option and the
// value written after '=', if any.
func (f *flagSet) lookup(arg string) (o *option, name, val string, hasVal bool) {
	name = strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-")
	if i := strings.IndexByte(name, '='); i >= 0 {
		name, val, hasVal = name[:i], name[i+1:], true
	}
	return f.byName[name], name, val, hasVal
}

// assign records one value for o, checking choices and boolean spellings.
func (o *option) assign(cmd *command, spelled, val string) error {
	if o.isBool() {
		b, err := strconv.ParseBool(val)
		if err != nil {
			return usagef(cmd, "flag %s takes no value or true|false, not %q", spelled, val)
		}
		val = strconv.FormatBool(b)
	}
	if len(o.choices) > 0 && !contains(o.choices, val) {
		return usagef(cmd, "flag %s must be one of %s, not %q", spelled, strings.Join(o.choices, "|"), val)
	}
	if o.set && !o.repeat && !o.isBool() && o.optional == nil && o.str("") != val {
		return usagef(cmd, "flag %s given twice with different values", spelled)
	}
	o.vals = append(o.vals, val)
	o.set = true
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// isBoolLiteral reports whether s spells a boolean (true, False, 1, ...).
func isBoolLiteral(s string) bool {
	_, err := strconv.ParseBool(s)
	return err == nil
}
