// Command bitd is the bitkit server: the bit.io-style HTTP API, the
// PostgreSQL wire proxy and background jobs on top of a real PostgreSQL
// cluster.
//
//	bitd serve   --database-url URL [flags]   production server
//	bitd dev     [flags]                      local server with a private cluster and a demo user
//	bitd admin   (--data DIR | --database-url URL --metadata-db NAME) ...
//	bitd migrate --database-url URL [--metadata-db NAME]
//	bitd version
//
// Every flag falls back to a BITD_* environment variable; see docs/bitd.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `bitd — the bitkit server

Usage:
  bitd serve   --database-url URL [flags]     run the server
  bitd dev     [flags]                        run a local dev server (own PostgreSQL, demo user, DATA/demo.env)
  bitd admin   (--data DIR | --database-url URL --metadata-db NAME) COMMAND ...
               user create NAME [--password P | --password-stdin]
               user passwd NAME [--password P | --password-stdin]
               account create NAME --owner USER
               account add-member ACCOUNT USER [--role OWNER|ADMIN|WRITER|READER]
               key create USER
               key revoke KEY
  bitd migrate --database-url URL [--metadata-db NAME]
  bitd version

Run "bitd COMMAND --help" for a command's flags.
`

// exitUsage marks errors that are usage errors (exit status 2).
type exitUsage struct{ msg string }

func (e exitUsage) Error() string { return e.msg }

func main() {
	err := run(os.Args[1:])
	_ = logOut.Flush()
	if err == nil {
		return
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, "bitd:", err)
	var eu exitUsage
	if errors.As(err, &eu) {
		os.Exit(2)
	}
	os.Exit(1)
}

func run(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return exitUsage{"no command given"}
	}
	switch args[0] {
	case "serve":
		return cmdServe(args[1:], false)
	case "dev":
		return cmdServe(args[1:], true)
	case "admin":
		return cmdAdmin(args[1:])
	case "migrate":
		return cmdMigrate(args[1:])
	case "version", "--version", "-version":
		fmt.Println("bitd", version)
		return nil
	case "help", "-h", "--help", "-help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return exitUsage{fmt.Sprintf("unknown command %q", args[0])}
}

// parseInterspersed parses flags that may come before, between or after
// positional arguments and returns the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, exitUsage{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}
