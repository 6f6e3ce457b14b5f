package xls

// BIFF8 records ([MS-XLS]): a type, a length and a body, with CONTINUE
// records splitting long values, and the string encodings inside them.

import (
	"errors"
	"io"
	"strings"
	"unicode/utf16"
)

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
		return 0, nil, off, formatErr("record %#04x at offset %d runs past the end of the Workbook stream: the file is truncated", typ, off)
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

// errShort is wrapped into a *FormatError by every caller.
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
			return "", formatErr("a string has %d bytes of phonetic data", x)
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
