package export

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/xuri/excelize/v2"
)

// xlsxMaxRows is Excel's row limit (header included).
const xlsxMaxRows = 1048576

// xlsxSink writes one sheet ("Sheet1") with a header row through excelize's
// StreamWriter, which spills rows to a temporary file instead of memory.
// Integers and floats are numbers, numeric is a number when a double holds it
// exactly (else text), booleans are booleans, everything else (dates and
// timestamps in ISO 8601 / RFC 3339 included) is text.
type xlsxSink struct {
	w    io.Writer
	f    *excelize.File
	sw   *excelize.StreamWriter
	oids []uint32
	row  []any
}

func newXLSXSink(w io.Writer, fields []pgconn.FieldDescription) (*xlsxSink, error) {
	f := excelize.NewFile()
	sw, err := f.NewStreamWriter("Sheet1")
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &xlsxSink{w: w, f: f, sw: sw}
	header := make([]any, len(fields))
	for i, n := range names(fields) {
		header[i] = n
		s.oids = append(s.oids, fields[i].DataTypeOID)
	}
	if err := sw.SetRow("A1", header); err != nil {
		f.Close()
		return nil, err
	}
	s.row = make([]any, len(fields))
	return s, nil
}

func (s *xlsxSink) Row(vals [][]byte, n int64) error {
	if n+1 > xlsxMaxRows {
		return &Error{Type: "too_large", Message: fmt.Sprintf("the result has more than %d rows, the most an XLSX sheet holds: export as csv or parquet instead", xlsxMaxRows-1)}
	}
	for i, v := range vals {
		s.row[i] = xlsxValue(s.oids[i], v)
	}
	cell, err := excelize.CoordinatesToCellName(1, int(n)+1)
	if err != nil {
		return err
	}
	return s.sw.SetRow(cell, s.row)
}

func xlsxValue(oid uint32, v []byte) any {
	if v == nil {
		return nil
	}
	str := string(v)
	switch oid {
	case oidInt2, oidInt4, oidInt8:
		if i, err := strconv.ParseInt(str, 10, 64); err == nil {
			return i
		}
	case oidFloat4, oidFloat8:
		if f, err := strconv.ParseFloat(str, 64); err == nil {
			return f
		}
	case oidNumeric:
		if f, err := strconv.ParseFloat(str, 64); err == nil && exactDecimal(str, f) {
			return f
		}
	case oidBool:
		return str == "t"
	case oidTimestamp, oidTimestamptz:
		return rfc3339(str, oid == oidTimestamptz)
	}
	return str
}

// exactDecimal reports whether the decimal text s is exactly f's shortest
// representation (trailing fractional zeros ignored).
func exactDecimal(s string, f float64) bool {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return strconv.FormatFloat(f, 'f', -1, 64) == s
}

func (s *xlsxSink) Close() error {
	defer s.f.Close()
	if err := s.sw.Flush(); err != nil {
		return err
	}
	_, err := s.f.WriteTo(s.w)
	return err
}
