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
	"github.com/bitkit-dev/bitkit/server/internal/pgpool"
)

// MaxBatchStatements bounds the statements of one batch.
const MaxBatchStatements = 1000

var isolationLevels = map[string]string{
	"":                "READ COMMITTED",
	"read committed":  "READ COMMITTED",
	"repeatable read": "REPEATABLE READ",
	"serializable":    "SERIALIZABLE",
}

// ServeBatch serves POST /v2beta/query/batch: the statements run in order in
// one transaction, which commits only if all succeed. A failing statement's
// error carries its 0-based index and nothing is committed. It returns the
// error to answer with (register it through apierr.HandlerFunc).
func (h *Handler) ServeBatch(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeRequest(w, r)
	if err != nil {
		return err
	}
	if len(req.Queries) == 0 || len(req.Queries) > MaxBatchStatements {
		return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "queries",
			Message: fmt.Sprintf("queries must list 1 to %d statements, each {\"query_string\": ..., \"params\": [...]}", MaxBatchStatements)}
	}
	for i, q := range req.Queries {
		if err := checkNUL("queries["+strconv.Itoa(i)+"].query_string", q.QueryString); err != nil {
			idx := i
			err.(*apierr.Error).Index = &idx
			return err
		}
		if strings.TrimSpace(q.QueryString) == "" {
			idx := i
			return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Index: &idx,
				Field: "queries[" + strconv.Itoa(i) + "].query_string", Message: fmt.Sprintf("queries[%d].query_string is empty", i)}
		}
	}
	if req.TxID != "" {
		return h.serveTx(w, r, req, true)
	}
	level, ok := isolationLevels[strings.ToLower(strings.Join(strings.Fields(req.Isolation), " "))]
	if !ok {
		return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: "isolation_level",
			Message: fmt.Sprintf("isolation_level %q is not supported: use \"read committed\" (the default), \"repeatable read\" or \"serializable\"", req.Isolation)}
	}
	objects, timeout, target, err := h.prepare(r, req.DataFormat, req.TimeoutMS, req.DatabaseName)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	sink := newBufferSink(objects, h.cfg.MaxRows, h.cfg.MaxBytes)
	defer h.spend(ctx, r, sink)() // after the answer is written
	out, rows, err := h.runBatch(ctx, cancel, target, req, level, sink)
	h.recordUsage(r.Context(), target, rows)
	if err != nil {
		idx := -1
		if be, ok := err.(*batchError); ok {
			idx, err = be.index, be.err
		}
		e := *apierr.As(h.mapError(r.Context(), ctx, timeout, err))
		if idx >= 0 {
			e.Index = &idx
			e.Message = fmt.Sprintf("statement %d (0-based) failed, nothing was committed: %s", idx, e.Message)
		}
		return &e
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return nil
}

type batchError struct {
	index int
	err   error
}

func (e *batchError) Error() string { return fmt.Sprintf("statement %d: %v", e.index, e.err) }

// runBatch runs the statements into sink, whose reservation also covers
// out (the answers so far, sink.usedBytes) as it grows.
func (h *Handler) runBatch(ctx context.Context, cancel context.CancelFunc, t *dbaccess.Target, req *queryRequest, level string, sink *bufferSink) (out []byte, rows int64, err error) {
	conn, err := acquire(ctx, t)
	if err != nil {
		return nil, 0, h.acquireError(ctx, err)
	}
	defer conn.Release()
	pc := conn.Conn().PgConn()
	begin := "BEGIN ISOLATION LEVEL " + level
	if req.ReadOnly {
		// The SELECT takes the transaction's first snapshot, after which
		// SET TRANSACTION READ WRITE is refused.
		begin += " READ ONLY; SELECT 1"
	}
	if _, err := pc.Exec(ctx, begin).ReadAll(); err != nil {
		return nil, 0, err
	}
	committed := false
	defer func() {
		if !committed && !pc.IsClosed() && pc.TxStatus() != 'I' {
			rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer rcancel()
			_, _ = pc.Exec(rctx, "ROLLBACK").ReadAll()
		}
	}()
	out = append(out, `{"results":[`...)
	for i, q := range req.Queries {
		if err := h.runOn(ctx, cancel, conn, t, q.QueryString, q.Params, sink, false); err != nil {
			return nil, sink.returned, &batchError{i, err}
		}
		if st := pc.TxStatus(); st != 'T' {
			return nil, sink.returned, &batchError{i, apierr.BadRequest("transaction_control_in_batch",
				"the statement ended or aborted the batch's transaction (COMMIT, ROLLBACK or similar); a batch is one transaction that bitd commits: remove transaction control statements")}
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = sink.response(out, q.QueryString)
		sink.usedRows += int(sink.rows)
		sink.usedBytes += int64(len(sink.data))
	}
	rows = sink.returned
	pgpool.QueueReset(pc) // runs after the COMMIT; no round trip of its own
	res, err := pc.Exec(ctx, "COMMIT").ReadAll()
	if err != nil {
		return nil, rows, err
	}
	if len(res) != 1 || res[0].CommandTag.String() != "COMMIT" {
		return nil, rows, apierr.New(http.StatusConflict, "transaction_aborted", "the batch's transaction could not commit and was rolled back")
	}
	committed = true
	out = append(out, ']', '}', '\n')
	return out, rows, nil
}
