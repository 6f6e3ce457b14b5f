package access

import (
	"strings"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
)

// nameChars reports whether n holds only [A-Za-z0-9_-] (a loop, not a
// regexp: every request checks a name).
func nameChars(n string) bool {
	for i := 0; i < len(n); i++ {
		if c := n[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidateAccountName checks an account (and user) name: 1–38 characters of
// [A-Za-z0-9_-], starting with a letter, digit or underscore.
func ValidateAccountName(n string) error {
	switch {
	case n == "":
		return apierr.BadRequest("invalid_name", "the account name is empty: use 1-38 characters of A-Z a-z 0-9 _ -")
	case len(n) > 38:
		return apierr.BadRequest("invalid_name", "the account name is %d characters long: the maximum is 38", len(n))
	case !nameChars(n):
		return apierr.BadRequest("invalid_name", "the account name %q may only contain A-Z a-z 0-9 _ -", n)
	case n[0] == '-':
		return apierr.BadRequest("invalid_name", "the account name %q must start with a letter, digit or underscore", n)
	}
	return nil
}

// ValidateDatabaseName checks a database name (the part after "account/"):
// 1–23 characters of [A-Za-z0-9_-].
func ValidateDatabaseName(n string) error {
	switch {
	case n == "":
		return apierr.BadRequest("invalid_name", "the database name is empty: use 1-23 characters of A-Z a-z 0-9 _ -")
	case len(n) > 23:
		return apierr.BadRequest("invalid_name", "the database name is %d characters long: the maximum is 23", len(n))
	case !nameChars(n):
		return apierr.BadRequest("invalid_name", "the database name %q may only contain A-Z a-z 0-9 _ -", n)
	}
	return nil
}

// SplitFullName splits "account/db" and validates both parts. A bare "db"
// takes defaultAccount.
func SplitFullName(full, defaultAccount string) (account, db string, err error) {
	account, db, ok := strings.Cut(full, "/")
	if !ok {
		account, db = defaultAccount, full
	}
	if strings.Contains(db, "/") {
		return "", "", apierr.BadRequest("invalid_name", "the database name %q has more than one '/': use account/db", full)
	}
	if err := ValidateAccountName(account); err != nil {
		return "", "", err
	}
	if err := ValidateDatabaseName(db); err != nil {
		return "", "", err
	}
	return account, db, nil
}
