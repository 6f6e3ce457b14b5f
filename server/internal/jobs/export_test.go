package jobs

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/parquet-go/parquet-go"
	"github.com/xuri/excelize/v2"
)

var exportTableOnce sync.Once

// exportTable creates exp_src (owned by the owner role) once.
func exportTable(t *testing.T, e *env) {
	t.Helper()
	var err error
	exportTableOnce.Do(func() {
		pool, perr := e.pools.Pool(t.Context(), e.targetDB, e.roles[dbaccess.Owner])
		if perr != nil {
			err = perr
			return
		}
		_, err = pool.Exec(t.Context(), `CREATE TABLE exp_src (id bigint, i integer, n numeric, f double precision, b boolean,
			d date, ts timestamp, tz timestamptz, t text, j jsonb, by bytea);
			INSERT INTO exp_src VALUES
			(9007199254740993, 1, 12345678901234567890.125, 1.5, true, '2024-01-02', '2024-01-02 03:04:05.25', '2024-01-02 03:04:05+00',
			 'a, "quoted"
line ü', '{"k": [1, 2]}', '\x00ff'),
			(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) export(t *testing.T, user string, body string) job {
	t.Helper()
	j := e.startExport(t, user, body)
	if j.DownloadURL != nil || j.State != StateReceived {
		t.Fatalf("new export job = %+v", j)
	}
	return e.wait(t, user, "export", j.ID)
}

func download(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return bitdtest.Do(t, req)
}

func TestExportRoundTrip(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	exportTable(t, e)
	cases := []struct {
		format, ctype, name string
		check               func(t *testing.T, b []byte)
	}{
		{"csv", "text/csv; charset=utf-8", "exp_src.csv", func(t *testing.T, b []byte) {
			recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			want := [][]string{{"id", "i", "n", "f", "b", "d", "ts", "tz", "t", "j", "by"},
				{"9007199254740993", "1", "12345678901234567890.125", "1.5", "t", "2024-01-02", "2024-01-02 03:04:05.25", "2024-01-02 03:04:05+00", "a, \"quoted\"\nline ü", `{"k": [1, 2]}`, `\x00ff`},
				{"2", "", "", "", "", "", "", "", "", "", ""}}
			if fmt.Sprintf("%q", recs) != fmt.Sprintf("%q", want) {
				t.Errorf("csv:\n%q\nwant\n%q", recs, want)
			}
		}},
		{"json", "application/json", "exp_src.json", func(t *testing.T, b []byte) {
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber()
			var rows []map[string]any
			if err := dec.Decode(&rows); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			want := `[map[b:true by:AP8= d:2024-01-02 f:1.5 i:1 id:9007199254740993 j:map[k:[1 2]] n:12345678901234567890.125 t:a, "quoted"
line ü ts:2024-01-02T03:04:05.25 tz:2024-01-02T03:04:05Z] map[b:<nil> by:<nil> d:<nil> f:<nil> i:<nil> id:2 j:<nil> n:<nil> t:<nil> ts:<nil> tz:<nil>]]`
			if got := fmt.Sprint(rows); got != want {
				t.Errorf("json:\n%s\nwant\n%s", got, want)
			}
			if _, ok := rows[0]["id"].(json.Number); !ok {
				t.Errorf("id is %T, want a JSON number", rows[0]["id"])
			}
		}},
		{"xls", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "exp_src.xlsx", func(t *testing.T, b []byte) {
			f, err := excelize.OpenReader(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rows, err := f.GetRows("Sheet1", excelize.Options{RawCellValue: true})
			if err != nil {
				t.Fatal(err)
			}
			want := [][]string{{"id", "i", "n", "f", "b", "d", "ts", "tz", "t", "j", "by"},
				{"9007199254740993", "1", "12345678901234567890.125", "1.5", "1", "2024-01-02", "2024-01-02T03:04:05.25", "2024-01-02T03:04:05Z", "a, \"quoted\"\nline ü", `{"k": [1, 2]}`, `\x00ff`},
				{"2"}}
			if fmt.Sprintf("%q", rows) != fmt.Sprintf("%q", want) {
				t.Errorf("xlsx:\n%q\nwant\n%q", rows, want)
			}
			typ, _ := f.GetCellType("Sheet1", "A2")
			if typ != excelize.CellTypeNumber && typ != excelize.CellTypeUnset {
				t.Errorf("A2 cell type %v, want a number", typ)
			}
		}},
		{"parquet", "application/vnd.apache.parquet", "exp_src.parquet", func(t *testing.T, b []byte) {
			f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			types := map[string]string{}
			for _, c := range f.Schema().Fields() {
				lt := ""
				if l := c.Type().LogicalType(); l != nil {
					lt = l.String()
				}
				types[c.Name()] = c.Type().Kind().String() + "/" + lt
			}
			wantTypes := "map[b:BOOLEAN/ by:BYTE_ARRAY/ d:INT32/DATE f:DOUBLE/ i:INT32/INT(32,true) id:INT64/INT(64,true) j:BYTE_ARRAY/JSON n:BYTE_ARRAY/STRING t:BYTE_ARRAY/STRING ts:INT64/TIMESTAMP(isAdjustedToUTC=false,unit=MICROS) tz:INT64/TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)]"
			if got := fmt.Sprint(types); got != wantTypes {
				t.Errorf("parquet types:\n%s\nwant\n%s", got, wantTypes)
			}
			r := parquet.NewReader(f)
			rows := make([]parquet.Row, 3)
			n, _ := r.ReadRows(rows)
			if n != 2 {
				t.Fatalf("read %d rows, want 2", n)
			}
			got := map[string]string{}
			for i, path := range f.Schema().Columns() {
				v := rows[0][i]
				switch path[0] {
				case "id", "ts", "tz":
					got[path[0]] = fmt.Sprint(v.Int64())
				case "i", "d":
					got[path[0]] = fmt.Sprint(v.Int32())
				case "f":
					got[path[0]] = fmt.Sprint(v.Double())
				case "b":
					got[path[0]] = fmt.Sprint(v.Boolean())
				default:
					got[path[0]] = fmt.Sprintf("%q", v.ByteArray())
				}
				if !rows[1][i].IsNull() && path[0] != "id" {
					t.Errorf("row 2 column %s = %v, want NULL", path[0], rows[1][i])
				}
			}
			ts := time.Date(2024, 1, 2, 3, 4, 5, 250e6, time.UTC).UnixMicro()
			want := fmt.Sprintf(`map[b:true by:"\x00\xff" d:19724 f:1.5 i:1 id:9007199254740993 j:"{\"k\": [1, 2]}" n:"12345678901234567890.125" t:"a, \"quoted\"\nline ü" ts:%d tz:%d]`, ts, ts-250000)
			if fmt.Sprint(got) != want {
				t.Errorf("parquet row:\n%s\nwant\n%s", fmt.Sprint(got), want)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.format, func(t *testing.T) {
			t.Parallel()
			j := e.export(t, "reader", fmt.Sprintf(`{"export_format": %q, "table_name": "exp_src"}`, c.format))
			if j.State != StateDone || j.DownloadURL == nil || j.ExportFormat != c.format || j.FileName != c.name {
				t.Fatalf("export job = %+v (%v)", j, j.ErrorDetails)
			}
			if j.Progress.Rows != 2 || j.Progress.BytesDone == 0 {
				t.Errorf("progress = %+v", j.Progress)
			}
			resp, b := download(t, *j.DownloadURL)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != c.ctype ||
				resp.Header.Get("Content-Disposition") != `attachment; filename="`+c.name+`"` || int64(len(b)) != j.Progress.BytesDone {
				t.Fatalf("download: %d %v (%d bytes)", resp.StatusCode, resp.Header, len(b))
			}
			c.check(t, b)
		})
	}
}

func TestExportQueryAndErrors(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	exportTable(t, e)
	j := e.export(t, "owner", `{"export_format": "json", "file_name": "../evil\"name.json", "query_string": "SELECT id, id AS id FROM exp_src ORDER BY id;"}`)
	if j.State != StateDone || j.FileName != "evilname.json" {
		t.Fatalf("query export = %+v", j)
	}
	_, b := download(t, *j.DownloadURL)
	if got := strings.Join(strings.Fields(string(b)), ""); got != `[{"id":2,"id_2":2},{"id":9007199254740993,"id_2":9007199254740993}]` {
		t.Errorf("json body %s", b)
	}
	cases := []struct {
		name, body, errType string
	}{
		{"syntax", `{"query_string": "SELEC 1"}`, "sql_error"},
		{"write_in_export", `{"query_string": "DELETE FROM exp_src RETURNING id"}`, "sql_error"},
		{"no_table", `{"table_name": "nope"}`, "sql_error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			j := e.export(t, "owner", c.body)
			if j.State != StateFailed || deref(j.ErrorType) != c.errType || j.DownloadURL != nil || j.ErrorDetails["sqlstate"] == nil {
				t.Errorf("job = %+v %v", j, j.ErrorDetails)
			}
		})
	}
	if got := joinRows(e.text(t, "SELECT count(*) FROM exp_src")); got != "2\n" {
		t.Errorf("an export changed the table: count %s", got)
	}
	for _, body := range []string{`{"export_format": "pdf", "table_name": "exp_src"}`, `{}`, `{"table_name": "a", "query_string": "SELECT 1"}`, `nope`} {
		code, b := e.do(t, "owner", "POST", "/v2beta/db/acct/db/export", "application/json", strings.NewReader(body))
		if code != http.StatusBadRequest {
			t.Errorf("export %s: %d %s", body, code, b)
		}
	}
}

func TestDownloadURLRefused(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	exportTable(t, e)
	j := e.export(t, "owner", `{"table_name": "exp_src"}`)
	if j.DownloadURL == nil {
		t.Fatalf("job = %+v", j)
	}
	good := *j.DownloadURL
	tok := good[strings.LastIndexByte(good, '/')+1:]
	flip := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	expired, err := signToken(e.svc.key, j.ID, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	otherKey := downloadKey([]byte(strings.Repeat("x", 32)))
	forged, _ := signToken(otherKey, j.ID, time.Now().Add(time.Hour))
	missing, _ := signToken(e.svc.key, "00000000-0000-4000-8000-000000000000", time.Now().Add(time.Hour))
	cases := []struct {
		name, token string
		code        int
		errCode     string
	}{
		{"good", tok, 200, ""},
		{"tampered_signature", flip(tok, len(tok)-3), 403, "forbidden"},
		{"tampered_payload", flip(tok, 2), 403, "forbidden"},
		{"forged_key", forged, 403, "forbidden"},
		{"garbage", "abc", 403, "forbidden"},
		{"expired", expired, 410, "download_expired"},
		{"unknown_job", missing, 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			resp, b := download(t, e.srv.URL+"/v2beta/files/"+c.token)
			if resp.StatusCode != c.code || (c.errCode != "" && !strings.Contains(string(b), `"code":"`+c.errCode+`"`)) {
				t.Errorf("status %d body %s, want %d %s", resp.StatusCode, b, c.code, c.errCode)
			}
		})
	}
}
