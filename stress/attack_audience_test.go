package stress

// Audiences: the owner, a WRITER collaborator, a READER collaborator, a
// READER service account and a public reader of one database each run a
// query through the wire proxy while every one of them looks for the
// others' query text in pg_stat_activity through the HTTP API. As
// provisioned (pg_stat_activity hidden from tenants) nobody sees anyone;
// with pg_stat_activity opened to PUBLIC in that database (what a cluster
// whose bitd admin is not a superuser leaves), each sees only the sessions
// of its own PostgreSQL role: public readers have a role of their own,
// READER collaborators and READER service accounts share the readers' one.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/jackc/pgx/v5"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

type audience struct {
	name string
	key  string
}

func TestAttackAudienceActivity(t *testing.T) {
	t.Parallel()
	s := startScanned(t)
	needWire(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	owner := newClient(s.Endpoint, s.APIKey)
	db := owner.createDB(t, "aud"+randSuffix(), false) // public
	account, dbName, _ := strings.Cut(db, "/")
	user := func(role string) string {
		name := role + randSuffix()
		key := s.NewUser(t, name, "")
		remember(key)
		if role != "public" {
			r := owner.do(t, "PUT", "/v2beta/db/"+account+"/"+dbName+"/collaborators/"+name, map[string]any{"role": strings.ToUpper(role)})
			if r.Status != 200 && r.Status != 201 {
				t.Fatalf("make %s a %s collaborator: %d %s", name, role, r.Status, r.Raw)
			}
		}
		return key
	}
	r := owner.do(t, "POST", "/v2beta/service-account/", map[string]any{"name": "ro" + randSuffix(), "role": "READER", "databases": []string{db}})
	if r.Status != 201 && r.Status != 200 {
		t.Fatalf("create service account: %d %s", r.Status, r.Raw)
	}
	r = owner.do(t, "POST", "/v2beta/service-account/"+fmt.Sprint(r.Body["id"])+"/api-key/", nil)
	saKey := r.str("api_key")
	if r.Status != 200 || saKey == "" {
		t.Fatalf("create service-account key: %d %s", r.Status, r.Raw)
	}
	remember(saKey)
	auds := []audience{
		{"owner", s.APIKey},
		{"writer", user("writer")},
		{"reader", user("reader")},
		{"service", saKey},
		{"public", user("public")},
	}
	// Which pairs share a PostgreSQL role (and so may see each other once
	// pg_stat_activity is readable): only the READER collaborator and the
	// READER service account.
	sameRole := func(a, b string) bool {
		return a == b || (a == "reader" && b == "service") || (a == "service" && b == "reader")
	}

	look := func(phase string, opened bool) {
		// Every audience runs a marked query in a wire session.
		var wg sync.WaitGroup
		qctx, qcancel := context.WithCancel(ctx)
		for _, a := range auds {
			conn, err := proxyConnect(ctx, s.PGAddr, db, a.key)
			if err != nil {
				t.Fatalf("%s: connect through the wire proxy as %s: %v", phase, a.name, err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close(context.Background())
				_, _ = conn.Exec(qctx, "SELECT pg_sleep(60), 'marker-"+a.name+"'")
			}()
		}
		defer func() { qcancel(); wg.Wait() }()
		// Wait until every marked query runs (seen by the cluster's superuser).
		admin := superConn(ctx, t, "")
		testwait.Eventually(t, 30*time.Second, func() error {
			var n int
			if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60), ''marker-%'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != len(auds) {
				return fmt.Errorf("%s: %d of %d marked queries running", phase, n, len(auds))
			}
			return nil
		})
		for _, viewer := range auds {
			c := newClient(s.Endpoint, viewer.key)
			r := c.query(t, db, "SELECT coalesce(string_agg(query, ' | '), '') AS seen FROM pg_stat_activity WHERE pid <> pg_backend_pid()")
			seen := string(r.Raw)
			if r.Status != 200 {
				seen = ""
			}
			for _, other := range auds {
				visible := strings.Contains(seen, "marker-"+other.name)
				want := opened && sameRole(viewer.name, other.name)
				if visible != want {
					t.Errorf("%s: %s sees %s's query text: %v, want %v (answer %d %.300s)", phase, viewer.name, other.name, visible, want, r.Status, r.Raw)
				}
			}
		}
		what := "nobody sees another audience's query text (pg_stat_activity is closed to tenants)"
		if opened {
			what = "each sees only its own role's sessions: owner, writer and public reader alone; the READER collaborator and the READER service account (one role) each other"
		}
		record(t, "owner, WRITER and READER collaborators, READER service account and public reader each run a query through the wire proxy and read pg_stat_activity ("+phase+")", what)
	}
	look("as provisioned", false)

	// As a cluster whose bitd admin could not revoke them leaves it.
	var pgName string
	if err := metadataConn(t, s).QueryRow(ctx, `SELECT d.pg_name FROM databases d JOIN accounts a ON a.id = d.account_id
		WHERE lower(a.name) = lower($1) AND lower(d.name) = lower($2) AND d.deleted_at IS NULL`, account, dbName).Scan(&pgName); err != nil {
		t.Fatal(err)
	}
	if _, err := superConn(ctx, t, pgName).Exec(ctx, "GRANT SELECT ON pg_stat_activity TO PUBLIC; GRANT EXECUTE ON FUNCTION pg_stat_get_activity(integer) TO PUBLIC"); err != nil {
		t.Fatal(err)
	}
	look("pg_stat_activity opened to PUBLIC in the database", true)
}

// superConn connects to database db ("" : the admin URL's) as the test
// cluster's superuser.
func superConn(ctx context.Context, t *testing.T, db string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(bitdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	if db != "" {
		cfg.Database = db
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect as the cluster's superuser: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
