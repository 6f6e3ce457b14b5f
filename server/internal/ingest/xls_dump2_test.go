package ingest

import (
	"fmt"
	"os"
	"testing"
)

func TestXLSDump2(t *testing.T) {
	data, _ := os.ReadFile("testdata/xls/book.xls")
	bk, _ := parseXLS(data)
	r := &biffReader{b: bk.stream, pos: bk.sheets[0].offset}
	for {
		typ, body, _, err := r.next()
		if err != nil || typ == recEOF {
			break
		}
		if typ == recFormula || typ == recString || typ == 0x04BC || typ == 0x0221 {
			fmt.Printf("%#04x % x\n", typ, body)
		}
	}
}
