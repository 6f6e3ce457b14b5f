package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// Encoding names the text encodings CSV detection can report.
const (
	EncUTF8        = "utf-8"
	EncUTF8BOM     = "utf-8-bom"
	EncUTF16LE     = "utf-16le"
	EncUTF16BE     = "utf-16be"
	EncWindows1252 = "windows-1252"
)

// sniffSize is how much of a file delimiter and encoding detection read.
const sniffSize = 64 << 10

// CSVDialect is what detection found about a delimited text file.
type CSVDialect struct {
	Encoding  string
	Delimiter rune
}

// DetectCSV reads the start of a delimited text file and returns its
// encoding (BOM first; else UTF-8 when the sample is valid UTF-8, else
// Windows-1252, a superset of Latin-1's printable characters) and its
// delimiter (the one of TAB , ; | that splits the sample's lines into the
// same number of fields most consistently).
func DetectCSV(sample []byte) CSVDialect {
	d := CSVDialect{Encoding: EncUTF8, Delimiter: ','}
	switch {
	case bytes.HasPrefix(sample, []byte{0xEF, 0xBB, 0xBF}):
		d.Encoding = EncUTF8BOM
	case bytes.HasPrefix(sample, []byte{0xFF, 0xFE}):
		d.Encoding = EncUTF16LE
	case bytes.HasPrefix(sample, []byte{0xFE, 0xFF}):
		d.Encoding = EncUTF16BE
	default:
		s := sample
		// a multi-byte rune may be cut at the end of the sample
		for i := len(s) - 1; i >= 0 && i >= len(s)-utf8.UTFMax; i-- {
			if utf8.RuneStart(s[i]) {
				if !utf8.FullRune(s[i:]) {
					s = s[:i]
				}
				break
			}
		}
		if !utf8.Valid(s) {
			d.Encoding = EncWindows1252
		}
	}
	text := sample
	if d.Encoding != EncUTF8 {
		r := transform.NewReader(bytes.NewReader(sample), decoder(d.Encoding))
		text, _ = io.ReadAll(r)
	}
	d.Delimiter = sniffDelimiter(string(text))
	return d
}

func decoder(enc string) transform.Transformer {
	switch enc {
	case EncUTF8BOM:
		return unicode.UTF8BOM.NewDecoder()
	case EncUTF16LE, EncUTF16BE:
		return unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM).NewDecoder()
	case EncWindows1252:
		return charmap.Windows1252.NewDecoder()
	}
	return transform.Nop
}

// sniffDelimiter counts each candidate per line (outside double quotes) over
// up to 50 complete lines and picks the candidate present on the first line
// with the most lines agreeing with the first line's count; ties go to the
// earlier candidate in "TAB , ; |" (a tab is rarer inside values than a
// comma).
func sniffDelimiter(s string) rune {
	lines := splitLines(s, 50)
	if len(lines) == 0 {
		return ','
	}
	best, bestScore := ',', -1
	for _, cand := range []rune{'\t', ',', ';', '|'} {
		first := countOutsideQuotes(lines[0], cand)
		if first == 0 {
			continue
		}
		score := 0
		for _, l := range lines {
			if countOutsideQuotes(l, cand) == first {
				score++
			}
		}
		score = score*1000 + min(first, 999)
		if score > bestScore {
			best, bestScore = cand, score
		}
	}
	return best
}

func splitLines(s string, n int) []string {
	var out []string
	for len(out) < n {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break // the last line may be cut: ignore it unless it is the only one
		}
		out = append(out, strings.TrimSuffix(s[:i], "\r"))
		s = s[i+1:]
	}
	if len(out) == 0 && s != "" {
		out = append(out, s)
	}
	return out
}

func countOutsideQuotes(line string, c rune) int {
	n, quoted := 0, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted = !quoted
		case r == c && !quoted:
			n++
		}
	}
	return n
}

// csvReader reads a delimited text file as rows of Text/Null cells. Lines
// without a quote or a carriage return (every line of most files) are split
// on the delimiter directly, which is what encoding/csv does with them, only
// faster; from the first line that has one (or that is longer than the
// read buffer) on, encoding/csv reads the rest of the file.
type csvReader struct {
	f     io.ReadCloser
	cr    *countingReader
	br    *bufio.Reader // the text (decoded to UTF-8)
	comma rune
	r     *csv.Reader // nil until the first line the direct split does not take
	off   int64       // lines split directly before r took over
	rec   []string
	cells []Cell
	width int
	line  int64
	rows  int64
	check bool // check UTF-8 validity (the encoding was guessed as UTF-8)
}

// errNotUTF8 makes the inference pass restart with Windows-1252.
var errNotUTF8 = errors.New("not utf-8")

func openCSV(ctx context.Context, src Source, d CSVDialect) (*csvReader, error) {
	f, err := src.Open(ctx)
	if err != nil {
		return nil, err
	}
	return newCSVReader(f, &countingReader{r: f}, d), nil
}

// newCSVReader reads rows from cr, which counts the bytes read from f.
func newCSVReader(f io.ReadCloser, cr *countingReader, d CSVDialect) *csvReader {
	br := bufio.NewReaderSize(cr, 256<<10)
	if d.Encoding != EncUTF8 {
		br = bufio.NewReaderSize(transform.NewReader(br, decoder(d.Encoding)), 256<<10)
	}
	return &csvReader{f: f, cr: cr, br: br, comma: d.Delimiter, width: -1, check: d.Encoding == EncUTF8}
}

// handOver makes encoding/csv read the rest of the file, starting with
// pending (bytes already taken from br).
func (c *csvReader) handOver(pending []byte) {
	r := csv.NewReader(io.MultiReader(bytes.NewReader(bytes.Clone(pending)), c.br))
	r.Comma = c.comma
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	r.ReuseRecord = true
	c.r = r
}

// next returns the next record and the line it starts on.
func (c *csvReader) next() ([]string, int64, error) {
	for c.r == nil {
		l, err := c.br.ReadSlice('\n')
		if err != nil && err != io.EOF {
			if err == bufio.ErrBufferFull {
				c.handOver(l)
				break
			}
			return nil, 0, err
		}
		if len(l) == 0 {
			return nil, 0, io.EOF
		}
		if c.comma >= utf8.RuneSelf || bytes.IndexByte(l, '"') >= 0 || bytes.IndexByte(l, '\r') >= 0 {
			c.handOver(l)
			break
		}
		c.off++
		if l[len(l)-1] == '\n' {
			l = l[:len(l)-1]
		}
		if len(l) == 0 {
			continue // blank line
		}
		line := string(l)
		c.rec = c.rec[:0]
		for {
			i := strings.IndexByte(line, byte(c.comma))
			if i < 0 {
				break
			}
			c.rec = append(c.rec, line[:i])
			line = line[i+1:]
		}
		c.rec = append(c.rec, line)
		return c.rec, c.off, nil
	}
	rec, err := c.r.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			pe.StartLine += int(c.off)
			pe.Line += int(c.off)
		}
		return nil, 0, err
	}
	line, _ := c.r.FieldPos(0)
	return rec, int64(line) + c.off, nil
}

func (c *csvReader) Next() ([]Cell, error) {
	for {
		rec, line, err := c.next()
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, &Error{Type: "invalid_csv", Message: fmt.Sprintf("the file is not valid CSV at line %d: %v", pe.Line, pe.Err),
					Details: map[string]any{"line": pe.Line, "column": pe.Column}}
			}
			return nil, err
		}
		c.line = line
		if len(rec) == 1 && rec[0] == "" {
			continue // blank line
		}
		if c.width < 0 {
			c.width = len(rec)
		} else if len(rec) != c.width {
			return nil, &Error{Type: "ragged_row", Message: fmt.Sprintf("line %d has %d fields but the first row has %d: every row of a CSV file needs the same number of fields", line, len(rec), c.width),
				Details: map[string]any{"line": int(line), "row": c.rows + 1, "expected_fields": c.width, "fields": len(rec)}}
		}
		c.rows++
		c.cells = c.cells[:0]
		for _, v := range rec {
			if c.check && !utf8.ValidString(v) {
				return nil, errNotUTF8
			}
			if v == "" {
				c.cells = append(c.cells, Cell{Kind: Null})
			} else {
				c.cells = append(c.cells, Cell{Kind: Text, S: v})
			}
		}
		return c.cells, nil
	}
}

func (c *csvReader) Names() []string  { return nil }
func (c *csvReader) Line() int64      { return c.line }
func (c *csvReader) BytesRead() int64 { return c.cr.n }
func (c *csvReader) Close() error     { return c.f.Close() }

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
