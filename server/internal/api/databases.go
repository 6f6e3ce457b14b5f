package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/bitkit-dev/bitkit/server/internal/store"
)

// DefaultStorageLimit is the default of Options.StorageLimit (3 GiB, as
// bit.io): the storage_limit_bytes of a new database when the request gives
// none, and the most a request may ask for. Callers may lower a database's
// limit; only the operator raises it (bitd admin db limit). bitd enforces
// it (package quota; docs/bitd.md, "Storage quotas").
const DefaultStorageLimit = 3 << 30

type usageJSON struct {
	RowsQueried int64     `json:"rows_queried"`
	PeriodStart time.Time `json:"period_start"`
	PeriodEnd   time.Time `json:"period_end"`
}

type databaseJSON struct {
	ID                string    `json:"id"`
	Name              string    `json:"name"`
	DateCreated       time.Time `json:"date_created"`
	IsPrivate         bool      `json:"is_private"`
	Role              string    `json:"role"`
	StorageLimitBytes int64     `json:"storage_limit_bytes"`
	StorageUsageBytes int64     `json:"storage_usage_bytes"`
	UsageCurrent      usageJSON `json:"usage_current"`
	UsagePrevious     usageJSON `json:"usage_previous"`
}

func (s *Server) databaseJSON(ctx context.Context, d *store.Database) (*databaseJSON, error) {
	cur, prev, err := s.st.UsageFor(ctx, d.ID, time.Now())
	if err != nil {
		return nil, err
	}
	return &databaseJSON{
		ID: d.ID, Name: d.FullName(), DateCreated: d.CreatedAt.UTC(), IsPrivate: d.IsPrivate, Role: d.Role,
		StorageLimitBytes: d.StorageLimitBytes, StorageUsageBytes: s.st.StorageUsage(ctx, d.PGName),
		UsageCurrent:  usageJSON{cur.RowsQueried, cur.Start, cur.End},
		UsagePrevious: usageJSON{prev.RowsQueried, prev.Start, prev.End},
	}, nil
}

func notFoundDB(account, db string) error { return access.NotFoundDB(account, db) }

func (s *Server) listDatabases(w http.ResponseWriter, r *http.Request) error {
	dbs, err := s.st.ListDatabases(r.Context(), authn.From(r.Context()))
	if err != nil {
		return err
	}
	out := make([]*databaseJSON, 0, len(dbs))
	for _, d := range dbs {
		j, err := s.databaseJSON(r.Context(), d)
		if err != nil {
			return err
		}
		out = append(out, j)
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]any{"databases": out})
	return nil
}

type createDBReq struct {
	Name              string `json:"name"`
	IsPrivate         *Bool  `json:"is_private"` // a boolean or "true"/"false"
	StorageLimitBytes *int64 `json:"storage_limit_bytes"`
	Account           string `json:"account"`
}

// accountForWrite resolves the account a user wants to create something in
// and checks the user is OWNER or ADMIN there: 404 when it does not exist
// or the user is not a member, 403 for READER/WRITER members.
func (s *Server) accountForWrite(ctx context.Context, p *authn.Principal, name string) (*store.Account, error) {
	if name == "" || strings.EqualFold(name, p.AccountName) {
		return &store.Account{ID: p.AccountID, Name: p.AccountName}, nil
	}
	if err := access.ValidateAccountName(name); err != nil {
		return nil, err
	}
	acc, err := s.st.AccountByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.NotFound("account %q not found, or you are not a member", name)
	}
	if err != nil {
		return nil, err
	}
	role, err := s.st.MemberRole(ctx, acc.ID, p.UserID)
	if err != nil {
		return nil, err
	}
	if err := mayCreateIn(name, acc.Name, role); err != nil {
		return nil, err
	}
	return acc, nil
}

// mayCreateIn is the policy for creating a database in another account
// than the caller's own: its OWNERs and ADMINs may; other members are
// refused (403) and non-members are told it does not exist (404), so an
// account's existence is not revealed. asked is the name as the caller
// gave it, account its stored name, role the caller's membership ("" for
// none).
func mayCreateIn(asked, account, role string) error {
	switch role {
	case "":
		return apierr.NotFound("account %q not found, or you are not a member", asked)
	case "OWNER", "ADMIN":
		return nil
	}
	return apierr.Forbidden("your role in account %q is %s: creating there needs OWNER or ADMIN", account, role)
}

func (s *Server) createDatabase(w http.ResponseWriter, r *http.Request) error {
	p := authn.From(r.Context())
	var req createDBReq
	if err := DecodeJSON(r, &req, false); err != nil {
		return err
	}
	if req.Name == "" {
		return missing("name")
	}
	account, name := req.Account, req.Name
	if a, n, ok := strings.Cut(req.Name, "/"); ok {
		if account != "" && !strings.EqualFold(account, a) {
			return apierr.BadRequest("invalid_name", "name %q names account %q but the account field says %q: give one", req.Name, a, account)
		}
		account, name = a, n
		if err := access.ValidateAccountName(account); err != nil {
			return err
		}
	}
	if account == "" {
		account = r.Header.Get("X-Bitkit-Account")
	}
	if err := access.ValidateDatabaseName(name); err != nil {
		return err
	}
	isPrivate := true
	if req.IsPrivate != nil {
		isPrivate = bool(*req.IsPrivate)
	}
	limit := s.o.StorageLimit
	switch limit {
	case 0:
		limit = DefaultStorageLimit
	case -1:
		limit = 0 // none
	}
	if req.StorageLimitBytes != nil {
		if *req.StorageLimitBytes < 1 || (limit > 0 && *req.StorageLimitBytes > limit) {
			return apierr.BadRequest("invalid_field", "storage_limit_bytes must be 1 or more, and at most the default (%d; 0 means none); "+
				"the operator can raise a database's limit with bitd admin db limit", limit)
		}
		limit = *req.StorageLimitBytes
	}
	acc, err := s.accountForWrite(r.Context(), p, account)
	if err != nil {
		return err
	}
	d, err := s.st.CreateDatabase(r.Context(), acc.ID, name, isPrivate, limit)
	if err != nil {
		return dbNameError(err, acc.Name, name)
	}
	d.Role = "OWNER"
	if role, err := s.st.MemberRole(r.Context(), acc.ID, p.UserID); err == nil && role != "" {
		d.Role = role
	}
	s.log.InfoContext(r.Context(), "database created", "database", d.FullName(), "id", d.ID, "pg_database", d.PGName)
	j, err := s.databaseJSON(r.Context(), d)
	if err != nil {
		return err
	}
	apierr.WriteJSON(w, http.StatusCreated, j)
	return nil
}

func dbNameError(err error, account, name string) error {
	var re *store.ReservedError
	var te *store.TooManyDatabasesError
	switch {
	case errors.As(err, &te):
		return apierr.New(http.StatusConflict, "too_many_databases", "%s", te.Error())
	case errors.Is(err, store.ErrConflict):
		return apierr.Conflict("a database named %s/%s already exists: choose another name", account, name)
	case errors.As(err, &re):
		return apierr.New(http.StatusConflict, "name_reserved", "the name %s/%s belonged to a deleted database and is reserved until %s: choose another name or wait",
			account, name, re.Until.UTC().Format(time.RFC3339))
	}
	return err
}

// lookup finds {account}/{db} from the path for the caller (404 when not
// visible).
func (s *Server) lookup(r *http.Request) (*store.Database, error) {
	account, db := r.PathValue("account"), r.PathValue("db")
	if err := access.ValidateAccountName(account); err != nil {
		return nil, err
	}
	if err := access.ValidateDatabaseName(db); err != nil {
		return nil, err
	}
	d, err := s.st.DatabaseFor(r.Context(), authn.From(r.Context()), account, db)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFoundDB(account, db)
	}
	return d, err
}

func (s *Server) getDatabase(w http.ResponseWriter, r *http.Request) error {
	d, err := s.lookup(r)
	if err != nil {
		return err
	}
	j, err := s.databaseJSON(r.Context(), d)
	if err != nil {
		return err
	}
	apierr.WriteJSON(w, http.StatusOK, j)
	return nil
}

func requireAdmin(d *store.Database, action string) error {
	if d.Role == "OWNER" || d.Role == "ADMIN" {
		return nil
	}
	return apierr.Forbidden("your role on %s is %s: %s needs OWNER or ADMIN", d.FullName(), d.Role, action)
}

type updateDBReq struct {
	Name              *string `json:"name"`
	IsPrivate         *Bool   `json:"is_private"` // a boolean or "true"/"false"
	StorageLimitBytes *int64  `json:"storage_limit_bytes"`
}

func (s *Server) updateDatabase(w http.ResponseWriter, r *http.Request) error {
	d, err := s.lookup(r)
	if err != nil {
		return err
	}
	var req updateDBReq
	if err := DecodeJSON(r, &req, true); err != nil {
		return err
	}
	if err := requireAdmin(d, "changing the database"); err != nil {
		return err
	}
	if req.Name != nil {
		n := *req.Name
		if a, rest, ok := strings.Cut(n, "/"); ok {
			if !strings.EqualFold(a, d.AccountName) {
				return apierr.BadRequest("invalid_name", "a database cannot move to another account (%q → %q)", d.AccountName, a)
			}
			n = rest
		}
		if err := access.ValidateDatabaseName(n); err != nil {
			return err
		}
		req.Name = &n
	}
	if req.StorageLimitBytes != nil && (*req.StorageLimitBytes < 1 ||
		(d.StorageLimitBytes > 0 && *req.StorageLimitBytes > d.StorageLimitBytes)) {
		return apierr.Forbidden("storage_limit_bytes can only be lowered through the API (to 1 byte or more; it is %d); "+
			"the operator raises it with bitd admin db limit", d.StorageLimitBytes)
	}
	if err := s.st.UpdateDatabase(r.Context(), d.ID, req.Name, BoolPtr(req.IsPrivate), req.StorageLimitBytes); err != nil {
		name := d.Name
		if req.Name != nil {
			name = *req.Name
		}
		return dbNameError(err, d.AccountName, name)
	}
	if req.Name != nil {
		d.Name = *req.Name
	}
	if req.IsPrivate != nil {
		d.IsPrivate = bool(*req.IsPrivate)
		if d.IsPrivate && s.o.OnAccessChanged != nil {
			s.o.OnAccessChanged(d.ID)
		}
	}
	if req.StorageLimitBytes != nil {
		d.StorageLimitBytes = *req.StorageLimitBytes
	}
	j, err := s.databaseJSON(r.Context(), d)
	if err != nil {
		return err
	}
	apierr.WriteJSON(w, http.StatusOK, j)
	return nil
}

func (s *Server) deleteDatabase(w http.ResponseWriter, r *http.Request) error {
	d, err := s.lookup(r)
	if err != nil {
		return err
	}
	if err := requireAdmin(d, "deleting the database"); err != nil {
		return err
	}
	if s.o.OnDeleteDatabase != nil {
		s.o.OnDeleteDatabase(d.PGName, d.ID)
	}
	// The PostgreSQL database and roles are dropped in the background,
	// durably (store.DeleteDatabaseInBackground): the caller does not wait.
	until, err := s.st.DeleteDatabaseInBackground(r.Context(), d)
	if errors.Is(err, store.ErrNotFound) {
		return notFoundDB(d.AccountName, d.Name)
	}
	if err != nil {
		return err
	}
	if until.IsZero() {
		s.log.InfoContext(r.Context(), "database deleted", "database", d.FullName(), "id", d.ID, "name_reserved", false)
	} else {
		s.log.InfoContext(r.Context(), "database deleted", "database", d.FullName(), "id", d.ID, "name_reserved_until", until)
	}
	apierr.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}
