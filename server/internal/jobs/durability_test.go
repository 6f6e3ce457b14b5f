package jobs

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestImportSurvivesRestart stops a Service in the middle of a COPY (its
// workers are cancelled), starts a new one on the same queue, and checks
// that the job ends DONE with every row exactly once; then it replays the
// finished job as if the DONE update had been lost and checks that the
// recorded transaction id keeps it from loading again.
func TestImportSurvivesRestart(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	const n = 100000
	var csv bytes.Buffer
	csv.WriteString("id,name,amount,day\n")
	for i := 1; i <= n; i++ {
		csv.WriteString(strconv.Itoa(i) + ",name " + strconv.Itoa(i) + "," + strconv.Itoa(i%1000) + ".25,2024-01-02\n")
	}
	queue := "durable_" + e.suffix
	start := func() (*Service, *httptest.Server) {
		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		svc, err := New(t.Context(), Config{PublicURL: srv.URL, Secret: e.secret, Queue: queue, RescueAfter: 30 * time.Second},
			e.meta, e.pools, &testResolver{e: e}, e.bucket, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		e.register(mux, svc)
		return svc, srv
	}

	a, srvA := start()
	j, _ := holdLoad(t, e, a, srvA, "durable", csv.Bytes())
	stopCtx, cancel := context.WithCancel(t.Context())
	cancel() // no grace: cancel the running job at once
	if err := a.Stop(stopCtx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	srvA.Close()
	if e.tableExists(t, "durable") {
		t.Fatal("a cancelled load left its table behind")
	}

	bSvc, srvB := start()
	defer srvB.Close()
	defer bSvc.Stop(context.WithoutCancel(t.Context()))
	eb := *e
	eb.srv = srvB
	done := eb.wait(t, "owner", "import", j.ID)
	if done.State != StateDone || done.Retries != 1 || done.Progress.Rows != n {
		t.Fatalf("after restart: %+v %v", done, done.ErrorDetails)
	}
	check := func() {
		t.Helper()
		got := joinRows(e.text(t, "SELECT count(*), count(DISTINCT id), sum(id) FROM durable"))
		if want := strconv.Itoa(n) + "|" + strconv.Itoa(n) + "|" + strconv.Itoa(n*(n+1)/2) + "\n"; got != want {
			t.Fatalf("rows: %s, want %s", got, want)
		}
	}
	check()

	// Lose the DONE update: the job is PROCESSING again and river runs it once more.
	if _, err := e.meta.Exec(t.Context(), "UPDATE bitkit_jobs SET state = 'PROCESSING', date_finished = NULL WHERE id = $1", j.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := bSvc.river.Insert(t.Context(), importArgs{JobID: j.ID}, bSvc.insertOpts()); err != nil {
		t.Fatal(err)
	}
	again := eb.wait(t, "owner", "import", j.ID)
	if again.State != StateDone || again.Progress.Rows != n {
		t.Fatalf("replayed job: %+v", again)
	}
	check()
}

// TestStartContextEndIsNotAStop: the end of the context New was given (bitd
// cancels it on SIGTERM, before it drains) does not cancel a running job;
// only Stop hands it back, and it is not failed.
func TestStartContextEndIsNotAStop(t *testing.T) {
	t.Parallel()
	e := getEnv(t)
	var csv bytes.Buffer
	csv.WriteString("id,name\n")
	for i := 1; i <= 5000; i++ {
		csv.WriteString(strconv.Itoa(i) + ",name " + strconv.Itoa(i) + "\n")
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	startCtx, endStart := context.WithCancel(t.Context())
	svc, err := New(startCtx, Config{PublicURL: srv.URL, Secret: e.secret, Queue: "startctx_" + e.suffix, RescueAfter: 30 * time.Second},
		e.meta, e.pools, &testResolver{e: e}, e.bucket, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	e.register(mux, svc)
	j, cancelled := holdLoad(t, e, svc, srv, "startctx", csv.Bytes())
	endStart()
	select {
	case <-cancelled:
		t.Fatal("the end of New's context cancelled the running job; only Stop may")
	case <-time.After(300 * time.Millisecond): // the point: it must not happen at all
	}
	stopCtx, cancel := context.WithCancel(t.Context())
	cancel() // no grace: hand the job back at once
	if err := svc.Stop(stopCtx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	<-cancelled
	var state string
	if err := e.meta.QueryRow(t.Context(), "SELECT state FROM bitkit_jobs WHERE id = $1", j.ID).Scan(&state); err != nil {
		t.Fatal(err)
	}
	if state == StateFailed || state == StateDone {
		t.Fatalf("the job Stop handed back is %s; want it queued again", state)
	}
}

// holdLoad starts an import of csv into table through svc (whose API srv
// serves) on the job path (no loading during the upload), and returns once
// its COPY has loaded rows: the load is then held open until the job's
// context ends, which closes the returned channel.
func holdLoad(t *testing.T, e *env, svc *Service, srv *httptest.Server, table string, csv []byte) (job, <-chan struct{}) {
	t.Helper()
	reached, ended := make(chan struct{}), make(chan struct{})
	var once sync.Once
	svc.test.Store(&testSignals{noFastPath: true, onLoad: func(ctx context.Context, _ string, rows int64) {
		if rows > 0 {
			once.Do(func() {
				close(reached)
				<-ctx.Done()
				close(ended)
			})
		}
	}})
	es := *e
	es.srv = srv
	code, j, b := es.startImport(t, "owner", map[string]string{"table_name": table}, table+".csv", csv)
	if code != http.StatusAccepted {
		t.Fatalf("import: %d %s", code, b)
	}
	select {
	case <-reached:
	case <-time.After(time.Minute):
		t.Fatal("the load never started")
	}
	return j, ended
}
