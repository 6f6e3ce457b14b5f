package main

import (
	"strings"
	"testing"

	"github.com/bitkit-dev/bitkit/internal/bitdtest"
)

// TestShareE2E runs bit db share, collaborators and unshare against a real
// bitd and checks the other user's view through bit as well.
func TestShareE2E(t *testing.T) {
	s := bitdtest.Start(t)
	b := newBitCLI(t, s)
	key := "-k=" + s.APIKey
	guest := "-k=" + s.NewUser(t, "cli_guest", "")
	db := bitdtest.UniqueName("share")
	full := s.User + "/" + db
	b.ok(t, key, "db", "create", "-n", db)
	b.ok(t, key, "query", "-d", db, "-q", "create table t (x int)")

	out := decode(t, b.ok(t, key, "db", "share", "-d", db, "cli_guest"))
	if out["role"] != "READER" || out["username"] != "cli_guest" || out["database"] != full {
		t.Fatalf("share answered %v", out)
	}
	if got := b.ok(t, guest, "db", "list", "--format", "csv"); !strings.Contains(got, full+",") || !strings.Contains(got, ",READER,") {
		t.Fatalf("the collaborator's db list:\n%s", got)
	}
	r := b.run(t, "", guest, "query", "-d", full, "-q", "insert into t values (1)")
	if r.code == 0 || !strings.Contains(r.stderr, "permission denied") || !strings.Contains(r.stderr, "42501") {
		t.Fatalf("a READER's INSERT: exit %d\n%s", r.code, r.stderr)
	}

	b.ok(t, key, "db", "share", "-d", full, "cli_guest", "--role", "writer")
	b.ok(t, guest, "query", "-d", full, "-q", "insert into t values (1)")
	tab := b.ok(t, key, "db", "collaborators", "-d", db, "--format", "table")
	if !strings.Contains(tab, "cli_guest") || !strings.Contains(tab, "WRITER") {
		t.Fatalf("collaborators table:\n%s", tab)
	}
	r = b.run(t, "", guest, "db", "share", "-d", full, s.User, "--role", "READER")
	if r.code == 0 || !strings.Contains(r.stderr, "WRITER") {
		t.Fatalf("a WRITER sharing: exit %d\n%s", r.code, r.stderr)
	}
	r = b.run(t, "", key, "db", "share", "-d", db, "cli_nobody")
	if r.code == 0 || !strings.Contains(r.stderr, "cli_nobody") {
		t.Fatalf("sharing with an unknown user: exit %d\n%s", r.code, r.stderr)
	}
	r = b.run(t, "", key, "db", "share", "-d", db, "cli_guest", "--role", "OWNER")
	if r.code != 2 || !strings.Contains(r.stderr, "ADMIN, WRITER or READER") {
		t.Fatalf("--role OWNER: exit %d\n%s", r.code, r.stderr)
	}
	r = b.run(t, "", key, "db", "share", "-d", db)
	if r.code != 2 || !strings.Contains(r.stderr, "missing USER") {
		t.Fatalf("share without USER: exit %d\n%s", r.code, r.stderr)
	}

	b.ok(t, key, "db", "unshare", "-d", db, "cli_guest")
	if got := b.ok(t, guest, "db", "list", "--format", "csv"); strings.Contains(got, full) {
		t.Fatalf("the removed collaborator still lists %s:\n%s", full, got)
	}
	if got := decode(t, b.ok(t, key, "db", "collaborators", db)); len(got["collaborators"].([]any)) != 0 {
		t.Fatalf("collaborators after unshare: %v", got)
	}
	r = b.run(t, "", key, "db", "unshare", "-d", db, "cli_guest")
	if r.code == 0 || !strings.Contains(r.stderr, "not a collaborator") {
		t.Fatalf("unsharing twice: exit %d\n%s", r.code, r.stderr)
	}
}
