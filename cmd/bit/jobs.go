package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/core"
)

func importCommand() *command {
	return &command{
		name:     "import",
		synopsis: "-d DB -t TABLE [--schema S] [--header auto|first_row|no_header] (FILE | - | --url URL) [--json]",
		summary:  "import a file (CSV, JSON, XLS/XLSX, Parquet, ...) into a table",
		long: `The file is uploaded (streamed, never read into memory), then the job is
polled until it ends. When stderr is a terminal, one progress bar covers the
upload and the server's processing and stays on screen at the end. When stdout
is a terminal, bit ends with one line such as
  ✓ imported 200,000 rows into demo/cli.big in 0.9 s
otherwise (a pipe or a file, or with --json) it prints the final job object as
JSON. A job that ends FAILED exits with status 3 and its error type and details
on stderr. The server detects the format from the file name's extension
(--file-name sets the name sent, e.g. for stdin). The table is created when
missing.`,
		maxArgs: 1,
		flags: func(fs *flagSet) {
			dbFlag(fs)
			fs.add(&option{names: []string{"-t", "--table"}, metavar: "TABLE", help: "target table"})
			fs.add(&option{names: []string{"--schema"}, metavar: "SCHEMA", help: "target schema (default public)"})
			fs.add(&option{names: []string{"--header"}, metavar: "MODE", choices: []string{"auto", "first_row", "no_header"},
				help: "whether the first row holds column names: auto (default), first_row or no_header"})
			fs.add(&option{names: []string{"--url"}, metavar: "URL", help: "let the server fetch the file from URL instead of uploading one"})
			fs.add(&option{names: []string{"--file-name"}, metavar: "NAME", help: "file name sent with the upload (default: FILE's base name; upload.csv for stdin)"})
			jsonFlag(fs)
		},
		run: runImport,
	}
}

func exportCommand() *command {
	return &command{
		name:     "export",
		synopsis: "-d DB (-q SQL | -t TABLE [--schema S]) [--format csv|json|xls|parquet] [-o FILE|-] [--json]",
		summary:  "export a query result or a table to a file",
		long: `The export runs as a job on the server; bit waits for it, then downloads the
file to -o FILE (written to a temporary file first, renamed when complete).
When stderr is a terminal, one progress bar covers the processing and the
download and stays on screen at the end. When stdout is a terminal, bit ends
with one line such as
  ✓ exported 3 rows from demo/cli to out.csv (1.2 KiB) in 0.4 s
otherwise (or with --json) it prints the final job object as JSON on stdout.
With -o - the file goes to stdout and the job is not printed. Without
-o the file is saved in the current directory under the job's file name
(never over an existing file). Here --format is the format of the exported
file (default csv), not of bit's output.`,
		flags: func(fs *flagSet) {
			dbFlag(fs)
			fs.add(&option{names: []string{"-q", "--query"}, metavar: "SQL", help: "export the result of SQL"})
			fs.add(&option{names: []string{"-t", "--table"}, metavar: "TABLE", help: "export a whole table"})
			fs.add(&option{names: []string{"--schema"}, metavar: "SCHEMA", help: "schema of -t (default public)"})
			fs.add(&option{names: []string{"--format"}, metavar: "FORMAT", choices: []string{"csv", "json", "xls", "parquet"},
				help: "file format: csv (default), json, xls or parquet"})
			fs.add(&option{names: []string{"-o", "--output"}, metavar: "FILE", help: "where to save the file (- for stdout)"})
			jsonFlag(fs)
		},
		run: runExport,
	}
}

func runImport(ctx context.Context, inv *invocation) error {
	table := inv.str("--table")
	url := inv.str("--url")
	file := ""
	if len(inv.args) == 1 {
		file = inv.args[0]
	}
	switch {
	case inv.str("--database") == "":
		return usagef(inv.cmd, "missing -d/--database NAME")
	case table == "":
		return usagef(inv.cmd, "missing -t/--table TABLE")
	case file == "" && url == "":
		return usagef(inv.cmd, "missing the FILE to import (- for stdin) or --url URL")
	case file != "" && url != "":
		return usagef(inv.cmd, "give either FILE or --url, not both")
	}
	req := core.ImportRequest{Table: table, Schema: inv.str("--schema"), InferHeader: inv.str("--header"), FileURL: url}
	bar := newProgressBar(inv.app, "import")
	processing := 0
	if file != "" {
		bar = newProgressBar(inv.app, "import", "upload", "processing")
		processing = 1
	}
	defer bar.finish()
	if file != "" {
		var r io.Reader
		req.FileName = inv.str("--file-name")
		if file == "-" {
			r = inv.app.stdin
		} else {
			f, err := os.Open(file)
			if err != nil {
				return fmt.Errorf("open the file to import: %w", err)
			}
			defer f.Close()
			if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
				req.Size = st.Size()
			}
			if req.FileName == "" {
				req.FileName = filepath.Base(file)
			}
			r = f
		}
		req.File = &countingReader{r: r, total: req.Size, bar: bar, phase: 0, state: "UPLOADING"}
	}
	c, err := inv.client()
	if err != nil {
		return err
	}
	db, err := fullDBName(ctx, c, inv, inv.str("--database"))
	if err != nil {
		return err
	}
	job, err := c.Import(ctx, db, req, jobProgress(bar, processing))
	if err != nil {
		bar.finish()
		return finishJob(inv, job, err)
	}
	bar.complete(job.State)
	bar.finish()
	if !inv.human() {
		return writeJSON(inv.app.out, job)
	}
	target := table
	if req.Schema != "" {
		target = req.Schema + "." + table
	}
	rows := jobRows(job)
	_, err = fmt.Fprintf(inv.app.out, "✓ imported %s %s into %s.%s in %s\n",
		groupDigits(rows), plural(rows, "row", "rows"), db, target, humanSeconds(time.Since(bar.start)))
	return err
}

// jobProgress feeds job states into phase of the bar.
func jobProgress(bar *progressBar, phase int) func(*core.Job) {
	return func(j *core.Job) {
		if j.Progress != nil {
			bar.update(phase, j.State, j.Progress.BytesDone, j.Progress.BytesTotal, j.Progress.Rows)
		} else {
			bar.update(phase, j.State, -1, -1, -1)
		}
	}
}

// finishJob prints the final job of a failed command as JSON when stdout is
// not a terminal (on a terminal, stderr's error says it all) and returns err.
func finishJob(inv *invocation, job *core.Job, err error) error {
	var failed *core.JobFailedError
	if job != nil && errors.As(err, &failed) && !inv.human() {
		if werr := writeJSON(inv.app.out, job); werr != nil {
			return errors.Join(err, werr)
		}
	}
	return err
}

// jsonFlag registers --json, for commands that print a sentence for people
// on a terminal.
func jsonFlag(fs *flagSet) {
	fs.add(&option{names: []string{"--json"}, help: "print the final job as JSON even when stdout is a terminal"})
}

// human reports whether the command prints a sentence rather than JSON:
// stdout is a terminal and --json was not given.
func (inv *invocation) human() bool {
	return inv.app.stdoutTTY && !inv.opt("--json").on()
}

// jobRows is the rows a finished job wrote (0 when it reported none).
func jobRows(j *core.Job) int64 {
	if j.Progress == nil {
		return 0
	}
	return j.Progress.Rows
}

// plural picks the singular or plural word for n.
func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func runExport(ctx context.Context, inv *invocation) error {
	q, table := inv.str("--query"), inv.str("--table")
	switch {
	case inv.str("--database") == "":
		return usagef(inv.cmd, "missing -d/--database NAME")
	case q == "" && table == "":
		return usagef(inv.cmd, "missing -q SQL or -t TABLE")
	case q != "" && table != "":
		return usagef(inv.cmd, "give either -q SQL or -t TABLE, not both")
	case q != "" && inv.str("--schema") != "":
		return usagef(inv.cmd, "--schema goes with -t TABLE, not with -q")
	}
	format := inv.opt("--format").str("csv")
	if !contains(inv.opt("--format").choices, format) {
		return usagef(inv.cmd, "--format must be one of csv|json|xls|parquet for bit export, not %q", format)
	}
	out := inv.str("--output")
	req := core.ExportRequest{Format: format, Query: q, Table: table, Schema: inv.str("--schema")}
	if out != "" && out != "-" {
		req.FileName = filepath.Base(out)
	}
	if out == "" {
		// Fail before the job runs when the default file already exists.
		name := defaultExportName(table, format)
		if _, err := os.Lstat(name); err == nil {
			return fmt.Errorf("%s already exists in the current directory: choose another file with -o FILE (or -o - for stdout)", name)
		}
	}
	c, err := inv.client()
	if err != nil {
		return err
	}
	db, err := fullDBName(ctx, c, inv, inv.str("--database"))
	if err != nil {
		return err
	}
	bar := newProgressBar(inv.app, "export", "processing", "download")
	defer bar.finish()
	job, err := c.Export(ctx, db, req, jobProgress(bar, 0))
	if err != nil {
		bar.finish()
		return finishJob(inv, job, err)
	}
	var total int64
	if job.Progress != nil {
		total = job.Progress.BytesTotal
	}
	var size int64
	download := func(w io.Writer) error {
		n, err := c.Download(ctx, job, &countingWriter{w: w, total: total, bar: bar, phase: 1})
		size = n
		return err
	}
	switch out {
	case "-":
		err = download(inv.app.out)
		if err == nil {
			bar.complete("DONE")
		}
		bar.finish()
		return err
	case "":
		out = defaultExportName(table, format)
		if job.FileName != "" && !strings.ContainsAny(job.FileName, `/\`) && job.FileName != "." && job.FileName != ".." {
			out = job.FileName
		}
		if _, err := os.Lstat(out); err == nil {
			bar.finish()
			return fmt.Errorf("%s already exists in the current directory: run again with -o FILE (or -o - for stdout)", out)
		}
	}
	if err = writeFileAtomic(out, download); err == nil {
		bar.complete("DONE")
	}
	bar.finish()
	if err != nil {
		return err
	}
	if !inv.human() {
		return writeJSON(inv.app.out, job)
	}
	rows := jobRows(job)
	_, err = fmt.Fprintf(inv.app.out, "✓ exported %s %s from %s to %s (%s) in %s\n",
		groupDigits(rows), plural(rows, "row", "rows"), db, out, humanBytes(size), humanSeconds(time.Since(bar.start)))
	return err
}

// defaultExportName is the file name used without -o before the job names one.
func defaultExportName(table, format string) string {
	base := "export"
	if table != "" && !strings.ContainsAny(table, `/\`) {
		base = table
	}
	ext := format
	if ext == "xls" {
		ext = "xlsx"
	}
	return base + "." + ext
}
