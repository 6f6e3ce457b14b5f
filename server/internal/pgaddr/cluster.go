package pgaddr

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ClusterUnavailableError says that the PostgreSQL cluster holding a
// platform database cannot be reached (bitd with several clusters). Through
// apierr it answers 503 with the code cluster_unavailable; its message
// names the cluster and the cause, never an address or a password.
type ClusterUnavailableError struct {
	Cluster string
	Err     error
}

func (e *ClusterUnavailableError) Error() string {
	return fmt.Sprintf("the PostgreSQL cluster %q that holds this database is unreachable (%s); databases on other clusters are not affected: retry shortly",
		e.Cluster, Cause(e.Err))
}

// Unwrap returns the connection error.
func (e *ClusterUnavailableError) Unwrap() error { return e.Err }

// HTTPStatus is 503.
func (e *ClusterUnavailableError) HTTPStatus() int { return 503 }

// ErrorCode is "cluster_unavailable".
func (e *ClusterUnavailableError) ErrorCode() string { return "cluster_unavailable" }

// SQLState is 08006 (connection_failure).
func (e *ClusterUnavailableError) SQLState() string { return "08006" }

// Cause is a short description of a connection error without connection
// details (no address, user or password).
func Cause(err error) string {
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return "unknown cause"
	case errors.As(err, &pe):
		return pe.Message
	case strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	case strings.Contains(err.Error(), "no such file or directory"):
		return "the server's socket is missing: the server is down"
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout"):
		return "connection timed out"
	}
	return "connection failed"
}
