package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
)

// CSVProfile is the outcome of the CSV inference pass, independent of the
// header mode. The jobs package computes it while an upload streams into the
// blob store (ProfileCSV) and hands it back through Options.CSVProfile, so
// that the job reads a CSV file once instead of twice.
type CSVProfile struct {
	// Size is the file's length in bytes; the profile is used only for a
	// file of exactly this size with the same detected dialect.
	Size      int64  `json:"size"`
	Encoding  string `json:"encoding"`
	Delimiter string `json:"delimiter"`
	// Rows counts every non-blank row, the header candidate included.
	Rows int64 `json:"rows"`
	// LooksLikeHeader is the auto header rule's verdict on row 0.
	LooksLikeHeader bool `json:"looks_like_header"`
	// First holds row 0's cells ("" for an empty cell).
	First []string `json:"first"`
	// Types are the column types with row 0 counted as data; HeaderTypes
	// without it.
	Types       []string `json:"types"`
	HeaderTypes []string `json:"header_types"`
	// Plain means PostgreSQL's COPY … (FORMAT csv) reads the file exactly
	// as the inference pass did, so the load can hand it over as it is:
	// UTF-8 without a BOM, no quote character, no carriage return, no blank
	// line and no line starting with \. (COPY's end-of-data marker).
	Plain bool `json:"plain,omitempty"`
}

// plainScan watches the bytes of a file for what makes it not Plain.
type plainScan struct {
	r     io.Reader
	n     int64
	last  byte // the previous chunk's last byte
	last2 byte // and the one before it
	plain bool
}

func (s *plainScan) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 && s.plain {
		b := p[:n]
		if bytes.IndexByte(b, '"') >= 0 || bytes.IndexByte(b, '\r') >= 0 ||
			bytes.Contains(b, []byte("\n\n")) || bytes.Contains(b, []byte("\n\\.")) ||
			(s.n == 0 && (b[0] == '\n' || b[0] == '\\' && (n == 1 || b[1] == '.'))) ||
			(s.n > 0 && s.last == '\n' && (b[0] == '\n' || b[0] == '\\' && (n == 1 || b[1] == '.'))) ||
			(s.n > 1 && s.last2 == '\n' && s.last == '\\' && b[0] == '.') {
			s.plain = false
		}
		if n >= 2 {
			s.last2, s.last = b[n-2], b[n-1]
		} else {
			s.last2, s.last = s.last, b[0]
		}
	}
	s.n += int64(n)
	return n, err
}

// profileOf summarises an Inferrer fed with every row of a grid.
func profileOf(in *Inferrer) *CSVProfile {
	w := in.Width()
	p := &CSVProfile{Rows: in.Rows(), LooksLikeHeader: in.LooksLikeHeader(),
		Types: in.Types(w, false), HeaderTypes: in.Types(w, true)}
	p.First = make([]string, len(in.First()))
	for i, c := range in.First() {
		p.First[i] = c.S
	}
	return p
}

// applyProfile fills a grid table's columns, header flag and row count.
func (t *TablePlan) applyProfile(p *CSVProfile, header string) error {
	if p.Rows == 0 {
		return &Error{Type: "empty_file", Message: "the file holds no rows"}
	}
	t.Header = p.hasHeader(header)
	types := p.Types
	if t.Header {
		types = p.HeaderTypes
	}
	t.Columns = make([]Column, len(types))
	for i := range t.Columns {
		name := ""
		if t.Header && i < len(p.First) {
			name = p.First[i]
		}
		t.Columns[i] = Column{Name: name, Type: types[i]}
	}
	t.Columns = uniqueNames(t.Columns)
	t.Rows = p.Rows
	if t.Header {
		t.Rows--
	}
	return checkWidth(t)
}

// hasHeader applies a header mode to the profile: is row 0 the header?
func (p *CSVProfile) hasHeader(header string) bool {
	switch header {
	case HeaderFirstRow:
		return true
	case HeaderAuto:
		return p.LooksLikeHeader
	}
	return false
}

// usable reports whether the profile describes a file of size bytes read
// with dialect d.
func (p *CSVProfile) usable(size int64, d CSVDialect) bool {
	return p != nil && p.Size == size && p.Encoding == d.Encoding && p.Delimiter == string(d.Delimiter) &&
		len(p.Types) == len(p.HeaderTypes)
}

// ProfileCSV runs the CSV inference pass over r, a whole file of the given
// name streamed once (for example while it is uploaded). It returns nil and
// no error when the file is not delimited text or when the pass cannot
// decide at this point (a file that is not valid UTF-8 after all); it
// returns the *Error the import would fail with for malformed CSV. Either
// way the caller loses nothing: without a profile Analyze reads the file
// itself. ProfileCSV stops reading at the first error; the caller drains r
// if it must.
func ProfileCSV(ctx context.Context, fileName string, r io.Reader) (*CSVProfile, error) {
	return ProfileCSVSpeculating(ctx, fileName, r, nil)
}

// ProfileCSVSpeculating is ProfileCSV that also serves spec (when not nil):
// it hands out an early profile once it has read spec's first bytes, then
// watches the rest of the file for what would change the plan built from
// it (see Speculation).
func ProfileCSVSpeculating(ctx context.Context, fileName string, r io.Reader, spec *Speculation) (prof *CSVProfile, err error) {
	if spec != nil {
		defer func() { spec.finish(prof, err) }()
	}
	head := make([]byte, sniffSize)
	k, err := io.ReadFull(r, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	head = head[:k]
	if k == 0 {
		return nil, nil
	}
	if f, err := DetectFormat("", fileName, head); err != nil || f != FormatCSV {
		return nil, nil
	}
	d := DetectCSV(head)
	ps := &plainScan{r: io.MultiReader(bytes.NewReader(head), r), plain: d.Encoding == EncUTF8}
	cr := &countingReader{r: ps}
	c := newCSVReader(io.NopCloser(cr), cr, d)
	// One goroutine parses, this one classifies: batches of rows go
	// between them, so that the pass uses two cores while the upload runs.
	const batchRows, batchBytes = 1024, 256 << 10
	type batch struct {
		cells []Cell
		width []int
		bytes int64 // bytes of the file read when the batch was cut
		plain bool  // the file was plain up to there
	}
	batches, free := make(chan *batch, 4), make(chan *batch, 6)
	stop := make(chan struct{})
	var perr error
	go func() {
		defer close(batches)
		for eof := false; !eof; {
			var b *batch
			select {
			case b = <-free:
				b.cells, b.width = b.cells[:0], b.width[:0]
			default:
				b = &batch{}
			}
			// a batch ends after batchRows rows or batchBytes bytes of cells
			for size := 0; len(b.width) < batchRows && size < batchBytes; {
				row, err := c.Next()
				if err == io.EOF {
					eof = true
					break
				}
				if err != nil {
					perr, eof = err, true
					break
				}
				b.cells = append(b.cells, row...)
				b.width = append(b.width, len(row))
				for _, cell := range row {
					size += len(cell.S)
				}
			}
			b.bytes, b.plain = cr.n, ps.plain
			if len(b.width) > 0 {
				select {
				case batches <- b:
				case <-stop:
					return
				}
			}
			if ctx.Err() != nil {
				return
			}
		}
	}()
	var in Inferrer
	for b := range batches {
		off := 0
		for _, w := range b.width {
			in.Add(b.cells[off : off+w])
			off += w
		}
		if spec != nil {
			spec.observe(&in, b.bytes, b.plain, d)
		}
		select {
		case free <- b:
		default:
		}
	}
	close(stop)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if errors.Is(perr, errNotUTF8) {
		return nil, nil
	}
	if perr != nil {
		return nil, perr
	}
	p := profileOf(&in)
	p.Size, p.Encoding, p.Delimiter = cr.n, d.Encoding, string(d.Delimiter)
	p.Plain = ps.plain && p.Rows > 0
	return p, nil
}
