package ingest

// A reader for legacy Excel 97-2003 workbooks: BIFF8 records ([MS-XLS]) in
// the "Workbook" stream of an OLE2 compound file ([MS-CFB]). Written for
// untrusted uploads: every offset and length is checked, sector chains are
// bounded and cycle-checked, and nothing is allocated from a count the file
// states without first checking it against the bytes actually present.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// maxXLSBytes caps the size of an .xls file read into memory. BIFF8 sheets
// hold at most 65,536 rows × 256 columns; real files stay far below this.
const maxXLSBytes = 256 << 20

// xlsError is an invalid_xls failure.
func xlsError(format string, args ...any) *Error {
	return &Error{Type: "invalid_xls", Message: "the file is not a readable .xls (Excel 97-2003) workbook: " + fmt.Sprintf(format, args...) + "; save it again as .xlsx or .csv from a spreadsheet program and import that"}
}

// ---- OLE2 / CFB container ----

const (
	cfbEndOfChain = 0xFFFFFFFE
	cfbFreeSect   = 0xFFFFFFFF
	cfbMaxRegSect = 0xFFFFFFFA
)

var cfbSignature = []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}

type cfbFile struct {
	data      []byte
	shift     uint // sector size = 1 << shift
	nSect     int  // sectors present in the file after the header
	fat       []uint32
	miniFAT   []uint32
	miniStrm  []byte // the mini stream (root entry's stream)
	miniLimit int64  // streams smaller than this live in the mini stream
	dir       []cfbEntry
}

type cfbEntry struct {
	name  string
	typ   byte // 1 storage, 2 stream, 5 root
	start uint32
	size  int64
}

func le16(b []byte, off int) uint16 { return binary.LittleEndian.Uint16(b[off:]) }
func le32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }

// parseCFB reads the compound file's header, FAT, miniFAT and directory.
func parseCFB(data []byte) (*cfbFile, error) {
	if len(data) < 512 || string(data[:8]) != string(cfbSignature) {
		if len(data) >= 8 && string(data[:8]) == string(cfbSignature) {
			return nil, xlsError("the file is truncated inside its 512-byte header (%d bytes)", len(data))
		}
		return nil, xlsError("it does not start with the OLE2 compound file signature")
	}
	if le16(data, 0x1C) != 0xFFFE {
		return nil, xlsError("the compound file header has a bad byte-order mark")
	}
	shift := uint(le16(data, 0x1E))
	major := le16(data, 0x1A)
	if !(major == 3 && shift == 9) && !(major == 4 && shift == 12) {
		return nil, xlsError("unsupported compound file version %d with sector shift %d", major, shift)
	}
	if le16(data, 0x20) != 6 {
		return nil, xlsError("the compound file has mini sector shift %d, not 6", le16(data, 0x20))
	}
	ssz := 1 << shift
	f := &cfbFile{data: data, shift: shift, nSect: (len(data) - ssz + ssz - 1) / ssz, miniLimit: int64(le32(data, 0x38))}
	if len(data) < ssz {
		return nil, xlsError("the file is truncated inside its first sector")
	}
	// FAT sector numbers: 109 in the header, the rest in the DIFAT chain.
	nFAT := int(le32(data, 0x2C))
	if nFAT <= 0 || nFAT > f.nSect {
		return nil, xlsError("the header announces %d FAT sectors but the file has %d sectors", nFAT, f.nSect)
	}
	fatSects := make([]uint32, 0, nFAT)
	for i := 0; i < 109 && len(fatSects) < nFAT; i++ {
		fatSects = append(fatSects, le32(data, 0x4C+4*i))
	}
	difat := le32(data, 0x44)
	perDIFAT := ssz/4 - 1
	for seen := 0; len(fatSects) < nFAT; seen++ {
		if difat >= cfbMaxRegSect || seen > f.nSect {
			return nil, xlsError("the DIFAT chain ends after %d of %d FAT sectors", len(fatSects), nFAT)
		}
		sec, err := f.sector(difat)
		if err != nil {
			return nil, err
		}
		for i := 0; i < perDIFAT && len(fatSects) < nFAT; i++ {
			fatSects = append(fatSects, le32(sec, 4*i))
		}
		difat = le32(sec, ssz-4)
	}
	f.fat = make([]uint32, 0, nFAT*ssz/4)
	for _, s := range fatSects {
		sec, err := f.sector(s)
		if err != nil {
			return nil, err
		}
		for i := 0; i < ssz; i += 4 {
			f.fat = append(f.fat, le32(sec, i))
		}
	}
	// Directory.
	dirData, err := f.readChain(le32(data, 0x30), -1, "directory")
	if err != nil {
		return nil, err
	}
	for off := 0; off+128 <= len(dirData); off += 128 {
		e := dirData[off : off+128]
		n := int(le16(e, 0x40))
		if n > 64 || n%2 != 0 {
			n = 0
		}
		u := make([]uint16, 0, n/2)
		for i := 0; i+1 < n; i += 2 {
			if c := le16(e, i); c != 0 {
				u = append(u, c)
			}
		}
		size := int64(binary.LittleEndian.Uint64(e[0x78:]))
		if major == 3 {
			size &= 0xFFFFFFFF
		}
		f.dir = append(f.dir, cfbEntry{name: string(utf16.Decode(u)), typ: e[0x42], start: le32(e, 0x74), size: size})
	}
	if len(f.dir) == 0 || f.dir[0].typ != 5 {
		return nil, xlsError("the compound file has no root directory entry")
	}
	// MiniFAT and mini stream (only needed when some stream is small).
	if n := le32(data, 0x40); n > 0 && le32(data, 0x3C) < cfbMaxRegSect {
		mf, err := f.readChain(le32(data, 0x3C), -1, "miniFAT")
		if err != nil {
			return nil, err
		}
		f.miniFAT = make([]uint32, len(mf)/4)
		for i := range f.miniFAT {
			f.miniFAT[i] = le32(mf, 4*i)
		}
		root := f.dir[0]
		if root.size > 0 {
			if f.miniStrm, err = f.readChain(root.start, root.size, "mini stream"); err != nil {
				return nil, err
			}
		}
	}
	return f, nil
}

// sector returns regular sector n, or an error when it lies past the end.
func (f *cfbFile) sector(n uint32) ([]byte, error) {
	if n >= cfbMaxRegSect || int64(n) >= int64(f.nSect) {
		return nil, xlsError("sector %d lies outside the file (%d sectors): the file is truncated or corrupt", n, f.nSect)
	}
	ssz := 1 << f.shift
	off := (int(n) + 1) * ssz
	if off+ssz > len(f.data) {
		return nil, xlsError("sector %d is cut short: the file is truncated", n)
	}
	return f.data[off : off+ssz], nil
}

// readChain concatenates the regular sectors of a FAT chain; size < 0 reads
// the whole chain. A chain longer than the file, looping, or pointing
// outside it is an error.
func (f *cfbFile) readChain(start uint32, size int64, what string) ([]byte, error) {
	if size > int64(len(f.data)) {
		return nil, xlsError("the %s claims %d bytes but the file has only %d", what, size, len(f.data))
	}
	var out []byte
	if size >= 0 {
		out = make([]byte, 0, size)
	}
	seen := make(map[uint32]bool)
	for s := start; s != cfbEndOfChain; {
		if size >= 0 && int64(len(out)) >= size {
			break
		}
		if seen[s] {
			return nil, xlsError("the %s's sector chain loops back to sector %d", what, s)
		}
		seen[s] = true
		sec, err := f.sector(s)
		if err != nil {
			return nil, err
		}
		out = append(out, sec...)
		if int(s) >= len(f.fat) {
			return nil, xlsError("the %s's sector %d has no FAT entry", what, s)
		}
		s = f.fat[s]
		if s == cfbFreeSect || (s >= cfbMaxRegSect && s != cfbEndOfChain) {
			return nil, xlsError("the %s's sector chain is broken (entry %#x)", what, s)
		}
	}
	if size >= 0 {
		if int64(len(out)) < size {
			return nil, xlsError("the %s ends after %d of its %d bytes: the file is truncated", what, len(out), size)
		}
		out = out[:size]
	}
	return out, nil
}

// readMini reads a stream stored in the mini stream (64-byte sectors).
func (f *cfbFile) readMini(start uint32, size int64, what string) ([]byte, error) {
	out := make([]byte, 0, size)
	seen := make(map[uint32]bool)
	for s := start; int64(len(out)) < size; {
		if s == cfbEndOfChain || s >= cfbMaxRegSect {
			return nil, xlsError("the %s ends after %d of its %d bytes", what, len(out), size)
		}
		if seen[s] {
			return nil, xlsError("the %s's mini sector chain loops back to sector %d", what, s)
		}
		seen[s] = true
		off := int64(s) * 64
		if off+64 > int64(len(f.miniStrm)) || int(s) >= len(f.miniFAT) {
			return nil, xlsError("the %s's mini sector %d lies outside the mini stream", what, s)
		}
		out = append(out, f.miniStrm[off:off+64]...)
		s = f.miniFAT[s]
	}
	return out[:size], nil
}

// workbookStream returns the BIFF "Workbook" stream of an .xls file.
func workbookStream(data []byte) ([]byte, error) {
	f, err := parseCFB(data)
	if err != nil {
		return nil, err
	}
	var book *cfbEntry
	var names []string
	biff5 := false
	for i := range f.dir {
		e := &f.dir[i]
		if e.typ != 2 {
			continue
		}
		names = append(names, e.name)
		switch strings.ToLower(e.name) {
		case "workbook":
			book = e
		case "book":
			biff5 = true
		case "encryptedpackage":
			return nil, xlsError("it is encrypted (password protected); remove the password")
		}
	}
	if book == nil && biff5 {
		return nil, xlsError("it is an Excel 5.0/95 (BIFF5) or older workbook, which is not supported")
	}
	if book == nil {
		return nil, xlsError("the compound file has no Workbook stream (streams: %q)", names)
	}
	if book.size > int64(len(data)) {
		return nil, xlsError("the Workbook stream claims %d bytes but the file has only %d: the file is truncated", book.size, len(data))
	}
	if book.size < f.miniLimit {
		return f.readMini(book.start, book.size, "Workbook stream")
	}
	return f.readChain(book.start, book.size, "Workbook stream")
}

// ---- BIFF8 records ----

const (
	recFormula    = 0x0006
	recEOF        = 0x000A
	recDateMode   = 0x0022
	recFilePass   = 0x002F
	recContinue   = 0x003C
	recBoundSheet = 0x0085
	recMulRK      = 0x00BD
	recMulBlank   = 0x00BE
	recXF         = 0x00E0
	recSST        = 0x00FC
	recLabelSST   = 0x00FD
	recDimension  = 0x0200
	recBlank      = 0x0201
	recNumber     = 0x0203
	recLabel      = 0x0204
	recBoolErr    = 0x0205
	recString     = 0x0207
	recRK         = 0x027E
	recFormat     = 0x041E
	recBOF        = 0x0809
)

// biffReader walks the records of a BIFF stream.
type biffReader struct {
	b   []byte
	pos int
}

// next returns the next record's type, body and offset; ok is false at the
// end of the stream. A record running past the end is an error.
func (r *biffReader) next() (typ uint16, body []byte, off int, err error) {
	if r.pos+4 > len(r.b) {
		return 0, nil, r.pos, io.EOF
	}
	off = r.pos
	typ, n := le16(r.b, r.pos), int(le16(r.b, r.pos+2))
	if r.pos+4+n > len(r.b) {
		return 0, nil, off, xlsError("record %#04x at offset %d runs past the end of the Workbook stream: the file is truncated", typ, off)
	}
	body = r.b[r.pos+4 : r.pos+4+n]
	r.pos += 4 + n
	return typ, body, off, nil
}

// continued returns the bodies of the CONTINUE records that follow.
func (r *biffReader) continued() ([][]byte, error) {
	var out [][]byte
	for r.pos+4 <= len(r.b) && le16(r.b, r.pos) == recContinue {
		_, body, _, err := r.next()
		if err != nil {
			return nil, err
		}
		out = append(out, body)
	}
	return out, nil
}

// segReader reads across a record and its CONTINUE records. Character data
// split by a CONTINUE restarts with a one-byte flag saying whether the rest
// is compressed (one byte per character) or UTF-16.
type segReader struct {
	segs [][]byte
	cur  []byte
}

func newSegReader(segs [][]byte) *segReader {
	s := &segReader{segs: segs}
	s.advance()
	return s
}

func (s *segReader) advance() bool {
	for len(s.cur) == 0 && len(s.segs) > 0 {
		s.cur, s.segs = s.segs[0], s.segs[1:]
	}
	return len(s.cur) > 0
}

// errShort is wrapped into an invalid_xls *Error by every caller.
var errShort = errors.New("a record ends in the middle of a value")

// bytes reads n bytes, crossing segment boundaries.
func (s *segReader) bytes(n int) ([]byte, error) {
	if n <= len(s.cur) {
		b := s.cur[:n]
		s.cur = s.cur[n:]
		return b, nil
	}
	out := make([]byte, 0, n)
	for len(out) < n {
		if len(s.cur) == 0 && !s.advance() {
			return nil, errShort
		}
		k := min(n-len(out), len(s.cur))
		out = append(out, s.cur[:k]...)
		s.cur = s.cur[k:]
	}
	return out, nil
}

func (s *segReader) skip(n int) error {
	for n > 0 {
		if len(s.cur) == 0 && !s.advance() {
			return errShort
		}
		k := min(n, len(s.cur))
		s.cur, n = s.cur[k:], n-k
	}
	return nil
}

func (s *segReader) u8() (byte, error) {
	b, err := s.bytes(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (s *segReader) u16() (uint16, error) {
	b, err := s.bytes(2)
	if err != nil {
		return 0, err
	}
	return le16(b, 0), nil
}

func (s *segReader) u32() (uint32, error) {
	b, err := s.bytes(4)
	if err != nil {
		return 0, err
	}
	return le32(b, 0), nil
}

// chars reads cch characters, switching between compressed and UTF-16 at
// each CONTINUE boundary as its leading flag byte says.
func (s *segReader) chars(cch int, high bool) (string, error) {
	var sb strings.Builder
	var u []uint16
	for cch > 0 {
		if len(s.cur) == 0 {
			if !s.advance() {
				return "", errShort
			}
			high = s.cur[0]&1 != 0
			s.cur = s.cur[1:]
			continue
		}
		if high {
			k := min(cch, len(s.cur)/2)
			if k == 0 {
				return "", errShort // an odd byte left before a boundary
			}
			for i := 0; i < k; i++ {
				u = append(u, le16(s.cur, 2*i))
			}
			s.cur, cch = s.cur[2*k:], cch-k
		} else {
			k := min(cch, len(s.cur))
			flushUTF16(&sb, &u)
			for _, c := range s.cur[:k] {
				sb.WriteRune(rune(c))
			}
			s.cur, cch = s.cur[k:], cch-k
		}
	}
	flushUTF16(&sb, &u)
	return sb.String(), nil
}

func flushUTF16(sb *strings.Builder, u *[]uint16) {
	if len(*u) > 0 {
		sb.WriteString(string(utf16.Decode(*u)))
		*u = (*u)[:0]
	}
}

// xlString reads a BIFF8 Unicode string whose character count takes cchLen
// bytes (1 or 2), then a flags byte, optional rich-text run and phonetic
// sizes, the characters, and skips the runs and phonetic data.
func (s *segReader) xlString(cchLen int) (string, error) {
	var cch int
	if cchLen == 1 {
		c, err := s.u8()
		if err != nil {
			return "", err
		}
		cch = int(c)
	} else {
		c, err := s.u16()
		if err != nil {
			return "", err
		}
		cch = int(c)
	}
	flags, err := s.u8()
	if err != nil {
		return "", err
	}
	var runs, ext int
	if flags&0x08 != 0 {
		r, err := s.u16()
		if err != nil {
			return "", err
		}
		runs = int(r)
	}
	if flags&0x04 != 0 {
		x, err := s.u32()
		if err != nil {
			return "", err
		}
		if x > 1<<24 {
			return "", xlsError("a string has %d bytes of phonetic data", x)
		}
		ext = int(x)
	}
	str, err := s.chars(cch, flags&0x01 != 0)
	if err != nil {
		return "", err
	}
	if err := s.skip(4*runs + ext); err != nil {
		return "", err
	}
	return str, nil
}

// ---- workbook globals ----

type xlsSheet struct {
	name   string
	offset int
}

type xlsBook struct {
	stream  []byte
	sheets  []xlsSheet
	sst     []string
	xfFmt   []uint16          // number format index of each XF
	formats map[uint16]string // custom number formats
	date    map[uint16]byte   // cache: format index → date kind
	is1904  bool
}

// parseXLS reads the workbook globals: sheets, shared strings, formats.
func parseXLS(data []byte) (*xlsBook, error) {
	stream, err := workbookStream(data)
	if err != nil {
		return nil, err
	}
	bk := &xlsBook{stream: stream, formats: map[uint16]string{}, date: map[uint16]byte{}}
	r := &biffReader{b: stream}
	typ, body, _, err := r.next()
	if err == io.EOF || typ != recBOF || len(body) < 4 {
		switch typ {
		case 0x0009, 0x0209, 0x0409:
			return nil, xlsError("it is an Excel 2.x-4.x (BIFF2-4) workbook, which is not supported")
		}
		return nil, xlsError("the Workbook stream does not start with a BOF record")
	}
	if err != nil {
		return nil, err
	}
	if v := le16(body, 0); v != 0x0600 {
		return nil, xlsError("it is a BIFF version %#04x workbook (Excel 5.0/95 or older), not BIFF8 (Excel 97-2003)", v)
	}
	for {
		typ, body, off, err := r.next()
		if err == io.EOF {
			return nil, xlsError("the workbook globals have no EOF record: the file is truncated")
		}
		if err != nil {
			return nil, err
		}
		switch typ {
		case recEOF:
			if len(bk.sheets) == 0 {
				return nil, xlsError("the workbook lists no sheets")
			}
			return bk, nil
		case recFilePass:
			return nil, xlsError("it is encrypted (password protected); remove the password")
		case recDateMode:
			bk.is1904 = len(body) >= 2 && le16(body, 0) == 1
		case recBoundSheet:
			if len(body) < 8 {
				return nil, xlsError("BOUNDSHEET8 record at offset %d is too short", off)
			}
			if body[5] != 0 { // chart, macro or VBA module sheet
				continue
			}
			name, err := newSegReader([][]byte{body[6:]}).xlString(1)
			if err != nil {
				return nil, xlsError("BOUNDSHEET8 record at offset %d holds a broken sheet name", off)
			}
			bk.sheets = append(bk.sheets, xlsSheet{name: name, offset: int(le32(body, 0))})
		case recXF:
			if len(body) < 4 {
				return nil, xlsError("XF record at offset %d is too short", off)
			}
			bk.xfFmt = append(bk.xfFmt, le16(body, 2))
		case recFormat:
			if len(body) < 5 {
				return nil, xlsError("FORMAT record at offset %d is too short", off)
			}
			s, err := newSegReader([][]byte{body[2:]}).xlString(2)
			if err != nil {
				return nil, xlsError("FORMAT record at offset %d holds a broken format string", off)
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
func (bk *xlsBook) readSST(segs [][]byte) error {
	if len(segs[0]) < 8 {
		return xlsError("the SST record is too short")
	}
	n := int(le32(segs[0], 4))
	total := 0
	for _, s := range segs {
		total += len(s)
	}
	if n < 0 || n > total/3+1 { // each string takes at least 3 bytes
		return xlsError("the SST claims %d strings in %d bytes", n, total)
	}
	segs[0] = segs[0][8:]
	s := newSegReader(segs)
	bk.sst = make([]string, 0, n)
	for i := 0; i < n; i++ {
		str, err := s.xlString(2)
		if err != nil {
			return xlsError("shared string %d of %d is cut short", i+1, n)
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
func (bk *xlsBook) formatKind(ixfe uint16) byte {
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
func (bk *xlsBook) numberCell(v float64, ixfe uint16) Cell {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Cell{}
	}
	switch k := bk.formatKind(ixfe); k {
	case fmtBool:
		return Cell{Kind: Bool, S: strconv.FormatBool(v != 0)}
	case fmtDate, fmtDateTime, fmtTime:
		if s, ok := excelDate(v, bk.is1904, k); ok {
			return Cell{Kind: Text, S: s}
		}
	}
	return Cell{Kind: Number, S: strconv.FormatFloat(v, 'f', -1, 64)}
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

type xlsCell struct {
	row  uint32
	col  uint16
	cell Cell
}

// readSheet returns the non-empty cells of a worksheet sorted by row and
// column.
func (bk *xlsBook) readSheet(sh xlsSheet) (_ []xlsCell, err error) {
	defer func() {
		if e, ok := err.(*Error); ok && e.Details == nil {
			e.Details = map[string]any{"sheet": sh.name}
		}
	}()
	if sh.offset < 0 || sh.offset >= len(bk.stream) {
		return nil, xlsError("sheet %q starts at offset %d, past the end of the Workbook stream (%d bytes)", sh.name, sh.offset, len(bk.stream))
	}
	r := &biffReader{b: bk.stream, pos: sh.offset}
	typ, body, _, err := r.next()
	if err != nil || typ != recBOF || len(body) < 4 || le16(body, 0) != 0x0600 {
		return nil, xlsError("sheet %q does not start with a BIFF8 BOF record", sh.name)
	}
	var cells []xlsCell
	add := func(row uint32, col uint16, c Cell) {
		if c.Kind == Null || (c.Kind == Text && c.S == "") {
			return
		}
		cells = append(cells, xlsCell{row, col, c})
	}
	pendingString := false // a string FORMULA awaits its STRING record
	var pendingRow uint32
	var pendingCol uint16
	depth := 0 // nested BOF/EOF (embedded charts)
	for {
		typ, body, off, err := r.next()
		if err == io.EOF {
			return nil, xlsError("sheet %q has no EOF record: the file is truncated", sh.name)
		}
		if err != nil {
			return nil, err
		}
		short := func(n int) error {
			if len(body) < n {
				return xlsError("sheet %q: record %#04x at offset %d is %d bytes, shorter than %d", sh.name, typ, off, len(body), n)
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
				if cells[i].row != cells[j].row {
					return cells[i].row < cells[j].row
				}
				return cells[i].col < cells[j].col
			})
			return cells, nil
		case recFilePass:
			return nil, xlsError("it is encrypted (password protected); remove the password")
		case recLabelSST:
			if err := short(10); err != nil {
				return nil, err
			}
			i := le32(body, 6)
			if int64(i) >= int64(len(bk.sst)) {
				return nil, xlsError("sheet %q: cell %s refers to shared string %d but the workbook has %d", sh.name, cellName(le16(body, 0), le16(body, 2)), i, len(bk.sst))
			}
			add(uint32(le16(body, 0)), le16(body, 2), Cell{Kind: Text, S: bk.sst[i]})
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
				return nil, xlsError("sheet %q: the text of cell %s is cut short", sh.name, cellName(le16(body, 0), le16(body, 2)))
			}
			add(uint32(le16(body, 0)), le16(body, 2), Cell{Kind: Text, S: s})
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
				add(row, col, Cell{Kind: Bool, S: strconv.FormatBool(val[2] != 0)})
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
				return nil, xlsError("sheet %q: the cached text of formula cell %s is cut short", sh.name, cellName(uint16(pendingRow), pendingCol))
			}
			add(pendingRow, pendingCol, Cell{Kind: Text, S: s})
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
func boolErrCell(v, isErr byte) Cell {
	if isErr == 0 {
		return Cell{Kind: Bool, S: strconv.FormatBool(v != 0)}
	}
	switch v {
	case 0x00:
		return Cell{Kind: Text, S: "#NULL!"}
	case 0x07:
		return Cell{Kind: Text, S: "#DIV/0!"}
	case 0x0F:
		return Cell{Kind: Text, S: "#VALUE!"}
	case 0x17:
		return Cell{Kind: Text, S: "#REF!"}
	case 0x1D:
		return Cell{Kind: Text, S: "#NAME?"}
	case 0x24:
		return Cell{Kind: Text, S: "#NUM!"}
	case 0x2A:
		return Cell{Kind: Text, S: "#N/A"}
	}
	return Cell{}
}

// cellName is an A1-style reference for messages.
func cellName(row, col uint16) string {
	var b []byte
	for c := int(col) + 1; c > 0; c = (c - 1) / 26 {
		b = append([]byte{byte('A' + (c-1)%26)}, b...)
	}
	return string(b) + strconv.Itoa(int(row)+1)
}

// ---- rowReader and planning ----

// xlsReader yields the rows of one worksheet: cells from column A to the
// row's last non-empty cell, empty cells NULL, empty rows skipped.
type xlsReader struct {
	cells []xlsCell
	i     int
	row   []Cell
	line  int64
}

func (x *xlsReader) Next() ([]Cell, error) {
	if x.i >= len(x.cells) {
		return nil, io.EOF
	}
	r := x.cells[x.i].row
	x.row = x.row[:0]
	for ; x.i < len(x.cells) && x.cells[x.i].row == r; x.i++ {
		c := x.cells[x.i]
		for len(x.row) < int(c.col) {
			x.row = append(x.row, Cell{})
		}
		if len(x.row) == int(c.col) {
			x.row = append(x.row, c.cell)
		} else {
			x.row[c.col] = c.cell // a duplicate cell: the last one wins
		}
	}
	x.line = int64(r) + 1
	return x.row, nil
}

func (x *xlsReader) Names() []string  { return nil }
func (x *xlsReader) Line() int64      { return x.line }
func (x *xlsReader) BytesRead() int64 { return 0 }
func (x *xlsReader) Close() error     { return nil }

// readXLSFile reads and parses an .xls file's globals.
func readXLSFile(path string) (*xlsBook, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxXLSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxXLSBytes {
		return nil, xlsError("it is larger than %d MiB", maxXLSBytes>>20)
	}
	return parseXLS(data)
}

// xlsTables plans one table per selected sheet, like xlsxTables.
func xlsTables(ctx context.Context, path string, opts Options) ([]*TablePlan, error) {
	bk, err := readXLSFile(path)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range bk.sheets {
		names = append(names, s.name)
	}
	return sheetTables(ctx, names, opts, func(i int) (rowReader, error) {
		b, err := readXLSFile(path)
		if err != nil {
			return nil, err
		}
		cells, err := b.readSheet(bk.sheets[i])
		if err != nil {
			return nil, err
		}
		return &xlsReader{cells: cells}, nil
	})
}
