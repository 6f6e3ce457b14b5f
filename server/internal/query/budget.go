package query

import (
	"errors"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/connbudget"
)

// budgetError returns the answer to a connection refused by the connection
// budget, or nil when err is not such a refusal: 429 too_many_connections
// when the caller's account is at its share (only that account is
// refused), 503 when bitd's total is (apierr.As maps it).
func budgetError(err error) *apierr.Error {
	var be *connbudget.Error
	if !errors.As(err, &be) {
		return nil
	}
	return apierr.As(err)
}
