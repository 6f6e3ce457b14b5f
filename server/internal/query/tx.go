package query

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Statements in an interactive transaction (package txn).
//
// A request to /query or /query/batch that names a tx_id runs on the
// connection the transaction holds instead of one from the pool: no BEGIN,
// no COMMIT, no session reset (the transaction's end resets it). The
// handlers learn nothing else about transactions; TxSource does the rest.

// TxSource hands the query handlers the pinned connection of an
// interactive transaction (package txn implements it).
type TxSource interface {
	// Use claims transaction txID for one request of the caller in r.
	// handled means it answered r itself (it handed the request, with
	// body, to the replica that holds the transaction) and the handler
	// must do nothing more. Errors are *apierr.Error values.
	Use(w http.ResponseWriter, r *http.Request, txID string, body []byte) (lease *TxLease, handled bool, err error)
}

// TxLease is one request's use of a transaction's connection.
type TxLease struct {
	Conn   *pgxpool.Conn
	Target *dbaccess.Target
	// Ctx ends when the server ends the transaction while the request
	// runs (its lifetime, a revoked credential); the statement is then
	// cancelled, and the request answers context.Cause(Ctx) when it is an
	// *apierr.Error. Done ends it too.
	Ctx context.Context
	// Done gives the transaction back once the statements' results are
	// read and before the answer is written, so the client's next
	// request finds it free. Calling it again does nothing.
	Done func()
}

// serveTx serves /query (batch false) or /query/batch in the transaction
// req.TxID. The transaction is given back (lease.Done, deferred) before an
// error it returns is written.
func (h *Handler) serveTx(w http.ResponseWriter, r *http.Request, req *queryRequest, batch bool) error {
	if h.cfg.Tx == nil {
		return &apierr.Error{Status: http.StatusBadRequest, Code: "transactions_not_supported", Field: "tx_id",
			Message: "this server does not serve interactive transactions: drop tx_id, or use /v2beta/query/batch"}
	}
	lease, handled, err := h.cfg.Tx.Use(w, r, req.TxID, req.raw)
	if handled {
		return nil
	}
	if err != nil {
		return err
	}
	defer lease.Done()
	t := lease.Target
	if req.DatabaseName != "" && !strings.EqualFold(req.DatabaseName, t.FullName) && !strings.EqualFold(req.DatabaseName, t.FullName[strings.IndexByte(t.FullName, '/')+1:]) {
		return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "database_name",
			Message: fmt.Sprintf("database_name %q is not the database of transaction %s (%s): drop database_name or name the transaction's database", req.DatabaseName, req.TxID, t.FullName)}
	}
	objects, err := dataFormat(r, req.DataFormat)
	if err != nil {
		return err
	}
	timeout, err := h.timeout(req.TimeoutMS)
	if err != nil {
		return err
	}
	// The statement ends with the request or with the transaction, and
	// then answers why the server ended it (mapError).
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	stop := context.AfterFunc(lease.Ctx, func() { cancel(context.Cause(lease.Ctx)) })
	defer stop()
	// Giving the transaction back (Done, before the answer is written) ends
	// lease.Ctx as well: that must not cancel the request, or an error
	// answered after it would read as the client's going away.
	done := lease.Done
	lease.Done = func() { stop(); done() }
	r = r.WithContext(ctx)
	switch {
	case batch:
		return h.serveTxBatch(w, r, lease, req, objects, timeout)
	case wantsNDJSON(r):
		return h.serveStream(w, r, t, req, objects, timeout, lease)
	default:
		return h.serveBuffered(w, r, t, req, objects, timeout, lease)
	}
}

// serveTxBatch runs a batch's statements in the transaction. A failing
// statement leaves the transaction failed, as PostgreSQL does: only a
// rollback ends it.
func (h *Handler) serveTxBatch(w http.ResponseWriter, r *http.Request, lease *TxLease, req *queryRequest, objects bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	sink := newBufferSink(objects, h.cfg.MaxRows, h.cfg.MaxBytes)
	defer h.spend(ctx, r, sink)() // after the answer is written
	t := lease.Target
	out := []byte(`{"results":[`)
	var err error
	idx := -1
	for i, q := range req.Queries {
		if err = h.runOn(ctx, cancel, lease.Conn, t, q.QueryString, q.Params, sink, false); err != nil {
			idx = i
			break
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = sink.response(out, q.QueryString)
		sink.usedRows += int(sink.rows)
		sink.usedBytes += int64(len(sink.data))
	}
	lease.Done()
	h.recordUsage(r.Context(), t, sink.returned)
	if err != nil {
		e := *apierr.As(h.mapError(r.Context(), ctx, timeout, err))
		e.Index = &idx
		e.Message = fmt.Sprintf("statement %d (0-based) failed, and the transaction is now failed (roll it back): %s", idx, e.Message)
		return &e
	}
	out = append(out, ']', '}', '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return nil
}
