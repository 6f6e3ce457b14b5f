package ingest

// Legacy Excel 97-2003 workbooks, read by package xls; this file turns its
// cells into rows and its errors into invalid_xls failures.

import (
	"context"
	"errors"
	"io"

	"github.com/bitkit-dev/bitkit/server/internal/ingest/xls"
)

// xlsFailure turns a damaged workbook's *xls.FormatError into an invalid_xls
// *Error that says how to get a readable file; other errors pass.
func xlsFailure(err error) error {
	var fe *xls.FormatError
	if !errors.As(err, &fe) {
		return err
	}
	e := &Error{Type: "invalid_xls", Message: "the file is not a readable .xls (Excel 97-2003) workbook: " + fe.Reason + "; save it again as .xlsx or .csv from a spreadsheet program and import that"}
	if fe.Sheet != "" {
		e.Details = map[string]any{"sheet": fe.Sheet}
	}
	return e
}

var xlsKinds = [...]Kind{xls.Empty: Null, xls.Text: Text, xls.Number: Number, xls.Bool: Bool}

// xlsReader yields the rows of one worksheet: cells from column A to the
// row's last non-empty cell, empty cells NULL, empty rows skipped.
type xlsReader struct {
	cells []xls.Cell
	i     int
	row   []Cell
	line  int64
}

func (x *xlsReader) Next() ([]Cell, error) {
	if x.i >= len(x.cells) {
		return nil, io.EOF
	}
	r := x.cells[x.i].Row
	x.row = x.row[:0]
	for ; x.i < len(x.cells) && x.cells[x.i].Row == r; x.i++ {
		c := x.cells[x.i]
		v := Cell{Kind: xlsKinds[c.Cell.Kind], S: c.Cell.S}
		for len(x.row) < int(c.Col) {
			x.row = append(x.row, Cell{})
		}
		if len(x.row) == int(c.Col) {
			x.row = append(x.row, v)
		} else {
			x.row[c.Col] = v // a duplicate cell: the last one wins
		}
	}
	x.line = int64(r) + 1
	return x.row, nil
}

func (x *xlsReader) Names() []string  { return nil }
func (x *xlsReader) Line() int64      { return x.line }
func (x *xlsReader) BytesRead() int64 { return 0 }
func (x *xlsReader) Close() error     { return nil }

// xlsTables plans one table per selected sheet, like xlsxTables.
func xlsTables(ctx context.Context, path string, opts Options) ([]*TablePlan, error) {
	bk, err := xls.Open(path)
	if err != nil {
		return nil, xlsFailure(err)
	}
	return sheetTables(ctx, bk.Sheets(), opts, func(i int) (rowReader, error) {
		b, err := xls.Open(path)
		if err != nil {
			return nil, xlsFailure(err)
		}
		cells, err := b.ReadSheet(i)
		if err != nil {
			return nil, xlsFailure(err)
		}
		return &xlsReader{cells: cells}, nil
	})
}
