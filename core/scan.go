package core

import (
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// Scan copies the values of row i into dest, one destination per column.
//
// Supported destinations: *int, *int8 … *int64, *uint … *uint64 (range
// checked), *float32, *float64, *string, *bool, *[]byte (bytea columns are
// decoded from base64; other values give their text or JSON), *time.Time
// (timestamp, timestamptz and date), *jsonx.Number (exact digits),
// *big.Int and *big.Float (exact int8/numeric; big.Float gets enough
// precision for every digit), *jsonx.RawMessage (the value as JSON), *any
// (the raw value), a pointer to a pointer (nil for NULL), a sql.Scanner, and
// any other pointer, which receives the value through JSON (arrays into
// slices, json/jsonb into structs or maps). A nil destination skips its
// column. NULL into a non-pointer, non-any destination is an error.
func (r *Result) Scan(i int, dest ...any) error {
	if i < 0 || i >= len(r.Rows) {
		return fmt.Errorf("core: Scan: row %d out of range (the result has %d rows)", i, len(r.Rows))
	}
	return scanRow(r.Columns, r.Rows[i], dest)
}

func scanRow(cols []Column, row []any, dest []any) error {
	if len(dest) != len(row) {
		return fmt.Errorf("core: Scan: %d destinations for %d columns", len(dest), len(row))
	}
	for j, d := range dest {
		if d == nil {
			continue
		}
		var col Column
		if j < len(cols) {
			col = cols[j]
		}
		if err := convertAssign(d, row[j], col); err != nil {
			return fmt.Errorf("core: Scan: column %d (%s %s): %w", j, col.Name, col.Type, err)
		}
	}
	return nil
}

var (
	timeType      = reflect.TypeFor[time.Time]()
	numberType    = reflect.TypeFor[jsonx.Number]()
	rawType       = reflect.TypeFor[jsonx.RawMessage]()
	byteSliceType = reflect.TypeFor[[]byte]()
)

func isBytea(col Column) bool {
	t := strings.ToLower(col.Type)
	return t == "bytea" || col.TypeOID == 17
}

// convertAssign stores v (a JSON value of column col) into the pointer d.
func convertAssign(d any, v any, col Column) error {
	switch p := d.(type) {
	case *any:
		*p = v
		return nil
	case *string:
		if v == nil {
			return errNull
		}
		switch x := v.(type) {
		case string:
			*p = x
		case jsonx.Number:
			*p = x.String()
		case bool:
			*p = strconv.FormatBool(x)
		default:
			b, err := jsonx.Marshal(x)
			if err != nil {
				return err
			}
			*p = string(b)
		}
		return nil
	case *int64:
		if v == nil {
			return errNull
		}
		n, err := toInt(v, 64)
		*p = n
		return err
	case *int:
		if v == nil {
			return errNull
		}
		n, err := toInt(v, strconv.IntSize)
		*p = int(n)
		return err
	case *int32:
		if v == nil {
			return errNull
		}
		n, err := toInt(v, 32)
		*p = int32(n)
		return err
	case *float64:
		if v == nil {
			return errNull
		}
		f, err := toFloat(v, 64)
		*p = f
		return err
	case *bool:
		if v == nil {
			return errNull
		}
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("cannot store %T into *bool", v)
		}
		*p = b
		return nil
	case *[]byte:
		if v == nil {
			*p = nil
			return nil
		}
		return toBytes(p, v, col)
	case *jsonx.RawMessage:
		if v == nil {
			*p = jsonx.RawMessage("null")
			return nil
		}
		b, err := jsonx.Marshal(v)
		*p = b
		return err
	case *jsonx.Number:
		if v == nil {
			return errNull
		}
		switch x := v.(type) {
		case jsonx.Number:
			*p = x
		case string:
			if _, err := strconv.ParseFloat(x, 64); err != nil && !isSpecialFloat(x) {
				return fmt.Errorf("cannot store %q into *jsonx.Number", x)
			}
			*p = jsonx.Number(x)
		default:
			return fmt.Errorf("cannot store %T into *jsonx.Number", v)
		}
		return nil
	case *time.Time:
		if v == nil {
			return errNull
		}
		t, err := toTime(v)
		*p = t
		return err
	case sqlScanner:
		return p.Scan(driverValue(v, col))
	}
	if ok, err := assignBig(d, v); ok {
		return err
	}
	rv := reflect.ValueOf(d)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("destination %T is not a non-nil pointer", d)
	}
	return assignValue(rv.Elem(), v, col)
}

var errNull = errors.New("NULL cannot be stored here; use a pointer destination (such as **string) or *any")

func isSpecialFloat(s string) bool {
	switch s {
	case "NaN", "Infinity", "-Infinity", "+Infinity", "inf", "-inf", "+inf":
		return true
	}
	return false
}

// sqlScanner is database/sql's Scanner (declared here so that the js/wasm
// build does not link database/sql); any sql.Scanner implements it.
type sqlScanner interface {
	Scan(src any) error
}

// driverValue converts v into a database/sql driver value for a sql.Scanner.
func driverValue(v any, col Column) any {
	switch x := v.(type) {
	case nil, bool:
		return x
	case jsonx.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		if f, err := x.Float64(); err == nil && !strings.ContainsAny(string(x), "eE") && len(strings.TrimLeft(string(x), "-0.")) <= 15 {
			return f
		}
		return string(x)
	case string:
		if isBytea(col) {
			if b, err := base64.StdEncoding.DecodeString(x); err == nil {
				return b
			}
		}
		return x
	default:
		b, _ := jsonx.Marshal(x)
		return b
	}
}

// assignValue handles destinations by kind, pointers to pointers and the JSON fallback.
func assignValue(dv reflect.Value, v any, col Column) error {
	if dv.CanAddr() {
		if s, ok := dv.Addr().Interface().(sqlScanner); ok && dv.Kind() != reflect.Pointer {
			return s.Scan(driverValue(v, col))
		}
	}
	if dv.Kind() == reflect.Pointer {
		if v == nil {
			dv.SetZero()
			return nil
		}
		nv := reflect.New(dv.Type().Elem())
		if err := convertAssign(nv.Interface(), v, col); err != nil {
			return err
		}
		dv.Set(nv)
		return nil
	}
	if v == nil {
		if dv.Kind() == reflect.Interface || dv.Kind() == reflect.Map || dv.Kind() == reflect.Slice {
			dv.SetZero()
			return nil
		}
		return errNull
	}
	if dv.Kind() == reflect.Interface && dv.NumMethod() == 0 {
		dv.Set(reflect.ValueOf(v))
		return nil
	}
	switch dv.Type() {
	case timeType, numberType, rawType, byteSliceType, bigIntType, bigFloatType:
		return convertAssign(dv.Addr().Interface(), v, col)
	}
	switch dv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := toInt(v, dv.Type().Bits())
		if err == nil {
			dv.SetInt(n)
		}
		return err
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		s, err := numText(v)
		if err != nil {
			return err
		}
		n, err := strconv.ParseUint(s, 10, dv.Type().Bits())
		if err != nil {
			return fmt.Errorf("%s does not fit %s: %w", s, dv.Type(), err)
		}
		dv.SetUint(n)
		return nil
	case reflect.Float32, reflect.Float64:
		f, err := toFloat(v, dv.Type().Bits())
		if err == nil {
			dv.SetFloat(f)
		}
		return err
	case reflect.String:
		var s string
		if err := convertAssign(&s, v, col); err != nil {
			return err
		}
		dv.SetString(s)
		return nil
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("cannot store %T into %s", v, dv.Type())
		}
		dv.SetBool(b)
		return nil
	}
	// Arrays into slices, json/jsonb into structs and maps: go through JSON.
	b, err := jsonx.Marshal(v)
	if err != nil {
		return err
	}
	if err := unmarshalNumbers(b, dv.Addr().Interface()); err != nil {
		return fmt.Errorf("cannot store the value into %s: %w", dv.Type(), err)
	}
	return nil
}

func numText(v any) (string, error) {
	switch x := v.(type) {
	case jsonx.Number:
		return string(x), nil
	case string:
		return x, nil
	}
	return "", fmt.Errorf("cannot convert %T to a number", v)
}

func toInt(v any, bits int) (int64, error) {
	s, err := numText(v)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, bits)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, fmt.Errorf("%s does not fit a %d-bit integer", s, bits)
		}
		return 0, fmt.Errorf("%q is not an integer (scan it into *float64, *big.Float or *jsonx.Number)", s)
	}
	return n, nil
}

func toFloat(v any, bits int) (float64, error) {
	s, err := numText(v)
	if err != nil {
		return 0, err
	}
	switch s {
	case "NaN":
		return strconv.ParseFloat("NaN", bits)
	case "Infinity", "+Infinity":
		return strconv.ParseFloat("+Inf", bits)
	case "-Infinity":
		return strconv.ParseFloat("-Inf", bits)
	}
	f, err := strconv.ParseFloat(s, bits)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return f, nil
}

func toBytes(p *[]byte, v any, col Column) error {
	if s, ok := v.(string); ok {
		if isBytea(col) {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return fmt.Errorf("bytea value is not base64: %w", err)
			}
			*p = b
			return nil
		}
		*p = []byte(s)
		return nil
	}
	if n, ok := v.(jsonx.Number); ok {
		*p = []byte(n)
		return nil
	}
	b, err := jsonx.Marshal(v)
	*p = b
	return err
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02"}

func toTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("cannot store %T into *time.Time", v)
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 timestamp or a date", s)
}

// structPlan maps columns to struct field index paths.
type structPlan struct {
	fields [][]int
}

type fieldInfo struct {
	name  string // tag name or field name
	tag   bool
	index []int
}

var fieldCache sync.Map // reflect.Type → []fieldInfo

func structFields(t reflect.Type) []fieldInfo {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]fieldInfo)
	}
	var out []fieldInfo
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			tag, hasTag := sf.Tag.Lookup("db")
			tag, _, _ = strings.Cut(tag, ",")
			if tag == "-" {
				continue
			}
			idx := append(append([]int(nil), prefix...), i)
			if sf.Anonymous && !hasTag {
				ft := sf.Type
				if ft.Kind() == reflect.Struct {
					walk(ft, idx)
					continue
				}
			}
			if !sf.IsExported() {
				continue
			}
			name := sf.Name
			if hasTag && tag != "" {
				name = tag
			}
			out = append(out, fieldInfo{name: name, tag: hasTag && tag != "", index: idx})
		}
	}
	walk(t, nil)
	fieldCache.Store(t, out)
	return out
}

func normalize(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }

// planFor matches the columns to the fields of struct type t like pgx's
// RowToStructByName: a `db:"name"` tag names the column exactly (case
// insensitive), an untagged field matches a column whose name equals the
// field name ignoring case and underscores, `db:"-"` skips a field. Every
// column must find a field and every field a column.
func planFor(t reflect.Type, cols []Column) (*structPlan, error) {
	fields := structFields(t)
	plan := &structPlan{fields: make([][]int, len(cols))}
	used := make([]bool, len(fields))
	for ci, col := range cols {
		found := -1
		for fi, f := range fields {
			if used[fi] {
				continue
			}
			if (f.tag && strings.EqualFold(f.name, col.Name)) || (!f.tag && normalize(f.name) == normalize(col.Name)) {
				found = fi
				break
			}
		}
		if found < 0 {
			return nil, fmt.Errorf("core: no field of %s matches column %q; add a field tagged `db:%q`", t, col.Name, col.Name)
		}
		used[found] = true
		plan.fields[ci] = fields[found].index
	}
	for fi, f := range fields {
		if !used[fi] {
			return nil, fmt.Errorf("core: field %s of %s has no matching column; tag it `db:\"-\"` to skip it", f.name, t)
		}
	}
	return plan, nil
}

func (p *structPlan) fill(dst reflect.Value, cols []Column, row []any) error {
	if len(row) != len(p.fields) {
		return fmt.Errorf("core: row has %d values for %d columns", len(row), len(p.fields))
	}
	for ci, idx := range p.fields {
		fv := dst
		for _, i := range idx {
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					fv.Set(reflect.New(fv.Type().Elem()))
				}
				fv = fv.Elem()
			}
			fv = fv.Field(i)
		}
		if err := convertAssign(fv.Addr().Interface(), row[ci], cols[ci]); err != nil {
			return fmt.Errorf("core: column %q into %s: %w", cols[ci].Name, fv.Type(), err)
		}
	}
	return nil
}

// ScanAll decodes every row of r into a T, which must be a struct (or a
// pointer to one). Fields match columns like pgx's RowToStructByName: a
// `db:"name"` tag names its column, untagged exported fields match a column
// with the same name ignoring case and underscores, `db:"-"` skips a field,
// and embedded structs are flattened. Each value is converted as by Scan.
func ScanAll[T any](r *Result) ([]T, error) {
	t := reflect.TypeFor[T]()
	st := t
	if st.Kind() == reflect.Pointer {
		st = st.Elem()
	}
	if st.Kind() != reflect.Struct {
		return nil, fmt.Errorf("core: ScanAll: %s is not a struct type", t)
	}
	plan, err := planFor(st, r.Columns)
	if err != nil {
		return nil, err
	}
	out := make([]T, len(r.Rows))
	for i, row := range r.Rows {
		dst := reflect.ValueOf(&out[i]).Elem()
		if t.Kind() == reflect.Pointer {
			dst.Set(reflect.New(st))
			dst = dst.Elem()
		}
		if err := plan.fill(dst, r.Columns, row); err != nil {
			return nil, fmt.Errorf("core: ScanAll: row %d: %w", i, err)
		}
	}
	return out, nil
}
