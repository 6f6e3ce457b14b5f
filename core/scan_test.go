package core

import (
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// sampleResult decodes a result the way Query does, from JSON text.
func sampleResult(t *testing.T) *Result {
	t.Helper()
	js := `{"query_string":"q","columns":[
	{"name":"i8","type":"int8","type_oid":20},
	{"name":"num","type":"numeric","type_oid":1700},
	{"name":"f","type":"float8","type_oid":701},
	{"name":"ts","type":"timestamptz","type_oid":1184},
	{"name":"d","type":"date","type_oid":1082},
	{"name":"b","type":"bytea","type_oid":17},
	{"name":"j","type":"jsonb","type_oid":3802},
	{"name":"arr","type":"_int4","type_oid":1007},
	{"name":"n","type":"text","type_oid":25},
	{"name":"ok","type":"bool","type_oid":16}],
	"data":[[9223372036854775807,1234567890123456789012345678901234567890.5,1.5,"2026-03-04T05:06:07.123456Z","2026-03-04","3q2+7w==",{"a":[1,2],"b":"x"},[1,2,3],null,true],
	        [-9223372036854775808,-0.000000000000000000000000000001,"NaN","2026-03-04T05:06:07+02:00","1999-12-31","",null,[],"txt",false]],
	"row_count":2,"command":"SELECT 2"}`
	var rb resultBody
	if err := unmarshalNumbers([]byte(js), &rb); err != nil {
		t.Fatal(err)
	}
	r, err := rb.result(false)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type nullStr struct{ sql.NullString }

func TestScanTypes(t *testing.T) {
	t.Parallel()
	r := sampleResult(t)
	var (
		i8   int64
		num  jsonx.Number
		f    float64
		ts   time.Time
		d    time.Time
		b    []byte
		j    map[string]any
		arr  []int
		n    *string
		ok   bool
		numN jsonx.Number
		bi   jsonx.Number
	)
	if err := r.Scan(0, &i8, &num, &f, &ts, &d, &b, &j, &arr, &n, &ok); err != nil {
		t.Fatal(err)
	}
	if i8 != math.MaxInt64 || f != 1.5 || !ts.Equal(time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)) ||
		d.Format("2006-01-02") != "2026-03-04" || fmt.Sprint(b) != "[222 173 190 239]" || n != nil || !ok ||
		fmt.Sprint(arr) != "[1 2 3]" || fmt.Sprint(j["a"]) != "[1 2]" || j["b"] != "x" {
		t.Fatalf("scanned %v %v %v %v %v %v %v %v %v", i8, f, ts, d, b, j, arr, n, ok)
	}
	if num != "1234567890123456789012345678901234567890.5" {
		t.Fatalf("numeric via jsonx.Number = %s", num)
	}
	if err := r.Scan(0, nil, &numN, nil, nil, nil, nil, nil, nil, nil, nil); err != nil || numN != num {
		t.Fatalf("numeric via jsonx.Number = %s %v", numN, err)
	}
	if err := r.Scan(1, &bi, nil, &f, nil, nil, &b, &j, &arr, &n, &ok); err != nil {
		t.Fatal(err)
	}
	if bi != "-9223372036854775808" || !math.IsNaN(f) || len(b) != 0 || j != nil || len(arr) != 0 || n == nil || *n != "txt" || ok {
		t.Fatalf("row 1: %v %v %v %v %v %v %v", bi, f, b, j, arr, n, ok)
	}
	var anyV any
	var ns nullStr
	if err := r.Scan(1, nil, nil, nil, nil, nil, nil, &anyV, nil, &ns, nil); err != nil || anyV != nil || !ns.Valid || ns.String != "txt" {
		t.Fatalf("any %v scanner %+v err %v", anyV, ns, err)
	}
	var s string
	if err := r.Scan(0, &s, nil, nil, nil, nil, nil, nil, nil, nil, nil); err != nil || s != "9223372036854775807" {
		t.Fatalf("int8 as string = %q %v", s, err)
	}
}

func TestScanErrors(t *testing.T) {
	t.Parallel()
	r := sampleResult(t)
	tests := []struct {
		name string
		col  int
		dest any
		want string
	}{
		{"null into string", 8, new(string), "NULL"},
		{"int8 overflow int32", 0, new(int32), "does not fit"},
		{"float into int64", 2, new(int64), "not an integer"},
		{"numeric into int64", 1, new(int64), "does not fit"},
		{"text into bool", 3, new(bool), "cannot store"},
		{"not a pointer", 0, int64(0), "not a non-nil pointer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := make([]any, len(r.Columns))
			dest[tc.col] = tc.dest
			row := 0
			if tc.col == 8 {
				row = 0
			}
			err := r.Scan(row, dest...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if err := r.Scan(5); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("out of range: %v", err)
	}
	if err := r.Scan(0, new(any)); err == nil || !strings.Contains(err.Error(), "destinations") {
		t.Fatalf("wrong count: %v", err)
	}
}

type Base struct {
	Flag bool `db:"ok"`
}

type sampleRow struct {
	Base
	ID      int64          `db:"i8"`
	Num     jsonx.Number   `db:"num"`
	F       float64        `db:"f"`
	TS      time.Time      `db:"ts"`
	D       time.Time      `db:"d"`
	B       []byte         `db:"b"`
	J       map[string]any `db:"j"`
	Arr     []int64        `db:"arr"`
	N       *string
	Ignored string `db:"-"`
}

func TestScanAll(t *testing.T) {
	t.Parallel()
	r := sampleResult(t)
	rows, err := ScanAll[sampleRow](r)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].ID != math.MaxInt64 || !rows[0].Flag || rows[1].Flag || *rows[1].N != "txt" ||
		rows[0].Num != "1234567890123456789012345678901234567890.5" || len(rows[0].B) != 4 || rows[0].Arr[2] != 3 {
		t.Fatalf("rows = %+v", rows)
	}
	ptrs, err := ScanAll[*sampleRow](r)
	if err != nil || len(ptrs) != 2 || ptrs[1].ID != math.MinInt64 {
		t.Fatalf("pointer rows: %v %v", ptrs, err)
	}
	type missingField struct {
		ID int64 `db:"i8"`
	}
	if _, err := ScanAll[missingField](r); err == nil || !strings.Contains(err.Error(), `column "num"`) {
		t.Fatalf("missing field: %v", err)
	}
	type extraField struct {
		sampleRow
		Extra int
	}
	if _, err := ScanAll[extraField](r); err == nil || !strings.Contains(err.Error(), "Extra") {
		t.Fatalf("extra field: %v", err)
	}
	if _, err := ScanAll[int](r); err == nil {
		t.Fatal("ScanAll[int] gave no error")
	}
	// Untagged fields match ignoring case and underscores.
	res := &Result{Columns: []Column{{Name: "user_id"}, {Name: "NAME"}}, Rows: [][]any{{jsonx.Number("7"), "x"}}}
	type u struct {
		UserID int
		Name   string
	}
	us, err := ScanAll[u](res)
	if err != nil || us[0].UserID != 7 || us[0].Name != "x" {
		t.Fatalf("%+v %v", us, err)
	}
}

func TestObjectsFormat(t *testing.T) {
	t.Parallel()
	js := `{"columns":[{"name":"b","type":"int8"},{"name":"a","type":"text"}],"data":[{"a":"x","b":12345678901234567}],"row_count":1}`
	var rb resultBody
	if err := unmarshalNumbers([]byte(js), &rb); err != nil {
		t.Fatal(err)
	}
	r, err := rb.result(true)
	if err != nil {
		t.Fatal(err)
	}
	var b int64
	var a string
	if err := r.Scan(0, &b, &a); err != nil || b != 12345678901234567 || a != "x" || r.Objects[0]["a"] != "x" {
		t.Fatalf("%d %q %v %v", b, a, r.Objects, err)
	}
}

func TestAPIErrorMapping(t *testing.T) {
	t.Parallel()
	sentinels := []error{ErrBadRequest, ErrUnauthorized, ErrForbidden, ErrNotFound, ErrConflict, ErrTooLarge, ErrRateLimited, ErrTimeout, ErrUnavailable}
	tests := []struct {
		status int
		code   string
		want   error
	}{
		{400, "sql_error", ErrBadRequest},
		{401, "", ErrUnauthorized},
		{403, "", ErrForbidden},
		{404, "", ErrNotFound},
		{408, "", ErrTimeout},
		{504, "", ErrTimeout},
		{400, "query_timeout", ErrTimeout},
		{409, "", ErrConflict},
		{413, "", ErrTooLarge},
		{429, "", ErrRateLimited},
		{503, "", ErrUnavailable},
		{500, "", nil},
	}
	for _, tc := range tests {
		e := &APIError{StatusCode: tc.status, Code: tc.code}
		for _, s := range sentinels {
			if got := errors.Is(e, s); got != (s == tc.want) {
				t.Fatalf("%d %s: errors.Is(%v) = %v", tc.status, tc.code, s, got)
			}
		}
	}
	// The wrapped error still matches.
	if !errors.Is(fmt.Errorf("x: %w", &APIError{StatusCode: 404}), ErrNotFound) {
		t.Fatal("wrapped APIError does not match")
	}
}

func TestSanitizeURL(t *testing.T) {
	t.Parallel()
	req := "https://user:pw@h.example/v2beta/api-key/?api_key=v2_SECRET&account_name=acme&token=t0k#frag"
	got := sanitizeEndpoint(req)
	for _, s := range []string{"pw", "v2_SECRET", "t0k", "frag"} {
		if strings.Contains(got, s) {
			t.Fatalf("sanitized %q still contains %q", got, s)
		}
	}
	if !strings.Contains(got, "account_name=acme") {
		t.Fatalf("sanitized %q lost a harmless parameter", got)
	}
}
