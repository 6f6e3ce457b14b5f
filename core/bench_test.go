package core

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// benchBody returns a query answer and an NDJSON stream of n rows.
func benchBody(n int) (doc, nd []byte) {
	var d, s bytes.Buffer
	cols := `[{"name":"id","type":"int8","type_oid":20},{"name":"name","type":"text","type_oid":25},{"name":"price","type":"numeric","type_oid":1700},{"name":"ok","type":"bool","type_oid":16},{"name":"ts","type":"timestamptz","type_oid":1184}]`
	fmt.Fprintf(&d, `{"query_string":"q","columns":%s,"data":[`, cols)
	fmt.Fprintf(&s, `{"columns":%s}`+"\n", cols)
	for i := range n {
		row := fmt.Sprintf(`[%d,"name-%d",%d.25,true,"2026-01-02T03:04:05Z"]`, 9007199254740993+i, i, i)
		if i > 0 {
			d.WriteByte(',')
		}
		d.WriteString(row)
		s.WriteString(row)
		s.WriteByte('\n')
	}
	fmt.Fprintf(&d, `],"row_count":%d,"command":"SELECT"}`, n)
	fmt.Fprintf(&s, `{"row_count":%d,"command":"SELECT"}`+"\n", n)
	return d.Bytes(), s.Bytes()
}

func BenchmarkDecodeResult(b *testing.B) {
	doc, _ := benchBody(10000)
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		r, err := decodeResult(bytes.NewReader(doc), false)
		if err != nil || len(r.Rows) != 10000 {
			b.Fatal(err)
		}
	}
}

func BenchmarkStreamDecode(b *testing.B) {
	_, nd := benchBody(10000)
	b.SetBytes(int64(len(nd)))
	for b.Loop() {
		s := &Stream{dec: newStreamDecoder(bytes.NewReader(nd)), body: io.NopCloser(nil)}
		if err := s.dec.readHeader(); err != nil {
			b.Fatal(err)
		}
		n := 0
		for s.Next() {
			n++
		}
		if s.Err() != nil || n != 10000 {
			b.Fatal(s.Err(), n)
		}
	}
}
