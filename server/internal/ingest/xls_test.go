package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
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
		{"book.xls", "", "t(id:smallint name:text price:numeric big:numeric day:date stamp:timestamp without time zone ok:smallint twice:smallint label:text positive:boolean note:text)",
			"id|name|price|big|day|stamp|ok|twice|label|positive|note\n" +
				"1|apple|1.25|9007199254740992|2024-01-02|2024-01-02 10:30:00|1|2|apple!|true|Ελληνικά\n" +
				"2|päron 梨|3|-123456789012|1999-12-31|1970-01-01 00:00:01|0|4|päron 梨!|false\n" +
				"3|∅|10.5|0.001|∅|∅|1|6|!|true|日本語のテキスト\n"},
		{"book.xls", "Other Sheet", "t(k:text v:smallint)", "k|v\nx|42\n"},
		{"book.xls", "*", "t_Data(id:smallint name:text price:numeric big:numeric day:date stamp:timestamp without time zone ok:smallint twice:smallint label:text positive:boolean note:text) t_Other_Sheet(k:text v:smallint)", ""},
		{"date1904.xls", "", "t(day:date num:smallint)", "day|num\n2024-01-02|1\n1904-01-02|2\n"},
		{"sheetjs.xls", "", "t(id:smallint name:text ok:boolean day:date)", "id|name|ok|day\n1|alpha|true|2024-01-02\n2|βήτα|false|2023-12-31\n"},
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
// splits them across CONTINUE records (ASCII and UTF-16 ones).
func TestXLSLongStrings(t *testing.T) {
	t.Parallel()
	data := readFixture(t, "long.xls")
	bk, err := parseXLS(data)
	if err != nil {
		t.Fatal(err)
	}
	// The SST really is continued: find it and count its CONTINUE records.
	r := &biffReader{b: bk.stream}
	conts := 0
	for {
		typ, _, _, err := r.next()
		if err != nil || typ == recEOF {
			break
		}
		if typ == recSST {
			c, _ := r.continued()
			conts = len(c)
		}
	}
	if conts < 2 {
		t.Fatalf("the SST has %d CONTINUE records; the fixture should need several", conts)
	}
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

// sstString builds an XLUnicodeRichExtendedString's header.
func sstHeader(cch int, flags byte, runs int, ext int) []byte {
	b := binary.LittleEndian.AppendUint16(nil, uint16(cch))
	b = append(b, flags)
	if flags&0x08 != 0 {
		b = binary.LittleEndian.AppendUint16(b, uint16(runs))
	}
	if flags&0x04 != 0 {
		b = binary.LittleEndian.AppendUint32(b, uint32(ext))
	}
	return b
}

func utf16le(s string) []byte {
	var b []byte
	for _, r := range s {
		b = binary.LittleEndian.AppendUint16(b, uint16(r))
	}
	return b
}

// TestXLSSSTContinue checks the SST decoder on hand-built record splits:
// a string whose characters switch from compressed to UTF-16 (and back) at
// CONTINUE boundaries, rich-text runs and phonetic data split across them.
func TestXLSSSTContinue(t *testing.T) {
	t.Parallel()
	sst := binary.LittleEndian.AppendUint32(nil, 3)
	sst = binary.LittleEndian.AppendUint32(sst, 3)
	// 1: "abcΩψ" – "abc" compressed in the SST, "Ωψ" UTF-16 after a CONTINUE
	sst = append(sst, sstHeader(5, 0x00, 0, 0)...)
	sst = append(sst, "abc"...)
	cont1 := append([]byte{0x01}, utf16le("Ωψ")...)
	// 2: rich "héllo" with 2 runs (8 bytes) and 3 bytes of phonetic data,
	//    characters compressed, runs split by the next CONTINUE.
	cont1 = append(cont1, sstHeader(5, 0x0C, 2, 3)...)
	cont1 = append(cont1, 'h', 0xE9, 'l', 'l', 'o')
	cont1 = append(cont1, 1, 0, 0, 0, 2) // first 5 bytes of the runs
	cont2 := []byte{0, 0, 0, 9, 9, 9}    // the rest of the runs + phonetic data
	// 3: "日x" UTF-16, then after a boundary compressed "yz"
	cont2 = append(cont2, sstHeader(4, 0x01, 0, 0)...)
	cont2 = append(cont2, utf16le("日x")...)
	cont3 := []byte{0x00, 'y', 'z'}
	bk := &xlsBook{}
	if err := bk.readSST([][]byte{sst, cont1, cont2, cont3}); err != nil {
		t.Fatal(err)
	}
	want := []string{"abcΩψ", "héllo", "日xyz"}
	if fmt.Sprint(bk.sst) != fmt.Sprint(want) {
		t.Errorf("sst = %q, want %q", bk.sst, want)
	}
	// Cut short anywhere: an invalid_xls error, never a panic.
	all := [][]byte{sst, cont1, cont2, cont3}
	for i := range cont3 {
		b := &xlsBook{}
		err := b.readSST([][]byte{all[0], all[1], all[2], cont3[:i]})
		var e *Error
		if !errors.As(err, &e) || e.Type != "invalid_xls" {
			t.Errorf("cut at %d: err = %v, want invalid_xls", i, err)
		}
	}
}

func TestXLSNumberFormats(t *testing.T) {
	t.Parallel()
	cases := []struct {
		f    string
		want byte
	}{
		{"General", fmtNumber},
		{"0.00", fmtNumber},
		{`yyyy\-mm\-dd`, fmtDate},
		{"d/m/yy h:mm", fmtDateTime},
		{"h:mm AM/PM", fmtTime},
		{"[h]:mm:ss", fmtNumber},
		{`[$-409]mmmm d, yyyy;@`, fmtDate},
		{`"day "0`, fmtNumber},
		{`"TRUE";"TRUE";"FALSE"`, fmtBool},
		{"mm:ss", fmtTime},
	}
	for _, c := range cases {
		if got := classifyNumFmt(c.f); got != c.want {
			t.Errorf("classifyNumFmt(%q) = %d, want %d", c.f, got, c.want)
		}
	}
	dates := []struct {
		v      float64
		is1904 bool
		kind   byte
		want   string
	}{
		{45293, false, fmtDate, "2024-01-02"},
		{1, false, fmtDate, "1900-01-01"},
		{59, false, fmtDate, "1900-02-28"},
		{61, false, fmtDate, "1900-03-01"},
		{0, true, fmtDate, "1904-01-01"},
		{45293.4375, false, fmtDateTime, "2024-01-02 10:30:00"},
		{0.5, false, fmtTime, "12:00:00"},
		{1.0 / 3, false, fmtTime, "08:00:00"},
	}
	for _, d := range dates {
		got, ok := excelDate(d.v, d.is1904, d.kind)
		if !ok || got != d.want {
			t.Errorf("excelDate(%v, %v) = %q, %v; want %q", d.v, d.is1904, got, ok, d.want)
		}
	}
	if _, ok := excelDate(60, false, fmtDate); ok {
		t.Error("serial 60 (29 February 1900) became a date")
	}
	if got := rkValue(2<<2 | 0x2); got != 2 { // integer 2 (value << 2, integer flag)
		t.Errorf("rk int = %v", got)
	}
	if got := rkValue(uint32(12345<<2) | 3); got != 123.45 { // integer / 100
		t.Errorf("rk int/100 = %v", got)
	}
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

// TestXLSTruncatedEverywhere cuts book.xls at every 64th byte and flips
// bytes across it: every result is a clean invalid_xls error or a parse,
// never a panic.
func TestXLSTruncatedEverywhere(t *testing.T) {
	t.Parallel()
	book := readFixture(t, "book.xls")
	for n := 0; n < len(book)/2; n += 64 {
		if err := parseAllXLS(book[:n]); err == nil {
			t.Errorf("book.xls cut to %d of %d bytes parsed without error", n, len(book))
		}
	}
	for i := 0; i < len(book); i += 7 {
		b := bytes.Clone(book)
		b[i] ^= 0xFF
		_ = parseAllXLS(b)
	}
}

// TestXLSMutated overwrites random bytes of book.xls (a fixed seed, so the
// run is reproducible): every result parses or fails with invalid_xls.
func TestXLSMutated(t *testing.T) {
	t.Parallel()
	book := readFixture(t, "book.xls")
	rng := rand.New(rand.NewSource(5))
	failed := 0
	for i := 0; i < 5000; i++ {
		b := bytes.Clone(book)
		for k := 0; k < 1+rng.Intn(8); k++ {
			b[rng.Intn(len(b))] = byte(rng.Intn(256))
		}
		if parseAllXLS(b) != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Error("no mutation of book.xls was detected as corrupt")
	}
}

// parseAllXLS parses every sheet; a failure must be an invalid_xls *Error.
func parseAllXLS(data []byte) error {
	bk, err := parseXLS(data)
	if err == nil {
		for _, sh := range bk.sheets {
			if _, err = bk.readSheet(sh); err != nil {
				break
			}
		}
	}
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || e.Type != "invalid_xls" {
			panic(fmt.Sprintf("error %v (%T) is not an invalid_xls *Error", err, err))
		}
	}
	return err
}

func FuzzXLS(f *testing.F) {
	for _, name := range []string{"sheetjs.xls", "date1904.xls", "book.xls"} {
		f.Add(readFixture(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = parseAllXLS(data)
	})
}

// TestXLSCellErrorDetails: a cell pointing past the shared-string table
// fails with the sheet in Details and the cell named in the message.
func TestXLSCellErrorDetails(t *testing.T) {
	t.Parallel()
	book := readFixture(t, "book.xls")
	i := bytes.Index(book, []byte{0xFD, 0x00, 0x0A, 0x00}) // first LABELSST
	if i < 0 {
		t.Fatal("no LABELSST record in book.xls")
	}
	b := bytes.Clone(book)
	binary.LittleEndian.PutUint32(b[i+4+6:], 0xFFFF)
	bk, err := parseXLS(b)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bk.readSheet(bk.sheets[0])
	var e *Error
	if !errors.As(err, &e) || e.Type != "invalid_xls" || !strings.Contains(e.Message, "cell A1 refers to shared string 65535") || e.Details["sheet"] != "Data" {
		t.Errorf("err = %v (details %v), want invalid_xls naming cell A1 and sheet Data", err, e)
	}
}
