// Command bit is the bitkit command-line tool: databases, SQL queries,
// imports and exports, API keys, service accounts and logins against a bitd
// server (or any server speaking the bit.io v2beta API).
//
// It is a superset of python-bitdotio's `bit`:
//
//	bit -k KEY db list
//	bit query -d user/db -q "select 1"
//
// Output is compact JSON on stdout by default (--format table|csv, and
// ndjson for query). Exit status: 0 on success, 2 on a usage error, 3 on
// any other error. See docs/cli.md for every command.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/bitkit-dev/bitkit/core"

	"golang.org/x/term"
)

// Exit statuses.
const (
	exitOK    = 0
	exitUsage = 2
	exitError = 3
)

// version is the CLI's version; the Makefile's bin/bit rule sets it with
// -ldflags "-X main.version=$(git describe)". When unset, cliVersion falls
// back on what the Go toolchain recorded in the binary.
var version = ""

func cliVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	return buildInfoVersion(bi)
}

// buildInfoVersion is the module version of a `go install …@version` build,
// else "devel" with the VCS revision the toolchain recorded (and "-dirty"
// when the tree had changes), else "devel".
func buildInfoVersion(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	if rev == "" {
		return "devel"
	}
	return "devel-" + rev[:min(len(rev), 12)] + dirty
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	a := &app{
		stdin:     os.Stdin,
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		getenv:    os.Getenv,
		stdinTTY:  term.IsTerminal(int(os.Stdin.Fd())),
		stdoutTTY: term.IsTerminal(int(os.Stdout.Fd())),
		stderrTTY: term.IsTerminal(int(os.Stderr.Fd())),
		stderrWidth: func() int {
			w, _, err := term.GetSize(int(os.Stderr.Fd()))
			if err != nil {
				return 0
			}
			return w
		},
		readPassword: func() (string, error) {
			b, err := term.ReadPassword(int(os.Stdin.Fd()))
			return string(b), err
		},
	}
	code := a.run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// app is one run of the CLI with its streams and environment, so that tests
// can drive it without a process.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	stdinTTY       bool                   // stdin is a terminal (prompts allowed)
	stdoutTTY      bool                   // stdout is a terminal (sentences instead of JSON where a command says so)
	stderrTTY      bool                   // stderr is a terminal (progress bars)
	stderrWidth    func() int             // stderr's terminal width in columns, 0 when unknown; may be nil
	readPassword   func() (string, error) // reads a line without echo from the terminal

	out *bufio.Writer // buffered stdout, flushed at the end of run
}

// run executes one command line and returns the exit status.
func (a *app) run(ctx context.Context, args []string) int {
	a.out = bufio.NewWriterSize(a.stdout, 64<<10)
	root := commands()
	inv, err := parse(root, args)
	if inv != nil && inv.opt("--help").on() {
		writeHelp(a.out, inv.cmd)
		a.out.Flush()
		return exitOK
	}
	if inv != nil && inv.opt("--version").on() && err == nil {
		fmt.Fprintf(a.out, "bit %s (%s %s/%s)\n", cliVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		a.out.Flush()
		return exitOK
	}
	if err == nil {
		inv.app = a
		err = inv.cmd.run(ctx, inv)
	}
	if ferr := a.out.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write output: %w", ferr)
	}
	if err == nil {
		return exitOK
	}
	return a.report(ctx, err, inv)
}

// report prints err on stderr and returns the exit status for it.
func (a *app) report(ctx context.Context, err error, inv *invocation) int {
	var es *exitStatusError
	if errors.As(err, &es) {
		return es.code
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(a.stderr, "bit: %s\n\n", ue.msg)
		cmd := ue.cmd
		if cmd == nil && inv != nil {
			cmd = inv.cmd
		}
		if cmd == nil {
			cmd = commands()
		}
		w := bufio.NewWriter(a.stderr)
		writeUsage(w, cmd)
		w.Flush()
		return exitUsage
	}
	if inv != nil && inv.session != nil && inv.session.cache.wasStale() {
		var apiErr *core.APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode == http.StatusUnauthorized {
			err = inv.session.expiredError()
		}
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		fmt.Fprintln(a.stderr, "bit: interrupted")
		return exitError
	}
	fmt.Fprint(a.stderr, describeError(err))
	return exitError
}

// invocation is a parsed command line.
type invocation struct {
	app   *app
	cmd   *command
	flags *flagSet
	args  []string // positional arguments after the command words
	// passthrough holds the arguments after "--" of a passthrough command.
	passthrough []string

	session *session // the `bit login` session used, when no API key was given
}

// opt returns the option spelled name (with dashes). It panics for a name the
// command never registered: that is a programming error, caught by tests.
func (inv *invocation) opt(name string) *option {
	o := inv.flags.byName[strings.TrimLeft(name, "-")]
	if o == nil {
		panic("bit: option " + name + " is not registered for " + inv.cmd.fullName())
	}
	return o
}

// str returns the value of a string flag, or "" when it was not given.
func (inv *invocation) str(name string) string { return inv.opt(name).str("") }

// command is one node of the command tree.
type command struct {
	name     string
	synopsis string // arguments after the command words, for usage
	summary  string // one line
	long     string // paragraphs printed by --help
	subs     []*command
	parent   *command
	flags    func(*flagSet) // registers the command's own flags
	maxArgs  int            // positional arguments accepted
	// passthrough: arguments after "--" are kept apart for another program.
	passthrough bool
	run         func(ctx context.Context, inv *invocation) error
}

// path yields the command and its ancestors, root first.
func (c *command) path() func(func(*command) bool) {
	return func(yield func(*command) bool) {
		var chain []*command
		for x := c; x != nil; x = x.parent {
			chain = append(chain, x)
		}
		for i := len(chain) - 1; i >= 0; i-- {
			if !yield(chain[i]) {
				return
			}
		}
	}
}

// fullName is "bit db create".
func (c *command) fullName() string {
	var parts []string
	for x := range c.path() {
		parts = append(parts, x.name)
	}
	return strings.Join(parts, " ")
}

func (c *command) sub(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

// group makes a command that only holds subcommands.
func group(name, summary string, subs ...*command) *command {
	g := &command{name: name, summary: summary, subs: subs}
	for _, s := range subs {
		s.parent = g
	}
	return g
}

// addGlobalFlags registers the flags every command accepts.
func addGlobalFlags(fs *flagSet) {
	fs.add(&option{names: []string{"-k", "--key"}, metavar: "KEY",
		help: "API key (default: $BITKIT_API_KEY, then $BITIO_KEY, then the `bit login` session)"})
	fs.add(&option{names: []string{"--endpoint"}, metavar: "URL",
		help: "API endpoint (default: $BITKIT_ENDPOINT, then http://127.0.0.1:8080, a local bitd)"})
	fs.add(&option{names: []string{"--format"}, metavar: "FORMAT",
		help: "output format: json (default, compact), table or csv"})
	fs.add(&option{names: []string{"--account"}, metavar: "NAME",
		help: "account that database names without an account part belong to (default: your own)"})
	fs.add(&option{names: []string{"-h", "--help"}, help: "show help for the command and exit"})
	fs.add(&option{names: []string{"-v", "--version"}, help: "print the version and exit"})
}

// parse walks args, descending the command tree on command words and
// collecting flags anywhere (before or after positional arguments; "--" ends
// the flags). It always returns the invocation it got to, so that --help
// works even on a command line that has mistakes.
func parse(root *command, args []string) (*invocation, error) {
	fs := newFlagSet()
	addGlobalFlags(fs)
	inv := &invocation{cmd: root, flags: fs}
	var firstErr error
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	noMoreFlags := false
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !noMoreFlags && arg == "--" {
			noMoreFlags = true
			continue
		}
		if !noMoreFlags && len(arg) > 1 && arg[0] == '-' {
			o, name, val, hasVal := fs.lookup(arg)
			spelled := arg
			if j := strings.IndexByte(arg, '='); j >= 0 {
				spelled = arg[:j]
			}
			if o == nil {
				if name == "" {
					fail(usagef(inv.cmd, "malformed flag %q", arg))
				} else {
					fail(usagef(inv.cmd, "unknown flag %s for %s%s (see %s --help)", spelled, inv.cmd.fullName(), didYouMean(spelled, fs.spellings()), inv.cmd.fullName()))
				}
				continue
			}
			switch {
			case o.isBool() && !hasVal:
				val = "true"
			case o.optional != nil && !hasVal:
				// The value is optional: take the next argument only when
				// the option accepts it; else the flag stands alone ("").
				if i+1 < len(args) && o.optional(args[i+1]) {
					i++
					val = args[i]
				}
			case !o.isBool() && !hasVal:
				if i+1 >= len(args) {
					fail(usagef(inv.cmd, "flag %s needs a value (%s)", spelled, o.metavar))
					continue
				}
				i++
				val = args[i]
			}
			if err := o.assign(inv.cmd, spelled, val); err != nil {
				fail(err)
			}
			continue
		}
		if len(inv.cmd.subs) > 0 {
			sub := inv.cmd.sub(arg)
			if sub == nil {
				fail(unknownCommand(inv.cmd, arg))
				continue
			}
			inv.cmd = sub
			if sub.flags != nil {
				sub.flags(fs)
			}
			continue
		}
		if noMoreFlags && inv.cmd.passthrough {
			inv.passthrough = append(inv.passthrough, arg)
			continue
		}
		inv.args = append(inv.args, arg)
	}
	if firstErr != nil {
		return inv, firstErr
	}
	if inv.opt("--version").on() {
		return inv, nil
	}
	if len(inv.cmd.subs) > 0 {
		if inv.cmd.parent == nil {
			return inv, usagef(inv.cmd, "missing command")
		}
		return inv, usagef(inv.cmd, "missing subcommand for %s (one of: %s)", inv.cmd.fullName(), subNames(inv.cmd))
	}
	if len(inv.args) > inv.cmd.maxArgs {
		return inv, usagef(inv.cmd, "unexpected argument %q for %s", inv.args[inv.cmd.maxArgs], inv.cmd.fullName())
	}
	return inv, nil
}

func subNames(c *command) string {
	names := make([]string, len(c.subs))
	for i, s := range c.subs {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

// commands builds the command tree.
func commands() *command {
	root := group("bit", "the bitkit command-line tool",
		dbCommand(),
		queryCommand(),
		importCommand(),
		exportCommand(),
		loginCommand(),
		logoutCommand(),
		accountCommand(),
		keyCommand(),
		saCommand(),
		connectCommand(),
		psqlCommand(),
		helpCommand(),
	)
	root.long = rootLong
	return root
}

const rootLong = `Credentials: -k/--key, else $BITKIT_API_KEY, else $BITIO_KEY, else the session
saved by "bit login" for the endpoint. Output: compact JSON on stdout unless
--format says otherwise. Exit status: 0 success, 2 usage error, 3 any other error
(the server's message, code, SQLSTATE and hint on stderr).`

func helpCommand() *command {
	return &command{
		name:     "help",
		synopsis: "[COMMAND...]",
		summary:  "show help for a command",
		maxArgs:  3,
		run: func(ctx context.Context, inv *invocation) error {
			c := commands()
			for _, w := range inv.args {
				s := c.sub(w)
				if s == nil {
					return unknownCommand(c, w)
				}
				c = s
			}
			writeHelp(inv.app.out, c)
			return nil
		},
	}
}
