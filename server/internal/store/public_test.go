package store

import (
	"testing"
)

// TestPublicRoleAddedAtStart: a database provisioned before public readers
// had a role of their own (its public role dropped here) gets one when the
// store opens again, with the reader's privileges on what the owner had
// created, and the owner's default privileges reach it for later tables.
func TestPublicRoleAddedAtStart(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	acct := newUserAccount(t, s, "pubstart")
	d, err := s.CreateDatabase(ctx, acct, "p", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	owner := tenantConn(t, s, d, OwnerSuffix)
	if _, err := owner.Exec(ctx, "CREATE SCHEMA extra; CREATE TABLE extra.t (v int); CREATE TABLE hidden (v int); "+
		"REVOKE SELECT ON hidden FROM "+ident(d.PGName+ReaderSuffix)); err != nil {
		t.Fatal(err)
	}
	owner.Close(ctx)
	public := d.PGName + PublicSuffix
	// As an older bitd left it: no public role at all.
	conn, err := s.connectTo(ctx, d.PGName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "DROP OWNED BY "+ident(public)); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if _, err := s.admin.Exec(ctx, "REVOKE ALL ON DATABASE "+ident(d.PGName)+" FROM "+ident(public)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.admin.Exec(ctx, "DROP ROLE "+ident(public)); err != nil {
		t.Fatal(err)
	}
	s.ensurePublicRoles(ctx)
	pub := tenantConn(t, s, d, PublicSuffix)
	var n int
	if err := pub.QueryRow(ctx, "SELECT count(*) FROM extra.t").Scan(&n); err != nil {
		t.Fatalf("public reader reads a table created before its role existed: %v", err)
	}
	if _, err := pub.Exec(ctx, "SELECT * FROM hidden"); sqlstate(err) != "42501" {
		t.Errorf("public reader reads a table the reader may not: %v; want 42501", err)
	}
	if _, err := pub.Exec(ctx, "INSERT INTO extra.t VALUES (1)"); sqlstate(err) != "42501" {
		t.Errorf("public reader INSERT: %v; want 42501", err)
	}
	owner = tenantConn(t, s, d, OwnerSuffix)
	if _, err := owner.Exec(ctx, "CREATE TABLE later (v int)"); err != nil {
		t.Fatal(err)
	}
	if err := pub.QueryRow(ctx, "SELECT count(*) FROM later").Scan(&n); err != nil {
		t.Errorf("public reader reads a table created after its role was added: %v", err)
	}
	var member bool
	if err := s.admin.QueryRow(ctx, `SELECT pg_has_role($1, $2, 'MEMBER') AND pg_has_role($1, $3, 'MEMBER')`, public, d.PGName, TenantsRole).Scan(&member); err != nil || !member {
		t.Errorf("public role grouped in %s and %s: %v, %v", d.PGName, TenantsRole, member, err)
	}
}
