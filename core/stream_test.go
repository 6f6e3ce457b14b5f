package core

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

const (
	ndHeader  = `{"columns":[{"name":"id","type":"int8","type_oid":20},{"name":"name","type":"text","type_oid":25}]}` + "\n"
	ndTrailer = `{"row_count":2,"command":"SELECT 2"}` + "\n"
)

func TestStreamDecoder(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("é", 3<<20) // a 6 MB value in one row
	tests := []struct {
		name      string
		in        string
		wantRows  [][]any
		wantErr   error  // errors.Is target, nil for a clean end
		wantInErr string // substring of the error
		wantCount int64
	}{
		{"clean", ndHeader + `[9223372036854775807,"a"]` + "\n" + `[-9223372036854775808,null]` + "\n" + ndTrailer,
			[][]any{{"9223372036854775807", "a"}, {"-9223372036854775808", nil}}, nil, "", 2},
		{"empty result", ndHeader + `{"row_count":0,"command":"SELECT 0"}`, nil, nil, "", 0},
		{"typed lines", `{"type":"header","columns":[{"name":"id","type":"int8"},{"name":"name","type":"text"}]}` + "\n" +
			`{"type":"row","values":[1,"x"]}` + "\n" + `{"type":"trailer","row_count":1}` + "\n",
			[][]any{{"1", "x"}}, nil, "", 1},
		{"cut after rows", ndHeader + `[1,"a"]` + "\n", [][]any{{"1", "a"}}, io.ErrUnexpectedEOF, "without its trailer", 1},
		{"cut mid row", ndHeader + `[1,"a"]` + "\n" + `[2,"b`, [][]any{{"1", "a"}}, io.ErrUnexpectedEOF, "", 1},
		{"error trailer", ndHeader + `[1,"a"]` + "\n" + `{"error":"canceling statement due to statement timeout","code":"query_timeout","sqlstate":"57014"}` + "\n",
			[][]any{{"1", "a"}}, ErrTimeout, "statement timeout", 1},
		{"nested error trailer (bitd)", ndHeader + `{"error":{"error":"too many rows","code":"result_too_large","request_id":"r1"}}` + "\n",
			nil, ErrTooLarge, "too many rows", 0},
		{"wrong width", ndHeader + `[1]` + "\n" + ndTrailer, nil, nil, "1 values for 2 columns", 0},
		{"data after trailer", ndHeader + ndTrailer + `[1,"a"]`, nil, nil, "after the trailer", 0},
		{"huge row", ndHeader + `[1,"` + big + `"]` + "\n" + `{"row_count":1}`, [][]any{{"1", big}}, nil, "", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &Stream{dec: newStreamDecoder(strings.NewReader(tc.in)), body: io.NopCloser(nil)}
			if err := s.dec.readHeader(); err != nil {
				t.Fatal(err)
			}
			var rows [][]any
			for row, err := range s.All() {
				if err != nil {
					break
				}
				var vals []any
				for _, v := range row.Values() {
					if n, ok := v.(interface{ String() string }); ok {
						vals = append(vals, n.String())
					} else {
						vals = append(vals, v)
					}
				}
				rows = append(rows, vals)
			}
			if fmt.Sprint(rows) != fmt.Sprint(tc.wantRows) {
				t.Fatalf("rows = %.200v, want %.200v", rows, tc.wantRows)
			}
			err := s.Err()
			switch {
			case tc.wantErr == nil && tc.wantInErr == "":
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if s.RowCount() != tc.wantCount {
					t.Fatalf("row count = %d, want %d", s.RowCount(), tc.wantCount)
				}
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			case tc.wantInErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantInErr)):
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantInErr)
			}
		})
	}
}

func TestStreamHeaderErrors(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", `[1,2]`, `{"nocolumns":1}`, `{"error":"relation \"x\" does not exist","code":"sql_error","sqlstate":"42P01"}`} {
		d := newStreamDecoder(strings.NewReader(in))
		if err := d.readHeader(); err == nil {
			t.Fatalf("%q: no error", in)
		}
	}
	d := newStreamDecoder(strings.NewReader(`{"error":"relation \"x\" does not exist","code":"sql_error","sqlstate":"42P01"}`))
	err := d.readHeader()
	var ae *APIError
	if !errors.As(err, &ae) || ae.SQLState != "42P01" || !errors.Is(err, ErrBadRequest) {
		t.Fatalf("err = %#v", err)
	}
}

// TestQueryStreamHTTP runs QueryStream against a fake server: request shape,
// Scan, ScanStruct, early Close.
func TestQueryStreamHTTP(t *testing.T) {
	t.Parallel()
	var accept, body string
	closed := make(chan struct{})
	srv := newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accept = r.Header.Get("Accept")
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, ndHeader)
		if strings.Contains(body, "endless") {
			f := w.(http.Flusher)
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(w, "[%d,\"r\"]\n", i); err != nil {
					close(closed)
					return
				}
				f.Flush()
				select {
				case <-r.Context().Done():
					close(closed)
					return
				default:
				}
			}
		}
		io.WriteString(w, `[1,"a"]`+"\n"+`[2,"b"]`+"\n"+ndTrailer)
	}))
	c := newTestClient(t, srv, newFakeClock())
	s, err := c.QueryStream(t.Context(), QueryRequest{Database: "a/b", SQL: "select", Params: []any{1}})
	if err != nil {
		t.Fatal(err)
	}
	if accept != "application/x-ndjson" || !strings.Contains(body, `"params":[1]`) {
		t.Fatalf("accept %q body %s", accept, body)
	}
	if cols := s.Columns(); len(cols) != 2 || cols[1].Name != "name" || cols[0].TypeOID != 20 {
		t.Fatalf("columns = %+v", cols)
	}
	type item struct {
		ID   int64
		Name string
	}
	var got []item
	for s.Next() {
		var it item
		if err := s.Row().ScanStruct(&it); err != nil {
			t.Fatal(err)
		}
		var id int
		var name string
		if err := s.Scan(&id, &name); err != nil || int64(id) != it.ID || name != it.Name {
			t.Fatalf("Scan = %d %q %v", id, name, err)
		}
		got = append(got, it)
	}
	if s.Err() != nil || fmt.Sprint(got) != "[{1 a} {2 b}]" || s.RowCount() != 2 || s.Command() != "SELECT 2" {
		t.Fatalf("got %v err %v count %d command %q", got, s.Err(), s.RowCount(), s.Command())
	}
	s.Close()

	// Breaking out of All closes the body; the server sees the connection end.
	s2, err := c.QueryStream(t.Context(), QueryRequest{Database: "a/b", SQL: "endless"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range s2.All() {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 1000 {
			break
		}
	}
	<-closed
}

func FuzzStreamDecoder(f *testing.F) {
	f.Add([]byte(ndHeader + `[1,"a"]` + "\n" + ndTrailer))
	f.Add([]byte(ndHeader + `[1,"a"]`))
	f.Add([]byte(ndHeader + `{"error":"x","code":"query_timeout"}`))
	f.Add([]byte(`{"type":"header","columns":[]}` + "\n" + `{"type":"trailer","row_count":0}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := newStreamDecoder(strings.NewReader(string(data)))
		if err := d.readHeader(); err != nil {
			return
		}
		s := &Stream{dec: d, body: io.NopCloser(nil)}
		rows := int64(0)
		for s.Next() {
			rows++
			if len(d.cols) > 0 && len(s.Row().Values()) != len(d.cols) {
				t.Fatalf("row width %d for %d columns", len(s.Row().Values()), len(d.cols))
			}
			vals := make([]any, len(s.Row().Values()))
			for i := range vals {
				var v any
				vals[i] = &v
			}
			if err := s.Scan(vals...); err != nil {
				t.Fatalf("scan into *any: %v", err)
			}
		}
		if s.Err() == nil && !d.done {
			t.Fatal("clean end without a trailer")
		}
		if s.Err() == nil && s.RowCount() < 0 {
			t.Fatal("negative row count")
		}
	})
}

// TestQueryStreamBody: the NDJSON body is handed over unread; a server that
// answers one JSON document gets it rewritten as NDJSON that the stream
// decoder reads back with the exact values; a refused query is an *APIError.
func TestQueryStreamBody(t *testing.T) {
	t.Parallel()
	srv := newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch {
		case strings.Contains(string(b), "doc"):
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"query_string":"doc","columns":[{"name":"id","type":"int8","type_oid":20},{"name":"name","type":"text","type_oid":25}],"data":[[9007199254740993,"a"],[2,null]],"row_count":2,"command":"SELECT 2"}`)
		case strings.Contains(string(b), "refused"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			io.WriteString(w, `{"error":"relation \"x\" does not exist","code":"sql_error","sqlstate":"42P01"}`)
		default:
			w.Header().Set("Content-Type", "application/x-ndjson")
			io.WriteString(w, ndHeader+`[1,"a"]`+"\n"+ndTrailer)
		}
	}))
	c := newTestClient(t, srv, newFakeClock())
	read := func(sql string) string {
		t.Helper()
		body, err := c.QueryStreamBody(t.Context(), QueryRequest{Database: "a/b", SQL: sql})
		if err != nil {
			t.Fatal(err)
		}
		defer body.Close()
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read("select"); got != ndHeader+`[1,"a"]`+"\n"+ndTrailer {
		t.Errorf("NDJSON body = %q", got)
	}
	doc := read("doc")
	d := newStreamDecoder(strings.NewReader(doc))
	if err := d.readHeader(); err != nil {
		t.Fatalf("header of %q: %v", doc, err)
	}
	var rows []string
	for {
		v, err := d.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		rows = append(rows, fmt.Sprint(v))
	}
	if len(d.cols) != 2 || d.cols[0].TypeOID != 20 || strings.Join(rows, ";") != "[9007199254740993 a];[2 <nil>]" || d.rowCount != 2 || d.command != "SELECT 2" {
		t.Errorf("rewritten document %q: columns %+v rows %q count %d command %q", doc, d.cols, rows, d.rowCount, d.command)
	}
	_, err := c.QueryStreamBody(t.Context(), QueryRequest{Database: "a/b", SQL: "refused"})
	var ae *APIError
	if !errors.As(err, &ae) || ae.SQLState != "42P01" || ae.StatusCode != 400 {
		t.Errorf("refused query: %v", err)
	}
}
