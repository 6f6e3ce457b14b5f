package bitsql

import (
	"database/sql/driver"
	"encoding/base64"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/core"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// rows are a buffered result.
type rows struct {
	r *core.Result
	i int
}

var (
	_ driver.Rows                           = (*rows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*rows)(nil)
	_ driver.RowsColumnTypeScanType         = (*rows)(nil)
)

func newRows(r *core.Result) *rows { return &rows{r: r} }

func (r *rows) Columns() []string {
	out := make([]string, len(r.r.Columns))
	for i, c := range r.r.Columns {
		out[i] = c.Name
	}
	return out
}

func (r *rows) Close() error { r.i = len(r.r.Rows); return nil }

func (r *rows) Next(dest []driver.Value) error {
	if r.i >= len(r.r.Rows) {
		return io.EOF
	}
	row := r.r.Rows[r.i]
	r.i++
	for j := range dest {
		var v any
		if j < len(row) {
			v = row[j]
		}
		var col core.Column
		if j < len(r.r.Columns) {
			col = r.r.Columns[j]
		}
		dv, err := value(v, col)
		if err != nil {
			return fmt.Errorf("bitsql: column %q (%s): %w", col.Name, col.Type, err)
		}
		dest[j] = dv
	}
	return nil
}

// ColumnTypeDatabaseTypeName is the PostgreSQL type name, upper case
// ("INT8", "NUMERIC", "TIMESTAMPTZ").
func (r *rows) ColumnTypeDatabaseTypeName(i int) string {
	t := r.r.Columns[i].Type
	if n, ok := internalNames[t]; ok {
		t = n
	}
	return strings.ToUpper(t)
}

// internalNames maps SQL-standard type names to PostgreSQL's own.
var internalNames = map[string]string{
	"bigint": "int8", "integer": "int4", "smallint": "int2", "boolean": "bool",
	"real": "float4", "double precision": "float8",
	"timestamp with time zone": "timestamptz", "timestamp without time zone": "timestamp",
	"time with time zone": "timetz", "time without time zone": "time",
	"character varying": "varchar", "character": "bpchar",
}

// ColumnTypeScanType is the Go type Next returns for column i.
func (r *rows) ColumnTypeScanType(i int) reflect.Type {
	switch kind(r.r.Columns[i].Type) {
	case kInt:
		return reflect.TypeFor[int64]()
	case kFloat:
		return reflect.TypeFor[float64]()
	case kBool:
		return reflect.TypeFor[bool]()
	case kTime:
		return reflect.TypeFor[time.Time]()
	case kBytes, kJSON:
		return reflect.TypeFor[[]byte]()
	}
	return reflect.TypeFor[string]()
}

type valueKind int

const (
	kString valueKind = iota
	kInt
	kFloat
	kBool
	kTime
	kBytes
	kJSON
)

func kind(typ string) valueKind {
	switch typ {
	case "int2", "int4", "int8", "oid", "smallint", "integer", "bigint":
		return kInt
	case "float4", "float8", "real", "double precision":
		return kFloat
	case "bool", "boolean":
		return kBool
	case "timestamptz", "timestamp", "date", "timestamp with time zone", "timestamp without time zone":
		return kTime
	case "bytea":
		return kBytes
	case "json", "jsonb":
		return kJSON
	}
	if strings.HasPrefix(typ, "_") || strings.HasSuffix(typ, "[]") {
		return kJSON
	}
	return kString
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02"}

// value converts a decoded JSON value of column col into a driver.Value.
func value(v any, col core.Column) (driver.Value, error) {
	if v == nil {
		return nil, nil
	}
	k := kind(col.Type)
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		switch k {
		case kBytes:
			return base64.StdEncoding.DecodeString(x)
		case kTime:
			for _, l := range timeLayouts {
				if t, err := time.Parse(l, x); err == nil {
					return t, nil
				}
			}
			return x, nil // infinity, -infinity, BC dates: their text
		case kJSON:
			return []byte(x), nil
		}
		return x, nil
	case jsonx.Number:
		return number(string(x), k)
	}
	if k == kJSON || k == kString {
		return jsonx.Marshal(v)
	}
	return nil, fmt.Errorf("unexpected value %T", v)
}

func number(s string, k valueKind) (driver.Value, error) {
	switch k {
	case kInt:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("integer %q: %w", s, err)
		}
		return n, nil
	case kFloat:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("float %q: %w", s, err)
		}
		return f, nil
	case kJSON:
		return []byte(s), nil
	}
	return s, nil // numeric and others: the exact digits
}
