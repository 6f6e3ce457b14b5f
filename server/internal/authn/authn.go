// Package authn holds the authenticated caller of a request (the Principal)
// and carries it through a context. The HTTP auth middleware and the wire
// proxy create principals; handlers read them.
package authn

import "context"

// Kind is the kind of caller.
type Kind string

const (
	KindUser           Kind = "user"
	KindServiceAccount Kind = "service_account"
)

// Credential says how the caller authenticated.
type Credential string

const (
	CredAPIKey Credential = "api_key"
	CredToken  Credential = "access_token"
)

// Principal is an authenticated caller.
type Principal struct {
	Kind Kind
	// UserID is set for users; ServiceAccountID for service accounts.
	UserID           string
	ServiceAccountID string
	// Name is the user name (or the service account's name).
	Name string
	// AccountID/AccountName: the user's default account, or the account a
	// service account belongs to.
	AccountID   string
	AccountName string
	// Credential and CredentialID identify the key or token used, so that
	// revoking it can end the caller's open sessions.
	Credential   Credential
	CredentialID string
}

type ctxKey struct{}

// With returns ctx carrying p.
func With(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// From returns the principal carried by ctx, or nil for an anonymous request.
func From(ctx context.Context) *Principal {
	p, _ := ctx.Value(ctxKey{}).(*Principal)
	return p
}
