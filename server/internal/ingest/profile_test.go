package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// TestProfileCSVMatchesAnalyze checks that a plan built from an upload-time
// profile is the plan the inference pass builds, in every header mode.
func TestProfileCSVMatchesAnalyze(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, file, data string }{
		{"header", "a.csv", "id,name,at\n1,x,2024-01-01\n2,,2024-01-02\n"},
		{"no header", "b.csv", "1,x,true\n70000,y,false\n"},
		{"tsv with bom", "c.tsv", "\xEF\xBB\xBFa\tb\n1.5\t{\"k\":1}\n"},
		{"semicolons, blank line, dup names", "d.txt", "k;k;\n1;2;3\n\n4;5;6\n"},
		{"one column", "e.csv", "only\n"},
	}
	for _, c := range cases {
		for _, header := range []string{HeaderAuto, HeaderFirstRow, HeaderNone} {
			t.Run(c.name+"/"+header, func(t *testing.T) {
				t.Parallel()
				path := filepath.Join(t.TempDir(), c.file)
				if err := os.WriteFile(path, []byte(c.data), 0o600); err != nil {
					t.Fatal(err)
				}
				src, err := File(path)
				if err != nil {
					t.Fatal(err)
				}
				prof, err := ProfileCSV(t.Context(), c.file, strings.NewReader(c.data))
				if err != nil || prof == nil {
					t.Fatalf("ProfileCSV = %v, %v", prof, err)
				}
				if prof.Size != int64(len(c.data)) {
					t.Errorf("profile size %d, want %d", prof.Size, len(c.data))
				}
				want, err := Analyze(t.Context(), src, Options{Table: "t", Header: header})
				if err != nil {
					t.Fatal(err)
				}
				got, err := Analyze(t.Context(), src, Options{Table: "t", Header: header, CSVProfile: prof})
				if err != nil {
					t.Fatal(err)
				}
				w, g := want.Tables[0], got.Tables[0]
				if !reflect.DeepEqual(w.Columns, g.Columns) || w.Header != g.Header || w.Rows != g.Rows ||
					want.Encoding != got.Encoding || want.Delimiter != got.Delimiter {
					t.Errorf("with profile: %+v header %v rows %d %s %q; inference pass: %+v header %v rows %d %s %q",
						g.Columns, g.Header, g.Rows, got.Encoding, got.Delimiter, w.Columns, w.Header, w.Rows, want.Encoding, want.Delimiter)
				}
			})
		}
	}
}

// TestProfileCSVFallback checks the cases where no profile is made (the job
// then runs the inference pass) and that a stale profile is ignored.
func TestProfileCSVFallback(t *testing.T) {
	t.Parallel()
	late := append(bytes.Repeat([]byte("abc,1\n"), sniffSize/6+10), []byte("caf\xE9,2\n")...)
	for _, c := range []struct{ name, file, data string }{
		{"json", "a.json", `[{"a":1}]`},
		{"json by content", "", `{"a":1}` + "\n"},
		{"not utf-8 after the sample", "late.csv", string(late)},
		{"empty", "e.csv", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			prof, err := ProfileCSV(t.Context(), c.file, strings.NewReader(c.data))
			if prof != nil || err != nil {
				t.Errorf("ProfileCSV = %+v, %v; want nil, nil", prof, err)
			}
		})
	}
	t.Run("ragged", func(t *testing.T) {
		t.Parallel()
		_, err := ProfileCSV(t.Context(), "r.csv", strings.NewReader("a,b\n1,2\n3\n"))
		var ie *Error
		if !errors.As(err, &ie) || ie.Type != "ragged_row" {
			t.Errorf("ProfileCSV(ragged) = %v; want a ragged_row error", err)
		}
	})
	t.Run("stale profile", func(t *testing.T) {
		t.Parallel()
		data := "a,b\n1,2\n"
		prof, err := ProfileCSV(t.Context(), "s.csv", strings.NewReader(data))
		if err != nil || prof == nil {
			t.Fatalf("ProfileCSV = %v, %v", prof, err)
		}
		prof.Size++ // a different file
		prof.Types = []string{"uuid", "uuid"}
		p, err := analyzeBytes(t, "s.csv", []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "s.csv")
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		src, err := File(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Analyze(t.Context(), src, Options{Table: "t", CSVProfile: prof})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Tables[0].Columns, p.Tables[0].Columns) || got.Tables[0].Columns[0].Type != "integer" {
			t.Errorf("a stale profile was used: %+v", got.Tables[0].Columns)
		}
	})
}

// TestProfileCSVPlain checks which files are handed to COPY as they are,
// with the file read whole and one byte at a time (chunk boundaries).
func TestProfileCSVPlain(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, data string
		plain      bool
	}{
		{"plain", "a,b\n1,2\n3,4\n", true},
		{"no final newline", "a,b\n1,2", true},
		{"quotes", "a,b\n\"1\",2\n", false},
		{"crlf", "a,b\r\n1,2\r\n", false},
		{"blank line", "a,b\n1,2\n\n3,4\n", false},
		{"leading blank line", "\na,b\n1,2\n", false},
		{"end-of-data marker", "a\n1\n\\.\n2\n", false},
		{"marker first", "\\.\n1\n", false},
		{"backslash elsewhere", "a\nx\\.y\n", true},
		{"bom", "\xEF\xBB\xBFa,b\n1,2\n", false},
	} {
		for _, one := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/bytewise=%v", c.name, one), func(t *testing.T) {
				t.Parallel()
				var r io.Reader = strings.NewReader(c.data)
				if one {
					r = iotest.OneByteReader(r)
				}
				prof, err := ProfileCSV(t.Context(), "p.csv", r)
				if err != nil || prof == nil {
					t.Fatalf("ProfileCSV = %v, %v", prof, err)
				}
				if prof.Plain != c.plain {
					t.Errorf("Plain = %v, want %v", prof.Plain, c.plain)
				}
			})
		}
	}
}
