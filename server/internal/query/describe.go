package query

import (
	"context"
	"errors"
	"sync"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/bitkit-dev/bitkit/server/internal/pgpool"
	"github.com/jackc/pgx/v5/pgconn"
)

// A parameterised statement needs its parameter types before its JSON
// values can be encoded: the first time, bitd asks PostgreSQL (Parse and
// Describe, one round trip) and then executes (a second). The types are
// then cached per (database, role, SQL), and later runs send Parse with
// those types, Bind, Describe and Execute in one round trip. The result's
// columns still come from PostgreSQL each time. If the schema changed so
// that the cached types no longer fit, PostgreSQL refuses the statement
// before running it (no operator, type mismatch, …), or a value no longer
// encodes: the entry is dropped and the statement is described and run
// again at once, so the caller sees the answer a fresh describe gives.
// Only autocommit statements use the cache: inside a batch's transaction a
// refused statement would abort the transaction.

const (
	// maxParamTypes bounds the cache's entries; when full it starts over.
	maxParamTypes = 4096
	// maxCachedSQL is the longest SQL cached (longer SQL is described
	// every time).
	maxCachedSQL = 8 << 10
)

type paramKey struct{ db, role, sql string }

// paramTypeCache maps a statement to its parameter type OIDs. It is safe
// for concurrent use.
type paramTypeCache struct {
	mu sync.Mutex
	m  map[paramKey][]uint32
}

func (c *paramTypeCache) get(k paramKey) ([]uint32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	oids, ok := c.m[k]
	return oids, ok
}

func (c *paramTypeCache) put(k paramKey, oids []uint32) {
	if len(k.sql) > maxCachedSQL {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxParamTypes {
		c.m = make(map[paramKey][]uint32)
	}
	c.m[k] = oids
}

func (c *paramTypeCache) drop(k paramKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, k)
}

// staleTypeCodes are the SQLSTATEs with which PostgreSQL refuses, before
// running it, a statement whose declared parameter types no longer fit.
var staleTypeCodes = map[string]bool{
	"42883": true, // undefined_function (no operator for these types)
	"42804": true, // datatype_mismatch
	"42846": true, // cannot_coerce
	"42725": true, // ambiguous_function
	"42P08": true, // ambiguous_parameter
	"42P18": true, // indeterminate_datatype
}

// runCached runs a parameterised statement with cached parameter types in
// one round trip, the session reset behind it. stale reports that the
// types may no longer fit and nothing reached the sink: the caller drops
// the entry, finishes the reset and runs the statement the long way.
func (h *Handler) runCached(ctx context.Context, cancel context.CancelFunc, pc *pgconn.PgConn, t *dbaccess.Target, sql string, oids []uint32, params []jsonx.RawMessage, s sink) (stale bool, err error) {
	values, err := h.encodeParams(t, oids, params)
	if err != nil {
		return true, err // nothing sent; a fresh describe decides
	}
	pgpool.QueueReset(pc)
	rr := pc.ExecParams(ctx, sql, values, oids, nil, nil)
	fds := rr.FieldDescriptions()
	var empty int // rows of a statement without columns
	if len(fds) == 0 {
		// No columns (or a refusal): read to the end before the sink
		// sees anything, so a refusal can still be retried.
		for rr.NextRow() {
			empty++
		}
		tag, err := rr.Close()
		if err != nil {
			var pe *pgconn.PgError
			return empty == 0 && errors.As(err, &pe) && staleTypeCodes[pe.Code], err
		}
		if err := s.begin(nil); err != nil {
			return false, err
		}
		for range empty {
			if err := s.row(nil); err != nil {
				return false, err
			}
		}
		return false, s.end(tag)
	}
	if err := s.begin(h.columns(ctx, t, true, fds)); err != nil {
		cancel()
		_, _ = rr.Close()
		return false, err
	}
	return false, readRows(cancel, rr, s)
}
