package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Speculation loads a plain CSV file while it is still arriving. The caller
// writes the file's bytes to it (it is an io.Writer) and runs
// ProfileCSVSpeculating over the same bytes. After the file's first bytes
// the profiling pass takes an early profile (Ready, Profile); the caller
// builds a plan from it (Plan) and loads it (Plan.Load), which creates the
// table with the early types and streams the bytes into COPY … (FORMAT csv)
// as they arrive. At the end Plan.Confirm compares the result with what the
// whole-file profile gives: only when they are equal may the caller commit.
//
// The COPY only reads rows the profiling pass has already classified (a
// gate), so the types of every row it loads are known. When a later row
// needs a wider type and converting the rows loaded so far is exact
// (smallint → integer → bigint → numeric, date → timestamp → timestamp with
// time zone, or a column that held only NULLs so far), the COPY ends before
// that row, the column is widened with ALTER TABLE … TYPE and a new COPY
// goes on; any other change diverges (Diverged): the COPY fails at once and
// the caller falls back to loading the file the usual way.
type Speculation struct {
	header string
	after  int64

	ready     chan struct{}
	prof      *CSVProfile // the early profile; nil when there is none
	useHeader bool
	dialect   CSVDialect

	diverged   chan struct{}
	divergeOne sync.Once
	why        atomic.Pointer[string]
	typesFree  atomic.Bool // the load appends: the inferred types are not used

	// the profiling pass's view (its goroutine only)
	types []string // the types rows up to the gate were loaded with
	seen  []bool   // which columns held a value up to the gate

	// the feed (mu)
	mu      sync.Mutex
	cond    sync.Cond
	q       [][]byte
	queued  int
	started bool  // the COPY has read
	closed  bool  // the writer is done
	err     error // what the COPY reads after the data: io.EOF or the upload's error
	dropped error // the speculation was abandoned: writes are discarded
	cur     []byte
	curBuf  []byte
	free    [][]byte
	served  int64 // lines handed to COPY
	gate    int64 // lines the profiling pass has classified
	open    bool  // the whole file is classified
	gated   bool  // the COPY waits for the gate
	cuts    []cut // where the current COPY must end, in order
	peak    int   // the most bytes queued at once
	// time the COPY waited for the profiling pass (gate) and for the
	// upload (no data), and the upload waited for the COPY
	gateWait, dataWait, writeWait time.Duration
}

// Waits returns how long the COPY waited for the profiling pass and for
// the upload, and how long the upload waited for the COPY (for logs).
func (s *Speculation) Waits() (gate, data, write time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gateWait, s.dataWait, s.writeWait
}

// PeakQueued returns the most bytes of the file the speculation held at
// once (for logs and tests).
func (s *Speculation) PeakQueued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// cut ends a COPY after row lines of the file; the columns in widen then
// change type.
type cut struct {
	row   int64
	widen map[int]string
}

const (
	// feedMax is how much unread data the feed holds before the writer
	// waits for the COPY (unless the COPY itself waits for the profiling
	// pass, which needs the writer to go on).
	feedMax = 2 << 20
	// feedHardMax is the most the feed ever holds: beyond it (a COPY that
	// does not start, a profiling pass far behind) the speculation gives up
	// rather than hold more of the file in memory.
	feedHardMax = 32 << 20
)

// Errors a speculative load fails with when it gives up.
var (
	ErrSpeculationOverflow = errors.New("ingest: the upload got too far ahead of the speculative load")
	ErrSpeculationDropped  = errors.New("ingest: the speculative load was abandoned")
)

// NewSpeculation asks for an early profile once after bytes of the file are
// read (or at its end when it is shorter), for a load with the header mode
// header (auto, first_row or no_header).
func NewSpeculation(header string, after int64) *Speculation {
	if header == "" {
		header = HeaderAuto
	}
	s := &Speculation{header: header, after: after, ready: make(chan struct{}), diverged: make(chan struct{})}
	s.cond.L = &s.mu
	return s
}

// Ready is closed once the early profile is taken, or once the profiling
// pass ended without one (Profile is then nil).
func (s *Speculation) Ready() <-chan struct{} { return s.ready }

// Profile returns the early profile after Ready: nil when the file is not
// a plain UTF-8 CSV file up to that point (or not CSV at all, or empty).
func (s *Speculation) Profile() *CSVProfile {
	select {
	case <-s.ready:
		return s.prof
	default:
		return nil
	}
}

// Diverged is closed when the rest of the file changed what the load
// relies on: a type in a way no exact conversion follows (unless the load
// appends to an existing table), plainness, or the file failed to parse.
// Reason says what.
func (s *Speculation) Diverged() <-chan struct{} { return s.diverged }

// Reason says why the speculation diverged ("" while it has not).
func (s *Speculation) Reason() string {
	if p := s.why.Load(); p != nil {
		return *p
	}
	return ""
}

func (s *Speculation) diverge(why string) {
	s.divergeOne.Do(func() {
		s.why.Store(&why)
		close(s.diverged)
	})
	s.Drop(fmt.Errorf("ingest: speculation diverged: %s", why))
}

// Write queues the file's next bytes for the COPY. It never fails: when the
// speculation is abandoned the bytes are dropped.
func (s *Speculation) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropped == nil && s.started && !s.gated && s.queued >= feedMax {
		t0 := time.Now()
		for s.dropped == nil && s.started && !s.gated && s.queued >= feedMax {
			s.cond.Wait()
		}
		s.writeWait += time.Since(t0)
	}
	if s.dropped != nil || s.closed {
		return len(p), nil
	}
	if s.queued+len(p) > feedHardMax {
		s.dropLocked(ErrSpeculationOverflow)
		return len(p), nil
	}
	var b []byte
	if n := len(s.free); n > 0 {
		b, s.free = s.free[n-1][:0], s.free[:n-1]
	}
	b = append(b, p...)
	s.q = append(s.q, b)
	s.queued += len(b)
	s.peak = max(s.peak, s.queued)
	s.cond.Broadcast()
	return len(p), nil
}

// CloseWrite ends the file: err nil means it is complete, otherwise the
// COPY fails with err.
func (s *Speculation) CloseWrite(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		err = io.EOF
	}
	if !s.closed {
		s.closed, s.err = true, err
	}
	s.cond.Broadcast()
}

// Drop abandons the speculation: the writer goes on without waiting and
// the COPY fails with err.
func (s *Speculation) Drop(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropLocked(err)
}

func (s *Speculation) dropLocked(err error) {
	if s.dropped == nil {
		s.dropped = err
	}
	s.q, s.queued, s.cur, s.curBuf, s.free = nil, 0, nil, nil, nil
	s.cond.Broadcast()
}

// Read hands the COPY the file's bytes up to the gate; it returns io.EOF at
// a cut (the caller widens and starts the next COPY) and at the end.
func (s *Speculation) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = true
	for {
		s.gated = false // only while this Read waits for the gate
		if s.dropped != nil {
			return 0, s.dropped
		}
		limit := int64(math.MaxInt64)
		if !s.open {
			limit = s.gate
		}
		if len(s.cuts) > 0 {
			if s.served >= s.cuts[0].row {
				return 0, io.EOF
			}
			limit = min(limit, s.cuts[0].row)
		}
		if len(s.cur) == 0 && len(s.q) > 0 {
			s.cur, s.curBuf = s.q[0], s.q[0]
			s.q[0] = nil
			s.q = s.q[1:]
			s.queued -= len(s.cur)
			s.cond.Broadcast()
		}
		if len(s.cur) > 0 && s.served < limit {
			b := s.cur
			if len(b) > len(p) {
				b = b[:len(p)]
			}
			lines := int64(bytes.Count(b, []byte{'\n'}))
			if left := limit - s.served; lines > left {
				b, lines = b[:nthNewline(b, left)+1], left
			}
			n := copy(p, b)
			s.cur = s.cur[n:]
			s.served += lines
			if len(s.cur) == 0 && len(s.free) < 16 {
				s.free = append(s.free, s.curBuf)
				s.curBuf = nil
			}
			return n, nil
		}
		if len(s.cur) == 0 && s.closed {
			return 0, s.err
		}
		s.gated = len(s.cur) > 0 // data is there, the profiling pass is not
		s.cond.Broadcast()
		t0 := time.Now()
		s.cond.Wait()
		if s.gated {
			s.gateWait += time.Since(t0)
		} else {
			s.dataWait += time.Since(t0)
		}
	}
}

// nthNewline returns the index of the n-th (n ≥ 1) '\n' of b.
func nthNewline(b []byte, n int64) int {
	off := 0
	for {
		i := bytes.IndexByte(b[off:], '\n')
		n--
		if n == 0 {
			return off + i
		}
		off += i + 1
	}
}

// advance moves the gate (the profiling pass's goroutine).
func (s *Speculation) advance(rows int64, c *cut) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c != nil && !s.typesFree.Load() {
		s.cuts = append(s.cuts, *c)
	}
	s.gate = rows
	s.cond.Broadcast()
}

// openAll lets the COPY read the rest of the file.
func (s *Speculation) openAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open = true
	s.cond.Broadcast()
}

// nextCut is called when a COPY ended: it returns the cut that ended it,
// or nil at the end of the file.
func (s *Speculation) nextCut() *cut {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cuts) == 0 || s.served < s.cuts[0].row {
		return nil
	}
	c := s.cuts[0]
	s.cuts = s.cuts[1:]
	return &c
}

// freeTypes is called when the load appends to an existing table: types
// no longer matter, so nothing cuts the COPY.
func (s *Speculation) freeTypes() {
	s.typesFree.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cuts = nil
	s.cond.Broadcast()
}

// observe is called by the profiling pass after each batch of rows.
func (s *Speculation) observe(in *Inferrer, bytes int64, plain bool, d CSVDialect) {
	select {
	case <-s.diverged:
		return
	default:
	}
	if s.prof == nil {
		select {
		case <-s.ready:
			return // no early profile was taken: nothing to watch
		default:
		}
		if bytes >= s.after {
			s.take(in, plain, d)
		}
		return
	}
	if !plain {
		s.diverge("the file is not plain CSV after all (quotes, carriage returns, blank lines or a \\. line)")
		return
	}
	if in.Width() != len(s.types) {
		s.diverge(fmt.Sprintf("row width changed from %d to %d", len(s.types), in.Width()))
		return
	}
	if s.typesFree.Load() {
		s.advance(in.Rows(), nil)
		return
	}
	got := in.Types(len(s.types), s.useHeader)
	var c *cut
	for i := range got {
		if got[i] == s.types[i] {
			continue
		}
		if s.seen[i] && !exactWidening(s.types[i], got[i]) {
			s.diverge(fmt.Sprintf("column %d changed from %s to %s by row %d", i+1, s.types[i], got[i], in.Rows()))
			return
		}
		if c == nil {
			c = &cut{row: s.gateNow(), widen: map[int]string{}}
		}
		c.widen[i] = got[i]
	}
	s.types = got
	s.seen = in.Seen(len(got), s.useHeader)
	s.advance(in.Rows(), c)
}

// gateNow returns the gate (the profiling pass's goroutine alone moves it).
func (s *Speculation) gateNow() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gate
}

// exactWidening reports whether ALTER TABLE … TYPE to converts every value
// of type from into what parsing its text as to gives.
func exactWidening(from, to string) bool {
	switch from {
	case "smallint":
		return to == "integer" || to == "bigint" || to == "numeric"
	case "integer":
		return to == "bigint" || to == "numeric"
	case "bigint":
		return to == "numeric"
	case "date":
		return to == "timestamp without time zone" || to == "timestamp with time zone"
	case "timestamp without time zone":
		return to == "timestamp with time zone" // read in UTC either way (Load sets TimeZone)
	}
	return false
}

// take records the early profile from the rows seen so far.
func (s *Speculation) take(in *Inferrer, plain bool, d CSVDialect) {
	defer close(s.ready)
	if !plain || d.Encoding != EncUTF8 || in.Rows() == 0 {
		return
	}
	p := profileOf(in)
	p.Encoding, p.Delimiter, p.Plain = d.Encoding, string(d.Delimiter), true
	s.prof, s.useHeader, s.dialect = p, p.hasHeader(s.header), d
	s.types = s.typesOf(p)
	s.seen = in.Seen(len(s.types), s.useHeader)
	s.advance(in.Rows(), nil)
}

// finish is called when the profiling pass returns: a file shorter than the
// early-profile threshold gets its whole-file profile as the early one.
func (s *Speculation) finish(final *CSVProfile, err error) {
	select {
	case <-s.ready:
	default:
		if err == nil && final != nil && final.Plain && final.Encoding == EncUTF8 {
			s.prof, s.useHeader = final, final.hasHeader(s.header)
			s.dialect = CSVDialect{Encoding: final.Encoding, Delimiter: []rune(final.Delimiter)[0]}
			s.types = s.typesOf(final)
		}
		close(s.ready)
	}
	switch {
	case err != nil:
		s.diverge("the file cannot be profiled: " + err.Error())
	case final == nil:
		s.diverge("the file is not a UTF-8 CSV file after all")
	case !final.Plain:
		s.diverge("the file is not plain CSV after all")
	default:
		s.openAll()
	}
}

func (s *Speculation) typesOf(p *CSVProfile) []string {
	if s.useHeader {
		return p.HeaderTypes
	}
	return p.Types
}

// Plan builds the plan of the speculative load from the early profile
// (after Ready; Profile must not be nil): Load creates the table with the
// early types (or appends to the existing one) and reads the file from the
// Speculation. opts must name the same header mode as NewSpeculation, and a
// Format (when set) that means CSV.
func (s *Speculation) Plan(opts Options) (*Plan, error) {
	p := s.Profile()
	if p == nil {
		return nil, errors.New("ingest: no early profile")
	}
	if opts.Header == "" {
		opts.Header = HeaderAuto
	}
	if opts.Header != s.header {
		return nil, fmt.Errorf("ingest: the speculation was made for header mode %s, not %s", s.header, opts.Header)
	}
	if opts.Format != "" {
		if f, err := DetectFormat(opts.Format, "", nil); err != nil || f != FormatCSV {
			return nil, fmt.Errorf("ingest: format %q is not CSV", opts.Format)
		}
	}
	if opts.Table == "" {
		return nil, &Error{Type: "invalid_request", Message: "table_name is required"}
	}
	if opts.Schema == "" {
		opts.Schema = "public"
	}
	t := &TablePlan{Schema: opts.Schema, Table: opts.Table, spec: s}
	if err := t.applyProfile(p, opts.Header); err != nil {
		return nil, err
	}
	t.plain = &plainCSV{delim: s.dialect.Delimiter}
	t.open = func() (rowReader, error) { return nil, errors.New("ingest: a speculative plan has no row reader") }
	return &Plan{Format: FormatCSV, Encoding: p.Encoding, Delimiter: p.Delimiter, Tables: []*TablePlan{t}, Replace: opts.Replace}, nil
}

// loadSpeculative runs the COPYs of a speculative plan into the prepared
// table, widening columns between them.
func (t *TablePlan) loadSpeculative(ctx context.Context, tx pgx.Tx, cols []string) (int64, error) {
	s := t.spec
	header := t.Header
	var total int64
	for {
		opt := ""
		if header {
			opt = ", HEADER true"
		}
		sql := "COPY " + qualified(t.Schema, t.Table) + " (" + strings.Join(cols, ", ") + ") FROM STDIN WITH (FORMAT csv, DELIMITER '" +
			string(t.plain.delim) + "'" + opt + ")"
		tag, err := tx.Conn().PgConn().CopyFrom(ctx, s, sql)
		total += tag.RowsAffected()
		if err != nil {
			return total, pgError(err, t)
		}
		header = false
		c := s.nextCut()
		if c == nil {
			return total, nil
		}
		if t.appended {
			continue // nothing to widen: the table's own types hold
		}
		var alter []string
		for i := range t.Columns {
			if typ, ok := c.widen[i]; ok {
				name := pgx.Identifier{t.Columns[i].Name}.Sanitize()
				alter = append(alter, "ALTER COLUMN "+name+" TYPE "+typ+" USING "+name+"::"+typ)
				t.Columns[i].Type = typ
			}
		}
		if _, err := tx.Exec(ctx, "ALTER TABLE "+qualified(t.Schema, t.Table)+" "+strings.Join(alter, ", ")); err != nil {
			return total, pgError(err, t)
		}
		t.widened++
	}
}

// Confirm checks, after the load of a plan made by Speculation.Plan, that
// the whole-file profile final gives the same plan: same header, column
// names and (when the load created the table) types, a plain file in the
// same dialect, and as many data rows as the load wrote. A nil error means
// the load is exactly what Analyze and Load would have done; otherwise the
// caller must roll it back.
func (p *Plan) Confirm(final *CSVProfile, rows int64) error {
	if len(p.Tables) != 1 || p.Tables[0].spec == nil {
		return errors.New("not a speculative plan")
	}
	t := p.Tables[0]
	s := t.spec
	switch {
	case s.Reason() != "":
		return errors.New(s.Reason())
	case final == nil:
		return errors.New("the file has no whole-file CSV profile")
	case !final.Plain:
		return errors.New("the file is not plain CSV")
	case final.Encoding != EncUTF8 || final.Delimiter != string(t.plain.delim):
		return fmt.Errorf("the dialect changed to %s %q", final.Encoding, final.Delimiter)
	}
	var w TablePlan
	if err := w.applyProfile(final, s.header); err != nil {
		return err
	}
	if w.Header != t.Header {
		return errors.New("the header decision changed")
	}
	if len(w.Columns) != len(t.Columns) {
		return fmt.Errorf("the file has %d columns, the plan %d", len(w.Columns), len(t.Columns))
	}
	for i, c := range w.Columns {
		if c.Name != t.Columns[i].Name {
			return fmt.Errorf("column %d is named %q, the plan says %q", i+1, c.Name, t.Columns[i].Name)
		}
		if !t.appended && c.Type != t.Columns[i].Type {
			return fmt.Errorf("column %q is %s over the whole file, %s in the table", c.Name, c.Type, t.Columns[i].Type)
		}
	}
	if w.Rows != rows {
		return fmt.Errorf("the file has %d data rows, the load wrote %d", w.Rows, rows)
	}
	return nil
}

// Appended reports whether the load appended to an existing table.
func (p *Plan) Appended() bool { return len(p.Tables) == 1 && p.Tables[0].appended }

// Widened returns how many times the load widened columns between COPYs.
func (p *Plan) Widened() int {
	if len(p.Tables) != 1 {
		return 0
	}
	return p.Tables[0].widened
}
