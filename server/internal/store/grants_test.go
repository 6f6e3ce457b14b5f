package store

import (
	"testing"
	"time"
)

// TestGrants follows what (credential, database) pairs give as access
// changes: privacy, collaborators, service-account lists, revocation and
// expiry, deletion.
func TestGrants(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	ctx := t.Context()
	owner, err := s.CreateUser(ctx, "grantowner", "")
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateUser(ctx, "grantother", "")
	if err != nil {
		t.Fatal(err)
	}
	keyID := func(userID string) string {
		k, err := s.CreateUserAPIKey(ctx, userID)
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.PrincipalByAPIKey(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		return p.CredentialID
	}
	ownerKey, otherKey, revokedKey := keyID(owner.ID), keyID(other.ID), keyID(other.ID)
	if _, err := s.DB.Exec(ctx, "UPDATE api_keys SET revoked_at = now() WHERE id = $1", revokedKey); err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.CreateAccessToken(ctx, other.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := s.PrincipalByAccessToken(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	token := tp.CredentialID
	d, err := s.CreateDatabase(ctx, owner.DefaultAccount.ID, "granted", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	saID, err := s.CreateServiceAccount(ctx, owner.DefaultAccount.ID, owner.ID, "etl", "WRITER", []string{d.ID})
	if err != nil {
		t.Fatal(err)
	}
	saKey, err := s.CreateServiceAccountAPIKey(ctx, saID)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := s.PrincipalByAPIKey(ctx, saKey)
	if err != nil {
		t.Fatal(err)
	}
	sa := sp.CredentialID

	pairs := []Grant{{ownerKey, d.ID}, {otherKey, d.ID}, {token, d.ID}, {sa, d.ID}, {revokedKey, d.ID}, {ownerKey, "no-such-db"}}
	check := func(step string, want ...GrantState) {
		t.Helper()
		got, err := s.Grants(ctx, pairs)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: pair %d (%v) = %+v, want %+v", step, i, pairs[i], got[i], want[i])
			}
		}
	}
	pg := d.PGName
	none := GrantState{CredentialValid: true, PGName: pg}
	check("private", GrantState{true, pg, "OWNER", false}, none, none, GrantState{true, pg, "WRITER", false}, GrantState{false, pg, "", false}, GrantState{true, "", "", false})

	public := false
	if err := s.UpdateDatabase(ctx, d.ID, nil, &public, nil); err != nil {
		t.Fatal(err)
	}
	// A service account gets no public READER: only its list counts.
	check("public", GrantState{true, pg, "OWNER", false}, GrantState{true, pg, "READER", true}, GrantState{true, pg, "READER", true}, GrantState{true, pg, "WRITER", false}, GrantState{false, pg, "", false})

	if err := s.AddCollaborator(ctx, d.ID, other.ID, "WRITER"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB.Exec(ctx, "DELETE FROM service_account_databases WHERE service_account_id = $1", saID); err != nil {
		t.Fatal(err)
	}
	check("collaborator added, service account's list emptied", GrantState{true, pg, "OWNER", false}, GrantState{true, pg, "WRITER", false}, GrantState{true, pg, "WRITER", false}, none)

	private := true
	if err := s.UpdateDatabase(ctx, d.ID, nil, &private, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB.Exec(ctx, "DELETE FROM collaborators WHERE user_id = $1", other.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB.Exec(ctx, "UPDATE access_tokens SET expires_at = now() - interval '1 second' WHERE id = $1", token); err != nil {
		t.Fatal(err)
	}
	check("private again, collaborator removed, token expired", GrantState{true, pg, "OWNER", false}, none, GrantState{false, pg, "", false})

	if _, err := s.DB.Exec(ctx, "UPDATE databases SET deleted_at = now() WHERE id = $1", d.ID); err != nil {
		t.Fatal(err)
	}
	check("deleted", GrantState{true, "", "", false}, GrantState{true, "", "", false})
}
