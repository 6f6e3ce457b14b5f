package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/jackc/pgx/v5"
)

// Account is an account (personal or organisation).
type Account struct {
	ID        string
	Name      string
	Kind      string // "personal" or "org"
	CreatedAt time.Time
}

// User is a user.
type User struct {
	ID             string
	Name           string
	PasswordHash   string // "" when the user has no password
	DefaultAccount Account
}

// CreateUser creates a user and its personal account of the same name (the
// user is its OWNER). passwordHash may be "". A taken user or account name
// is ErrConflict.
func (s *Store) CreateUser(ctx context.Context, name, passwordHash string) (*User, error) {
	var u *User
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		var acc Account
		if err := tx.QueryRow(ctx, `INSERT INTO accounts (name, kind) VALUES ($1, 'personal') RETURNING id, name, kind, created_at`, name).
			Scan(&acc.ID, &acc.Name, &acc.Kind, &acc.CreatedAt); err != nil {
			return err
		}
		var uid string
		if err := tx.QueryRow(ctx, `INSERT INTO users (name, password_hash, default_account) VALUES ($1, nullif($2, ''), $3) RETURNING id`,
			name, passwordHash, acc.ID).Scan(&uid); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO account_members (account_id, user_id, role) VALUES ($1, $2, 'OWNER')`, acc.ID, uid); err != nil {
			return err
		}
		u = &User{ID: uid, Name: name, PasswordHash: passwordHash, DefaultAccount: acc}
		return nil
	})
	if isUniqueViolation(err) {
		return nil, ErrConflict
	}
	if err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// EnsureUser returns the user called name, creating it (with its personal
// account) when missing.
func (s *Store) EnsureUser(ctx context.Context, name string) (*User, error) {
	u, err := s.UserByName(ctx, name)
	if err == nil {
		return u, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	u, err = s.CreateUser(ctx, name, "")
	if errors.Is(err, ErrConflict) { // created concurrently
		return s.UserByName(ctx, name)
	}
	return u, err
}

// UserByName finds a user by name (case-insensitively).
func (s *Store) UserByName(ctx context.Context, name string) (*User, error) {
	var u User
	var hash *string
	err := s.DB.QueryRow(ctx, `SELECT u.id, u.name, u.password_hash, a.id, a.name, a.kind, a.created_at
		FROM users u JOIN accounts a ON a.id = u.default_account WHERE lower(u.name) = lower($1)`, name).
		Scan(&u.ID, &u.Name, &hash, &u.DefaultAccount.ID, &u.DefaultAccount.Name, &u.DefaultAccount.Kind, &u.DefaultAccount.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("look up user: %w", err)
	}
	if hash != nil {
		u.PasswordHash = *hash
	}
	return &u, nil
}

// SetPassword replaces a user's password hash and revokes the user's login
// sessions (their refresh tokens and the access tokens they issued), so a
// new password ends every session the old one started. (Deleting a user
// deletes its sessions with it.)
func (s *Store) SetPassword(ctx context.Context, userID, passwordHash string) error {
	found := true
	err := s.changeAccess(ctx, func(tx pgx.Tx) ([]string, error) {
		tag, err := tx.Exec(ctx, `UPDATE users SET password_hash = nullif($2, '') WHERE id = $1`, userID, passwordHash)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 0 {
			found = false
			return nil, nil
		}
		ids, err := revokeUserSessions(ctx, tx, userID, "password")
		return credTags(ids), err
	})
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	if !found {
		return ErrNotFound
	}
	return nil
}

// CreateOrg creates an organisation account owned by ownerUserID.
func (s *Store) CreateOrg(ctx context.Context, name, ownerUserID string) (*Account, error) {
	var acc Account
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO accounts (name, kind) VALUES ($1, 'org') RETURNING id, name, kind, created_at`, name).
			Scan(&acc.ID, &acc.Name, &acc.Kind, &acc.CreatedAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO account_members (account_id, user_id, role) VALUES ($1, $2, 'OWNER')`, acc.ID, ownerUserID)
		return err
	})
	if isUniqueViolation(err) {
		return nil, ErrConflict
	}
	if err != nil {
		return nil, fmt.Errorf("create account: %w", err)
	}
	return &acc, nil
}

// AccountByName finds an account by name (case-insensitively).
func (s *Store) AccountByName(ctx context.Context, name string) (*Account, error) {
	var a Account
	err := s.DB.QueryRow(ctx, `SELECT id, name, kind, created_at FROM accounts WHERE lower(name) = lower($1)`, name).
		Scan(&a.ID, &a.Name, &a.Kind, &a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("look up account: %w", err)
	}
	return &a, nil
}

// SetMember adds userID to accountID with role, or changes its role.
func (s *Store) SetMember(ctx context.Context, accountID, userID, role string) error {
	err := s.changeAccess(ctx, func(tx pgx.Tx) ([]string, error) {
		_, err := tx.Exec(ctx, `INSERT INTO account_members (account_id, user_id, role) VALUES ($1, $2, $3)
		ON CONFLICT (account_id, user_id) DO UPDATE SET role = EXCLUDED.role`, accountID, userID, role)
		return []string{AccountTag(accountID), UserTag(userID)}, err
	})
	if err != nil {
		return fmt.Errorf("add member: %w", err)
	}
	return nil
}

// MemberRole returns userID's role in accountID, or "" when not a member.
func (s *Store) MemberRole(ctx context.Context, accountID, userID string) (string, error) {
	var role string
	err := s.DB.QueryRow(ctx, `SELECT role FROM account_members WHERE account_id = $1 AND user_id = $2`, accountID, userID).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up membership: %w", err)
	}
	return role, nil
}

// CreateUserAPIKey issues a new API key for a user and returns it (the only
// time the plaintext exists).
func (s *Store) CreateUserAPIKey(ctx context.Context, userID string) (string, error) {
	key := secret.NewAPIKey()
	if _, err := s.DB.Exec(ctx, `INSERT INTO api_keys (hash, user_id) VALUES ($1, $2)`, secret.HashCredential(key), userID); err != nil {
		return "", fmt.Errorf("create API key: %w", err)
	}
	return key, nil
}

// CreateServiceAccountAPIKey issues a new API key for a service account.
func (s *Store) CreateServiceAccountAPIKey(ctx context.Context, saID string) (string, error) {
	key := secret.NewAPIKey()
	if _, err := s.DB.Exec(ctx, `INSERT INTO api_keys (hash, service_account_id) VALUES ($1, $2)`, secret.HashCredential(key), saID); err != nil {
		return "", fmt.Errorf("create API key: %w", err)
	}
	return key, nil
}

// RevokeAPIKey revokes the live key with this plaintext. When ownerUserID
// is not "", only a key of that user is revoked. It returns the key's id, or
// ErrNotFound.
func (s *Store) RevokeAPIKey(ctx context.Context, key, ownerUserID string) (string, error) {
	var id string
	err := s.changeAccess(ctx, func(tx pgx.Tx) ([]string, error) {
		err := tx.QueryRow(ctx, `UPDATE api_keys SET revoked_at = now()
		WHERE hash = $1 AND revoked_at IS NULL AND ($2 = '' OR user_id = $2) RETURNING id`,
			secret.HashCredential(key), ownerUserID).Scan(&id)
		return []string{CredTag(id)}, err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("revoke API key: %w", err)
	}
	return id, nil
}

// RevokeUserAPIKeys revokes every live key of a user and returns their ids.
func (s *Store) RevokeUserAPIKeys(ctx context.Context, userID string) ([]string, error) {
	return s.revokeKeys(ctx, `UPDATE api_keys SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL RETURNING id`, userID, UserTag(userID))
}

// RevokeServiceAccountAPIKeys revokes every live key of a service account.
func (s *Store) RevokeServiceAccountAPIKeys(ctx context.Context, saID string) ([]string, error) {
	return s.revokeKeys(ctx, `UPDATE api_keys SET revoked_at = now() WHERE service_account_id = $1 AND revoked_at IS NULL RETURNING id`, saID, SATag(saID))
}

// revokeKeys runs the revoking statement q for id and announces tag.
func (s *Store) revokeKeys(ctx context.Context, q, id, tag string) ([]string, error) {
	var ids []string
	err := s.changeAccess(ctx, func(tx pgx.Tx) ([]string, error) {
		rows, err := tx.Query(ctx, q, id)
		if err != nil {
			return nil, err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return []string{tag}, err
	})
	if err != nil {
		return nil, fmt.Errorf("revoke API keys: %w", err)
	}
	return ids, nil
}

// PrincipalByAPIKey returns the principal of a live API key, or ErrNotFound.
func (s *Store) PrincipalByAPIKey(ctx context.Context, key string) (*authn.Principal, error) {
	var (
		keyID                        string
		uid, uname, uaid, uaname     *string
		said, saname, saaid, saaname *string
		lastUsed                     *time.Time
	)
	err := s.DB.QueryRow(ctx, `SELECT k.id, k.last_used_at, u.id, u.name, ua.id, ua.name, sa.id, sa.name, saa.id, saa.name
		FROM api_keys k
		LEFT JOIN users u ON u.id = k.user_id
		LEFT JOIN accounts ua ON ua.id = u.default_account
		LEFT JOIN service_accounts sa ON sa.id = k.service_account_id
		LEFT JOIN accounts saa ON saa.id = sa.account_id
		WHERE k.hash = $1 AND k.revoked_at IS NULL`, secret.HashCredential(key)).
		Scan(&keyID, &lastUsed, &uid, &uname, &uaid, &uaname, &said, &saname, &saaid, &saaname)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("look up API key: %w", err)
	}
	if lastUsed == nil || time.Since(*lastUsed) > time.Minute {
		_, _ = s.DB.Exec(ctx, `UPDATE api_keys SET last_used_at = now() WHERE id = $1`, keyID)
	}
	p := &authn.Principal{Credential: authn.CredAPIKey, CredentialID: keyID}
	switch {
	case uid != nil:
		p.Kind, p.UserID, p.Name, p.AccountID, p.AccountName = authn.KindUser, *uid, *uname, *uaid, *uaname
	case said != nil:
		p.Kind, p.ServiceAccountID, p.Name, p.AccountID, p.AccountName = authn.KindServiceAccount, *said, *saname, *saaid, *saaname
	default:
		return nil, ErrNotFound
	}
	return p, nil
}

// CreateAccessToken issues an access token for a user, valid for ttl.
func (s *Store) CreateAccessToken(ctx context.Context, userID string, ttl time.Duration) (token string, expires time.Time, err error) {
	token = secret.NewAccessToken()
	err = s.DB.QueryRow(ctx, `INSERT INTO access_tokens (hash, user_id, expires_at) VALUES ($1, $2, now() + $3::interval) RETURNING expires_at`,
		secret.HashCredential(token), userID, fmt.Sprintf("%d milliseconds", ttl.Milliseconds())).Scan(&expires)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("create access token: %w", err)
	}
	return token, expires, nil
}

// PrincipalByAccessToken returns the principal of a live, unexpired token.
func (s *Store) PrincipalByAccessToken(ctx context.Context, token string) (*authn.Principal, error) {
	p, _, err := s.AccessTokenPrincipal(ctx, token)
	return p, err
}

// AccessTokenPrincipal is PrincipalByAccessToken that also returns when
// the token expires.
func (s *Store) AccessTokenPrincipal(ctx context.Context, token string) (*authn.Principal, time.Time, error) {
	p := &authn.Principal{Kind: authn.KindUser, Credential: authn.CredToken}
	var expires time.Time
	err := s.DB.QueryRow(ctx, `SELECT t.id, u.id, u.name, a.id, a.name, t.expires_at
		FROM access_tokens t JOIN users u ON u.id = t.user_id JOIN accounts a ON a.id = u.default_account
		WHERE t.hash = $1 AND t.revoked_at IS NULL AND t.expires_at > now()`, secret.HashCredential(token)).
		Scan(&p.CredentialID, &p.UserID, &p.Name, &p.AccountID, &p.AccountName, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, time.Time{}, ErrNotFound
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("look up access token: %w", err)
	}
	return p, expires, nil
}

// RevokeAccessToken revokes a token by id.
func (s *Store) RevokeAccessToken(ctx context.Context, id string) error {
	err := s.changeAccess(ctx, func(tx pgx.Tx) ([]string, error) {
		_, err := tx.Exec(ctx, `UPDATE access_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, id)
		return []string{CredTag(id)}, err
	})
	if err != nil {
		return fmt.Errorf("revoke access token: %w", err)
	}
	return nil
}

// CredentialValid reports whether the API key or access token with this id
// is still live (not revoked, not expired).
func (s *Store) CredentialValid(ctx context.Context, id string) bool {
	var ok bool
	err := s.DB.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1 AND revoked_at IS NULL)
		OR EXISTS (SELECT 1 FROM access_tokens WHERE id = $1 AND revoked_at IS NULL AND expires_at > now())`, id).Scan(&ok)
	return err == nil && ok
}

// ServiceAccount is a service account with its databases and key counts.
type ServiceAccount struct {
	ID           string
	AccountID    string
	Name         string
	Role         string
	CreatedAt    time.Time
	Databases    []SADatabase
	TokenCount   int
	ActiveTokens int
}

// SADatabase is one database a service account may use.
type SADatabase struct {
	ID       string
	FullName string
}

// CreateServiceAccount creates a service account in accountID with access to
// databaseIDs at role.
func (s *Store) CreateServiceAccount(ctx context.Context, accountID, createdBy, name, role string, databaseIDs []string) (string, error) {
	var id string
	err := s.changeAccess(ctx, func(tx pgx.Tx) ([]string, error) {
		if err := tx.QueryRow(ctx, `INSERT INTO service_accounts (account_id, created_by, name, role) VALUES ($1, $2, $3, $4) RETURNING id`,
			accountID, createdBy, name, role).Scan(&id); err != nil {
			return nil, err
		}
		for _, d := range databaseIDs {
			if _, err := tx.Exec(ctx, `INSERT INTO service_account_databases (service_account_id, database_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, id, d); err != nil {
				return nil, err
			}
		}
		return []string{SATag(id)}, nil
	})
	if err != nil {
		return "", fmt.Errorf("create service account: %w", err)
	}
	return id, nil
}

// ServiceAccountsForUser lists the service accounts of every account where
// userID is OWNER or ADMIN. When id is not "", only that one.
func (s *Store) ServiceAccountsForUser(ctx context.Context, userID, id string) ([]ServiceAccount, error) {
	rows, err := s.DB.Query(ctx, `SELECT sa.id, sa.account_id, sa.name, sa.role, sa.created_at,
			(SELECT count(*) FROM api_keys k WHERE k.service_account_id = sa.id),
			(SELECT count(*) FROM api_keys k WHERE k.service_account_id = sa.id AND k.revoked_at IS NULL)
		FROM service_accounts sa JOIN account_members m ON m.account_id = sa.account_id
		WHERE m.user_id = $1 AND m.role IN ('OWNER', 'ADMIN') AND ($2 = '' OR sa.id = $2)
		ORDER BY sa.created_at, sa.id`, userID, id)
	if err != nil {
		return nil, fmt.Errorf("list service accounts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ServiceAccount, error) {
		var sa ServiceAccount
		var n, a int64
		err := r.Scan(&sa.ID, &sa.AccountID, &sa.Name, &sa.Role, &sa.CreatedAt, &n, &a)
		sa.TokenCount, sa.ActiveTokens = int(n), int(a)
		return sa, err
	})
	if err != nil {
		return nil, fmt.Errorf("list service accounts: %w", err)
	}
	for i := range out {
		rows, err := s.DB.Query(ctx, `SELECT d.id, a.name || '/' || d.name FROM service_account_databases sd
			JOIN databases d ON d.id = sd.database_id JOIN accounts a ON a.id = d.account_id
			WHERE sd.service_account_id = $1 AND d.deleted_at IS NULL ORDER BY d.created_at, d.id`, out[i].ID)
		if err != nil {
			return nil, fmt.Errorf("list service account databases: %w", err)
		}
		out[i].Databases, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (SADatabase, error) {
			var d SADatabase
			return d, r.Scan(&d.ID, &d.FullName)
		})
		if err != nil {
			return nil, fmt.Errorf("list service account databases: %w", err)
		}
		if out[i].Databases == nil {
			out[i].Databases = []SADatabase{}
		}
	}
	return out, nil
}
