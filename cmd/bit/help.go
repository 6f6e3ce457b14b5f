package main

import (
	"fmt"
	"io"
	"strings"
)

// writeUsage prints the short usage of cmd (for usage errors, on stderr).
func writeUsage(w io.Writer, cmd *command) {
	if len(cmd.subs) > 0 {
		fmt.Fprintf(w, "Usage: %s COMMAND [flags]\n\nCommands:\n", cmd.fullName())
		writeSubs(w, cmd)
	} else {
		fmt.Fprintf(w, "Usage: %s %s\n", cmd.fullName(), cmd.synopsis)
	}
	fmt.Fprintf(w, "\nRun '%s --help' for details.\n", cmd.fullName())
}

func writeSubs(w io.Writer, cmd *command) {
	width := 0
	for _, s := range cmd.subs {
		width = max(width, len(s.name))
	}
	for _, s := range cmd.subs {
		fmt.Fprintf(w, "  %-*s  %s\n", width, s.name, s.summary)
	}
}

// writeHelp prints the full help of cmd (for -h/--help, on stdout).
func writeHelp(w io.Writer, cmd *command) {
	if len(cmd.subs) > 0 {
		fmt.Fprintf(w, "Usage: %s COMMAND [flags]\n\n", cmd.fullName())
	} else {
		fmt.Fprintf(w, "Usage: %s %s\n\n", cmd.fullName(), cmd.synopsis)
	}
	if cmd.summary != "" {
		fmt.Fprintf(w, "%s%s.\n", strings.ToUpper(cmd.summary[:1]), cmd.summary[1:])
	}
	if cmd.long != "" {
		fmt.Fprintf(w, "\n%s\n", cmd.long)
	}
	if len(cmd.subs) > 0 {
		fmt.Fprintf(w, "\nCommands:\n")
		writeSubs(w, cmd)
	}
	own := newFlagSet()
	if cmd.flags != nil {
		cmd.flags(own)
	}
	if len(own.opts) > 0 {
		fmt.Fprintf(w, "\nFlags:\n")
		writeOpts(w, own.opts)
	}
	global := newFlagSet()
	addGlobalFlags(global)
	var shown []*option
	for _, o := range global.opts {
		shadowed := false
		for _, n := range o.names {
			if own.byName[strings.TrimLeft(n, "-")] != nil {
				shadowed = true
			}
		}
		if !shadowed {
			shown = append(shown, o)
		}
	}
	fmt.Fprintf(w, "\nGlobal flags:\n")
	writeOpts(w, shown)
	if len(cmd.subs) > 0 {
		fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's flags.\n", cmd.fullName())
	}
}

func writeOpts(w io.Writer, opts []*option) {
	width := 0
	for _, o := range opts {
		width = max(width, len(o.label()))
	}
	for _, o := range opts {
		lines := strings.Split(o.help, "\n")
		fmt.Fprintf(w, "  %-*s  %s\n", width, o.label(), lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(w, "  %-*s  %s\n", width, "", l)
		}
	}
}
