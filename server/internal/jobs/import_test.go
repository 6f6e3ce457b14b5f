package jobs

import (
	"bytes"
	"database/sql"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/xuri/excelize/v2"
	"golang.org/x/text/encoding/charmap"
	_ "modernc.org/sqlite"
)

const allTypesCSV = `b,i2,i4,i8,num,dbl,d,ts,tstz,tm,u,j,txt,empty
true,1,100000,10000000000,1.50,1e3,2024-01-02,2024-01-02 03:04:05,2024-01-02T03:04:05Z,12:30:00,a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,"{""a"": 1}",hello,
no,-2,-5,5,2,2.5,2023-12-31,2023-12-31T23:59:59.5,2023-12-31 23:59:59+02:00,23:59,A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12,[1],007,
,,,,,,,,,,,,,
`

func TestImportCSVAllTypes(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	j := e.importOK(t, "owner", map[string]string{"table_name": "csv_types"}, "types.csv", []byte(allTypesCSV))
	if j.Progress.Rows != 3 || j.Progress.BytesTotal != int64(len(allTypesCSV)) || j.Progress.BytesDone != j.Progress.BytesTotal {
		t.Errorf("progress = %+v, want 3 rows and %d bytes", j.Progress, len(allTypesCSV))
	}
	if j.DateFinished == nil || !strings.HasPrefix(j.StatusURL, e.srv.URL+"/v2beta/import/") {
		t.Errorf("job = %+v", j)
	}
	want := [][2]string{{"b", "boolean"}, {"i2", "integer"}, {"i4", "integer"}, {"i8", "bigint"}, {"num", "numeric"},
		{"dbl", "double precision"}, {"d", "date"}, {"ts", "timestamp without time zone"}, {"tstz", "timestamp with time zone"},
		{"tm", "time without time zone"}, {"u", "uuid"}, {"j", "jsonb"}, {"txt", "text"}, {"empty", "text"}}
	if got := e.columns(t, "csv_types"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("columns:\n got %v\nwant %v", got, want)
	}
	got := joinRows(e.text(t, `SELECT b, i2, i4, i8, num, dbl, d, ts, tstz AT TIME ZONE 'UTC', tm, u, j, txt, empty FROM csv_types ORDER BY i2 DESC NULLS LAST`))
	wantRows := "t|1|100000|10000000000|1.50|1000|2024-01-02|2024-01-02 03:04:05|2024-01-02 03:04:05|12:30:00|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|{\"a\": 1}|hello|∅\n" +
		"f|-2|-5|5|2|2.5|2023-12-31|2023-12-31 23:59:59.5|2023-12-31 21:59:59|23:59:00|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12|[1]|007|∅\n" +
		"∅|∅|∅|∅|∅|∅|∅|∅|∅|∅|∅|∅|∅|∅\n"
	if got != wantRows {
		t.Fatalf("rows:\n%s\nwant:\n%s", got, wantRows)
	}
}

func utf16LE(s string) []byte {
	out := []byte{0xFF, 0xFE}
	for _, u := range utf16.Encode([]rune(s)) {
		out = append(out, byte(u), byte(u>>8))
	}
	return out
}

func TestImportCSVDialects(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	latin1, _ := charmap.Windows1252.NewEncoder().String("name;price\ncafé;1.5\nthé;2\n")
	cases := []struct {
		name, file, header string
		data               []byte
		cols               string
		rows               string
	}{
		{"tsv_no_header", "x.tsv", "", []byte("1\tx\t2024-01-01\n2\ty\t2024-01-02\n"),
			"[[col_1 integer] [col_2 text] [col_3 date]]", "1|x|2024-01-01\n2|y|2024-01-02\n"},
		{"semicolon_latin1", "x.csv", "", []byte(latin1),
			"[[name text] [price numeric]]", "café|1.5\nthé|2\n"},
		{"utf16_bom", "x.csv", "", utf16LE("id|label\n1|ünïcode\n2|b\n"),
			"[[id integer] [label text]]", "1|ünïcode\n2|b\n"},
		{"utf8_bom_crlf_quoted", "x.csv", "", []byte("\xEF\xBB\xBFk,v\r\n\"a,b\",\"multi\nline\"\r\nc,\"q\"\"uote\"\r\n"),
			"[[k text] [v text]]", "a,b|multi\nline\nc|q\"uote\n"},
		{"first_row_numbers", "x.csv", "first_row", []byte("1,2\n3,4\n"),
			"[[1 integer] [2 integer]]", "3|4\n"},
		{"no_header_forced", "x.csv", "no_header", []byte("a,b\n3,4\n"),
			"[[col_1 text] [col_2 text]]", "3|4\na|b\n"},
		{"names_unique", "x.csv", "first_row", []byte("a,a,,A\n1,2,3,4\n"),
			"[[a integer] [a_2 integer] [col_3 integer] [A_3 integer]]", "1|2|3|4\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			table := "dialect_" + c.name
			fields := map[string]string{"table_name": table}
			if c.header != "" {
				fields["infer_header"] = c.header
			}
			e.importOK(t, "owner", fields, c.file, c.data)
			cols := e.columns(t, table)
			var got []string
			for _, col := range cols {
				got = append(got, "["+col[0]+" "+col[1]+"]")
			}
			if s := "[" + strings.Join(got, " ") + "]"; s != c.cols {
				t.Errorf("columns %s, want %s", s, c.cols)
			}
			var names []string
			for _, col := range cols {
				names = append(names, fmt.Sprintf("%q", col[0]))
			}
			if rows := joinRows(e.text(t, "SELECT "+strings.Join(names, ",")+" FROM "+table+" ORDER BY 1")); rows != c.rows {
				t.Errorf("rows:\n%s\nwant:\n%s", rows, c.rows)
			}
		})
	}
}

func TestImportAppend(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	e.importOK(t, "owner", map[string]string{"table_name": "app"}, "a.csv", []byte("id,name\n1,a\n2,b\n"))
	// by name, other order, other case; the writer may append
	e.importOK(t, "writer", map[string]string{"table_name": "app"}, "b.csv", []byte("NAME,id\nc,3\n"))
	// no header: by position
	e.importOK(t, "owner", map[string]string{"table_name": "app", "infer_header": "no_header"}, "c.csv", []byte("4,d\n"))
	if got := joinRows(e.text(t, "SELECT id, name FROM app ORDER BY id")); got != "1|a\n2|b\n3|c\n4|d\n" {
		t.Fatalf("rows after appends:\n%s", got)
	}
	j := e.importFailed(t, "owner", map[string]string{"table_name": "app"}, "d.csv", []byte("id,name,extra\n5,e,x\n"), "column_mismatch")
	if j.ErrorDetails["column"] != "extra" {
		t.Errorf("column_mismatch details = %v", j.ErrorDetails)
	}
	j = e.importFailed(t, "owner", map[string]string{"table_name": "app"}, "e.csv", []byte("id,name\n5,e\nsix,f\n"), "type_mismatch")
	if j.ErrorDetails["row"] != float64(2) || j.ErrorDetails["column"] != "id" || j.ErrorDetails["value"] != "six" {
		t.Errorf("type_mismatch details = %v", j.ErrorDetails)
	}
	if got := joinRows(e.text(t, "SELECT count(*) FROM app")); got != "4\n" {
		t.Fatalf("a failed append left rows behind: count %s", got)
	}
}

func TestImportPermissions(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	e.importFailed(t, "reader", map[string]string{"table_name": "perm_reader"}, "a.csv", []byte("a\n1\n"), "permission_denied")
	e.importFailed(t, "writer", map[string]string{"table_name": "perm_writer"}, "a.csv", []byte("a\n1\n"), "permission_denied")
	e.importOK(t, "owner", map[string]string{"table_name": "perm_app"}, "a.csv", []byte("a\n1\n"))
	e.importFailed(t, "reader", map[string]string{"table_name": "perm_app"}, "a.csv", []byte("a\n2\n"), "permission_denied")
	for _, tb := range []string{"perm_reader", "perm_writer"} {
		if e.tableExists(t, tb) {
			t.Errorf("table %s exists after a refused import", tb)
		}
	}
	if got := joinRows(e.text(t, "SELECT a FROM perm_app")); got != "1\n" {
		t.Errorf("perm_app = %s", got)
	}
}

func TestImportJSON(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	array := `[{"id": 1, "name": "a", "ok": true, "tags": ["x"], "meta": {"k": 1}, "when": "2024-01-02", "big": 12345678901234567890},
	 {"id": 2, "name": null, "ok": false, "tags": [], "meta": {"k": [2]}, "when": "2024-02-03", "extra": "e", "big": 1.5}]`
	e.importOK(t, "owner", map[string]string{"table_name": "json_arr"}, "a.json", []byte(array))
	want := "[[id integer] [name text] [ok boolean] [tags jsonb] [meta jsonb] [when date] [big numeric] [extra text]]"
	if got := fmt.Sprint(e.columns(t, "json_arr")); got != want {
		t.Errorf("columns %s, want %s", got, want)
	}
	if got := joinRows(e.text(t, `SELECT * FROM json_arr ORDER BY id`)); got != "1|a|t|[\"x\"]|{\"k\": 1}|2024-01-02|12345678901234567890|∅\n2|∅|f|[]|{\"k\": [2]}|2024-02-03|1.5|e\n" {
		t.Errorf("rows:\n%s", got)
	}
	nd := "{\"a\": 1, \"b\": \"x\"}\n{\"a\": 2.5}\n\n{\"b\": \"y\", \"a\": 3}\n"
	e.importOK(t, "owner", map[string]string{"table_name": "json_nd"}, "a.ndjson", []byte(nd))
	if got := joinRows(e.text(t, `SELECT a, b FROM json_nd ORDER BY a`)); got != "1|x\n2.5|∅\n3|y\n" {
		t.Errorf("ndjson rows:\n%s", got)
	}
	if got := fmt.Sprint(e.columns(t, "json_nd")); got != "[[a numeric] [b text]]" {
		t.Errorf("ndjson columns %s", got)
	}
}

func TestImportMalformed(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	cases := []struct {
		name, file, errType string
		data                []byte
		details             map[string]any
	}{
		{"ragged", "r.csv", "ragged_row", []byte("a,b\n1,2\n3,4,5\n"), map[string]any{"line": float64(3), "fields": float64(3), "expected_fields": float64(2)}},
		{"broken_json", "b.json", "invalid_json", []byte(`[{"a": 1}, {"a": 2,}]`), map[string]any{"record": float64(2)}},
		{"json_not_objects", "n.json", "invalid_json", []byte(`[1, 2]`), map[string]any{"record": float64(1)}},
		{"truncated_ndjson", "t.ndjson", "invalid_json", []byte("{\"a\": 1}\n{\"a\": "), map[string]any{"record": float64(2)}},
		{"corrupt_xlsx", "c.xlsx", "invalid_xlsx", []byte("PK\x03\x04 this is not a zip"), nil},
		{"not_sqlite", "x.sqlite", "invalid_sqlite", []byte("id,name\n1,a\n"), nil},
		{"legacy_xls", "old.xls", "invalid_xls", []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}, nil},
		{"empty", "e.csv", "empty_file", []byte{}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			table := "bad_" + c.name
			j := e.importFailed(t, "owner", map[string]string{"table_name": table}, c.file, c.data, c.errType)
			for k, v := range c.details {
				if j.ErrorDetails[k] != v {
					t.Errorf("error_details[%s] = %v, want %v (all: %v)", k, j.ErrorDetails[k], v, j.ErrorDetails)
				}
			}
			if e.tableExists(t, table) {
				t.Errorf("table %s was left behind", table)
			}
		})
	}
}

func xlsxFixture(t *testing.T) []byte {
	t.Helper()
	f := excelize.NewFile()
	defer f.Close()
	rows := [][]any{{"id", "name", "price", "day", "ok"}, {1, "apple", 1.25, "2024-01-02", true}, {2, "pear", 3, "2024-03-04", false}, {3, nil, 10.5, nil, true}}
	for i, r := range rows {
		cell, _ := excelize.CoordinatesToCellName(1, i+1)
		if err := f.SetSheetRow("Sheet1", cell, &r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.NewSheet("Other Sheet"); err != nil {
		t.Fatal(err)
	}
	_ = f.SetSheetRow("Other Sheet", "A1", &[]any{"k", "v"})
	_ = f.SetSheetRow("Other Sheet", "A2", &[]any{"x", 42})
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestImportXLSX(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	data := xlsxFixture(t)
	e.importOK(t, "owner", map[string]string{"table_name": "xl_first"}, "book.xlsx", data)
	if got := fmt.Sprint(e.columns(t, "xl_first")); got != "[[id integer] [name text] [price numeric] [day date] [ok boolean]]" {
		t.Errorf("columns %s", got)
	}
	if got := joinRows(e.text(t, "SELECT * FROM xl_first ORDER BY id")); got != "1|apple|1.25|2024-01-02|t\n2|pear|3|2024-03-04|f\n3|∅|10.5|∅|t\n" {
		t.Errorf("rows:\n%s", got)
	}
	e.importOK(t, "owner", map[string]string{"table_name": "xl_all", "sheet": "*"}, "book.xlsx", data)
	if got := joinRows(e.text(t, `SELECT count(*) FROM "xl_all_Sheet1"`)); got != "3\n" {
		t.Errorf("xl_all_Sheet1 count %s", got)
	}
	if got := joinRows(e.text(t, `SELECT k, v FROM "xl_all_Other_Sheet"`)); got != "x|42\n" {
		t.Errorf("xl_all_Other_Sheet rows %s", got)
	}
	e.importOK(t, "owner", map[string]string{"table_name": "xl_named", "sheet": "Other Sheet"}, "book.xlsx", data)
	if got := joinRows(e.text(t, `SELECT k, v FROM xl_named`)); got != "x|42\n" {
		t.Errorf("xl_named rows %s", got)
	}
	e.importFailed(t, "owner", map[string]string{"table_name": "xl_missing", "sheet": "Nope"}, "book.xlsx", data, "sheet_not_found")
}

func sqliteFixture(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f.sqlite")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score REAL, photo BLOB)",
		"INSERT INTO people VALUES (1, 'ann', 1.5, x'00ff'), (2, NULL, 2, NULL)",
		"CREATE TABLE things (label TEXT, n INTEGER)",
		"INSERT INTO things VALUES ('t', 9000000000)",
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestImportSQLite(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	data := sqliteFixture(t)
	e.importOK(t, "owner", map[string]string{"table_name": "lite"}, "f.sqlite", data)
	if got := fmt.Sprint(e.columns(t, "lite_people")); got != "[[id integer] [name text] [score numeric] [photo bytea]]" {
		t.Errorf("lite_people columns %s", got)
	}
	if got := joinRows(e.text(t, "SELECT * FROM lite_people ORDER BY id")); got != "1|ann|1.5|\\x00ff\n2|∅|2|∅\n" {
		t.Errorf("lite_people rows:\n%s", got)
	}
	if got := joinRows(e.text(t, "SELECT label, n, pg_typeof(n) FROM lite_things")); got != "t|9000000000|bigint\n" {
		t.Errorf("lite_things rows %s", got)
	}
	e.importOK(t, "owner", map[string]string{"table_name": "lite_one", "sqlite_table": "things"}, "f.db", data)
	if got := joinRows(e.text(t, "SELECT label FROM lite_one")); got != "t\n" {
		t.Errorf("lite_one rows %s", got)
	}
}

func TestImportFileURL(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("a,b\n1,2\n"))
	}))
	defer src.Close()
	j := e.importFailed(t, "owner", map[string]string{"table_name": "url_refused", "file_url": src.URL + "/data.csv?token=secret"}, "", nil, "url_refused")
	if strings.Contains(fmt.Sprint(j.ErrorDetails), "secret") {
		t.Errorf("error details leak the URL query: %v", j.ErrorDetails)
	}
	localhost := strings.Replace(src.URL, "127.0.0.1", "localhost", 1)
	e.importFailed(t, "owner", map[string]string{"table_name": "url_refused2", "file_url": localhost + "/data.csv"}, "", nil, "url_refused")
	code, _, b := e.startImport(t, "owner", map[string]string{"table_name": "url_bad", "file_url": "ftp://example.com/x.csv"}, "", nil)
	if code != http.StatusBadRequest || !strings.Contains(string(b), "file_url") {
		t.Errorf("ftp file_url: %d %s", code, b)
	}
}

func TestFetchURLLimits(t *testing.T) {
	t.Parallel()
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			_, _ = w.Write(bytes.Repeat([]byte("x"), 2048))
			return
		}
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/ok", http.StatusFound)
			return
		}
		_, _ = w.Write([]byte("a,b\n1,2\n"))
	}))
	t.Cleanup(src.Close)
	cases := []struct {
		name, path string
		private    bool
		errType    string
		size       int64
	}{
		{"private_allowed", "/ok", true, "", 8},
		{"redirect_allowed", "/redirect", true, "", 8},
		{"private_refused", "/ok", false, "url_refused", 0},
		{"too_large", "/big", true, "too_large", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := &Service{cfg: Config{AllowPrivateURLs: c.private, MaxURLFetchBytes: 1024, URLFetchTimeout: 10e9}}
			f, err := os.CreateTemp(t.TempDir(), "f")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			n, err := s.fetchURL(t.Context(), src.URL+c.path, f)
			ue := asUserError(err)
			switch {
			case c.errType == "" && (err != nil || n != c.size):
				t.Fatalf("fetch = %d, %v; want %d bytes", n, err, c.size)
			case c.errType != "" && (ue == nil || ue.Type != c.errType):
				t.Fatalf("fetch error = %v, want %s", err, c.errType)
			}
		})
	}
}

func TestImportRequestValidation(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	cases := []struct {
		name   string
		user   string
		fields map[string]string
		file   []byte
		code   int
	}{
		{"no_table", "owner", map[string]string{}, []byte("a\n1\n"), 400},
		{"no_file", "owner", map[string]string{"table_name": "x"}, nil, 400},
		{"both", "owner", map[string]string{"table_name": "x", "file_url": "https://example.com/a.csv"}, []byte("a\n1\n"), 400},
		{"bad_header", "owner", map[string]string{"table_name": "x", "infer_header": "maybe"}, []byte("a\n1\n"), 400},
		{"anonymous", "", map[string]string{"table_name": "x"}, []byte("a\n1\n"), 401},
		{"unknown_user", "nobody", map[string]string{"table_name": "x"}, []byte("a\n1\n"), 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, _, b := e.startImport(t, c.user, c.fields, "a.csv", c.file)
			if code != c.code || !strings.Contains(string(b), `"code"`) {
				t.Errorf("status %d body %s, want %d with a JSON error", code, b, c.code)
			}
		})
	}
}

func TestJobIDOR(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	j := e.importOK(t, "owner", map[string]string{"table_name": "idor"}, "a.csv", []byte("a\n1\n"))
	for _, p := range []string{"/v2beta/import/" + j.ID, "/v2beta/export/" + j.ID, "/v2beta/import/not-a-uuid"} {
		user := "writer"
		if strings.Contains(p, "export") {
			user = "owner" // right owner, wrong kind
		}
		code, b := e.do(t, user, "GET", p, "", nil)
		if code != http.StatusNotFound || !strings.Contains(string(b), "not_found") {
			t.Errorf("GET %s as %s: %d %s", p, user, code, b)
		}
	}
	code, _ := e.do(t, "owner", "GET", "/v2beta/import/"+j.ID+"/", "", nil)
	if code != http.StatusOK {
		t.Errorf("GET with trailing slash: %d", code)
	}
}

func TestImportReplace(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	e.importOK(t, "owner", map[string]string{"table_name": "repl"}, "a.csv", []byte("id,name\n1,a\n2,b\n3,c\n"))
	if _, err := e.admin.Exec(t.Context(), `CREATE UNIQUE INDEX repl_name_idx ON repl (name)`); err != nil {
		t.Fatal(err)
	}
	index := func() string {
		return joinRows(e.text(t, `SELECT indexname FROM pg_indexes WHERE tablename = 'repl'`))
	}
	// the writer replaces the rows; the table keeps its index
	j := e.importOK(t, "writer", map[string]string{"table_name": "repl", "if_exists": "replace"}, "b.csv", []byte("NAME,id\nx,10\ny,11\n"))
	if j.Progress.Rows != 2 {
		t.Errorf("rows = %d, want 2", j.Progress.Rows)
	}
	if o := e.fastOutcome(j.ID); o != "" {
		t.Errorf("a replace took the upload fast path (outcome %q)", o)
	}
	if got := joinRows(e.text(t, "SELECT id, name FROM repl ORDER BY id")); got != "10|x\n11|y\n" {
		t.Fatalf("rows after replace:\n%s", got)
	}
	if got := index(); got != "repl_name_idx\n" {
		t.Fatalf("indexes after replace = %q, want repl_name_idx", got)
	}
	// a file that does not fit the table fails and leaves the old rows
	e.importFailed(t, "owner", map[string]string{"table_name": "repl", "if_exists": "replace"}, "c.csv", []byte("id,name\n12,z\nthirteen,w\n"), "type_mismatch")
	e.importFailed(t, "owner", map[string]string{"table_name": "repl", "if_exists": "replace"}, "d.csv", []byte("id,other\n12,z\n"), "column_mismatch")
	// the unique index is enforced on the replaced rows too
	e.importFailed(t, "owner", map[string]string{"table_name": "repl", "if_exists": "replace"}, "e.csv", []byte("id,name\n12,z\n13,z\n"), "constraint_violation")
	if got := joinRows(e.text(t, "SELECT id, name FROM repl ORDER BY id")); got != "10|x\n11|y\n" {
		t.Fatalf("a failed replace changed the rows:\n%s", got)
	}
	// a replace of a missing table creates it; append is the explicit default
	e.importOK(t, "owner", map[string]string{"table_name": "repl_new", "if_exists": "replace"}, "f.csv", []byte("k\n1\n"))
	e.importOK(t, "owner", map[string]string{"table_name": "repl_new", "if_exists": "append"}, "g.csv", []byte("k\n2\n"))
	if got := joinRows(e.text(t, "SELECT k FROM repl_new ORDER BY k")); got != "1\n2\n" {
		t.Fatalf("repl_new rows:\n%s", got)
	}
	// if_exists=replace after the file part: the fast path (started as an
	// append) is rolled back and the job path replaces.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("table_name", "repl")
	fw, _ := mw.CreateFormFile("file", "late.csv")
	_, _ = fw.Write([]byte("id,name\n20,p\n"))
	_ = mw.WriteField("if_exists", "replace")
	_ = mw.Close()
	code, b := e.do(t, "owner", "POST", "/v2beta/db/acct/db/import/", mw.FormDataContentType(), &buf)
	var late job
	if code != http.StatusAccepted || jsonx.Unmarshal(b, &late) != nil {
		t.Fatalf("late if_exists: %d %s", code, b)
	}
	if late = e.wait(t, "owner", "import", late.ID); late.State != StateDone {
		t.Fatalf("late if_exists: %+v", late)
	}
	if o := e.fastOutcome(late.ID); o == "loaded" {
		t.Errorf("late if_exists: the fast path committed an append (outcome %q), want a fallback", o)
	}
	if got := joinRows(e.text(t, "SELECT id, name FROM repl ORDER BY id")); got != "20|p\n" {
		t.Fatalf("rows after a replace sent after the file:\n%s", got)
	}
	code, _, b = e.startImport(t, "owner", map[string]string{"table_name": "repl", "if_exists": "overwrite"}, "h.csv", []byte("id\n1\n"))
	if code != http.StatusBadRequest || !strings.Contains(string(b), "if_exists") {
		t.Fatalf("if_exists=overwrite: %d %s", code, b)
	}
}
