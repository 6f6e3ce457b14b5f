//go:build fleet

package fleet

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Jaeger's loopback ports in the fleet: the OTLP/HTTP receiver the
// replicas export to, the query API (and UI) the test reads traces from,
// the query service's gRPC port and the health check.
const (
	jaegerOTLP   = "127.0.0.1:55590"
	jaegerQuery  = "127.0.0.1:55591"
	jaegerGRPC   = "127.0.0.1:55592"
	jaegerHealth = "127.0.0.1:55593"
)

// jaegerConfig is Jaeger v2's configuration (an OpenTelemetry collector):
// OTLP/HTTP in, spans kept in memory, the query API out, every port on
// loopback, no telemetry of its own.
const jaegerConfig = `# Jaeger for the fleet's traces (written by stress/fleet).
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: {{.Health}}
  jaeger_query:
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: {{.Query}}
    grpc:
      endpoint: {{.GRPC}}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      http:
        endpoint: {{.OTLP}}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// jaegerBin finds the jaeger binary that scripts/deps.sh --fleet builds
// into GOPATH/bin, or returns "" with the reason.
func jaegerBin() (string, string) {
	if p, err := exec.LookPath("jaeger"); err == nil {
		return p, ""
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "jaeger")
		if _, err := os.Stat(p); err == nil {
			return p, ""
		}
	}
	return "", "jaeger is not installed: run scripts/deps.sh --fleet (make fleet does), which builds Jaeger v1.75.0 into GOPATH/bin"
}

// startJaeger starts Jaeger (stopped by pid at the end, startProcess) and
// waits until its query API answers. It returns the reason when Jaeger is
// not installed, and the replicas then run without tracing.
func startJaeger(t *testing.T, dir string) (ok bool, why string) {
	t.Helper()
	bin, why := jaegerBin()
	if bin == "" {
		return false, why
	}
	cfg := filepath.Join(dir, "jaeger.yaml")
	render(t, cfg, jaegerConfig, map[string]string{"OTLP": jaegerOTLP, "Query": jaegerQuery, "GRPC": jaegerGRPC, "Health": jaegerHealth})
	startProcess(t, dir, "jaeger", bin, "--config", cfg)
	eventually(t, 60*time.Second, "Jaeger's query API at http://"+jaegerQuery+" (log: "+filepath.Join(dir, "jaeger.log")+")", func() bool {
		res, err := http.Get("http://" + jaegerQuery + "/api/services")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	return true, ""
}

// newTraceIDs returns a fresh trace id and span id in hex, as a client
// making its own traceparent does.
func newTraceIDs() (traceID, spanID string) {
	var tid [16]byte
	var sid [8]byte
	_, _ = rand.Read(tid[:])
	_, _ = rand.Read(sid[:])
	return hex.EncodeToString(tid[:]), hex.EncodeToString(sid[:])
}

// fullID is a trace id of Jaeger's API in W3C form: 32 hex digits (the API
// may leave out leading zeros).
func fullID(id string) string {
	if len(id) < 32 {
		return strings.Repeat("0", 32-len(id)) + id
	}
	return id
}

// jaegerTrace is a trace as Jaeger's HTTP query API answers it.
type jaegerTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		ProcessID     string `json:"processID"`
		References    []struct {
			RefType string `json:"refType"`
			TraceID string `json:"traceID"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		Tags []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		} `json:"tags"`
	} `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
		Tags        []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		} `json:"tags"`
	} `json:"processes"`
}

// instance is the service.instance.id of a process of the trace.
func (tr *jaegerTrace) instance(processID string) string {
	for _, tag := range tr.Processes[processID].Tags {
		if tag.Key == "service.instance.id" {
			return fmt.Sprint(tag.Value)
		}
	}
	return ""
}

// jaegerGet reads Jaeger's query API: the traces of path's answer.
func jaegerGet(path string) ([]jaegerTrace, error) {
	res, err := http.Get("http://" + jaegerQuery + path)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode == 404 {
		return nil, nil // a trace not (yet) stored
	}
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s", path, res.Status)
	}
	var out struct {
		Data []jaegerTrace `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// testTraces sends queries through HAProxy, each with a traceparent the
// client made, and checks in Jaeger (through its own HTTP query API) that
// each trace is there under the client's trace id: the replica that
// answered (HAProxy's X-Bitkit-Replica) exported the server span
// "POST /v2beta/query" as a child of the client's span, with the
// "db.query" span under it, and that spans from all three replicas
// arrived. An export job created with a traceparent has a "job.export"
// span linked to its request's server span. The replicas run with
// --trace-sample 0, so no request of the other subtests (none sends a
// traceparent) is in Jaeger: the load measurement pays for no tracing.
func testTraces(t *testing.T, f *fleet) {
	if f.NoTraces != "" {
		t.Fatal(f.NoTraces)
	}
	// Deleted at the end like every subtest's database: the placement of
	// the later subtests' databases depends on how many are live.
	db := newDB(t, f, "traces_")
	byAddr := map[string]string{} // service.instance.id → replica name
	for _, r := range f.Replicas {
		byAddr["http://"+r.HTTP] = r.Name
	}
	type sent struct{ traceID, spanID, replica string }
	var reqs []sent
	for i := range 3 * replicaCount {
		var s sent
		s.traceID, s.spanID = newTraceIDs()
		req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+f.HTTP+"/v2beta/query",
			strings.NewReader(fmt.Sprintf(`{"database_name":%q,"query_string":"SELECT %d"}`, db, i)))
		req.Header.Set("Authorization", "Bearer "+f.Key)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("traceparent", "00-"+s.traceID+"-"+s.spanID+"-01")
		res, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("query %d: %s", i, res.Status)
		}
		s.replica = res.Header.Get("X-Bitkit-Replica")
		reqs = append(reqs, s)
	}
	seen := map[string]bool{} // replicas whose spans arrived
	for _, s := range reqs {
		var last string
		eventually(t, 30*time.Second, "trace "+s.traceID+" in Jaeger", func() bool {
			trs, err := jaegerGet("/api/traces/" + s.traceID)
			if err != nil {
				last = err.Error()
				return false
			}
			if len(trs) != 1 {
				last = fmt.Sprintf("%d traces", len(trs))
				return false
			}
			tr := &trs[0]
			var server, query bool
			var serverID string
			for _, sp := range tr.Spans {
				if sp.OperationName == "POST /v2beta/query" && len(sp.References) == 1 && sp.References[0].SpanID == s.spanID {
					server, serverID = true, sp.SpanID
					if got := byAddr[tr.instance(sp.ProcessID)]; got != s.replica {
						t.Fatalf("trace %s: the server span came from %q (%s), but HAProxy says %s answered",
							s.traceID, got, tr.instance(sp.ProcessID), s.replica)
					}
					seen[s.replica] = true
				}
			}
			for _, sp := range tr.Spans {
				if sp.OperationName == "db.query" && len(sp.References) == 1 && sp.References[0].SpanID == serverID {
					query = true
				}
			}
			last = fmt.Sprintf("server span under the client's span: %v, db.query under it: %v (%d spans)", server, query, len(tr.Spans))
			return server && query
		}, func() string { return last })
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) != replicaCount {
		t.Fatalf("spans arrived from replicas %v, want all %d", names, replicaCount)
	}

	// An export job created by a traced request: its run's span (on
	// whichever replica ran it) links to the request's server span.
	tid, sid := newTraceIDs()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+f.HTTP+"/v2beta/db/"+db+"/export/",
		strings.NewReader(`{"query_string":"SELECT generate_series(1, 10) AS n","export_format":"csv"}`))
	req.Header.Set("Authorization", "Bearer "+f.Key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+tid+"-"+sid+"-01")
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var job struct {
		ID string `json:"id"`
	}
	_ = json.NewDecoder(res.Body).Decode(&job)
	res.Body.Close()
	if res.StatusCode != 202 || job.ID == "" {
		t.Fatalf("export: %s", res.Status)
	}
	if done := waitJob(t, "http://"+f.HTTP, f.Key, "export", job.ID, 2*time.Minute); done.str("state") != "DONE" {
		t.Fatalf("export ended %s", done.Raw)
	}
	var jobLast string
	eventually(t, 30*time.Second, "the export's job.export span linked to its request in Jaeger", func() bool {
		trs, err := jaegerGet("/api/traces/" + tid)
		if err != nil || len(trs) != 1 {
			jobLast = fmt.Sprintf("request trace: %d traces, %v", len(trs), err)
			return false
		}
		var serverID string
		for _, sp := range trs[0].Spans {
			if sp.OperationName == "POST /v2beta/db/{account}/{db}/export" {
				serverID = sp.SpanID
			}
		}
		if serverID == "" {
			jobLast = "no server span of the export request"
			return false
		}
		runs, err := jaegerGet("/api/traces?service=bitd&operation=job.export&lookback=1h&limit=100")
		if err != nil {
			jobLast = err.Error()
			return false
		}
		jobLast = fmt.Sprintf("%d job.export traces, none of job %s linked to span %s", len(runs), job.ID, serverID)
		for _, tr := range runs {
			for _, sp := range tr.Spans {
				if sp.OperationName != "job.export" || len(sp.References) != 1 || sp.References[0].SpanID != serverID || fullID(sp.References[0].TraceID) != tid {
					continue
				}
				for _, tag := range sp.Tags {
					if tag.Key == "bitkit.job_id" && fmt.Sprint(tag.Value) == job.ID {
						return true
					}
				}
			}
		}
		return false
	}, func() string { return jobLast })

	// An interactive transaction held by r1, used through r2: r2 forwards
	// the query to r1, whose server span continues the trace under r2's.
	ra, rb := f.Replicas[0], f.Replicas[1]
	begin := call(t, "POST", "http://"+ra.HTTP+"/v2beta/tx", f.Key, map[string]any{"database_name": db})
	if begin.Status != 201 || begin.str("tx_id") == "" {
		t.Fatalf("begin a transaction on %s: %d %s", ra.Name, begin.Status, begin.Raw)
	}
	txID := begin.str("tx_id")
	txTrace, txSpan := newTraceIDs()
	treq, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+rb.HTTP+"/v2beta/query",
		strings.NewReader(fmt.Sprintf(`{"tx_id":%q,"query_string":"SELECT 1"}`, txID)))
	treq.Header.Set("Authorization", "Bearer "+f.Key)
	treq.Header.Set("Content-Type", "application/json")
	treq.Header.Set("traceparent", "00-"+txTrace+"-"+txSpan+"-01")
	tres, err := httpClient.Do(treq)
	if err != nil {
		t.Fatal(err)
	}
	tres.Body.Close()
	if tres.StatusCode != 200 {
		t.Fatalf("a query in %s's transaction through %s: %s", ra.Name, rb.Name, tres.Status)
	}
	if a := call(t, "POST", "http://"+ra.HTTP+"/v2beta/tx/"+txID+"/rollback", f.Key, nil); a.Status != 200 {
		t.Fatalf("rollback: %d %s", a.Status, a.Raw)
	}
	var txLast string
	eventually(t, 30*time.Second, "the forwarded transaction query's trace in Jaeger", func() bool {
		trs, err := jaegerGet("/api/traces/" + txTrace)
		if err != nil || len(trs) != 1 {
			txLast = fmt.Sprintf("%d traces, %v", len(trs), err)
			return false
		}
		tr := &trs[0]
		var forwarder, holder string // span ids
		for _, sp := range tr.Spans {
			if sp.OperationName == "POST /v2beta/query" && len(sp.References) == 1 && tr.instance(sp.ProcessID) == "http://"+rb.HTTP &&
				sp.References[0].SpanID == txSpan {
				forwarder = sp.SpanID
			}
		}
		for _, sp := range tr.Spans {
			if sp.OperationName == "POST /v2beta/query" && len(sp.References) == 1 && tr.instance(sp.ProcessID) == "http://"+ra.HTTP &&
				forwarder != "" && sp.References[0].SpanID == forwarder {
				holder = sp.SpanID
			}
		}
		txLast = fmt.Sprintf("%s's span under the client's: %q; %s's span under it: %q (%d spans)", rb.Name, forwarder, ra.Name, holder, len(tr.Spans))
		return forwarder != "" && holder != ""
	}, func() string { return txLast })

	// The replicas sample no new trace (--trace-sample 0): every request
	// of the other subtests, which send no traceparent, went untraced, and
	// the only query traces in Jaeger are the ones the client sampled.
	want := map[string]bool{txTrace: true}
	for _, s := range reqs {
		want[s.traceID] = true
	}
	trs, err := jaegerGet("/api/traces?service=bitd&operation=" + url.QueryEscape("POST /v2beta/query") + "&lookback=1h&limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range trs {
		if !want[fullID(tr.TraceID)] {
			t.Errorf("Jaeger holds a query trace %s that no client sampled (%d spans)", tr.TraceID, len(tr.Spans))
		}
	}
	if len(trs) != len(reqs)+1 {
		t.Errorf("Jaeger holds %d query traces, want the %d the client sampled", len(trs), len(reqs)+1)
	}
	summary.traces = fmt.Sprintf("Jaeger: %d client traces continued by replicas %s (no other query traced at --trace-sample 0), an export's job span linked, a transaction's query forwarded across replicas in one trace", len(reqs), strings.Join(names, ","))
}
