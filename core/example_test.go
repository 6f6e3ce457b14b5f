//go:build !js

package core_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/bitkit-dev/bitkit/core"
)

// fakeBitd stands in for a real bitd so that the examples' output is
// deterministic; in real code the endpoint is your bitd (or "" for the
// local default) and the key comes from the environment.
func fakeBitd() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/auth/v1/login":
			io.WriteString(w, `{"access_token":"tok-example","expires_in":3600,"token_type":"Bearer"}`)
		case r.Header.Get("Authorization") == "":
			w.WriteHeader(401)
			io.WriteString(w, `{"error":"missing credentials","code":"unauthorized"}`)
		case r.URL.Path == "/iam/v2/account":
			io.WriteString(w, `{"account":{"id":"acc-1","name":"alice"}}`)
		case r.URL.Path == "/v2beta/db/alice/missing":
			w.WriteHeader(404)
			io.WriteString(w, `{"error":"database alice/missing not found, or you have no access to it","code":"not_found","request_id":"req-42"}`)
		case r.URL.Path == "/v2beta/query" && r.Header.Get("Accept") == "application/x-ndjson":
			w.Header().Set("Content-Type", "application/x-ndjson")
			io.WriteString(w, `{"columns":[{"name":"n","type":"int8","type_oid":20}],"metadata":{"n":"int8"}}`+"\n"+
				"[1]\n[2]\n[3]\n"+`{"row_count":3,"command":"SELECT"}`+"\n")
		case r.URL.Path == "/v2beta/query" && strings.Contains(string(body), "FROM items"):
			io.WriteString(w, `{"query_string":"SELECT id, name, price FROM items ORDER BY id","metadata":{"id":"int8","name":"text","price":"numeric"},
				"columns":[{"name":"id","type":"int8","type_oid":20},{"name":"name","type":"text","type_oid":25},{"name":"price","type":"numeric","type_oid":1700}],
				"data":[[9007199254740993,"lamp",12.50],[9007199254740994,"desk",199.99]],"row_count":2,"command":"SELECT"}`)
		default:
			w.WriteHeader(404)
			io.WriteString(w, `{"error":"no such route","code":"not_found"}`)
		}
	}))
}

func ExampleNewClient() {
	srv := fakeBitd() // stands in for bitd; use your endpoint or "" (http://127.0.0.1:8080)
	defer srv.Close()

	c, err := core.NewClient(srv.URL, core.WithAPIKey("v2_example"))
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Query(context.Background(), "alice/shop", "SELECT id, name, price FROM items ORDER BY id")
	if err != nil {
		log.Fatal(err)
	}
	for i := range res.Rows {
		var id int64 // int8 stays exact: 9007199254740993 is not a float64
		var name, price string
		if err := res.Scan(i, &id, &name, &price); err != nil {
			log.Fatal(err)
		}
		fmt.Println(id, name, price)
	}
	// Output:
	// 9007199254740993 lamp 12.50
	// 9007199254740994 desk 199.99
}

func ExampleScanAll() {
	srv := fakeBitd() // stands in for bitd
	defer srv.Close()
	c, _ := core.NewClient(srv.URL, core.WithAPIKey("v2_example"))

	type Item struct {
		ID    int64  `db:"id"`
		Name  string // matches column "name" (case-insensitive)
		Price string `db:"price"`
	}
	res, err := c.Query(context.Background(), "alice/shop", "SELECT id, name, price FROM items ORDER BY id")
	if err != nil {
		log.Fatal(err)
	}
	items, err := core.ScanAll[Item](res)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", items)
	// Output:
	// [{ID:9007199254740993 Name:lamp Price:12.50} {ID:9007199254740994 Name:desk Price:199.99}]
}

func ExampleAPIError() {
	srv := fakeBitd() // stands in for bitd
	defer srv.Close()
	c, _ := core.NewClient(srv.URL, core.WithAPIKey("v2_example"))

	_, err := c.GetDatabase(context.Background(), "alice/missing")
	if errors.Is(err, core.ErrNotFound) {
		var ae *core.APIError
		errors.As(err, &ae)
		fmt.Println(ae.StatusCode, ae.Code, ae.RequestID)
		fmt.Println(ae.Message)
	}
	// Output:
	// 404 not_found req-42
	// database alice/missing not found, or you have no access to it
}

func ExampleClient_QueryStream() {
	srv := fakeBitd() // stands in for bitd
	defer srv.Close()
	c, _ := core.NewClient(srv.URL, core.WithAPIKey("v2_example"))

	s, err := c.QueryStream(context.Background(), core.QueryRequest{Database: "alice/shop", SQL: "SELECT generate_series(1, 3) AS n"})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	sum := int64(0)
	for row, err := range s.All() {
		if err != nil {
			log.Fatal(err) // a cut stream or an error trailer
		}
		var n int64
		if err := row.Scan(&n); err != nil {
			log.Fatal(err)
		}
		sum += n
	}
	fmt.Println("columns:", s.Columns()[0].Name, "rows:", s.RowCount(), "sum:", sum)
	// Output:
	// columns: n rows: 3 sum: 6
}

func ExampleUsernamePassword() {
	srv := fakeBitd() // stands in for bitd
	defer srv.Close()

	// Log in lazily, refresh before expiry, share tokens through a cache
	// (NewFileTokenCache("") shares them between processes).
	creds := core.UsernamePassword("alice", "s3cret", core.WithTokenCache(core.NewMemoryTokenCache()))
	c, err := core.NewClient(srv.URL, core.WithCredentials(creds))
	if err != nil {
		log.Fatal(err)
	}
	acct, err := c.Account(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(acct.Name, acct.ID)
	// Output:
	// alice acc-1
}
