//go:build !js

package workerdtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/bitkit-dev/bitkit/workers/workerdtest"
)

// TestCustomRouteInWorkerd runs examples/customroute (bitkit's routes plus
// a route of the developer's own on core, errors answered by fnhttp) in
// workerd against a stand-in for bitd.
func TestCustomRouteInWorkerd(t *testing.T) {
	t.Parallel()
	var sawDB, sawKey string
	bitd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q struct {
			Database string `json:"database_name"`
			Params   []any  `json:"params"`
		}
		_ = json.NewDecoder(r.Body).Decode(&q)
		sawDB, sawKey = q.Database, r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		if len(q.Params) == 1 && q.Params[0] == "7" {
			io.WriteString(w, `{"query_string":"select","metadata":{},"columns":[{"name":"id","type":"int4","type_oid":23},{"name":"name","type":"text","type_oid":25}],"data":[[7,"ada"]],"row_count":1,"command":"SELECT 1"}`)
			return
		}
		w.WriteHeader(400)
		io.WriteString(w, `{"error":"invalid input syntax for type integer: \"x\"","code":"sql_error","sqlstate":"22P02","request_id":"req-1"}`)
	}))
	t.Cleanup(bitd.Close)
	w := workerdtest.StartBundle(t, workerdtest.BuildPackage(t, "./examples/customroute"),
		workerdtest.Binding{Name: "BITKIT_ENDPOINT", Value: bitd.URL},
		workerdtest.Binding{Name: "BITKIT_API_KEY", Value: "v2_routekey"},
		workerdtest.Binding{Name: "USERS_DATABASE", Value: "acme/app"},
	)
	tests := []struct {
		path   string
		status int
		body   string
	}{
		{"/users/7", 200, `{"rows":[[7,"ada"]]}` + "\n"},
		{"/users/x", 400, `{"error":"invalid input syntax for type integer: \"x\"","code":"sql_error","sqlstate":"22P02","request_id":"req-1"}`},
		{"/healthz", 200, `{"status":"ok"}`}, // bitkit's own routes still answer
	}
	for _, tc := range tests {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", w.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || string(b) != tc.body {
			t.Errorf("GET %s: %d %s; want %d %s\nworkerd: %s", tc.path, resp.StatusCode, b, tc.status, tc.body, w.Logs())
		}
	}
	if sawDB != "acme/app" || sawKey != "Bearer v2_routekey" {
		t.Errorf("bitd saw database %q, Authorization %q", sawDB, sawKey)
	}
}
