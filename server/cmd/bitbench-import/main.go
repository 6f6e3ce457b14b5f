// Command bitbench-import measures bitd's import and export jobs against
// PostgreSQL's own limits, in one run, and prints the ratios:
//
//   - import: a generated mixed-type CSV (default 1,000,000 rows, about
//     100 MB) uploaded over HTTP to an in-process jobs.Service, with type
//     inference, until the job is DONE — against `psql \copy` of the same
//     file into a pre-created typed table (and pgloader when installed);
//   - export: an export job of that table to CSV until DONE (the file
//     written to the blob store) — against `psql \copy (SELECT …) TO` a
//     local file;
//   - the process's peak RSS after a 100k-row import and after the full one.
//
// It needs TEST_DATABASE_URL (a superuser URL: it provisions a platform
// database as bitd does, on a throwaway metadata database, and drops both
// at the end; the jobs service works as the database's owner role) and
// psql on PATH (without psql the baselines run
// COPY through pgx instead, which it says).
//
//	go run ./cmd/bitbench-import -rows 1000000
//
// -log prints the jobs service's debug log on stderr: for each upload how
// its fast path went (the phases, how long the COPY waited for the
// inference pass and the upload for the COPY), for each job its phases.
// -cpuprofile writes a CPU profile of the big import.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/bitkit-dev/bitkit/server/internal/blob"
	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/bitkit-dev/bitkit/server/internal/jobs"
	"github.com/bitkit-dev/bitkit/server/internal/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	rows := flag.Int("rows", 1000000, "rows of the generated CSV")
	small := flag.Int("small-rows", 100000, "rows of the first (RSS reference) import; 0 skips it")
	verbose := flag.Bool("log", false, "print the jobs service's debug log (phase timings) on stderr")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the big import (upload → DONE) to this file")
	flag.Parse()
	if *verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if err := run(*rows, *small); err != nil {
		fmt.Fprintln(os.Stderr, "bitbench-import:", err)
		os.Exit(1)
	}
}

var cpuProfile string

var logger = slog.New(slog.NewTextHandler(io.Discard, nil))

const tableDDL = `(id bigint, name text, amount numeric, ratio double precision, flag boolean, day date, at timestamp with time zone, ref uuid)`

func genCSV(path string, n int) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("id,name,amount,ratio,flag,day,at,ref\n")
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	var buf []byte
	for i := 1; i <= n; i++ {
		buf = buf[:0]
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, ",customer "...)
		buf = strconv.AppendInt(buf, int64(i*7919%100003), 10)
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, int64(i%100000), 10)
		buf = append(buf, '.')
		buf = strconv.AppendInt(buf, int64(10+i%90), 10)
		buf = append(buf, ',')
		buf = strconv.AppendFloat(buf, float64(i%1000)/7.0, 'e', 6, 64)
		if i%2 == 0 {
			buf = append(buf, ",true,"...)
		} else {
			buf = append(buf, ",false,"...)
		}
		t := base.Add(time.Duration(i) * time.Minute)
		buf = t.AppendFormat(buf, "2006-01-02")
		buf = append(buf, ',')
		buf = t.AppendFormat(buf, time.RFC3339)
		buf = append(buf, ',')
		buf = fmt.Appendf(buf, "%08x-0000-4000-8000-%012x\n", i, i)
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

type fixedPools struct{ pool *pgxpool.Pool }

func (p fixedPools) Pool(context.Context, string, string) (*pgxpool.Pool, error) { return p.pool, nil }

type fixedResolver struct{ db *pgtest.DB }

func (r fixedResolver) Resolve(ctx context.Context, _ string) (*dbaccess.Target, error) {
	return &dbaccess.Target{DatabaseID: r.db.ID, FullName: r.db.FullName, PGDatabase: r.db.Name, Permission: dbaccess.Owner,
		PGRole: r.db.Owner, Principal: authn.From(ctx)}, nil
}

func withDB(raw, db string) string {
	u, _ := url.Parse(raw)
	u.Path = "/" + db
	return u.String()
}

func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "n/a"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
		}
	}
	return "n/a"
}

func run(rows, small int) error {
	ctx := context.Background()
	admin := os.Getenv("TEST_DATABASE_URL")
	if admin == "" {
		return errors.New("TEST_DATABASE_URL is not set (run through scripts/with-pg.sh)")
	}
	cluster, err := pgtest.Open(ctx, admin)
	if err != nil {
		return err
	}
	defer cluster.Close()
	db, err := cluster.Create(ctx)
	if err != nil {
		return err
	}
	targetDB, meta := db.Name, cluster.Store.DB
	target, err := pgxpool.New(ctx, db.URL(db.Owner))
	if err != nil {
		return err
	}
	defer target.Close()
	if err := jobs.Migrate(ctx, meta); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bitbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bucket, err := blob.Open(ctx, "", dir)
	if err != nil {
		return err
	}
	defer bucket.Close()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	svc, err := jobs.New(ctx, jobs.Config{PublicURL: srv.URL, Secret: cluster.Secret, TempDir: dir}, meta, fixedPools{target}, fixedResolver{db}, bucket, logger)
	if err != nil {
		return err
	}
	defer svc.Stop(context.Background())
	for _, rt := range svc.Routes() {
		h := rt.Handler
		if !rt.Public {
			inner := h
			h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				inner.ServeHTTP(w, r.WithContext(authn.With(r.Context(), &authn.Principal{Kind: authn.KindUser, UserID: "bench"})))
			})
		}
		mux.Handle(rt.Pattern, h)
	}

	psql, _ := exec.LookPath("psql")
	baseline := "psql \\copy"
	if psql == "" {
		baseline = "COPY via pgx (psql not found)"
	}

	if small > 0 {
		path := filepath.Join(dir, "small.csv")
		if _, err := genCSV(path, small); err != nil {
			return err
		}
		if _, err := importJob(ctx, srv.URL, "small", path); err != nil {
			return err
		}
		os.Remove(path)
		fmt.Printf("peak RSS after a %d-row import: %s\n", small, peakRSS())
	}
	path := filepath.Join(dir, "big.csv")
	size, err := genCSV(path, rows)
	if err != nil {
		return err
	}
	fmt.Printf("generated %d rows, %.1f MB\n", rows, float64(size)/1e6)

	// limit: psql \copy into a pre-created typed table
	if _, err := target.Exec(ctx, "CREATE TABLE limit_copy "+tableDDL); err != nil {
		return err
	}
	t0 := time.Now()
	if psql != "" {
		cmd := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", withDB(admin, targetDB), "-c", `\copy limit_copy FROM '`+path+`' WITH (FORMAT csv, HEADER true)`)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("psql \\copy: %w", err)
		}
	} else if err := pgxCopyFrom(ctx, target, path); err != nil {
		return err
	}
	copyDur := time.Since(t0)

	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	t0 = time.Now()
	j, err := importJob(ctx, srv.URL, "bench_import", path)
	if err != nil {
		return err
	}
	importDur := time.Since(t0)
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	uploadDur := accepted
	fmt.Printf("peak RSS after a %d-row import: %s\n", rows, peakRSS())
	fmt.Printf("import  %d rows: bitd job (upload → DONE, with inference) %.2fs; %s %.2fs; ratio %.2f× (goal ≥ 0.7×)\n",
		j.Progress.Rows, importDur.Seconds(), baseline, copyDur.Seconds(), copyDur.Seconds()/importDur.Seconds())
	fmt.Printf("        of which upload with inference (→ 202, state %s) %.2fs, then the job (→ DONE) %.2fs\n",
		acceptedState, uploadDur.Seconds(), (importDur - uploadDur).Seconds())

	if pgl, _ := exec.LookPath("pgloader"); pgl != "" {
		if _, err := target.Exec(ctx, "CREATE TABLE limit_pgloader "+tableDDL); err != nil {
			return err
		}
		t0 = time.Now()
		// tablename joins the URL's own query (sslmode=…): a second "?"
		// makes pgloader load nothing and still exit 0.
		pglURL, _ := url.Parse(withDB(admin, targetDB))
		q := pglURL.Query()
		q.Set("tablename", "limit_pgloader")
		pglURL.RawQuery = q.Encode()
		cmd := exec.Command(pgl, "--type", "csv", "--field", "id,name,amount,ratio,flag,day,at,ref", "--with", "skip header = 1",
			"--with", "fields terminated by ','", path, pglURL.String())
		out, err := cmd.CombinedOutput()
		var loaded int64
		if err == nil {
			err = target.QueryRow(ctx, "SELECT count(*) FROM limit_pgloader").Scan(&loaded)
		}
		if err == nil && loaded != int64(rows) {
			err = fmt.Errorf("pgloader loaded %d rows, want %d", loaded, rows)
		}
		if err != nil {
			fmt.Printf("pgloader failed: %v\n%s\n", err, out)
		} else {
			d := time.Since(t0)
			fmt.Printf("pgloader %.2fs; bitd is %.2f× pgloader's speed\n", d.Seconds(), d.Seconds()/importDur.Seconds())
		}
	} else {
		fmt.Println("pgloader not installed: its comparison was skipped")
	}

	// export
	t0 = time.Now()
	if psql != "" {
		cmd := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", withDB(admin, targetDB), "-c", `\copy (SELECT * FROM bench_import) TO '`+filepath.Join(dir, "copy-out.csv")+`' WITH (FORMAT csv, HEADER true)`)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("psql \\copy to: %w", err)
		}
	} else {
		c, err := target.Acquire(ctx)
		if err != nil {
			return err
		}
		out, err := os.Create(filepath.Join(dir, "copy-out.csv"))
		if err != nil {
			return err
		}
		_, err = c.Conn().PgConn().CopyTo(ctx, out, "COPY (SELECT * FROM bench_import) TO STDOUT WITH (FORMAT csv, HEADER true)")
		c.Release()
		out.Close()
		if err != nil {
			return err
		}
	}
	copyOut := time.Since(t0)
	t0 = time.Now()
	ej, err := exportJob(ctx, srv.URL)
	if err != nil {
		return err
	}
	exportDur := time.Since(t0)
	fmt.Printf("export  %d rows to CSV: bitd job (→ DONE) %.2fs; %s TO %.2fs; ratio %.2f× (goal ≥ 0.8×)\n",
		ej.Progress.Rows, exportDur.Seconds(), baseline, copyOut.Seconds(), copyOut.Seconds()/exportDur.Seconds())
	return nil
}

func pgxCopyFrom(ctx context.Context, pool *pgxpool.Pool, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	c, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	_, err = c.Conn().PgConn().CopyFrom(ctx, f, "COPY limit_copy FROM STDIN WITH (FORMAT csv, HEADER true)")
	return err
}

type jobView struct {
	ID           string         `json:"id"`
	State        string         `json:"state"`
	ErrorType    *string        `json:"error_type"`
	ErrorDetails map[string]any `json:"error_details"`
	Progress     struct {
		Rows int64 `json:"rows"`
	} `json:"progress"`
}

// importJob streams the file as a multipart upload (never in memory) and
// polls the job until it ends.
func importJob(ctx context.Context, base, table, path string) (*jobView, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			if err := mw.WriteField("table_name", table); err != nil {
				return err
			}
			fw, err := mw.CreateFormFile("file", filepath.Base(path))
			if err != nil {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(fw, f); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v2beta/db/bench/db/import/", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return send(ctx, base, "import", req)
}

func exportJob(ctx context.Context, base string) (*jobView, error) {
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v2beta/db/bench/db/export/", strings.NewReader(`{"table_name": "bench_import"}`))
	req.Header.Set("Content-Type", "application/json")
	return send(ctx, base, "export", req)
}

// accepted is how long the last create request took to be answered (for an
// import: the upload, with the CSV inference pass that runs while it streams).
var accepted time.Duration

// acceptedState is the state the last create request answered with.
var acceptedState string

func send(ctx context.Context, base, kind string, req *http.Request) (*jobView, error) {
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	accepted = time.Since(start)
	if err != nil {
		return nil, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return nil, fmt.Errorf("create %s job: %d %s", kind, resp.StatusCode, b)
	}
	var j jobView
	if err := jsonx.Unmarshal(b, &j); err != nil {
		return nil, err
	}
	acceptedState = j.State
	// Poll like core's WaitImport: at once (a plain CSV upload can be DONE
	// in the 202), then every 10 ms (the benchmark measures bitd, not a
	// client's patience).
	for poll := 0; ; poll++ {
		switch j.State {
		case jobs.StateDone:
			return &j, nil
		case jobs.StateFailed:
			return nil, fmt.Errorf("%s job FAILED: %v %v", kind, j.ErrorType, j.ErrorDetails)
		}
		if poll > 0 {
			time.Sleep(10 * time.Millisecond)
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v2beta/"+kind+"/"+j.ID, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := jsonx.Unmarshal(b, &j); err != nil {
			return nil, err
		}
	}
}
