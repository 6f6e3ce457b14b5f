package core

import (
	"context"
	"errors"
	"time"

	url "github.com/bitkit-dev/bitkit/internal/urlx"
)

// Account is an account (a user's personal account or an organisation).
type Account struct {
	// ID is the account's stable identifier; Name its unique name.
	ID   string `json:"id"`
	Name string `json:"name"`
}

// APIKey is a newly created API key. The key is shown only once: store it.
type APIKey struct {
	// APIKey is the key itself ("v2_…"); Username the user or service account it belongs to.
	APIKey   string `json:"api_key"`
	Username string `json:"username"`
}

// String hides the key itself.
func (k APIKey) String() string { return "APIKey{" + k.Username + ", REDACTED}" }

// ServiceAccount is an account-owned identity that authenticates with API keys.
type ServiceAccount struct {
	ID               string        `json:"id"`
	Name             string        `json:"name"`
	DateCreated      time.Time     `json:"date_created"`
	Role             string        `json:"role"`
	Databases        []DatabaseRef `json:"databases"`
	TokenCount       int           `json:"token_count"`
	ActiveTokenCount int           `json:"active_token_count"`
}

// DatabaseRef names a database a service account can reach.
type DatabaseRef struct {
	// ID is the database ID; Name its full name "account/dbname".
	ID   string `json:"id"`
	Name string `json:"name"`
}

// CreateServiceAccountRequest describes a service account to create.
type CreateServiceAccountRequest struct {
	// Name is the service account's name.
	Name string `json:"name"`
	// Role is its role on Databases: ADMIN, WRITER or READER.
	Role string `json:"role"`
	// Databases are full database names "account/dbname".
	Databases []string `json:"databases"`
}

// Account returns the caller's default account (GET /iam/v2/account).
func (c *Client) Account(ctx context.Context) (*Account, error) {
	var ans struct {
		Account Account `json:"account"`
	}
	if _, err := c.do(ctx, &request{method: "GET", path: "/iam/v2/account"}, &ans); err != nil {
		return nil, err
	}
	return &ans.Account, nil
}

// AccountID returns the ID of the account named by WithAccount, or of the
// caller's default account without it. An unknown or invisible account name
// gives an error matching ErrAccountNotFound (and ErrNotFound).
func (c *Client) AccountID(ctx context.Context) (string, error) {
	if c.account == "" {
		a, err := c.Account(ctx)
		if err != nil {
			return "", err
		}
		return a.ID, nil
	}
	var ans struct {
		AccountID string `json:"account_id"`
	}
	_, err := c.do(ctx, &request{method: "GET", path: "/iam/v2/accounts:getIdByName",
		query: url.Values{"account_name": {c.account}}}, &ans)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", &accountNotFoundError{name: c.account, err: err}
		}
		return "", err
	}
	return ans.AccountID, nil
}

// CreateAPIKey creates an API key for the caller.
func (c *Client) CreateAPIKey(ctx context.Context) (*APIKey, error) {
	var k APIKey
	if _, err := c.do(ctx, &request{method: "POST", path: apiPrefix + "/api-key/"}, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// RevokeAPIKey revokes one of the caller's API keys.
func (c *Client) RevokeAPIKey(ctx context.Context, key string) error {
	if key == "" {
		return errors.New("core: RevokeAPIKey: no key given (RevokeAllAPIKeys revokes them all)")
	}
	_, err := c.do(ctx, &request{method: "DELETE", path: apiPrefix + "/api-key/", query: url.Values{"api_key": {key}}}, nil)
	return err
}

// RevokeAllAPIKeys revokes every API key of the caller, including the one
// the client may be using.
func (c *Client) RevokeAllAPIKeys(ctx context.Context) error {
	_, err := c.do(ctx, &request{method: "DELETE", path: apiPrefix + "/api-key/"}, nil)
	return err
}

// ListServiceAccounts returns the service accounts the caller manages.
func (c *Client) ListServiceAccounts(ctx context.Context) ([]ServiceAccount, error) {
	var ans struct {
		ServiceAccounts []ServiceAccount `json:"service_accounts"`
	}
	if _, err := c.do(ctx, &request{method: "GET", path: apiPrefix + "/service-account/"}, &ans); err != nil {
		return nil, err
	}
	if ans.ServiceAccounts == nil {
		ans.ServiceAccounts = []ServiceAccount{}
	}
	return ans.ServiceAccounts, nil
}

// GetServiceAccount returns one service account by ID.
func (c *Client) GetServiceAccount(ctx context.Context, id string) (*ServiceAccount, error) {
	if id == "" {
		return nil, errors.New("core: GetServiceAccount: no service account ID given")
	}
	var sa ServiceAccount
	if _, err := c.do(ctx, &request{method: "GET", path: apiPrefix + "/service-account/" + url.PathEscape(id)}, &sa); err != nil {
		return nil, err
	}
	return &sa, nil
}

// CreateServiceAccount creates a service account.
func (c *Client) CreateServiceAccount(ctx context.Context, r CreateServiceAccountRequest) (*ServiceAccount, error) {
	if r.Name == "" {
		return nil, errors.New("core: CreateServiceAccount: no name given")
	}
	if r.Databases == nil {
		r.Databases = []string{}
	}
	var sa ServiceAccount
	if _, err := c.do(ctx, &request{method: "POST", path: apiPrefix + "/service-account/", body: r}, &sa); err != nil {
		return nil, err
	}
	return &sa, nil
}

// CreateServiceAccountKey creates an API key for the service account id.
func (c *Client) CreateServiceAccountKey(ctx context.Context, id string) (*APIKey, error) {
	if id == "" {
		return nil, errors.New("core: CreateServiceAccountKey: no service account ID given")
	}
	var k APIKey
	if _, err := c.do(ctx, &request{method: "POST", path: apiPrefix + "/service-account/" + url.PathEscape(id) + "/api-key/"}, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// RevokeServiceAccountKeys revokes every API key of the service account id.
func (c *Client) RevokeServiceAccountKeys(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("core: RevokeServiceAccountKeys: no service account ID given")
	}
	_, err := c.do(ctx, &request{method: "DELETE", path: apiPrefix + "/service-account/" + url.PathEscape(id) + "/api-key/"}, nil)
	return err
}
