package jobs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// xlsFixture reads a legacy .xls fixture written by LibreOffice or SheetJS
// (server/internal/ingest/testdata/xls/make-fixtures.sh).
func xlsFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "ingest", "testdata", "xls", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestImportXLS(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	book := xlsFixture(t, "book.xls")
	e.importOK(t, "owner", map[string]string{"table_name": "xls_first"}, "book.xls", book)
	if got := fmt.Sprint(e.columns(t, "xls_first")); got != "[[id integer] [name text] [price numeric] [big numeric] [day date] [stamp timestamp without time zone] [ok integer] [twice integer] [label text] [positive boolean] [note text]]" {
		t.Errorf("columns %s", got)
	}
	if got := joinRows(e.text(t, "SELECT * FROM xls_first ORDER BY id")); got != "1|apple|1.25|9007199254740992|2024-01-02|2024-01-02 10:30:00|1|2|apple!|t|Ελληνικά\n"+
		"2|päron 梨|3|-123456789012|1999-12-31|1970-01-01 00:00:01|0|4|päron 梨!|f|∅\n"+
		"3|∅|10.5|0.001|∅|∅|1|6|!|t|日本語のテキスト\n" {
		t.Errorf("rows:\n%s", got)
	}

	// sheet=* : one table per non-empty sheet (the sheet "Empty" is skipped).
	e.importOK(t, "owner", map[string]string{"table_name": "xls_all", "sheet": "*"}, "book.xls", book)
	if got := joinRows(e.text(t, `SELECT count(*) FROM "xls_all_Data"`)); got != "3\n" {
		t.Errorf("xls_all_Data count %s", got)
	}
	if got := joinRows(e.text(t, `SELECT k, v FROM "xls_all_Other_Sheet"`)); got != "x|42\n" {
		t.Errorf("xls_all_Other_Sheet rows %s", got)
	}
	if e.tableExists(t, "xls_all_Empty") {
		t.Error("the empty sheet became a table")
	}
	e.importOK(t, "owner", map[string]string{"table_name": "xls_named", "sheet": "Other Sheet"}, "book.xls", book)
	if got := fmt.Sprint(e.columns(t, "xls_named")); got != "[[k text] [v integer]]" {
		t.Errorf("xls_named columns %s", got)
	}
	e.importFailed(t, "owner", map[string]string{"table_name": "xls_missing", "sheet": "Nope"}, "book.xls", book, "sheet_not_found")

	// Content detection (no extension), the 1904 date system, SheetJS's writer.
	e.importOK(t, "owner", map[string]string{"table_name": "xls_1904"}, "dates", xlsFixture(t, "date1904.xls"))
	if got := joinRows(e.text(t, "SELECT day, num FROM xls_1904 ORDER BY num")); got != "2024-01-02|1\n1904-01-02|2\n" {
		t.Errorf("xls_1904 rows %s", got)
	}
	e.importOK(t, "owner", map[string]string{"table_name": "xls_sheetjs"}, "js.xls", xlsFixture(t, "sheetjs.xls"))
	if got := fmt.Sprint(e.columns(t, "xls_sheetjs")); got != "[[id integer] [name text] [ok boolean] [day date]]" {
		t.Errorf("xls_sheetjs columns %s", got)
	}
	if got := joinRows(e.text(t, "SELECT * FROM xls_sheetjs ORDER BY id")); got != "1|alpha|t|2024-01-02\n2|βήτα|f|2023-12-31\n" {
		t.Errorf("xls_sheetjs rows %s", got)
	}

	// Long shared strings split across CONTINUE records.
	e.importOK(t, "owner", map[string]string{"table_name": "xls_long", "infer_header": "first_row"}, "long.xls", xlsFixture(t, "long.xls"))
	if got := fmt.Sprint(e.columns(t, "xls_long")); got != "[[n integer] [text text]]" {
		t.Errorf("xls_long columns %s", got)
	}
	if got := joinRows(e.text(t, `SELECT count(*), sum(length("text")), min(length("text")), max(length("text")) FROM xls_long`)); got != "40|17480|367|507\n" {
		t.Errorf("xls_long %s", got)
	}
}

func TestImportXLSMalformed(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	cases := []struct{ name, file string }{
		{"truncated_header", "truncated-header.xls"},
		{"truncated_stream", "truncated-stream.xls"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			table := "bad_xls_" + c.name
			j := e.importFailed(t, "owner", map[string]string{"table_name": table}, c.file, xlsFixture(t, c.file), "invalid_xls")
			if msg, _ := j.ErrorDetails["message"].(string); !strings.Contains(msg, "truncated") {
				t.Errorf("message %q does not say the file is truncated", msg)
			}
			if e.tableExists(t, table) {
				t.Errorf("table %s was left behind", table)
			}
		})
	}
}
