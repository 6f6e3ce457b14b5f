package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Grant is a credential (API key or access token id) and a platform
// database id whose current permission Grants reports.
type Grant struct {
	CredentialID string
	DatabaseID   string
}

// GrantState is what a Grant gives now.
type GrantState struct {
	// CredentialValid: the key or token is neither revoked nor expired.
	CredentialValid bool
	// PGName is the database's real PostgreSQL name; "" when it is deleted
	// or does not exist.
	PGName string
	// Role is the credential's permission on the database, as DatabaseFor
	// computes it (READER for a user on a public database); "" when it has
	// none or the credential is invalid.
	Role string
	// Public: Role is READER only because the database is public (the
	// public readers' role).
	Public bool
}

// PGRole is the login role the grant maps to ("" when none).
func (st GrantState) PGRole() string {
	if st.Role == "" || st.PGName == "" {
		return ""
	}
	return LoginRole(st.PGName, st.Role, st.Public)
}

// grantsSQL resolves each (credential, database) pair in one statement:
// the credential's principal, then its role on the live database.
const grantsSQL = `WITH g AS (SELECT * FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS g (cred_id, db_id, i)),
c AS (
	SELECT k.id, k.user_id, k.service_account_id FROM api_keys k WHERE k.id = ANY ($1) AND k.revoked_at IS NULL
	UNION ALL
	SELECT t.id, t.user_id, NULL FROM access_tokens t WHERE t.id = ANY ($1) AND t.revoked_at IS NULL AND t.expires_at > now()
)
SELECT DISTINCT ON (g.i) g.i, c.id IS NOT NULL, coalesce(d.pg_name, ''),
	CASE WHEN c.id IS NULL OR d.id IS NULL THEN ''
	WHEN c.user_id IS NOT NULL THEN
		coalesce((SELECT m.role FROM account_members m WHERE m.account_id = d.account_id AND m.user_id = c.user_id), '') || ',' ||
		coalesce((SELECT co.role FROM collaborators co WHERE co.database_id = d.id AND co.user_id = c.user_id), '') || ',' ||
		CASE WHEN d.is_private THEN '' ELSE 'READER' END
	ELSE coalesce((SELECT sa.role FROM service_account_databases sd JOIN service_accounts sa ON sa.id = sd.service_account_id
		WHERE sd.database_id = d.id AND sa.id = c.service_account_id), '') END
FROM g LEFT JOIN c ON c.id = g.cred_id LEFT JOIN databases d ON d.id = g.db_id AND d.deleted_at IS NULL
ORDER BY g.i`

// Grants reports, in one query, what each (credential, database) pair
// gives now: the wire proxy re-checks its open sessions with it.
func (s *Store) Grants(ctx context.Context, grants []Grant) ([]GrantState, error) {
	creds := make([]string, len(grants))
	dbs := make([]string, len(grants))
	for i, g := range grants {
		creds[i], dbs[i] = g.CredentialID, g.DatabaseID
	}
	rows, err := s.DB.Query(ctx, grantsSQL, creds, dbs)
	if err != nil {
		return nil, fmt.Errorf("check grants: %w", err)
	}
	out := make([]GrantState, len(grants))
	var (
		i     int64
		st    GrantState
		roles string
	)
	_, err = pgx.ForEachRow(rows, []any{&i, &st.CredentialValid, &st.PGName, &roles}, func() error {
		if i < 1 || int(i) > len(out) {
			return fmt.Errorf("row %d out of range", i)
		}
		st.Role = bestOf(roles)
		parts := strings.Split(roles, ",")
		st.Public = len(parts) == 3 && st.Role == "READER" && BestRole(parts[0], parts[1]) == ""
		out[i-1] = st
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check grants: %w", err)
	}
	return out, nil
}
