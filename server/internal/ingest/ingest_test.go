package ingest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestInferType(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"true": "boolean", "No": "boolean", "y": "boolean",
		"0": "integer", "-32768": "integer", "32768": "integer", "2147483647": "integer", "-2147483648": "integer", "2147483648": "bigint", "-2147483649": "bigint",
		"99999999999999999999": "numeric", "1.50": "numeric", ".5": "numeric", "-1.": "numeric",
		"1e3": "double precision", "1.5E-7": "double precision",
		"007": "text", "1.2.3": "text", "+": "text", "1e": "text", "1e999": "text",
		"2024-02-29": "date", "2023-02-29": "text", "0000-01-01": "text", "1900-02-29": "text", "2000-02-29": "date", "2024-13-01": "text", "2024-01-02 03:04:05": "timestamp without time zone",
		"2024-01-02T03:04:05.123456": "timestamp without time zone", "2024-01-02T03:04Z": "timestamp with time zone",
		"2024-01-02 03:04:05+05:30": "timestamp with time zone", "2024-01-02 03:04:05-0800": "timestamp with time zone",
		"2024-01-02 03:04:05+99": "text", "12:30": "time without time zone", "23:59:59.999": "time without time zone",
		"24:00": "text", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11": "uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g": "text",
		`{"a": 1}`: "jsonb", "[1, 2]": "jsonb", "{nope": "text", "hello": "text", "": "text",
	}
	for in, want := range cases {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			if got := InferType(in); got != want {
				t.Errorf("InferType(%q) = %s, want %s", in, got, want)
			}
		})
	}
}

func TestInferrerColumns(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		rows   [][]string
		header bool
		types  string
	}{
		{"widen_ints", [][]string{{"a"}, {"1"}, {"100000"}}, true, "integer"},
		{"int_and_decimal", [][]string{{"a"}, {"1"}, {"1.5"}}, true, "numeric"},
		{"int_and_exponent", [][]string{{"a"}, {"1"}, {"1e5"}}, true, "double precision"},
		{"date_and_timestamp", [][]string{{"a"}, {"2024-01-01"}, {"2024-01-01 10:00"}}, true, "timestamp without time zone"},
		{"naive_and_zoned", [][]string{{"a"}, {"2024-01-01 10:00"}, {"2024-01-01 10:00Z"}}, true, "timestamp with time zone"},
		{"number_and_text", [][]string{{"a"}, {"1"}, {"x"}}, true, "text"},
		{"all_null", [][]string{{"a"}, {""}, {""}}, true, "text"},
		{"no_header_numbers", [][]string{{"1"}, {"2"}}, false, "integer"},
		{"header_is_number", [][]string{{"2020"}, {"1"}}, false, "integer"},
		{"duplicate_header", [][]string{{"a", "A"}, {"1", "2"}}, false, "text,text"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var in Inferrer
			for _, r := range c.rows {
				cells := make([]Cell, len(r))
				for i, v := range r {
					if v != "" {
						cells[i] = Cell{Kind: Text, S: v}
					}
				}
				in.Add(cells)
			}
			if got := in.LooksLikeHeader(); got != c.header {
				t.Errorf("LooksLikeHeader = %v, want %v", got, c.header)
			}
			if got := strings.Join(in.Types(in.Width(), c.header), ","); got != c.types {
				t.Errorf("Types = %s, want %s", got, c.types)
			}
		})
	}
}

func TestDetectCSV(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in string
		enc      string
		delim    rune
	}{
		{"comma", "a,b\n1,2\n", EncUTF8, ','},
		{"tab", "a\tb,c\n1\t2,3\n", EncUTF8, '\t'},
		{"semicolon_with_decimal_commas", "a;b\n1,5;2,5\n3,5;4\n", EncUTF8, ';'},
		{"pipe", "a|b|c\n1|2|3\n", EncUTF8, '|'},
		{"quoted_commas", "\"x,y\";b\n\"1,2\";3\n", EncUTF8, ';'},
		{"bom", "\xEF\xBB\xBFa,b\n", EncUTF8BOM, ','},
		{"latin1", "caf\xe9,b\n", EncWindows1252, ','},
		{"utf16le", "\xFF\xFEa\x00;\x00b\x00\n\x00", EncUTF16LE, ';'},
		{"single_column", "a\n1\n", EncUTF8, ','},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := DetectCSV([]byte(c.in))
			if d.Encoding != c.enc || d.Delimiter != c.delim {
				t.Errorf("DetectCSV = %+v, want %s %q", d, c.enc, c.delim)
			}
		})
	}
}

func TestDetectFormat(t *testing.T) {
	t.Parallel()
	cases := []struct {
		format, name, head, want string
	}{
		{"", "a.csv", "[1]", FormatCSV},
		{"", "a.NDJSON", "", FormatJSON},
		{"", "noext", "SQLite format 3\x00", FormatSQLite},
		{"", "noext", "PK\x03\x04", FormatXLSX},
		{"", "noext", "\xD0\xCF\x11\xE0", FormatXLS},
		{"", "noext", "  \n[{}]", FormatJSON},
		{"", "noext", "a,b", FormatCSV},
		{"tsv", "a.json", "", FormatCSV},
	}
	for _, c := range cases {
		got, err := DetectFormat(c.format, c.name, []byte(c.head))
		if err != nil || got != c.want {
			t.Errorf("DetectFormat(%q, %q) = %s, %v; want %s", c.format, c.name, got, err, c.want)
		}
	}
	if _, err := DetectFormat("pdf", "", nil); err == nil {
		t.Error("DetectFormat(pdf) succeeded")
	}
}

func TestAnalyzeCSV(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.csv")
	if err := os.WriteFile(path, []byte("Name, Name ,x\n1,2,\n3,4,2024-01-01\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := File(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Analyze(t.Context(), src, Options{Table: "t", Header: HeaderFirstRow})
	if err != nil {
		t.Fatal(err)
	}
	tb := p.Tables[0]
	var got []string
	for _, c := range tb.Columns {
		got = append(got, c.Name+":"+c.Type)
	}
	if strings.Join(got, " ") != "Name:integer Name_2:integer x:date" || tb.Rows != 2 || p.Delimiter != "," {
		t.Errorf("plan = %v rows %d delim %q", got, tb.Rows, p.Delimiter)
	}
}

func TestUniqueNamesLong(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 40) // 80 bytes
	cols := uniqueNames([]Column{{Name: long}, {Name: long}})
	for _, c := range cols {
		if len(c.Name) > maxIdent {
			t.Errorf("name %q is %d bytes", c.Name, len(c.Name))
		}
	}
	if cols[0].Name == cols[1].Name || !strings.HasSuffix(cols[1].Name, "_2") {
		t.Errorf("names %q %q", cols[0].Name, cols[1].Name)
	}
	if TableName("t", "My Sheet-1") != "t_My_Sheet_1" {
		t.Errorf("TableName = %s", TableName("t", "My Sheet-1"))
	}
}

// FuzzInferType checks that every non-text answer really parses as that type.
func FuzzInferType(f *testing.F) {
	for _, s := range []string{"1", "-1.5", "1e5", "2024-01-02", "2024-01-02T03:04:05+01:00", "12:00", "true", `{"a":1}`, "007"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		switch typ := InferType(s); typ {
		case "smallint", "integer", "bigint":
			if _, err := strconv.ParseInt(s, 10, 64); err != nil {
				t.Fatalf("%q inferred %s but does not parse: %v", s, typ, err)
			}
		case "numeric", "double precision":
			if _, err := strconv.ParseFloat(s, 64); err != nil && !strings.Contains(err.Error(), "range") {
				t.Fatalf("%q inferred %s but does not parse: %v", s, typ, err)
			}
		case "date":
			if _, err := time.Parse("2006-01-02", s); err != nil {
				t.Fatalf("%q inferred date: %v", s, err)
			}
		case "boolean":
			if !isBool(s) {
				t.Fatalf("%q inferred boolean", s)
			}
		case "text", "jsonb", "uuid", "time without time zone", "timestamp without time zone", "timestamp with time zone":
		default:
			t.Fatalf("%q: unexpected type %s", s, typ)
		}
	})
}

func analyzeBytes(t *testing.T, name string, data []byte) (*Plan, error) {
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := File(path)
	if err != nil {
		t.Fatal(err)
	}
	return Analyze(t.Context(), src, Options{Table: "t"})
}

func checkPlan(t *testing.T, p *Plan, err error) {
	if err != nil {
		if _, ok := err.(*Error); !ok {
			t.Fatalf("error is not an *Error: %T %v", err, err)
		}
		return
	}
	seen := map[string]bool{}
	for _, c := range p.Tables[0].Columns {
		k := strings.ToLower(c.Name)
		if c.Name == "" || len(c.Name) > maxIdent || seen[k] || strings.ContainsRune(c.Name, 0) {
			t.Fatalf("bad column name %q in %v", c.Name, p.Tables[0].Columns)
		}
		seen[k] = true
	}
}

// FuzzCSV runs the CSV inference pass over arbitrary bytes: it must answer a
// plan with valid, unique names or an *Error, never panic.
func FuzzCSV(f *testing.F) {
	for _, s := range []string{"a,b\n1,2\n", "a;b\n\"x;y\";2\n", "\xFF\xFEa\x00\n\x00", "a,b\n1\n", "\"unterminated\n", "caf\xe9\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := analyzeBytes(t, "f.csv", data)
		checkPlan(t, p, err)
	})
}

// FuzzJSON runs the JSON inference pass over arbitrary bytes.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`[{"a":1}]`, "{\"a\":1}\n{\"b\":[2]}\n", `[{"a":1},]`, `[1]`, `{"a":`, `[{"":1,"":2}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := analyzeBytes(t, "f.json", data)
		checkPlan(t, p, err)
	})
}

// TestAnalyzeLateLatin1 checks the restart of the inference pass when a
// non-UTF-8 byte appears after the 64 KiB sample.
func TestAnalyzeLateLatin1(t *testing.T) {
	t.Parallel()
	var sb strings.Builder
	sb.WriteString("name,n\n")
	for sb.Len() < 70<<10 {
		sb.WriteString("plain,1\n")
	}
	sb.WriteString("caf\xe9,2\n")
	p, err := analyzeBytes(t, "late.csv", []byte(sb.String()))
	if err != nil {
		t.Fatal(err)
	}
	if p.Encoding != EncWindows1252 {
		t.Fatalf("encoding %s, want %s", p.Encoding, EncWindows1252)
	}
	r, err := p.Tables[0].open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var last []Cell
	for {
		row, err := r.Next()
		if err != nil {
			break
		}
		last = append(last[:0], row...)
	}
	if last[0].S != "café" {
		t.Fatalf("last name %q, want café", last[0].S)
	}
}

// TestClassifyWithin checks that following a column's remaining types
// (classifyWithin) gives exactly what the full classification does, for
// every set of remaining types.
func TestClassifyWithin(t *testing.T) {
	t.Parallel()
	values := []string{"", "0", "-0", "+5", "007", "1", "32767", "32768", "-2147483649", "99999999999999999999", "1.5", ".5", "-1.",
		"1e3", "1E-400", "1e999", "true", "F", "yes", "No", "y", "2024-01-02", "2024-02-30", "2024-01-02 03:04:05", "2024-01-02T03:04:05.123456Z",
		"2024-01-02 03:04+05:30", "12:30", "23:59:59.5", "24:00", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A1Z",
		`{"a": 1}`, "[1,2]", "[1,", "{x}", "hello", " 1", "1 ", "-", "+", "."}
	for _, v := range values {
		for _, kind := range []Kind{Text, Number, Bool, JSON, Bytes} {
			c := Cell{Kind: kind, S: v}
			full := classify(c)
			for allowed := typeSet(0); allowed <= tAll; allowed++ {
				if got, want := classifyWithin(c, allowed), full&allowed; got != want {
					t.Fatalf("classifyWithin(%v %q, %014b) = %014b, want %014b", kind, v, allowed, got, want)
				}
			}
		}
	}
}

// TestCSVReaderDirectSplit checks that splitting plain lines directly reads
// every file exactly as encoding/csv does: rows, lines and errors, also
// when a quote, a CR or a line longer than the buffer hands the rest over.
func TestCSVReaderDirectSplit(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 300<<10)
	for _, c := range []struct {
		name, data string
		delim      rune
	}{
		{"plain", "a,b\n1,2\n3,4\n", ','},
		{"no final newline", "a,b\n1,2", ','},
		{"blank lines", "\na,b\n\n1,2\n\n\n3,4\n", ','},
		{"empty fields", "a,b,c\n,,\n1,,\n", ','},
		{"spaces", " a , b \n 1 ,2\n", ','},
		{"tabs", "a\tb\n1\t2,5\n", '\t'},
		{"quote later", "a,b\n1,2\n\"x,y\",3\n4,\"multi\nline\"\n5,6\n", ','},
		{"lazy quote", "a,b\n1,x\"y\n2,3\n", ','},
		{"crlf later", "a,b\n1,2\r\n3,4\r\n", ','},
		{"ragged", "a,b\n1,2\n3\n", ','},
		{"ragged after quotes", "a,b\n\"1\",2\n3\n", ','},
		{"bad quote", "a,b\n1,2\n\"x\"y,3\n", ','},
		{"long line", "a,b\n1," + long + "\n2,3\n", ','},
		{"invalid utf-8", "a,b\n1,caf\xe9\n", ','},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			read := func(direct bool) string {
				r := strings.NewReader(c.data)
				cr := newCSVReader(io.NopCloser(r), &countingReader{r: r}, CSVDialect{Encoding: EncUTF8, Delimiter: c.delim})
				if !direct {
					cr.handOver(nil)
				}
				var out strings.Builder
				for {
					row, err := cr.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						var ie *Error
						if errors.As(err, &ie) {
							fmt.Fprintf(&out, "error %s %v\n", ie.Type, ie.Details)
						} else {
							fmt.Fprintf(&out, "error %v\n", err)
						}
						break
					}
					fmt.Fprintf(&out, "line %d: %q\n", cr.Line(), row)
				}
				return out.String()
			}
			if got, want := read(true), read(false); got != want {
				t.Errorf("direct split:\n%s\nencoding/csv:\n%s", got, want)
			}
		})
	}
}
