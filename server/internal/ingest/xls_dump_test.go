package ingest

import (
	"fmt"
	"os"
	"testing"
)

func TestXLSDump(t *testing.T) {
	for _, f := range []string{"book", "long", "date1904", "sheetjs", "truncated-header", "truncated-stream"} {
		data, _ := os.ReadFile("testdata/xls/" + f + ".xls")
		bk, err := parseXLS(data)
		if err != nil {
			fmt.Println(f, "ERR", err)
			continue
		}
		fmt.Println(f, "sheets", bk.sheets, "1904", bk.is1904, "nsst", len(bk.sst), bk.formats)
		for _, sh := range bk.sheets {
			cells, err := bk.readSheet(sh)
			if err != nil {
				fmt.Println("  ERR", err)
				continue
			}
			r := &xlsReader{cells: cells}
			for {
				row, err := r.Next()
				if err != nil {
					break
				}
				s := fmt.Sprint(row)
				if len(s) > 200 {
					s = s[:200]
				}
				fmt.Println("  ", r.Line(), s)
			}
		}
	}
}
