package ingest

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkAnalyzeCSV measures the inference pass over a 100k-row
// mixed-type CSV.
func BenchmarkAnalyzeCSV(b *testing.B) {
	path := filepath.Join(b.TempDir(), "b.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("id,name,amount,ratio,flag,day,at,ref\n")
	for i := 1; i <= 100000; i++ {
		w.WriteString(strconv.Itoa(i) + ",customer " + strconv.Itoa(i) + "," + strconv.Itoa(i%1000) + ".25,1.5e3,true,2024-01-02,2024-01-02T03:04:05Z,a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\n")
	}
	w.Flush()
	f.Close()
	src, err := File(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(src.Size())
	for b.Loop() {
		p, err := Analyze(b.Context(), src, Options{Table: "t"})
		if err != nil || p.Tables[0].Rows != 100000 {
			b.Fatal(err)
		}
		r, _ := p.Tables[0].open()
		for {
			if _, err := r.Next(); err == io.EOF {
				break
			}
		}
		r.Close()
	}
}
