package ingest

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"testing"
)

// runSpeculation feeds data to a Speculation and its profiling pass the
// way an upload does (256 KiB writes), and reads it back the way the load's
// COPYs do: one segment per COPY, until the end. It returns the segments'
// bytes, the cuts between them, the whole-file profile and the read error.
func runSpeculation(t *testing.T, data []byte, header string) (segs [][]byte, cuts []*cut, final *CSVProfile, rerr error) {
	t.Helper()
	spec := NewSpeculation(header, 64<<10)
	pr, pw := io.Pipe()
	profiled := make(chan struct{})
	go func() {
		defer close(profiled)
		final, _ = ProfileCSVSpeculating(t.Context(), "s.csv", pr, spec)
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 256<<10)
			_, _ = pw.Write(rest[:n])
			_, _ = spec.Write(rest[:n])
			rest = rest[n:]
		}
		pw.Close()
		spec.CloseWrite(nil)
	}()
	<-spec.Ready()
	if spec.Profile() == nil {
		t.Fatal("no early profile")
	}
	buf := make([]byte, 64<<10)
	for {
		var seg bytes.Buffer
		for {
			n, err := spec.Read(buf)
			seg.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				<-profiled
				return append(segs, seg.Bytes()), cuts, final, err
			}
		}
		segs = append(segs, seg.Bytes())
		c := spec.nextCut()
		if c == nil {
			<-profiled
			return segs, cuts, final, nil
		}
		cuts = append(cuts, c)
	}
}

func TestSpeculationWidens(t *testing.T) {
	t.Parallel()
	var data bytes.Buffer
	data.WriteString("id,day\n")
	for i := 1; i <= 100000; i++ {
		day := "2024-01-02"
		if i > 90000 {
			day = "2024-01-02 03:04:05"
		}
		id := int64(i)
		if i > 50000 {
			id += 3_000_000_000 // past integer's range: bigint
		}
		data.WriteString(strconv.FormatInt(id, 10) + "," + day + "\n")
	}
	segs, cuts, final, err := runSpeculation(t, data.Bytes(), HeaderAuto)
	if err != nil {
		t.Fatal(err)
	}
	if got := bytes.Join(segs, nil); !bytes.Equal(got, data.Bytes()) {
		t.Fatalf("the segments do not add up to the file (%d bytes, want %d)", len(got), data.Len())
	}
	if len(cuts) != 2 || cuts[0].widen[0] != "bigint" || len(cuts[0].widen) != 1 ||
		cuts[1].widen[1] != "timestamp without time zone" || len(cuts[1].widen) != 1 {
		t.Fatalf("cuts = %+v %+v", cuts[0], cuts[len(cuts)-1])
	}
	// every segment ends at a line boundary, before the row that needed the
	// wider type: the first bigint id is on line 50002, the first timestamp on 90002
	lines := int64(0)
	for i, seg := range segs[:len(segs)-1] {
		lines += int64(bytes.Count(seg, []byte{'\n'}))
		if len(seg) > 0 && seg[len(seg)-1] != '\n' || lines != cuts[i].row {
			t.Fatalf("segment %d ends at line %d (cut at %d)", i, lines, cuts[i].row)
		}
	}
	if cuts[0].row > 50001 || cuts[1].row > 90001 {
		t.Fatalf("a cut comes after the row that needs it: %d, %d", cuts[0].row, cuts[1].row)
	}
	if final == nil || final.HeaderTypes[0] != "bigint" || final.HeaderTypes[1] != "timestamp without time zone" {
		t.Fatalf("final profile %+v", final)
	}
}

func TestSpeculationDiverges(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, late string }{
		{"text", "n/a"},
		{"float", "1e5"},
		{"quote", `"7"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var data bytes.Buffer
			data.WriteString("num\n")
			for i := 1; i <= 50000; i++ {
				if i == 40000 {
					data.WriteString(c.late + "\n")
					continue
				}
				data.WriteString(strconv.Itoa(i%100) + "\n")
			}
			segs, _, _, err := runSpeculation(t, data.Bytes(), HeaderAuto)
			if err == nil || errors.Is(err, io.EOF) {
				t.Fatalf("the load read the whole file (%d segments) despite %q", len(segs), c.late)
			}
			// nothing at or after the diverging row reached the load
			if got := bytes.Join(segs, nil); bytes.Contains(got, []byte(c.late+"\n")) {
				t.Fatalf("the diverging row reached the load")
			}
		})
	}
}

func TestExactWidening(t *testing.T) {
	t.Parallel()
	// only conversions where the converted value equals the value parsed
	// from the text: no text, no double precision (-0), no booleans
	for _, c := range []struct {
		from, to string
		ok       bool
	}{
		{"smallint", "integer", true}, {"smallint", "numeric", true}, {"integer", "bigint", true}, {"bigint", "numeric", true},
		{"date", "timestamp with time zone", true}, {"timestamp without time zone", "timestamp with time zone", true},
		{"smallint", "double precision", false}, {"numeric", "double precision", false}, {"smallint", "text", false},
		{"boolean", "text", false}, {"uuid", "text", false}, {"date", "text", false}, {"integer", "smallint", false},
	} {
		if got := exactWidening(c.from, c.to); got != c.ok {
			t.Errorf("exactWidening(%s, %s) = %v", c.from, c.to, got)
		}
	}
}
