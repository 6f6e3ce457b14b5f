package export

import (
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/parquet-go/parquet-go"
)

// RowGroupRows is the number of rows per Parquet row group.
const RowGroupRows = 64 << 10

// parquetSink writes a Parquet file whose columns are all optional and typed
// from the PostgreSQL types:
//
//	boolean → BOOLEAN; smallint, integer → INT32; bigint → INT64;
//	real → FLOAT; double precision → DOUBLE;
//	numeric → STRING (exact decimal text: unconstrained numeric has no fixed scale);
//	date → DATE; time → TIME(MICROS);
//	timestamp → TIMESTAMP(MICROS, isAdjustedToUTC=false);
//	timestamptz → TIMESTAMP(MICROS, isAdjustedToUTC=true);
//	json, jsonb → JSON; bytea → BYTE_ARRAY; uuid and everything else → STRING.
type parquetSink struct {
	// parquet.Writer is deprecated in favour of GenericWriter[T], which needs
	// the row type at compile time; an export's schema is only known at run
	// time, which is what Writer is for.
	//lint:ignore SA1019 the schema is dynamic (see above)
	w     *parquet.Writer
	kinds []uint32
	index []int // leaf column index of each result column
	names []string
	batch []parquet.Row
}

func parquetNode(oid uint32) parquet.Node {
	switch oid {
	case oidBool:
		return parquet.Leaf(parquet.BooleanType)
	case oidInt2, oidInt4:
		return parquet.Int(32)
	case oidInt8:
		return parquet.Int(64)
	case oidFloat4:
		return parquet.Leaf(parquet.FloatType)
	case oidFloat8:
		return parquet.Leaf(parquet.DoubleType)
	case oidDate:
		return parquet.Date()
	case oidTime:
		return parquet.Time(parquet.Microsecond)
	case oidTimestamp:
		return parquet.TimestampAdjusted(parquet.Microsecond, false)
	case oidTimestamptz:
		return parquet.TimestampAdjusted(parquet.Microsecond, true)
	case oidJSON, oidJSONB:
		return parquet.JSON()
	case oidBytea:
		return parquet.Leaf(parquet.ByteArrayType)
	}
	return parquet.String()
}

func newParquetSink(w io.Writer, fields []pgconn.FieldDescription) (*parquetSink, error) {
	ns := names(fields)
	group := parquet.Group{}
	s := &parquetSink{names: ns}
	for i, f := range fields {
		group[ns[i]] = parquet.Optional(parquetNode(f.DataTypeOID))
		s.kinds = append(s.kinds, f.DataTypeOID)
	}
	schema := parquet.NewSchema("row", group)
	pos := map[string]int{}
	for i, path := range schema.Columns() {
		pos[path[0]] = i
	}
	for _, n := range ns {
		s.index = append(s.index, pos[n])
	}
	s.w = parquet.NewWriter(w, schema, parquet.MaxRowsPerRowGroup(RowGroupRows), parquet.Compression(&parquet.Snappy))
	return s, nil
}

func (s *parquetSink) Row(vals [][]byte, n int64) error {
	row := make(parquet.Row, len(vals))
	for i, v := range vals {
		col := s.index[i]
		if v == nil {
			row[col] = parquet.NullValue().Level(0, 0, col)
			continue
		}
		pv, err := parquetValue(s.kinds[i], string(v))
		if err != nil {
			return &Error{Type: "unsupported_value", Message: fmt.Sprintf("row %d, column %q: value %q cannot be written to Parquet: %v", n, s.names[i], v, err),
				Details: map[string]any{"row": n, "column": s.names[i], "value": string(v)}}
		}
		row[col] = pv.Level(0, 1, col)
	}
	s.batch = append(s.batch, row)
	if len(s.batch) >= 1024 {
		return s.flush()
	}
	return nil
}

func (s *parquetSink) flush() error {
	if len(s.batch) == 0 {
		return nil
	}
	_, err := s.w.WriteRows(s.batch)
	s.batch = s.batch[:0]
	return err
}

var epoch = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

func parquetValue(oid uint32, v string) (parquet.Value, error) {
	switch oid {
	case oidBool:
		return parquet.BooleanValue(v == "t"), nil
	case oidInt2, oidInt4:
		i, err := strconv.ParseInt(v, 10, 32)
		return parquet.Int32Value(int32(i)), err
	case oidInt8:
		i, err := strconv.ParseInt(v, 10, 64)
		return parquet.Int64Value(i), err
	case oidFloat4:
		f, err := strconv.ParseFloat(pgFloat(v), 32)
		return parquet.FloatValue(float32(f)), err
	case oidFloat8:
		f, err := strconv.ParseFloat(pgFloat(v), 64)
		return parquet.DoubleValue(f), err
	case oidDate:
		t, err := time.Parse("2006-01-02", v)
		return parquet.Int32Value(int32(t.Sub(epoch) / (24 * time.Hour))), err
	case oidTime:
		t, err := time.Parse("15:04:05.999999", v)
		if err != nil {
			return parquet.Value{}, err
		}
		d := time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute + time.Duration(t.Second())*time.Second + time.Duration(t.Nanosecond())
		return parquet.Int64Value(d.Microseconds()), nil
	case oidTimestamp, oidTimestamptz:
		t, err := time.Parse("2006-01-02 15:04:05.999999", trimZone(v))
		return parquet.Int64Value(t.UnixMicro()), err
	case oidBytea:
		if len(v) >= 2 && v[:2] == `\x` {
			b, err := hex.DecodeString(v[2:])
			return parquet.ByteArrayValue(b), err
		}
		return parquet.ByteArrayValue([]byte(v)), nil
	}
	return parquet.ByteArrayValue([]byte(v)), nil
}

// trimZone drops the "+00" PostgreSQL appends to a timestamptz in UTC.
func trimZone(v string) string {
	if len(v) > 3 && v[len(v)-3:] == "+00" {
		return v[:len(v)-3]
	}
	return v
}

// pgFloat maps PostgreSQL's Infinity spelling to Go's.
func pgFloat(v string) string {
	switch v {
	case "Infinity":
		return "+Inf"
	case "-Infinity":
		return "-Inf"
	}
	return v
}

func (s *parquetSink) Close() error {
	if err := s.flush(); err != nil {
		return err
	}
	return s.w.Close()
}
