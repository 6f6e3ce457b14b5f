package ingest

import (
	"context"
	"fmt"
	"io"

	"github.com/xuri/excelize/v2"
)

// xlsxReader reads one sheet of an XLSX file. Cells are read as Excel
// displays them (number formats applied); empty cells are NULL; rows shorter
// than the widest row are padded with NULLs; empty rows are skipped.
type xlsxReader struct {
	f     *excelize.File
	rows  *excelize.Rows
	cells []Cell
	row   int64
	sheet string
}

func invalidXLSX(err error) error {
	return &Error{Type: "invalid_xlsx", Message: fmt.Sprintf("the file is not a readable XLSX workbook (%v): save it again as .xlsx from a spreadsheet program", err)}
}

func openXLSX(path, sheet string) (*xlsxReader, error) {
	f, err := excelize.OpenFile(path)
	if err != nil {
		return nil, invalidXLSX(err)
	}
	rows, err := f.Rows(sheet)
	if err != nil {
		f.Close()
		return nil, invalidXLSX(err)
	}
	return &xlsxReader{f: f, rows: rows, sheet: sheet}, nil
}

func (x *xlsxReader) Next() ([]Cell, error) {
	for x.rows.Next() {
		x.row++
		cols, err := x.rows.Columns()
		if err != nil {
			return nil, &Error{Type: "invalid_xlsx", Message: fmt.Sprintf("sheet %q row %d cannot be read: %v", x.sheet, x.row, err),
				Details: map[string]any{"sheet": x.sheet, "row": x.row}}
		}
		x.cells = x.cells[:0]
		empty := true
		for _, v := range cols {
			if v == "" {
				x.cells = append(x.cells, Cell{})
			} else {
				empty = false
				x.cells = append(x.cells, Cell{Kind: Text, S: v})
			}
		}
		if empty {
			continue
		}
		return x.cells, nil
	}
	if err := x.rows.Error(); err != nil {
		return nil, invalidXLSX(err)
	}
	return nil, io.EOF
}

func (x *xlsxReader) Names() []string  { return nil }
func (x *xlsxReader) Line() int64      { return x.row }
func (x *xlsxReader) BytesRead() int64 { return 0 }
func (x *xlsxReader) Close() error {
	x.rows.Close()
	return x.f.Close()
}

// xlsxTables plans one table per selected sheet.
func xlsxTables(ctx context.Context, path string, opts Options) ([]*TablePlan, error) {
	f, err := excelize.OpenFile(path)
	if err != nil {
		return nil, invalidXLSX(err)
	}
	sheets := f.GetSheetList()
	f.Close()
	if len(sheets) == 0 {
		return nil, &Error{Type: "invalid_xlsx", Message: "the workbook has no sheets"}
	}
	return sheetTables(ctx, sheets, opts, func(i int) (rowReader, error) { return openXLSX(path, sheets[i]) })
}

// sheetTables plans one table per sheet of a workbook (XLSX or XLS) that
// opts.Sheet selects among names: "" the first, "*" every one (named
// TableName(opts.Table, sheet); empty sheets are skipped), else the one so
// named. open reads sheet i.
func sheetTables(ctx context.Context, names []string, opts Options, open func(i int) (rowReader, error)) ([]*TablePlan, error) {
	var pick []int
	switch opts.Sheet {
	case "":
		pick = []int{0}
	case "*":
		for i := range names {
			pick = append(pick, i)
		}
	default:
		for i, n := range names {
			if n == opts.Sheet {
				pick = []int{i}
			}
		}
		if pick == nil {
			return nil, &Error{Type: "sheet_not_found", Message: fmt.Sprintf("the workbook has no sheet %q (it has %q)", opts.Sheet, names),
				Details: map[string]any{"sheet": opts.Sheet, "sheets": names}}
		}
	}
	var out []*TablePlan
	for _, i := range pick {
		name := opts.Table
		if opts.Sheet == "*" {
			name = TableName(opts.Table, names[i])
		}
		t := &TablePlan{Schema: opts.Schema, Table: name, Source: names[i]}
		t.open = func() (rowReader, error) { return open(i) }
		if err := infer(ctx, t, opts.Header); err != nil {
			if e, ok := err.(*Error); ok && e.Type == "empty_file" && opts.Sheet == "*" {
				continue // an empty sheet among many is skipped
			}
			return nil, err
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, &Error{Type: "empty_file", Message: "every sheet of the workbook is empty"}
	}
	return out, nil
}
