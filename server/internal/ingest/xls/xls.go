// Package xls reads legacy Excel 97-2003 workbooks: BIFF8 records ([MS-XLS])
// in the "Workbook" stream of an OLE2 compound file ([MS-CFB]).
//
// It is written for untrusted uploads: every offset and length is checked,
// sector chains are bounded and cycle-checked, and nothing is allocated from
// a count the file states without first checking it against the bytes
// actually present. A damaged file gives a *FormatError saying what was wrong.
//
// The reader has three layers, one per file: cfb.go (the container),
// biff.go (records and their strings) and book.go (workbook globals and
// worksheet cells).
package xls

import (
	"fmt"
	"io"
	"os"
)

// MaxBytes caps the size of an .xls file read into memory. BIFF8 sheets hold
// at most 65,536 rows × 256 columns; real files stay far below this.
const MaxBytes = 256 << 20

// Kind is what the workbook says about a cell.
type Kind uint8

// Cell kinds. Dates and times are Text in ISO form (as the cell's number
// format shows them); numbers are Number in Go's shortest 'f' form.
const (
	Empty Kind = iota
	Text
	Number
	Bool
)

// Value is one cell's value.
type Value struct {
	Kind Kind
	S    string
}

// Cell is a non-empty cell of a worksheet, numbered from 0.
type Cell struct {
	Row  uint32
	Col  uint16
	Cell Value
}

// FormatError says why a file is not a readable workbook; Sheet names the
// worksheet when the damage is inside one.
type FormatError struct {
	Reason string
	Sheet  string
}

func (e *FormatError) Error() string { return e.Reason }

func formatErr(format string, args ...any) *FormatError {
	return &FormatError{Reason: fmt.Sprintf(format, args...)}
}

// Open reads and parses the workbook globals of the .xls file at path.
func Open(path string) (*Book, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxBytes {
		return nil, formatErr("it is larger than %d MiB", MaxBytes>>20)
	}
	return Parse(data)
}

// Sheets names the workbook's worksheets in order.
func (bk *Book) Sheets() []string {
	names := make([]string, len(bk.sheets))
	for i, s := range bk.sheets {
		names[i] = s.name
	}
	return names
}

// ReadSheet returns the non-empty cells of worksheet i (in Sheets order),
// sorted by row and column.
func (bk *Book) ReadSheet(i int) ([]Cell, error) {
	if i < 0 || i >= len(bk.sheets) {
		return nil, fmt.Errorf("xls: no sheet %d (the workbook has %d)", i, len(bk.sheets))
	}
	return bk.readSheet(bk.sheets[i])
}
