package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/internal/testwait"
)

// bitCLI runs the real bit binary against one bitd.
type bitCLI struct {
	bin string
	env []string // base environment: PATH, HOME, cache dir, endpoint
	dir string   // working directory ("" for the test's)
	s   *bitdtest.Server
}

func newBitCLI(t *testing.T, s *bitdtest.Server) *bitCLI {
	t.Helper()
	home := t.TempDir()
	return &bitCLI{
		bin: bitdtest.Bit(t),
		s:   s,
		env: []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + home,
			"XDG_CACHE_HOME=" + filepath.Join(home, "cache"),
			"BITKIT_ENDPOINT=" + s.Endpoint,
			"BITKIT_PG_ADDR=" + s.PGAddr,
		},
	}
}

// withEnv returns a copy of b with extra environment entries.
func (b *bitCLI) withEnv(kv ...string) *bitCLI {
	c := *b
	c.env = append(append([]string{}, b.env...), kv...)
	return &c
}

type bitResult struct {
	stdout, stderr string
	code           int
}

// run runs bit with args and stdin and returns what it printed and its exit
// status.
func (b *bitCLI) run(t *testing.T, stdin string, args ...string) bitResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Env = b.env
	cmd.Dir = b.dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run bit %q: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return bitResult{out.String(), errb.String(), code}
}

// ok runs bit and fails the test unless it exits 0.
func (b *bitCLI) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := b.run(t, "", args...)
	if r.code != 0 {
		t.Fatalf("bit %q: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// decode parses one JSON document from bit's stdout, keeping numbers exact.
func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := jsonx.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, s)
	}
	return m
}

func TestE2E(t *testing.T) {
	s := bitdtest.Start(t)
	b := newBitCLI(t, s)
	key := "-k=" + s.APIKey
	user := s.User

	// One database shared by the read-only subtests.
	shared := bitdtest.UniqueName("cli")
	b.ok(t, key, "db", "create", "-n", shared)
	sharedFull := user + "/" + shared
	b.ok(t, key, "query", "-d", shared, "-q", `create table people (id int8 primary key, name text, note text);
		insert into people values (1, 'alice', null), (2, 'bob, jr', 'line1'||chr(10)||'line2'), (3, 'say "hi"', '')`)

	t.Run("help without key or server", func(t *testing.T) {
		t.Parallel()
		bare := &bitCLI{bin: b.bin, env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "BITKIT_ENDPOINT=http://127.0.0.1:1"}}
		for _, args := range [][]string{{"--help"}, {"db", "--help"}, {"query", "-h"}, {"sa", "key", "revoke", "--help"}, {"help", "import"}} {
			r := bare.run(t, "", args...)
			if r.code != 0 || !strings.Contains(r.stdout, "Usage: bit") || r.stderr != "" {
				t.Errorf("bit %q: exit %d\n%s\n%s", args, r.code, r.stdout, r.stderr)
			}
		}
		r := bare.run(t, "", "db", "list", "--bogus")
		if r.code != 2 || !strings.Contains(r.stderr, "unknown flag --bogus") || r.stdout != "" {
			t.Errorf("usage error: exit %d\n%s", r.code, r.stderr)
		}
	})

	t.Run("db lifecycle", func(t *testing.T) {
		t.Parallel()
		name := bitdtest.UniqueName("life")
		created := decode(t, b.ok(t, key, "db", "create", "-n", name, "--storage-limit", "1000000000"))
		if created["name"] != user+"/"+name || created["is_private"] != true || created["role"] != "OWNER" {
			t.Fatalf("created: %v", created)
		}
		list := decode(t, b.ok(t, key, "db", "list"))
		found := false
		for _, d := range list["databases"].([]any) {
			if d.(map[string]any)["name"] == user+"/"+name {
				found = true
			}
		}
		if !found {
			t.Errorf("db list lacks %s: %v", name, list)
		}
		table := b.ok(t, key, "db", "list", "--format", "table")
		if !strings.HasPrefix(table, "name ") || !strings.Contains(table, user+"/"+name) {
			t.Errorf("table:\n%s", table)
		}
		info := decode(t, b.ok(t, key, "db", "info", "-d", user+"/"+name))
		if info["id"] != created["id"] {
			t.Errorf("info id %v != created %v", info["id"], created["id"])
		}
		newName := name + "x"
		upd := decode(t, b.ok(t, key, "db", "update", "-d", name, "-n", newName, "--public", "true"))
		if upd["name"] != user+"/"+newName || upd["is_private"] != false {
			t.Errorf("updated: %v", upd)
		}
		// python-bitdotio's spelling: -p is is_private.
		if upd := decode(t, b.ok(t, key, "db", "update", "-d", newName, "-p", "True")); upd["is_private"] != true {
			t.Errorf("-p True: %v", upd)
		}
		r := b.run(t, "", key, "db", "info", name)
		if r.code != 3 || !strings.Contains(strings.ToLower(r.stderr), "not found") || !strings.Contains(r.stderr, "status: 404") {
			t.Errorf("info of the old name: exit %d\n%s", r.code, r.stderr)
		}
		csv := b.ok(t, key, "db", "info", newName, "--format", "csv")
		if !strings.HasPrefix(csv, "name,id,role,is_private,") || !strings.Contains(csv, user+"/"+newName+",") {
			t.Errorf("csv:\n%s", csv)
		}
		del := decode(t, b.ok(t, key, "db", "delete", "-d", newName))
		if del["deleted"] != user+"/"+newName {
			t.Errorf("delete: %v", del)
		}
		r = b.run(t, "", key, "db", "info", "-d", newName)
		if r.code != 3 {
			t.Errorf("info after delete: exit %d\n%s", r.code, r.stderr)
		}
	})

	t.Run("query formats", func(t *testing.T) {
		t.Parallel()
		sql := "select id, name, note from people order by id"
		res := decode(t, b.ok(t, key, "query", "-d", sharedFull, "-q", sql))
		if res["query_string"] != sql || res["row_count"] != jsonx.Number("3") {
			t.Errorf("result: %v", res)
		}
		rows := res["data"].([]any)
		if len(rows) != 3 || rows[1].([]any)[1] != "bob, jr" || rows[0].([]any)[2] != nil || rows[2].([]any)[2] != "" {
			t.Errorf("rows: %v", rows)
		}
		if md := res["metadata"].(map[string]any); md["id"] != "bigint" || md["name"] != "text" {
			t.Errorf("metadata: %v", md)
		}

		objs := b.ok(t, key, "query", "-d", sharedFull, "-q", sql, "--objects")
		if !strings.Contains(objs, `"data":[{"id":1,"name":"alice","note":null},`) {
			t.Errorf("objects: %s", objs)
		}

		table := b.ok(t, key, "query", "-d", sharedFull, "-q", sql, "--format", "table")
		wantTable := "id | name     | note\n" +
			"---+----------+-------------\n" +
			" 1 | alice    | \n" +
			" 2 | bob, jr  | line1\\nline2\n" +
			" 3 | say \"hi\" | \n" +
			"(3 rows)\n"
		if table != wantTable {
			t.Errorf("table:\n%s\nwant:\n%s", table, wantTable)
		}

		csv := b.ok(t, key, "query", "-d", sharedFull, "-q", sql, "--format", "csv")
		wantCSV := "id,name,note\r\n1,alice,\r\n2,\"bob, jr\",\"line1\nline2\"\r\n3,\"say \"\"hi\"\"\",\"\"\r\n"
		if csv != wantCSV {
			t.Errorf("csv:\n%q\nwant\n%q", csv, wantCSV)
		}

		nd := b.ok(t, key, "query", "-d", sharedFull, "-q", sql, "--format", "ndjson")
		wantND := "[1,\"alice\",null]\n[2,\"bob, jr\",\"line1\\nline2\"]\n[3,\"say \\\"hi\\\"\",\"\"]\n"
		if nd != wantND {
			t.Errorf("ndjson:\n%s\nwant\n%s", nd, wantND)
		}
		ndo := b.ok(t, key, "query", "-d", sharedFull, "-q", sql, "--format", "ndjson", "--objects")
		if !strings.HasPrefix(ndo, "{\"id\":1,\"name\":\"alice\",\"note\":null}\n") || strings.Count(ndo, "\n") != 3 {
			t.Errorf("ndjson objects:\n%s", ndo)
		}

		out := filepath.Join(t.TempDir(), "res.csv")
		if got := b.ok(t, key, "query", "-d", sharedFull, "-q", sql, "--format", "csv", "-o", out); got != "" {
			t.Errorf("stdout with -o: %q", got)
		}
		if data, _ := os.ReadFile(out); string(data) != wantCSV {
			t.Errorf("-o file: %q", data)
		}

		ddl := b.ok(t, key, "query", "-d", sharedFull, "-q", "create temp table tt (x int)", "--format", "table")
		if strings.TrimSpace(ddl) != "CREATE TABLE" {
			t.Errorf("table output of DDL: %q", ddl)
		}
	})

	t.Run("exact values", func(t *testing.T) {
		t.Parallel()
		sql := `select 9223372036854775807::int8 as max8, (-9223372036854775808)::int8 as min8,
			1234567890123456789012345678901234567890.123456789::numeric as big,
			'2024-02-29 23:59:59.123456+05:30'::timestamptz as ts,
			'\xdeadbeef00'::bytea as bin, '{"a":[1,2.50,{"b":null}],"n":12345678901234567890}'::jsonb as doc,
			array[1,2,3]::int8[] as arr, array['x',null]::text[] as tarr, null::int as nothing, true as yes`
		out := b.ok(t, key, "query", "-d", sharedFull, "-q", sql)
		for _, want := range []string{
			`[[9223372036854775807,-9223372036854775808,1234567890123456789012345678901234567890.123456789,`,
			`"2024-02-29T18:29:59.123456`,
			`"3q2+7wA="`,
			`[1,2,3],["x",null],null,true]]`,
			`12345678901234567890`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %s:\n%s", want, out)
			}
		}
		csv := b.ok(t, key, "query", "-d", sharedFull, "-q", sql, "--format", "csv")
		if !strings.Contains(csv, "9223372036854775807,-9223372036854775808,1234567890123456789012345678901234567890.123456789,") {
			t.Errorf("csv:\n%s", csv)
		}
	})

	t.Run("sql from file and stdin", func(t *testing.T) {
		t.Parallel()
		f := filepath.Join(t.TempDir(), "q.sql")
		if err := os.WriteFile(f, []byte("-- a comment\nselect 'from file' as src\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if out := b.ok(t, key, "query", "-d", sharedFull, "-qf", f, "--format", "ndjson"); out != "[\"from file\"]\n" {
			t.Errorf("-qf FILE: %q", out)
		}
		r := b.run(t, "select 'from stdin' as src", key, "query", "-d", sharedFull, "-qf", "-", "--format", "ndjson")
		if r.code != 0 || r.stdout != "[\"from stdin\"]\n" {
			t.Errorf("-qf -: exit %d %q %s", r.code, r.stdout, r.stderr)
		}
		r = b.run(t, "", key, "query", "-d", sharedFull, "-qf", filepath.Join(t.TempDir(), "missing.sql"))
		if r.code != 3 || !strings.Contains(r.stderr, "missing.sql") {
			t.Errorf("missing file: exit %d %s", r.code, r.stderr)
		}
	})

	t.Run("params", func(t *testing.T) {
		t.Parallel()
		evil := "x'); drop table people; --"
		out := b.ok(t, key, "query", "-d", sharedFull, "-q", "select $1::text as v, $2::int + 1 as n, $3::text is null as isnull",
			"-p", evil, "-p", "41", "-p", `\N`, "--format", "ndjson")
		want := `["x'); drop table people; --",42,true]` + "\n"
		if out != want {
			t.Errorf("params: %q, want %q", out, want)
		}
		cnt := b.ok(t, key, "query", "-d", sharedFull, "-q", "select count(*) from people", "--format", "ndjson")
		if cnt != "[3]\n" {
			t.Errorf("people after the injection attempt: %q", cnt)
		}
	})

	t.Run("server errors", func(t *testing.T) {
		t.Parallel()
		r := b.run(t, "", key, "query", "-d", sharedFull, "-q", "select 1/0")
		if r.code != 3 || !strings.Contains(r.stderr, "division by zero") || !strings.Contains(r.stderr, "sqlstate: 22012") || r.stdout != "" {
			t.Errorf("division by zero: exit %d\nstdout %q\nstderr %s", r.code, r.stdout, r.stderr)
		}
		r = b.run(t, "", key, "query", "-d", sharedFull, "-q", "select nosuchcolumn from people", "--format", "ndjson")
		if r.code != 3 || !strings.Contains(r.stderr, "nosuchcolumn") || !strings.Contains(r.stderr, "42703") {
			t.Errorf("undefined column (stream): exit %d\n%s", r.code, r.stderr)
		}
		r = b.run(t, "", key, "query", "-d", sharedFull, "-q", "select pg_sleep(30)", "--timeout", "300ms")
		if r.code != 3 || !strings.Contains(strings.ToLower(r.stderr), "timeout") && !strings.Contains(r.stderr, "canceling statement") {
			t.Errorf("--timeout: exit %d\n%s", r.code, r.stderr)
		}
		r = b.run(t, "", key, "query", "-d", sharedFull, "-q", "select g from generate_series(1, 300000) g")
		if r.code != 3 || !strings.Contains(r.stderr, "status: 413") || !strings.Contains(r.stderr, "--format ndjson") {
			t.Errorf("buffered answer over the limit: exit %d\n%s", r.code, r.stderr)
		}
		r = b.run(t, "", "-k", "v2_"+strings.Repeat("n", 43), "db", "list")
		if r.code != 3 || !strings.Contains(r.stderr, "status: 401") || strings.Contains(r.stderr, "thisisnotarealkey") {
			t.Errorf("bad key: exit %d\n%s", r.code, r.stderr)
		}
		r = b.run(t, "", key, "account", "-a", "nosuchaccount_"+strconv.Itoa(os.Getpid()))
		if r.code != 3 || !strings.Contains(r.stderr, "does not exist or is not visible") {
			t.Errorf("unknown account: exit %d\n%s", r.code, r.stderr)
		}
	})

	t.Run("key from env", func(t *testing.T) {
		t.Parallel()
		for _, env := range []string{"BITIO_KEY", "BITKIT_API_KEY"} {
			out := b.withEnv(env+"="+s.APIKey).ok(t, "account")
			acct := decode(t, out)
			if acct["name"] != user || acct["id"] == "" {
				t.Errorf("%s: account %v", env, acct)
			}
		}
		// -k wins over the environment.
		r := b.withEnv("BITKIT_API_KEY=v2_"+strings.Repeat("w", 43)).run(t, "", key, "account")
		if r.code != 0 {
			t.Errorf("-k over env: exit %d %s", r.code, r.stderr)
		}
	})

	t.Run("login logout", func(t *testing.T) {
		t.Parallel()
		name := bitdtest.UniqueName("u")
		password := "pw-" + bitdtest.UniqueName("")
		s.NewUser(t, name, password)
		lb := b.withEnv() // own HOME/cache: fresh session store
		lb.env = append(lb.env, "XDG_CACHE_HOME="+t.TempDir())

		r := lb.withEnv("BITKIT_PASSWORD=wrong-"+password).run(t, "", "login", "-u", name)
		if r.code != 3 || strings.Contains(r.stderr, password) {
			t.Errorf("wrong password: exit %d %s", r.code, r.stderr)
		}
		out := lb.withEnv("BITKIT_PASSWORD="+password).ok(t, "login", "-u", name)
		if strings.Contains(out, password) {
			t.Fatalf("login output shows the password")
		}
		li := decode(t, out)
		if li["user"] != name || li["account"].(map[string]any)["name"] != name {
			t.Errorf("login: %v", li)
		}
		acct := decode(t, lb.ok(t, "account"))
		if acct["name"] != name {
			t.Errorf("account after login: %v", acct)
		}
		db := bitdtest.UniqueName("s")
		lb.ok(t, "db", "create", db)
		if got := lb.ok(t, "query", "-d", db, "-q", "select 40 + 2", "--format", "ndjson"); got != "[42]\n" {
			t.Errorf("query with the session: %q", got)
		}
		// The token cache holds no password.
		filepath.WalkDir(lb.cacheDir(), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if data, _ := os.ReadFile(p); bytes.Contains(data, []byte(password)) {
					t.Errorf("%s holds the password", p)
				}
			}
			return nil
		})
		lo := decode(t, lb.ok(t, "logout"))
		if lo["logged_out"] != true || lo["user"] != name {
			t.Errorf("logout: %v", lo)
		}
		r = lb.run(t, "", "db", "list")
		if r.code != 3 || !strings.Contains(r.stderr, "no credentials") {
			t.Errorf("after logout: exit %d %s", r.code, r.stderr)
		}
		// The password from stdin works too.
		r = lb.run(t, password+"\n", "login", "-u", name, "--password-stdin")
		if r.code != 0 {
			t.Errorf("--password-stdin: exit %d %s", r.code, r.stderr)
		}
	})

	t.Run("keys", func(t *testing.T) {
		t.Parallel()
		name := bitdtest.UniqueName("k")
		k0 := s.NewUser(t, name, "")
		kb := b.withEnv("BITKIT_API_KEY=" + k0)
		created := decode(t, kb.ok(t, "key", "create"))
		newKey, _ := created["api_key"].(string)
		if !strings.HasPrefix(newKey, "v2_") || created["username"] != name {
			t.Fatalf("key create: %v", created)
		}
		if acct := decode(t, kb.ok(t, "-k", newKey, "account")); acct["name"] != name {
			t.Errorf("account with the new key: %v", acct)
		}
		rev := kb.run(t, "", "key", "revoke", newKey)
		if rev.code != 0 || strings.Contains(rev.stdout+rev.stderr, newKey) {
			t.Errorf("revoke: exit %d %s %s", rev.code, rev.stdout, rev.stderr)
		}
		r := kb.run(t, "", "-k", newKey, "account")
		if r.code != 3 || !strings.Contains(r.stderr, "status: 401") || strings.Contains(r.stderr, newKey) {
			t.Errorf("revoked key: exit %d %s", r.code, r.stderr)
		}
		kb.ok(t, "key", "revoke", "--all")
		r = kb.run(t, "", "account")
		if r.code != 3 {
			t.Errorf("after revoke --all: exit %d %s", r.code, r.stderr)
		}
	})

	t.Run("connect", func(t *testing.T) {
		t.Parallel()
		host, port, _ := strings.Cut(s.PGAddr, ":")
		out := b.ok(t, key, "connect", "-d", shared)
		want := "postgresql://" + user + ":REDACTED@" + host + ":" + port + "/" + user + "%2F" + shared + "?sslmode=require\n"
		if out != want {
			t.Errorf("connect: %q, want %q", out, want)
		}
		shown := b.ok(t, key, "connect", "-d", shared, "--show-password")
		if !strings.Contains(shown, ":"+s.APIKey+"@") {
			t.Errorf("--show-password lacks the key")
		}
		if s.PGAddr == "" {
			t.Fatal("bitd announced no BITKIT_PG_ADDR")
		}
		r := b.run(t, "", key, "psql", "-d", shared, "--", "-X", "-A", "-t", "-c", "select count(*) from people")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "3" {
			t.Errorf("psql: exit %d\nstdout %q\nstderr %s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("import export", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		src := filepath.Join(dir, "cities.csv")
		if err := os.WriteFile(src, []byte("city,pop\nParis,2161000\nOslo,709000\n\"Rio, RJ\",6748000\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := b.run(t, "", key, "import", "-d", shared, "-t", "cities", src)
		if r.code != 0 {
			t.Fatalf("import: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		job := decode(t, r.stdout)
		if job["state"] != "DONE" || job["id"] == "" {
			t.Errorf("import job: %v", job)
		}
		if r.stderr != "" {
			t.Errorf("progress drawn without a terminal: %q", r.stderr)
		}
		cnt := b.ok(t, key, "query", "-d", shared, "-q", "select city, pop::text from cities order by city", "--format", "ndjson")
		if cnt != "[\"Oslo\",\"709000\"]\n[\"Paris\",\"2161000\"]\n[\"Rio, RJ\",\"6748000\"]\n" {
			t.Errorf("imported rows: %q", cnt)
		}

		out := filepath.Join(dir, "out.csv")
		r = b.run(t, "", key, "export", "-d", shared, "-q", "select city from cities order by city", "-o", out)
		if r.code != 0 {
			t.Fatalf("export: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		if ej := decode(t, r.stdout); ej["state"] != "DONE" {
			t.Errorf("export job: %v", ej)
		}
		data, err := os.ReadFile(out)
		if err != nil || !strings.Contains(string(data), "Oslo") || !strings.Contains(string(data), "\"Rio, RJ\"") {
			t.Errorf("exported file: %q %v", data, err)
		}
		r = b.run(t, "", key, "export", "-d", shared, "-t", "cities", "--format", "json", "-o", "-")
		if r.code != 0 || !strings.Contains(r.stdout, "Paris") {
			t.Errorf("export to stdout: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}

		// Without -o: saved under the job's file name in the working
		// directory, never over an existing file.
		wd := *b
		wd.dir = t.TempDir()
		r = wd.run(t, "", key, "export", "-d", shared, "-t", "cities", "--format", "json")
		if r.code != 0 {
			t.Fatalf("export without -o: exit %d\n%s", r.code, r.stderr)
		}
		ents, _ := os.ReadDir(wd.dir)
		if len(ents) != 1 || !strings.HasSuffix(ents[0].Name(), ".json") {
			t.Fatalf("files after export without -o: %v", ents)
		}
		saved := filepath.Join(wd.dir, ents[0].Name())
		before, _ := os.ReadFile(saved)
		r = wd.run(t, "", key, "export", "-d", shared, "-t", "cities", "--format", "json")
		if r.code != 3 || !strings.Contains(r.stderr, "already exists") {
			t.Errorf("second export without -o: exit %d %s", r.code, r.stderr)
		}
		if after, _ := os.ReadFile(saved); !bytes.Equal(before, after) || !strings.Contains(string(after), "Oslo") {
			t.Errorf("the existing file changed or is wrong: %q", after)
		}

		bad := filepath.Join(dir, "bad.csv")
		if err := os.WriteFile(bad, []byte("a,b\n1,2\n3\n\"unterminated\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r = b.run(t, "", key, "import", "-d", shared, "-t", "people", bad)
		if r.code != 3 || !strings.Contains(r.stderr, "failed") {
			t.Errorf("failing import: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("service accounts", func(t *testing.T) {
		t.Parallel()
		name := bitdtest.UniqueName("sa")
		sa := decode(t, b.ok(t, key, "sa", "create", "-n", name, "--role", "reader", "-d", shared))
		id, _ := sa["id"].(string)
		if id == "" || sa["role"] != "READER" || sa["name"] != name {
			t.Fatalf("sa create: %v", sa)
		}
		list := b.ok(t, key, "sa", "list")
		if !strings.Contains(list, id) {
			t.Errorf("sa list lacks %s: %s", id, list)
		}
		info := decode(t, b.ok(t, key, "sa", "info", id))
		if info["name"] != name {
			t.Errorf("sa info: %v", info)
		}
		k := decode(t, b.ok(t, key, "sa", "key", "create", id))
		saKey, _ := k["api_key"].(string)
		if !strings.HasPrefix(saKey, "v2_") {
			t.Fatalf("sa key: %v", k)
		}
		if got := b.ok(t, "-k", saKey, "query", "-d", sharedFull, "-q", "select count(*) from people", "--format", "ndjson"); got != "[3]\n" {
			t.Errorf("query as the service account: %q", got)
		}
		r := b.run(t, "", "-k", saKey, "query", "-d", sharedFull, "-q", "delete from people")
		if r.code != 3 {
			t.Errorf("a reader deleted rows: exit %d %s", r.code, r.stdout)
		}
		b.ok(t, key, "sa", "key", "revoke", id)
		r = b.run(t, "", "-k", saKey, "db", "list")
		if r.code != 3 {
			t.Errorf("revoked sa key still works: exit %d", r.code)
		}
	})
}

// cacheDir is the token cache directory the CLI uses in this environment.
func (b *bitCLI) cacheDir() string {
	dir := ""
	for _, kv := range b.env {
		if v, ok := strings.CutPrefix(kv, "XDG_CACHE_HOME="); ok {
			dir = v
		}
	}
	return filepath.Join(dir, "bitkit")
}

// TestStreamMemoryIsFlat streams 200k and then 2M rows as ndjson through the
// CLI and checks that the CLI's peak RSS does not grow with the row count.
func TestStreamMemoryIsFlat(t *testing.T) {
	s := bitdtest.Start(t)
	b := newBitCLI(t, s)
	db := bitdtest.UniqueName("mem")
	b.ok(t, "-k", s.APIKey, "db", "create", db)

	peak := func(rows int) (int64, int) {
		cmd := exec.CommandContext(t.Context(), b.bin, "-k", s.APIKey, "query", "-d", db, "--format", "ndjson",
			"-q", "select g, 'row number ' || g as label from generate_series(1, "+strconv.Itoa(rows)+") g")
		cmd.Env = b.env
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := 0
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines++
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%d rows: %v\n%s", rows, err, errb.String())
		}
		ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		if !ok {
			t.Fatal("no rusage")
		}
		return ru.Maxrss, lines // KiB on Linux
	}
	small, n1 := peak(200_000)
	large, n2 := peak(2_000_000)
	if n1 != 200_000 || n2 != 2_000_000 {
		t.Fatalf("lines: %d and %d", n1, n2)
	}
	t.Logf("peak RSS: 200k rows %d KiB, 2M rows %d KiB", small, large)
	// Buffering 2M rows would take hundreds of MiB; streaming stays within
	// noise of the 200k run.
	if large > small+16*1024 {
		t.Errorf("peak RSS grew from %d KiB (200k rows) to %d KiB (2M rows): the stream is buffered", small, large)
	}
}

// TestLoginSessionExpiry checks that a session that ended (here: it reached
// its absolute lifetime, however often its tokens were refreshed) is
// reported as such, with the way out, and that logging in again works.
func TestLoginSessionExpiry(t *testing.T) {
	s := bitdtest.Start(t, bitdtest.Args("--token-ttl", "2s", "--refresh-lifetime", "5s"))
	b := newBitCLI(t, s)
	name := bitdtest.UniqueName("exp")
	password := "pw-" + bitdtest.UniqueName("")
	s.NewUser(t, name, password)
	lb := b.withEnv("BITKIT_PASSWORD=" + password)
	lb.ok(t, "login", "-u", name)
	var r bitResult
	_ = testwait.Wait(t.Context(), 60*time.Second, func() error {
		if r = b.run(t, "", "account"); r.code == 0 {
			return errors.New("the session has not expired yet")
		}
		return nil
	})
	if r.code != 3 || !strings.Contains(r.stderr, "has expired") || !strings.Contains(r.stderr, "bit login -u "+name) {
		t.Fatalf("expired session: exit %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, password) {
		t.Fatal("stderr shows the password")
	}
	lb.ok(t, "login", "-u", name)
	if acct := decode(t, b.ok(t, "account")); acct["name"] != name {
		t.Errorf("account after a new login: %v", acct)
	}
}
