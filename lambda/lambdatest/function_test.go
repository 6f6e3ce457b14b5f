package lambdatest_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/lambda/lambdatest"
)

// TestUserHandler runs a handler of a developer's shape (testdata/myfunc:
// aws-lambda-go, core, fnhttp) through the public harness, against a stand-in
// for bitd that answers one query and refuses another.
func TestUserHandler(t *testing.T) {
	t.Parallel()
	var sawKey string
	bitd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawKey = r.Header.Get("Authorization")
		var q struct {
			Params []any `json:"params"`
		}
		_ = json.NewDecoder(r.Body).Decode(&q)
		w.Header().Set("Content-Type", "application/json")
		if len(q.Params) == 1 && q.Params[0] == "7" {
			w.Write([]byte(`{"query_string":"select","metadata":{},"columns":[{"name":"id","type":"int4","type_oid":23},{"name":"name","type":"text","type_oid":25}],"data":[[7,"ada"]],"row_count":1,"command":"SELECT 1"}`))
			return
		}
		w.WriteHeader(400)
		w.Write([]byte(`{"error":"invalid input syntax for type integer: \"x\"","code":"sql_error","sqlstate":"22P02","request_id":"req-1"}`))
	}))
	defer bitd.Close()

	fn := lambdatest.StartFunction(t, "./testdata/myfunc",
		"BITKIT_ENDPOINT="+bitd.URL, "BITKIT_API_KEY=v2_testkey", "MYFUNC_DATABASE=acme/app")
	event := func(id string) []byte {
		return []byte(`{"version":"2.0","rawPath":"/","queryStringParameters":{"id":"` + id + `"},"requestContext":{"http":{"method":"GET","path":"/"}}}`)
	}
	type answer struct {
		StatusCode int    `json:"statusCode"`
		Body       string `json:"body"`
	}
	tests := []struct {
		name, id string
		status   int
		body     string
	}{
		{"rows", "7", 200, `{"rows":[[7,"ada"]]}`},
		{"SQL error mapped by fnhttp", "x", 400, `{"error":"invalid input syntax for type integer: \"x\"","code":"sql_error","sqlstate":"22P02","request_id":"req-1"}`},
	}
	for _, tc := range tests { // one execution environment: invocations in turn
		res := fn.Invoke(t, event(tc.id), 10*time.Second)
		if res.Err != nil {
			t.Fatalf("%s: function error %v\n%s", tc.name, res.Err, fn.Logs())
		}
		var a answer
		if err := json.Unmarshal(res.Payload, &a); err != nil {
			t.Fatalf("%s: payload %s: %v", tc.name, res.Payload, err)
		}
		if a.StatusCode != tc.status || a.Body != tc.body {
			t.Errorf("%s: %d %s; want %d %s", tc.name, a.StatusCode, a.Body, tc.status, tc.body)
		}
	}
	if sawKey != "Bearer v2_testkey" {
		t.Errorf("bitd saw Authorization %q", sawKey)
	}
	if strings.Contains(fn.Logs(), "v2_testkey") {
		t.Error("the function logged the API key")
	}
}
