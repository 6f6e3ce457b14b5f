package xls

// The OLE2 compound file ([MS-CFB]) that holds a legacy workbook: a FAT of
// sector chains, a directory, and a mini stream for small entries. Only the
// "Workbook" stream is read.

import (
	"encoding/binary"
	"strings"
	"unicode/utf16"
)

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
			return nil, formatErr("the file is truncated inside its 512-byte header (%d bytes)", len(data))
		}
		return nil, formatErr("it does not start with the OLE2 compound file signature")
	}
	if le16(data, 0x1C) != 0xFFFE {
		return nil, formatErr("the compound file header has a bad byte-order mark")
	}
	shift := uint(le16(data, 0x1E))
	major := le16(data, 0x1A)
	if !(major == 3 && shift == 9) && !(major == 4 && shift == 12) {
		return nil, formatErr("unsupported compound file version %d with sector shift %d", major, shift)
	}
	if le16(data, 0x20) != 6 {
		return nil, formatErr("the compound file has mini sector shift %d, not 6", le16(data, 0x20))
	}
	ssz := 1 << shift
	f := &cfbFile{data: data, shift: shift, nSect: (len(data) - ssz + ssz - 1) / ssz, miniLimit: int64(le32(data, 0x38))}
	if len(data) < ssz {
		return nil, formatErr("the file is truncated inside its first sector")
	}
	// FAT sector numbers: 109 in the header, the rest in the DIFAT chain.
	nFAT := int(le32(data, 0x2C))
	if nFAT <= 0 || nFAT > f.nSect {
		return nil, formatErr("the header announces %d FAT sectors but the file has %d sectors", nFAT, f.nSect)
	}
	fatSects := make([]uint32, 0, nFAT)
	for i := 0; i < 109 && len(fatSects) < nFAT; i++ {
		fatSects = append(fatSects, le32(data, 0x4C+4*i))
	}
	difat := le32(data, 0x44)
	perDIFAT := ssz/4 - 1
	for seen := 0; len(fatSects) < nFAT; seen++ {
		if difat >= cfbMaxRegSect || seen > f.nSect {
			return nil, formatErr("the DIFAT chain ends after %d of %d FAT sectors", len(fatSects), nFAT)
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
		return nil, formatErr("the compound file has no root directory entry")
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
		return nil, formatErr("sector %d lies outside the file (%d sectors): the file is truncated or corrupt", n, f.nSect)
	}
	ssz := 1 << f.shift
	off := (int(n) + 1) * ssz
	if off+ssz > len(f.data) {
		return nil, formatErr("sector %d is cut short: the file is truncated", n)
	}
	return f.data[off : off+ssz], nil
}

// readChain concatenates the regular sectors of a FAT chain; size < 0 reads
// the whole chain. A chain longer than the file, looping, or pointing
// outside it is an error.
func (f *cfbFile) readChain(start uint32, size int64, what string) ([]byte, error) {
	if size > int64(len(f.data)) {
		return nil, formatErr("the %s claims %d bytes but the file has only %d", what, size, len(f.data))
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
			return nil, formatErr("the %s's sector chain loops back to sector %d", what, s)
		}
		seen[s] = true
		sec, err := f.sector(s)
		if err != nil {
			return nil, err
		}
		out = append(out, sec...)
		if int(s) >= len(f.fat) {
			return nil, formatErr("the %s's sector %d has no FAT entry", what, s)
		}
		s = f.fat[s]
		if s == cfbFreeSect || (s >= cfbMaxRegSect && s != cfbEndOfChain) {
			return nil, formatErr("the %s's sector chain is broken (entry %#x)", what, s)
		}
	}
	if size >= 0 {
		if int64(len(out)) < size {
			return nil, formatErr("the %s ends after %d of its %d bytes: the file is truncated", what, len(out), size)
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
			return nil, formatErr("the %s ends after %d of its %d bytes", what, len(out), size)
		}
		if seen[s] {
			return nil, formatErr("the %s's mini sector chain loops back to sector %d", what, s)
		}
		seen[s] = true
		off := int64(s) * 64
		if off+64 > int64(len(f.miniStrm)) || int(s) >= len(f.miniFAT) {
			return nil, formatErr("the %s's mini sector %d lies outside the mini stream", what, s)
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
			return nil, formatErr("it is encrypted (password protected); remove the password")
		}
	}
	if book == nil && biff5 {
		return nil, formatErr("it is an Excel 5.0/95 (BIFF5) or older workbook, which is not supported")
	}
	if book == nil {
		return nil, formatErr("the compound file has no Workbook stream (streams: %q)", names)
	}
	if book.size > int64(len(data)) {
		return nil, formatErr("the Workbook stream claims %d bytes but the file has only %d: the file is truncated", book.size, len(data))
	}
	if book.size < f.miniLimit {
		return f.readMini(book.start, book.size, "Workbook stream")
	}
	return f.readChain(book.start, book.size, "Workbook stream")
}
