package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures under testdata/xls are written by LibreOffice Calc and
// SheetJS (see testdata/xls/make-fixtures.sh).

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "xls", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// planRows analyzes an .xls file and returns each table's columns and rows
// (cells as kind:value, NULL as ∅).
func planRows(t *testing.T, path, sheet string) ([]string, [][]string) {
	t.Helper()
	src, err := File(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Analyze(t.Context(), src, Options{Table: "t", Sheet: sheet})
	if err != nil {
		t.Fatalf("Analyze(%s, sheet %q): %v", path, sheet, err)
	}
	if p.Format != FormatXLS {
		t.Errorf("format %q, want xls", p.Format)
	}
	var tables []string
	var rows [][]string
	for _, tb := range p.Tables {
		var cols []string
		for _, c := range tb.Columns {
			cols = append(cols, c.Name+":"+c.Type)
		}
		tables = append(tables, tb.Table+"("+strings.Join(cols, " ")+")")
		r, err := tb.open()
		if err != nil {
			t.Fatal(err)
		}
		for {
			row, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, c := range row {
				if c.Kind == Null {
					out = append(out, "∅")
				} else {
					out = append(out, c.S)
				}
			}
			rows = append(rows, out)
		}
		r.Close()
	}
	return tables, rows
}

func TestXLSFixtures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file, sheet string
		tables      string
		rows        string
	}{
		{"book.xls", "", "t(id:integer name:text price:numeric big:numeric day:date stamp:timestamp without time zone ok:integer twice:integer label:text positive:boolean note:text)",
			"id|name|price|big|day|stamp|ok|twice|label|positive|note\n" +
				"1|apple|1.25|9007199254740992|2024-01-02|2024-01-02 10:30:00|1|2|apple!|true|Ελληνικά\n" +
				"2|päron 梨|3|-123456789012|1999-12-31|1970-01-01 00:00:01|0|4|päron 梨!|false\n" +
				"3|∅|10.5|0.001|∅|∅|1|6|!|true|日本語のテキスト\n"},
		{"book.xls", "Other Sheet", "t(k:text v:integer)", "k|v\nx|42\n"},
		{"book.xls", "*", "t_Data(id:integer name:text price:numeric big:numeric day:date stamp:timestamp without time zone ok:integer twice:integer label:text positive:boolean note:text) t_Other_Sheet(k:text v:integer)", ""},
		{"date1904.xls", "", "t(day:date num:integer)", "day|num\n2024-01-02|1\n1904-01-02|2\n"},
		{"sheetjs.xls", "", "t(id:integer name:text ok:boolean day:date)", "id|name|ok|day\n1|alpha|true|2024-01-02\n2|βήτα|false|2023-12-31\n"},
	}
	for _, c := range cases {
		t.Run(c.file+"/"+c.sheet, func(t *testing.T) {
			t.Parallel()
			tables, rows := planRows(t, filepath.Join("testdata", "xls", c.file), c.sheet)
			if got := strings.Join(tables, " "); got != c.tables {
				t.Errorf("tables\n got %s\nwant %s", got, c.tables)
			}
			if c.rows == "" {
				return
			}
			var b strings.Builder
			for _, r := range rows {
				b.WriteString(strings.Join(r, "|") + "\n")
			}
			if b.String() != c.rows {
				t.Errorf("rows\n got %q\nwant %q", b.String(), c.rows)
			}
		})
	}
}

// TestXLSLongStrings reads shared strings long enough that LibreOffice
// splits them across CONTINUE records (ASCII and UTF-16 ones) into rows.
func TestXLSLongStrings(t *testing.T) {
	t.Parallel()
	_, rows := planRows(t, filepath.Join("testdata", "xls", "long.xls"), "")
	if len(rows) != 41 {
		t.Fatalf("%d rows, want 41", len(rows))
	}
	for i := 1; i <= 40; i++ {
		var want string
		if i%2 == 1 {
			want = fmt.Sprintf("row%03d-%0500d", i, 0)
		} else {
			want = fmt.Sprintf("ряд%03d-", i) + strings.Repeat("Ωμέγα-", 60)
		}
		if got := rows[i]; got[0] != fmt.Sprint(i) || got[1] != want {
			t.Errorf("row %d = %q (%d chars), want %q", i, got[0], len([]rune(got[1])), want[:20])
		}
	}
}

func utf16le(s string) []byte {
	var b []byte
	for _, r := range s {
		b = binary.LittleEndian.AppendUint16(b, uint16(r))
	}
	return b
}

// cfbLayout returns the sector size, first directory sector and the file
// offset of the first FAT sector of a compound file.
func cfbLayout(b []byte) (ssz int, dir uint32, fat0 int) {
	ssz = 1 << binary.LittleEndian.Uint16(b[0x1E:])
	dir = binary.LittleEndian.Uint32(b[0x30:])
	fat0 = (int(binary.LittleEndian.Uint32(b[0x4C:])) + 1) * ssz
	return
}

func TestXLSCorrupt(t *testing.T) {
	t.Parallel()
	book := readFixture(t, "book.xls")
	patch := func(old, new []byte) []byte {
		i := bytes.Index(book, old)
		if i < 0 {
			t.Fatalf("pattern % x not in book.xls", old)
		}
		b := bytes.Clone(book)
		copy(b[i:], new)
		return b
	}
	_, dir, fat0 := cfbLayout(book)
	loop := bytes.Clone(book)
	binary.LittleEndian.PutUint32(loop[fat0+4*int(dir):], dir) // the directory chain points at itself
	bookName := bytes.Clone(book)
	{
		i := bytes.Index(bookName, utf16le("Workbook"))
		copy(bookName[i:], append(utf16le("Book"), make([]byte, 10)...))
		binary.LittleEndian.PutUint16(bookName[i+0x40:], 10)
	}
	cases := []struct {
		name string
		data []byte
		msg  string
	}{
		{"truncated_header", readFixture(t, "truncated-header.xls"), "truncated"},
		{"truncated_stream", readFixture(t, "truncated-stream.xls"), "truncated"},
		{"not_ole2", []byte("id,name\n1,a\n"), "signature"},
		{"header_only", book[:512], "FAT sectors"},
		{"encrypted", patch([]byte{0x22, 0x00, 0x02, 0x00}, []byte{0x2F, 0x00}), "encrypted"},
		{"biff5", patch([]byte{0x09, 0x08, 0x10, 0x00, 0x00, 0x06}, []byte{0x09, 0x08, 0x10, 0x00, 0x00, 0x05}), "BIFF version"},
		{"book_stream", bookName, "BIFF5"},
		{"chain_loop", loop, "loops"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "bad.xls")
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := xlsTables(t.Context(), path, Options{Table: "t", Schema: "public", Header: HeaderAuto})
			var e *Error
			if !errors.As(err, &e) || e.Type != "invalid_xls" || !strings.Contains(e.Message, c.msg) {
				t.Errorf("err = %v, want invalid_xls mentioning %q", err, c.msg)
			}
		})
	}
}

// TestXLSCellErrorDetails: a cell pointing past the shared-string table
// fails as invalid_xls with the sheet in Details and the cell named.
func TestXLSCellErrorDetails(t *testing.T) {
	t.Parallel()
	book := readFixture(t, "book.xls")
	i := bytes.Index(book, []byte{0xFD, 0x00, 0x0A, 0x00}) // first LABELSST
	if i < 0 {
		t.Fatal("no LABELSST record in book.xls")
	}
	b := bytes.Clone(book)
	binary.LittleEndian.PutUint32(b[i+4+6:], 0xFFFF)
	path := filepath.Join(t.TempDir(), "bad.xls")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := xlsTables(t.Context(), path, Options{Table: "t", Schema: "public", Header: HeaderAuto})
	var e *Error
	if !errors.As(err, &e) || e.Type != "invalid_xls" || !strings.Contains(e.Message, "cell A1 refers to shared string 65535") || e.Details["sheet"] != "Data" {
		t.Errorf("err = %v (details %v), want invalid_xls naming cell A1 and sheet Data", err, e)
	}
}
