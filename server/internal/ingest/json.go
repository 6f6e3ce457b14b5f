package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// jsonReader reads a JSON array of objects or NDJSON (one object per line;
// any whitespace between objects works) as rows. Columns are the union of the
// objects' keys in first-seen order; a key an object lacks is NULL.
type jsonReader struct {
	f     io.ReadCloser
	cr    *countingReader
	dec   *jsonx.Decoder
	array bool
	names []string
	index map[string]int
	cells []Cell
	rec   int64
	done  bool
}

func openJSON(ctx context.Context, src Source) (*jsonReader, error) {
	f, err := src.Open(ctx)
	if err != nil {
		return nil, err
	}
	cr := &countingReader{r: f}
	br := bufio.NewReaderSize(cr, 256<<10)
	// skip a UTF-8 BOM and leading white space to see the first character
	if b, _ := br.Peek(3); bytes.Equal(b, []byte{0xEF, 0xBB, 0xBF}) {
		_, _ = br.Discard(3)
	}
	first := byte(0)
	for {
		b, err := br.Peek(1)
		if err != nil {
			break
		}
		if b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t' {
			_, _ = br.Discard(1)
			continue
		}
		first = b[0]
		break
	}
	j := &jsonReader{f: f, cr: cr, index: map[string]int{}}
	switch first {
	case '[':
		j.array = true
	case '{':
	case 0:
		f.Close()
		return nil, &Error{Type: "empty_file", Message: "the JSON file is empty: send an array of objects or one object per line"}
	default:
		f.Close()
		return nil, &Error{Type: "invalid_json", Message: fmt.Sprintf("a JSON import must be an array of objects or one object per line (NDJSON), but the file starts with %q", first),
			Details: map[string]any{"offset": 0}}
	}
	j.dec = jsonx.NewDecoder(br)
	j.dec.UseNumber()
	if j.array {
		if _, err := j.dec.Token(); err != nil { // [
			f.Close()
			return nil, &Error{Type: "invalid_json", Message: "invalid JSON at the start of the file: " + err.Error()}
		}
	}
	return j, nil
}

func (j *jsonReader) fail(format string, args ...any) error {
	return &Error{Type: "invalid_json", Message: fmt.Sprintf("record %d: ", j.rec+1) + fmt.Sprintf(format, args...),
		Details: map[string]any{"record": j.rec + 1, "row": j.rec + 1, "offset": j.dec.InputOffset()}}
}

func (j *jsonReader) Next() ([]Cell, error) {
	if j.done {
		return nil, io.EOF
	}
	if j.array {
		if !j.dec.More() {
			// expect the closing bracket and nothing after it
			tok, err := j.dec.Token()
			if err != nil || tok != json.Delim(']') {
				return nil, j.fail("the array is not closed properly")
			}
			if _, err := j.dec.Token(); err != io.EOF {
				return nil, j.fail("unexpected data after the closing ]")
			}
			j.done = true
			return nil, io.EOF
		}
	}
	var raw jsonx.RawMessage
	if err := j.dec.Decode(&raw); err != nil {
		if err == io.EOF && !j.array {
			j.done = true
			return nil, io.EOF
		}
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, j.fail("the file ends in the middle of a value")
		}
		return nil, j.fail("invalid JSON: %v", err)
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, j.fail("expected an object, found %s", preview(raw))
	}
	for i := range j.cells {
		j.cells[i] = Cell{}
	}
	inner := jsonx.NewDecoder(bytes.NewReader(raw))
	inner.UseNumber()
	if _, err := inner.Token(); err != nil { // {
		return nil, j.fail("invalid object: %v", err)
	}
	for inner.More() {
		tok, err := inner.Token()
		if err != nil {
			return nil, j.fail("invalid object: %v", err)
		}
		key, _ := tok.(string)
		var v jsonx.RawMessage
		if err := inner.Decode(&v); err != nil {
			return nil, j.fail("invalid value of %q: %v", key, err)
		}
		i, ok := j.index[key]
		if !ok {
			i = len(j.names)
			j.index[key] = i
			j.names = append(j.names, key)
		}
		for len(j.cells) <= i {
			j.cells = append(j.cells, Cell{})
		}
		j.cells[i] = jsonCell(v)
	}
	j.rec++
	return j.cells, nil
}

func jsonCell(v jsonx.RawMessage) Cell {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return Cell{}
	}
	switch v[0] {
	case 'n':
		return Cell{}
	case 't':
		return Cell{Kind: Bool, S: "true"}
	case 'f':
		return Cell{Kind: Bool, S: "false"}
	case '"':
		var s string
		if err := jsonx.Unmarshal(v, &s); err != nil || s == "" {
			return Cell{}
		}
		return Cell{Kind: Text, S: s}
	case '{', '[':
		return Cell{Kind: JSON, S: string(v)}
	}
	return Cell{Kind: Number, S: string(v)}
}

func preview(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

func (j *jsonReader) Names() []string  { return j.names }
func (j *jsonReader) Line() int64      { return j.rec }
func (j *jsonReader) BytesRead() int64 { return j.cr.n }
func (j *jsonReader) Close() error     { return j.f.Close() }
