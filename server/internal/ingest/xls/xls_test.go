package xls

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures live with the importer's, under ../testdata/xls (written by
// LibreOffice Calc and SheetJS, see make-fixtures.sh there).

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "xls", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestXLSLongStrings reads shared strings long enough that LibreOffice
// splits them across CONTINUE records (ASCII and UTF-16 ones).
func TestXLSLongStrings(t *testing.T) {
	t.Parallel()
	data := readFixture(t, "long.xls")
	bk, err := Parse(data)
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
	bk := &Book{}
	if err := bk.readSST([][]byte{sst, cont1, cont2, cont3}); err != nil {
		t.Fatal(err)
	}
	want := []string{"abcΩψ", "héllo", "日xyz"}
	if fmt.Sprint(bk.sst) != fmt.Sprint(want) {
		t.Errorf("sst = %q, want %q", bk.sst, want)
	}
	// Cut short anywhere: a FormatError, never a panic.
	all := [][]byte{sst, cont1, cont2, cont3}
	for i := range cont3 {
		b := &Book{}
		err := b.readSST([][]byte{all[0], all[1], all[2], cont3[:i]})
		var e *FormatError
		if !errors.As(err, &e) {
			t.Errorf("cut at %d: err = %v, want a FormatError", i, err)
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

// parseAllXLS parses every sheet; a failure must be a *FormatError.
func parseAllXLS(data []byte) error {
	bk, err := Parse(data)
	if err == nil {
		for i := range bk.Sheets() {
			if _, err = bk.ReadSheet(i); err != nil {
				break
			}
		}
	}
	if err != nil {
		var e *FormatError
		if !errors.As(err, &e) {
			panic(fmt.Sprintf("error %v (%T) is not a *FormatError", err, err))
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
// fails naming the cell, with the sheet in the error.
func TestXLSCellErrorDetails(t *testing.T) {
	t.Parallel()
	bk, err := Parse(corruptLabel(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = bk.ReadSheet(0)
	var e *FormatError
	if !errors.As(err, &e) || !strings.Contains(e.Reason, "cell A1 refers to shared string 65535") || e.Sheet != "Data" {
		t.Errorf("err = %v (%+v), want a FormatError naming cell A1 and sheet Data", err, e)
	}
}

// corruptLabel is book.xls with its first LABELSST pointing past the
// shared-string table.
func corruptLabel(t *testing.T) []byte {
	book := readFixture(t, "book.xls")
	i := bytes.Index(book, []byte{0xFD, 0x00, 0x0A, 0x00}) // first LABELSST
	if i < 0 {
		t.Fatal("no LABELSST record in book.xls")
	}
	b := bytes.Clone(book)
	binary.LittleEndian.PutUint32(b[i+4+6:], 0xFFFF)
	return b
}
