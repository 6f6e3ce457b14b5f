package xls

// The workbook: globals (sheets, shared strings, number formats, the date
// system) and the cells of each worksheet.

import (
	"encoding/binary"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

type sheet struct {
	name   string
	offset int
}

// Book is a parsed workbook: its globals, and the Workbook stream its
// worksheets are read from.
type Book struct {
	stream  []byte
	sheets  []sheet
	sst     []string
	xfFmt   []uint16          // number format index of each XF
	formats map[uint16]string // custom number formats
	date    map[uint16]byte   // cache: format index → date kind
	is1904  bool
}

// Parse reads the workbook globals: sheets, shared strings, formats.
func Parse(data []byte) (*Book, error) {
	stream, err := workbookStream(data)
	if err != nil {
		return nil, err
	}
	bk := &Book{stream: stream, formats: map[uint16]string{}, date: map[uint16]byte{}}
	r := &biffReader{b: stream}
	typ, body, _, err := r.next()
	if err == io.EOF || typ != recBOF || len(body) < 4 {
		switch typ {
		case 0x0009, 0x0209, 0x0409:
			return nil, formatErr("it is an Excel 2.x-4.x (BIFF2-4) workbook, which is not supported")
		}
		return nil, formatErr("the Workbook stream does not start with a BOF record")
	}
	if err != nil {
		return nil, err
	}
	if v := le16(body, 0); v != 0x0600 {
		return nil, formatErr("it is a BIFF version %#04x workbook (Excel 5.0/95 or older), not BIFF8 (Excel 97-2003)", v)
	}
	for {
		typ, body, off, err := r.next()
		if err == io.EOF {
			return nil, formatErr("the workbook globals have no EOF record: the file is truncated")
		}
		if err != nil {
			return nil, err
		}
		switch typ {
		case recEOF:
			if len(bk.sheets) == 0 {
				return nil, formatErr("the workbook lists no sheets")
			}
			return bk, nil
		case recFilePass:
			return nil, formatErr("it is encrypted (password protected); remove the password")
		case recDateMode:
			bk.is1904 = len(body) >= 2 && le16(body, 0) == 1
		case recBoundSheet:
			if len(body) < 8 {
				return nil, formatErr("BOUNDSHEET8 record at offset %d is too short", off)
			}
			if body[5] != 0 { // chart, macro or VBA module sheet
				continue
			}
			name, err := newSegReader([][]byte{body[6:]}).xlString(1)
			if err != nil {
				return nil, formatErr("BOUNDSHEET8 record at offset %d holds a broken sheet name", off)
			}
			bk.sheets = append(bk.sheets, sheet{name: name, offset: int(le32(body, 0))})
		case recXF:
			if len(body) < 4 {
				return nil, formatErr("XF record at offset %d is too short", off)
			}
			bk.xfFmt = append(bk.xfFmt, le16(body, 2))
		case recFormat:
			if len(body) < 5 {
				return nil, formatErr("FORMAT record at offset %d is too short", off)
			}
			s, err := newSegReader([][]byte{body[2:]}).xlString(2)
			if err != nil {
				return nil, formatErr("FORMAT record at offset %d holds a broken format string", off)
			}
			bk.formats[le16(body, 0)] = s
		case recSST:
			cont, err := r.continued()
			if err != nil {
				return nil, err
			}
			if err := bk.readSST(append([][]byte{body}, cont...)); err != nil {
				return nil, err
			}
		}
	}
}

// readSST decodes the shared string table from SST and its CONTINUEs.
func (bk *Book) readSST(segs [][]byte) error {
	if len(segs[0]) < 8 {
		return formatErr("the SST record is too short")
	}
	n := int(le32(segs[0], 4))
	total := 0
	for _, s := range segs {
		total += len(s)
	}
	if n < 0 || n > total/3+1 { // each string takes at least 3 bytes
		return formatErr("the SST claims %d strings in %d bytes", n, total)
	}
	segs[0] = segs[0][8:]
	s := newSegReader(segs)
	bk.sst = make([]string, 0, n)
	for i := 0; i < n; i++ {
		str, err := s.xlString(2)
		if err != nil {
			return formatErr("shared string %d of %d is cut short", i+1, n)
		}
		bk.sst = append(bk.sst, str)
	}
	return nil
}

// Date kinds of a number format.
const (
	fmtNumber = iota + 1
	fmtDate
	fmtDateTime
	fmtTime
	fmtBool
)

// formatKind says whether XF ixfe formats a number as a date, time, both,
// a boolean, or a plain number.
func (bk *Book) formatKind(ixfe uint16) byte {
	if int(ixfe) >= len(bk.xfFmt) {
		return fmtNumber
	}
	ifmt := bk.xfFmt[ixfe]
	if k, ok := bk.date[ifmt]; ok {
		return k
	}
	var k byte
	if s, ok := bk.formats[ifmt]; ok {
		k = classifyNumFmt(s)
	} else {
		switch {
		case ifmt == 14 || ifmt == 15 || ifmt == 16 || ifmt == 17 || (ifmt >= 27 && ifmt <= 31) || (ifmt >= 34 && ifmt <= 36) || (ifmt >= 50 && ifmt <= 58):
			k = fmtDate
		case ifmt == 22:
			k = fmtDateTime
		case (ifmt >= 18 && ifmt <= 21) || ifmt == 32 || ifmt == 33 || ifmt == 45 || ifmt == 47:
			k = fmtTime
		default:
			k = fmtNumber
		}
	}
	bk.date[ifmt] = k
	return k
}

// classifyNumFmt looks at a custom number format's first section, ignoring
// quoted text, escaped characters and [brackets] (colours, locales; elapsed
// [h] is a duration, left a number).
func classifyNumFmt(f string) byte {
	if strings.Contains(f, `"TRUE"`) && strings.Contains(f, `"FALSE"`) {
		return fmtBool
	}
	var date, tm bool
	in := false
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch {
		case in:
			in = c != '"'
		case c == '"':
			in = true
		case c == '\\' || c == '_' || c == '*':
			i++
		case c == '[':
			j := strings.IndexByte(f[i:], ']')
			if j < 0 {
				return fmtNumber
			}
			if b := strings.ToLower(f[i+1 : i+j]); b == "h" || b == "hh" || b == "m" || b == "mm" || b == "s" || b == "ss" {
				return fmtNumber
			}
			i += j
		case c == ';':
			i = len(f)
		case c == 'y' || c == 'Y' || c == 'd' || c == 'D':
			date = true
		case c == 'h' || c == 'H' || c == 's' || c == 'S':
			tm = true
		case c == 'm' || c == 'M':
			// minutes after an hour or before seconds, else months
			rest := strings.ToLower(f[i:])
			sec, ymd := strings.IndexByte(rest, 's'), strings.IndexAny(rest, "yd")
			if !tm && !(sec >= 0 && (ymd < 0 || sec < ymd)) {
				date = true
			}
		case c == 'G' || c == 'g':
			if strings.HasPrefix(strings.ToLower(f[i:]), "general") {
				i += len("general") - 1
			}
		case c == 'A' || c == 'a':
			if strings.HasPrefix(strings.ToUpper(f[i:]), "AM/PM") {
				i += 4
				tm = true
			}
		}
	}
	switch {
	case date && tm:
		return fmtDateTime
	case date:
		return fmtDate
	case tm:
		return fmtTime
	}
	return fmtNumber
}

// numberCell renders a number as the cell's format shows it: a date,
// timestamp or time for date formats, else the number itself.
func (bk *Book) numberCell(v float64, ixfe uint16) Value {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Value{}
	}
	switch k := bk.formatKind(ixfe); k {
	case fmtBool:
		return Value{Kind: Bool, S: strconv.FormatBool(v != 0)}
	case fmtDate, fmtDateTime, fmtTime:
		if s, ok := excelDate(v, bk.is1904, k); ok {
			return Value{Kind: Text, S: s}
		}
	}
	return Value{Kind: Number, S: strconv.FormatFloat(v, 'f', -1, 64)}
}

// excelDate converts a serial date (days since the epoch of the 1900 or
// 1904 date system) to text. Serial 60 (Excel's 29 February 1900, which did
// not exist) and negative or out-of-range serials stay numbers.
func excelDate(v float64, is1904 bool, kind byte) (string, bool) {
	if v < 0 || v >= 2958466 { // 10000-01-01
		return "", false
	}
	base := time.Date(1899, 12, 30, 0, 0, 0, 0, time.UTC)
	switch {
	case is1904:
		base = time.Date(1904, 1, 1, 0, 0, 0, 0, time.UTC)
	case v == 60 || (v > 60 && v < 61):
		return "", false
	case v < 60:
		base = time.Date(1899, 12, 31, 0, 0, 0, 0, time.UTC)
	}
	ms := int64(math.Round(v * 86400000))
	t := base.Add(time.Duration(ms) * time.Millisecond)
	if kind == fmtTime && v < 1 {
		return t.Format("15:04:05.999"), true
	}
	if kind == fmtDate && ms%86400000 == 0 {
		return t.Format("2006-01-02"), true
	}
	if kind == fmtDate && v < 1 {
		return "", false
	}
	return t.Format("2006-01-02 15:04:05.999"), true
}

// ---- worksheets ----

// readSheet returns the non-empty cells of a worksheet sorted by row and
// column.
func (bk *Book) readSheet(sh sheet) (_ []Cell, err error) {
	defer func() {
		if e, ok := err.(*FormatError); ok && e.Sheet == "" {
			e.Sheet = sh.name
		}
	}()
	if sh.offset < 0 || sh.offset >= len(bk.stream) {
		return nil, formatErr("sheet %q starts at offset %d, past the end of the Workbook stream (%d bytes)", sh.name, sh.offset, len(bk.stream))
	}
	r := &biffReader{b: bk.stream, pos: sh.offset}
	typ, body, _, err := r.next()
	if err != nil || typ != recBOF || len(body) < 4 || le16(body, 0) != 0x0600 {
		return nil, formatErr("sheet %q does not start with a BIFF8 BOF record", sh.name)
	}
	var cells []Cell
	add := func(row uint32, col uint16, c Value) {
		if c.Kind == Empty || (c.Kind == Text && c.S == "") {
			return
		}
		cells = append(cells, Cell{row, col, c})
	}
	pendingString := false // a string FORMULA awaits its STRING record
	var pendingRow uint32
	var pendingCol uint16
	depth := 0 // nested BOF/EOF (embedded charts)
	for {
		typ, body, off, err := r.next()
		if err == io.EOF {
			return nil, formatErr("sheet %q has no EOF record: the file is truncated", sh.name)
		}
		if err != nil {
			return nil, err
		}
		short := func(n int) error {
			if len(body) < n {
				return formatErr("sheet %q: record %#04x at offset %d is %d bytes, shorter than %d", sh.name, typ, off, len(body), n)
			}
			return nil
		}
		if depth > 0 {
			switch typ {
			case recBOF:
				depth++
			case recEOF:
				depth--
			}
			continue
		}
		switch typ {
		case recBOF:
			depth++
		case recEOF:
			sort.SliceStable(cells, func(i, j int) bool {
				if cells[i].Row != cells[j].Row {
					return cells[i].Row < cells[j].Row
				}
				return cells[i].Col < cells[j].Col
			})
			return cells, nil
		case recFilePass:
			return nil, formatErr("it is encrypted (password protected); remove the password")
		case recLabelSST:
			if err := short(10); err != nil {
				return nil, err
			}
			i := le32(body, 6)
			if int64(i) >= int64(len(bk.sst)) {
				return nil, formatErr("sheet %q: cell %s refers to shared string %d but the workbook has %d", sh.name, cellName(le16(body, 0), le16(body, 2)), i, len(bk.sst))
			}
			add(uint32(le16(body, 0)), le16(body, 2), Value{Kind: Text, S: bk.sst[i]})
		case recLabel:
			if err := short(9); err != nil {
				return nil, err
			}
			cont, err := r.continued()
			if err != nil {
				return nil, err
			}
			s, err := newSegReader(append([][]byte{body[6:]}, cont...)).xlString(2)
			if err != nil {
				return nil, formatErr("sheet %q: the text of cell %s is cut short", sh.name, cellName(le16(body, 0), le16(body, 2)))
			}
			add(uint32(le16(body, 0)), le16(body, 2), Value{Kind: Text, S: s})
		case recNumber:
			if err := short(14); err != nil {
				return nil, err
			}
			v := math.Float64frombits(binary.LittleEndian.Uint64(body[6:]))
			add(uint32(le16(body, 0)), le16(body, 2), bk.numberCell(v, le16(body, 4)))
		case recRK:
			if err := short(10); err != nil {
				return nil, err
			}
			add(uint32(le16(body, 0)), le16(body, 2), bk.numberCell(rkValue(le32(body, 6)), le16(body, 4)))
		case recMulRK:
			if err := short(6); err != nil {
				return nil, err
			}
			row, col := le16(body, 0), le16(body, 2)
			for p := 4; p+6 <= len(body)-2; p += 6 {
				add(uint32(row), col, bk.numberCell(rkValue(le32(body, p+2)), le16(body, p)))
				col++
			}
		case recBoolErr:
			if err := short(8); err != nil {
				return nil, err
			}
			add(uint32(le16(body, 0)), le16(body, 2), boolErrCell(body[6], body[7]))
		case recFormula:
			if err := short(20); err != nil {
				return nil, err
			}
			row, col := uint32(le16(body, 0)), le16(body, 2)
			val := body[6:14]
			if le16(val, 6) != 0xFFFF {
				add(row, col, bk.numberCell(math.Float64frombits(binary.LittleEndian.Uint64(val)), le16(body, 4)))
				continue
			}
			switch val[0] {
			case 0: // string: the next STRING record holds it
				pendingString, pendingRow, pendingCol = true, row, col
			case 1:
				add(row, col, Value{Kind: Bool, S: strconv.FormatBool(val[2] != 0)})
			case 2:
				add(row, col, boolErrCell(val[2], 1))
			}
		case recString:
			if !pendingString {
				continue
			}
			pendingString = false
			cont, err := r.continued()
			if err != nil {
				return nil, err
			}
			s, err := newSegReader(append([][]byte{body}, cont...)).xlString(2)
			if err != nil {
				return nil, formatErr("sheet %q: the cached text of formula cell %s is cut short", sh.name, cellName(uint16(pendingRow), pendingCol))
			}
			add(pendingRow, pendingCol, Value{Kind: Text, S: s})
		}
	}
}

// rkValue decodes an RK number: a 30-bit integer or the top 30 bits of a
// float64, optionally divided by 100.
func rkValue(rk uint32) float64 {
	var v float64
	if rk&2 != 0 {
		v = float64(int32(rk) >> 2)
	} else {
		v = math.Float64frombits(uint64(rk&^3) << 32)
	}
	if rk&1 != 0 {
		v /= 100
	}
	return v
}

// boolErrCell is a BOOLERR value: a boolean, or an error shown as Excel
// shows it (#DIV/0! etc.).
func boolErrCell(v, isErr byte) Value {
	if isErr == 0 {
		return Value{Kind: Bool, S: strconv.FormatBool(v != 0)}
	}
	switch v {
	case 0x00:
		return Value{Kind: Text, S: "#NULL!"}
	case 0x07:
		return Value{Kind: Text, S: "#DIV/0!"}
	case 0x0F:
		return Value{Kind: Text, S: "#VALUE!"}
	case 0x17:
		return Value{Kind: Text, S: "#REF!"}
	case 0x1D:
		return Value{Kind: Text, S: "#NAME?"}
	case 0x24:
		return Value{Kind: Text, S: "#NUM!"}
	case 0x2A:
		return Value{Kind: Text, S: "#N/A"}
	}
	return Value{}
}

// cellName is an A1-style reference for messages.
func cellName(row, col uint16) string {
	var b []byte
	for c := int(col) + 1; c > 0; c = (c - 1) / 26 {
		b = append([]byte{byte('A' + (c-1)%26)}, b...)
	}
	return string(b) + strconv.Itoa(int(row)+1)
}
