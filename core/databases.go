package core

import (
	"context"
	"errors"
	"time"
)

// Database is a platform database.
type Database struct {
	// ID is the database's stable identifier.
	ID string `json:"id"`
	// Name is the full name "account/dbname".
	Name string `json:"name"`
	// DateCreated is when the database was created.
	DateCreated time.Time `json:"date_created"`
	// IsPrivate is false for databases anyone may read.
	IsPrivate bool `json:"is_private"`
	// Role is the caller's role: OWNER, ADMIN, WRITER or READER.
	Role string `json:"role"`
	// StorageLimitBytes and StorageUsageBytes are in bytes.
	StorageLimitBytes int64 `json:"storage_limit_bytes"`
	StorageUsageBytes int64 `json:"storage_usage_bytes"`
	// UsageCurrent and UsagePrevious are the current and previous billing periods.
	UsageCurrent  *Usage `json:"usage_current,omitempty"`
	UsagePrevious *Usage `json:"usage_previous,omitempty"`
}

// Usage is the query usage of a database over one period.
type Usage struct {
	// RowsQueried counts rows returned by queries in [PeriodStart, PeriodEnd).
	RowsQueried int64     `json:"rows_queried"`
	PeriodStart time.Time `json:"period_start"`
	PeriodEnd   time.Time `json:"period_end"`
}

// CreateDatabaseRequest describes a database to create.
type CreateDatabaseRequest struct {
	// Name is the database name without the account (1–23 characters of A-Z a-z 0-9 _ -).
	Name string `json:"name"`
	// IsPrivate defaults to true when nil.
	IsPrivate *bool `json:"is_private,omitempty"`
	// StorageLimitBytes is the storage limit; 0 takes the server default.
	StorageLimitBytes int64 `json:"storage_limit_bytes,omitempty"`
	// Account is the account to create it in; "" takes the client's
	// WithAccount, else the caller's default account.
	Account string `json:"account,omitempty"`
}

// UpdateDatabaseRequest changes the non-nil fields of a database. A new Name
// is the database name without the account.
type UpdateDatabaseRequest struct {
	// Name renames the database (metadata only; the account stays).
	Name              *string `json:"name,omitempty"`
	IsPrivate         *bool   `json:"is_private,omitempty"`
	StorageLimitBytes *int64  `json:"storage_limit_bytes,omitempty"`
}

// ListDatabases returns the databases the caller can see.
func (c *Client) ListDatabases(ctx context.Context) ([]Database, error) {
	var ans struct {
		Databases []Database `json:"databases"`
	}
	if _, err := c.do(ctx, &request{method: "GET", path: apiPrefix + "/db/"}, &ans); err != nil {
		return nil, err
	}
	if ans.Databases == nil {
		ans.Databases = []Database{}
	}
	return ans.Databases, nil
}

// GetDatabase returns the database "account/dbname".
func (c *Client) GetDatabase(ctx context.Context, name string) (*Database, error) {
	p, err := escapeDB(name)
	if err != nil {
		return nil, err
	}
	var db Database
	if _, err := c.do(ctx, &request{method: "GET", path: apiPrefix + "/db/" + p}, &db); err != nil {
		return nil, err
	}
	return &db, nil
}

// CreateDatabase creates a database. The request carries an Idempotency-Key,
// so it is retried after transport errors and 5xx answers like a GET.
func (c *Client) CreateDatabase(ctx context.Context, r CreateDatabaseRequest) (*Database, error) {
	if r.Name == "" {
		return nil, errors.New("core: CreateDatabase: no database name given")
	}
	if r.Account == "" {
		r.Account = c.account
	}
	var db Database
	if _, err := c.do(ctx, &request{method: "POST", path: apiPrefix + "/db/", body: r, idem: true}, &db); err != nil {
		return nil, err
	}
	return &db, nil
}

// UpdateDatabase changes the database "account/dbname" and returns it as it is now.
func (c *Client) UpdateDatabase(ctx context.Context, name string, r UpdateDatabaseRequest) (*Database, error) {
	p, err := escapeDB(name)
	if err != nil {
		return nil, err
	}
	var db Database
	if _, err := c.do(ctx, &request{method: "PATCH", path: apiPrefix + "/db/" + p, body: r}, &db); err != nil {
		return nil, err
	}
	return &db, nil
}

// DeleteDatabase deletes the database "account/dbname" and its data. The
// name stays reserved for as long as the server says (bitd:
// --name-reservation, 30 days by default as on bit.io, none under bitd dev).
func (c *Client) DeleteDatabase(ctx context.Context, name string) error {
	p, err := escapeDB(name)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, &request{method: "DELETE", path: apiPrefix + "/db/" + p}, nil)
	return err
}
