package query

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/bitkit-dev/bitkit/server/internal/pgaddr"
	"github.com/bitkit-dev/bitkit/server/internal/pgjson"
	"github.com/bitkit-dev/bitkit/server/internal/pgpool"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// column is one result column with everything its values need.
type column struct {
	name string      // as PostgreSQL named it
	key  string      // unique name: object key in objects mode and metadata key
	typ  pgjson.Type // name and encoder
}

// sink receives the results of one SQL string, statement by statement.
type sink interface {
	// begin starts a statement's result; cols is empty when the statement
	// returns no rows.
	begin(cols []column) error
	// row receives one row's values in text format (nil = NULL).
	row(values [][]byte) error
	// end concludes the statement with its command tag.
	end(tag pgconn.CommandTag) error
}

// run acquires a connection and runs sql (with params: extended protocol)
// into s. cancel cancels ctx: it is called when the sink refuses more rows,
// which makes the context watcher cancel the backend. The session reset is
// sent right behind the statement (pgpool.QueueReset), so a parameterless
// query costs one round trip, and a parameterised one too once its
// parameter types are cached (describe.go), else two.
func (h *Handler) run(ctx context.Context, cancel context.CancelFunc, t *dbaccess.Target, sql string, params []jsonx.RawMessage, s sink) error {
	err := h.runOnce(ctx, cancel, t, sql, params, s)
	// The statement was running when its database was being frozen for
	// its storage quota, and the freeze ended its session: store.Freeze
	// ends the owner's and writers' running statements before it takes
	// their privileges, after it (statements that started before), and
	// once more when it retries after a lock timeout. If no statement of
	// it had completed, nothing of it committed: run it again on a new
	// connection. A read then answers as reads of a frozen database do; a
	// write is refused as every write to it is.
	reran := false
	for retries := 0; retries < maxFreezeRetries && (cutByFreeze(err) || !reran && rerun(err)); retries++ {
		if u, ok := s.(interface{ untouched() bool }); !ok || !u.untouched() {
			break
		}
		if !cutByFreeze(err) {
			// ExplainError says the refusal may belong to a window that
			// has passed (a storage-quota thaw): once more, once.
			reran = true
			h.cfg.Logger.Info("query: a statement refused while its database was thawing runs again", "database", t.FullName)
		} else {
			h.cfg.Logger.Info("query: a statement the storage-quota freeze ended runs again", "database", t.FullName)
		}
		err = h.runOnce(ctx, cancel, t, sql, params, s)
	}
	return err
}

// rerun reports whether ExplainError marked err as one a second run may not
// give (an error with a Rerun method that says so).
func rerun(err error) bool {
	var r interface{ Rerun() bool }
	return err != nil && errors.As(err, &r) && r.Rerun()
}

// maxFreezeRetries is how many times one freeze may end a statement's
// session (see run).
const maxFreezeRetries = 3

func (h *Handler) runOnce(ctx context.Context, cancel context.CancelFunc, t *dbaccess.Target, sql string, params []jsonx.RawMessage, s sink) error {
	conn, err := acquire(ctx, t)
	if err != nil {
		return h.acquireError(ctx, err)
	}
	// The pool's release (pgpool.ResetSession, on a goroutine of its own)
	// reads the reset's answer: the request does not wait for it.
	defer conn.Release()
	return h.runOn(ctx, cancel, conn, t, sql, params, s, true)
}

// cutByFreeze reports whether err is the storage-quota refusal that
// ExplainError makes of a session ended by a freeze (SQLSTATE 57P01).
func cutByFreeze(err error) bool {
	var e *apierr.Error
	return err != nil && errors.As(err, &e) && e.Code == "storage_limit_exceeded" && e.SQLState == "57P01"
}

func (h *Handler) acquireError(ctx context.Context, err error) error {
	if e := budgetError(err); e != nil {
		return e
	}
	if ctx.Err() != nil {
		return err // mapped to a timeout or a closed client by mapError
	}
	var ce *pgaddr.ClusterUnavailableError
	if errors.As(err, &ce) { // several clusters: the one holding the database is down
		h.cfg.Logger.Warn("query: the database's cluster is unreachable", "cluster", ce.Cluster, "err", err)
		return apierr.As(ce)
	}
	h.cfg.Logger.Error("query: cannot connect to the database", "err", err)
	e := apierr.New(http.StatusServiceUnavailable, "database_unavailable",
		"cannot connect to the database right now; retry in a moment")
	e.RetryAfter = time.Second
	return e
}

// runOn runs sql on an acquired connection. With reset, DISCARD ALL is
// sent behind the statement, and the connection must be released next.
func (h *Handler) runOn(ctx context.Context, cancel context.CancelFunc, conn *pgxpool.Conn, t *dbaccess.Target, sql string, params []jsonx.RawMessage, s sink, reset bool) (err error) {
	ctx, s, done := h.traceQuery(ctx, t, sql, len(params), s) // trace.go; done is nil unless traced
	if done != nil {
		defer func() { done(err) }()
	}
	pc := conn.Conn().PgConn()
	pgpool.RefuseCopyIn(pc, true)
	defer pgpool.RefuseCopyIn(pc, false)
	if len(params) > 0 {
		err = h.runExtended(ctx, cancel, pc, t, sql, params, s, reset)
	} else {
		err = h.runSimple(ctx, cancel, pc, t, sql, s, reset)
	}
	if err != nil && pgpool.CopyInRefused(pc) {
		return apierr.BadRequest("copy_from_stdin_not_supported",
			"COPY ... FROM STDIN needs the PostgreSQL wire protocol, so bitd closed the session, which aborted the statement and its transaction; "+
				"load data with an import job (POST /v2beta/db/{account}/{db}/import/), INSERT statements, or COPY through a direct PostgreSQL connection")
	}
	if err != nil && h.cfg.ExplainError != nil {
		err = h.cfg.ExplainError(ctx, t, err)
	}
	if h.cfg.AfterWrite != nil && t.Permission != dbaccess.Reader {
		h.cfg.AfterWrite(t)
	}
	return err
}

func (h *Handler) runSimple(ctx context.Context, cancel context.CancelFunc, pc *pgconn.PgConn, t *dbaccess.Target, sql string, s sink, reset bool) error {
	if reset {
		pgpool.QueueReset(pc)
	}
	mrr := pc.Exec(ctx, sql)
	var sinkErr error
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		cols := h.columns(ctx, t, true, rr.FieldDescriptions())
		sinkErr = s.begin(cols)
		for sinkErr == nil && rr.NextRow() {
			sinkErr = s.row(rr.Values())
		}
		if sinkErr != nil {
			cancel()
			_, _ = rr.Close()
			break
		}
		tag, err := rr.Close()
		if err != nil {
			break // mrr.Close reports it
		}
		if sinkErr = s.end(tag); sinkErr != nil {
			cancel()
			break
		}
	}
	err := mrr.Close()
	if sinkErr != nil {
		return sinkErr
	}
	return err
}

func (h *Handler) runExtended(ctx context.Context, cancel context.CancelFunc, pc *pgconn.PgConn, t *dbaccess.Target, sql string, params []jsonx.RawMessage, s sink, reset bool) error {
	// Outside a batch (reset: autocommit), the parameter types of a
	// statement seen before let it run in one round trip (describe.go).
	key := paramKey{t.PGDatabase, t.PGRole, sql}
	if reset {
		if oids, ok := h.paramTypes.get(key); ok && len(oids) == len(params) {
			stale, err := h.runCached(ctx, cancel, pc, t, sql, oids, params, s)
			if !stale {
				return err
			}
			h.paramTypes.drop(key)
			if err := pgpool.FinishReset(pc); err != nil {
				return err
			}
			pgpool.ResetOnRelease(pc)
		}
	}
	sd, err := pc.Prepare(ctx, "", sql, nil)
	if err != nil {
		return err
	}
	if missing := h.missingTypes(t, sd); len(missing) > 0 {
		// The lookup uses the unnamed statement too: prepare again after.
		h.loadTypes(ctx, t, pc, missing)
		if sd, err = pc.Prepare(ctx, "", sql, nil); err != nil {
			return err
		}
	}
	if len(sd.ParamOIDs) != len(params) {
		return &apierr.Error{Status: http.StatusBadRequest, Code: "invalid_parameter", Field: "params",
			Message: fmt.Sprintf("the query takes %d parameter(s) ($1…$%d) but params has %d value(s); send one value per parameter",
				len(sd.ParamOIDs), len(sd.ParamOIDs), len(params))}
	}
	values, err := h.encodeParams(t, sd.ParamOIDs, params)
	if err != nil {
		return err
	}
	h.paramTypes.put(key, sd.ParamOIDs)
	cols := h.columns(ctx, t, false, sd.Fields)
	if err := s.begin(cols); err != nil {
		return err
	}
	if reset {
		pgpool.QueueReset(pc)
	}
	return readRows(cancel, pc.ExecPrepared(ctx, "", values, nil, nil), s)
}

// readRows hands the rows of rr to s (which has begun the result) and ends
// it with the command tag; a sink that refuses a row cancels the query.
func readRows(cancel context.CancelFunc, rr *pgconn.ResultReader, s sink) error {
	var sinkErr error
	for rr.NextRow() {
		if sinkErr = s.row(rr.Values()); sinkErr != nil {
			cancel()
			break
		}
	}
	tag, err := rr.Close()
	if sinkErr != nil {
		return sinkErr
	}
	if err != nil {
		return err
	}
	return s.end(tag)
}

// missingTypes lists the parameter and result types of sd that are neither
// built in nor cached.
func (h *Handler) missingTypes(t *dbaccess.Target, sd *pgconn.StatementDescription) []uint32 {
	var missing []uint32
	for _, oid := range sd.ParamOIDs {
		if _, ok := h.lookupType(t, oid); !ok {
			missing = append(missing, oid)
		}
	}
	for _, fd := range sd.Fields {
		if _, ok := h.lookupType(t, fd.DataTypeOID); !ok {
			missing = append(missing, fd.DataTypeOID)
		}
	}
	return missing
}

// columns describes a result's fields. When load is set, types neither
// built into pgjson nor cached are looked up in pg_type on another
// connection of the pool (the current one is busy with the result) and
// cached per database; types still unknown are sent as text.
func (h *Handler) columns(ctx context.Context, t *dbaccess.Target, load bool, fds []pgconn.FieldDescription) []column {
	if len(fds) == 0 {
		return nil
	}
	cols := make([]column, len(fds))
	var missing []uint32
	for i, fd := range fds {
		cols[i].name = fd.Name
		if typ, ok := h.lookupType(t, fd.DataTypeOID); ok {
			cols[i].typ = typ
		} else {
			missing = append(missing, fd.DataTypeOID)
		}
	}
	if len(missing) > 0 {
		if load {
			h.loadTypes(ctx, t, nil, missing)
		}
		for i, fd := range fds {
			if cols[i].typ.Enc == nil {
				if typ, ok := h.lookupType(t, fd.DataTypeOID); ok {
					cols[i].typ = typ
				} else {
					cols[i].typ = pgjson.Type{OID: fd.DataTypeOID, Name: "oid " + strconv.FormatUint(uint64(fd.DataTypeOID), 10), Enc: pgjson.String}
				}
			}
		}
	}
	keys := uniqueNames(cols)
	for i := range cols {
		cols[i].key = keys[i]
	}
	return cols
}

// uniqueNames returns the column names made unique: the second column named
// "x" becomes "x_2", the third "x_3", skipping names already taken.
func uniqueNames(cols []column) []string {
	out := make([]string, len(cols))
	if len(cols) <= 16 && distinctNames(cols) {
		for i, c := range cols {
			out[i] = c.name
		}
		return out
	}
	taken := make(map[string]bool, len(cols))
	for _, c := range cols {
		taken[c.name] = true
	}
	seen := make(map[string]bool, len(cols))
	for i, c := range cols {
		if !seen[c.name] {
			seen[c.name] = true
			out[i] = c.name
			continue
		}
		for n := 2; ; n++ {
			k := c.name + "_" + strconv.Itoa(n)
			if !taken[k] {
				taken[k] = true
				out[i] = k
				break
			}
		}
	}
	return out
}

// distinctNames reports whether no two columns share a name, without the
// maps uniqueNames needs otherwise (for the few columns of most answers).
func distinctNames(cols []column) bool {
	for i := range cols {
		for j := range i {
			if cols[i].name == cols[j].name {
				return false
			}
		}
	}
	return true
}

type typeKey struct {
	db  string
	oid uint32
}

func (h *Handler) lookupType(t *dbaccess.Target, oid uint32) (pgjson.Type, bool) {
	if typ, ok := pgjson.Lookup(oid); ok {
		return typ, true
	}
	v, ok := h.types.Load(typeKey{t.PGDatabase, oid})
	if !ok {
		return pgjson.Type{}, false
	}
	return v.(pgjson.Type), true
}

const typeQuery = `SELECT t.oid, format_type(t.oid, NULL), t.typcategory = 'A' AND t.typelem <> 0, t.typelem, t.typdelim,
	CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE 0 END
FROM pg_catalog.pg_type t WHERE t.oid = ANY($1::pg_catalog.oid[])`

// loadTypes reads the names of OIDs that are not built in (enums,
// composites, domains, extension types, their arrays) and caches them. On
// failure the columns fall back to text.
func (h *Handler) loadTypes(ctx context.Context, t *dbaccess.Target, pc *pgconn.PgConn, oids []uint32) {
	if pc == nil {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		conn, err := t.Pool.Acquire(actx)
		if err != nil {
			return
		}
		defer conn.Release()
		pc = conn.Conn().PgConn()
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, o := range oids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(o), 10))
	}
	b.WriteByte('}')
	res := pc.ExecParams(ctx, typeQuery, [][]byte{[]byte(b.String())}, nil, nil, nil).Read()
	if res.Err != nil {
		h.cfg.Logger.Warn("query: cannot look up result types", "err", res.Err)
		return
	}
	for _, row := range res.Rows {
		oid, err1 := strconv.ParseUint(string(row[0]), 10, 32)
		elem, err2 := strconv.ParseUint(string(row[3]), 10, 32)
		baseOID, err3 := strconv.ParseUint(string(row[5]), 10, 32)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		typ := pgjson.Type{OID: uint32(oid), Name: string(row[1]), Enc: pgjson.String}
		switch {
		case string(row[2]) == "t":
			elemEnc := pgjson.Encoder(pgjson.String)
			if et, ok := pgjson.Lookup(uint32(elem)); ok {
				elemEnc = et.Enc
			}
			delim := byte(',')
			if len(row[4]) == 1 {
				delim = row[4][0]
			}
			typ.Enc = pgjson.ArrayOf(elemEnc, delim)
		case baseOID != 0:
			if bt, ok := pgjson.Lookup(uint32(baseOID)); ok {
				typ.Enc = bt.Enc
			}
		}
		h.types.Store(typeKey{t.PGDatabase, uint32(oid)}, typ)
	}
}

// commandVerb returns the command tag without its counts ("INSERT 0 5" →
// "INSERT", "CREATE TABLE" stays).
func commandVerb(tag string) string {
	for {
		i := strings.LastIndexByte(tag, ' ')
		if i < 0 {
			return tag
		}
		if _, err := strconv.ParseUint(tag[i+1:], 10, 64); err != nil {
			return tag
		}
		tag = tag[:i]
	}
}

// appendRow appends one row as a JSON array (or object) to dst.
func appendRow(dst []byte, cols []column, keys [][]byte, values [][]byte, objects bool) []byte {
	if objects {
		dst = append(dst, '{')
	} else {
		dst = append(dst, '[')
	}
	for i, v := range values {
		if i > 0 {
			dst = append(dst, ',')
		}
		if objects {
			dst = append(dst, keys[i]...)
		}
		if v == nil {
			dst = append(dst, "null"...)
		} else {
			dst = cols[i].typ.Enc(dst, v)
		}
	}
	if objects {
		return append(dst, '}')
	}
	return append(dst, ']')
}

// objectKeys returns each column's `"key":` prefix.
func objectKeys(cols []column) [][]byte {
	keys := make([][]byte, len(cols))
	for i, c := range cols {
		keys[i] = append(pgjson.AppendStringString(nil, c.key), ':')
	}
	return keys
}

// appendHeader appends `"metadata":{…},"columns":[…]`.
func appendHeader(dst []byte, cols []column) []byte {
	dst = appendMetadata(dst, cols)
	dst = append(dst, ',')
	return appendColumns(dst, cols)
}

// appendMetadata appends `"metadata":{key:type name,…}`.
func appendMetadata(dst []byte, cols []column) []byte {
	dst = append(dst, `"metadata":{`...)
	for i, c := range cols {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = pgjson.AppendStringString(dst, c.key)
		dst = append(dst, ':')
		dst = pgjson.AppendStringString(dst, c.typ.Name)
	}
	return append(dst, '}')
}

// appendColumns appends `"columns":[{name,type,type_oid},…]`.
func appendColumns(dst []byte, cols []column) []byte {
	dst = append(dst, `"columns":[`...)
	for i, c := range cols {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"name":`...)
		dst = pgjson.AppendStringString(dst, c.name)
		dst = append(dst, `,"type":`...)
		dst = pgjson.AppendStringString(dst, c.typ.Name)
		dst = append(dst, `,"type_oid":`...)
		dst = strconv.AppendUint(dst, uint64(c.typ.OID), 10)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// tooLarge is the 413 of a buffered answer that passed a cap.
func tooLarge(what string) *apierr.Error {
	return apierr.New(http.StatusRequestEntityTooLarge, "result_too_large",
		"the result has more than %s, the limit of a buffered answer, so the query was stopped; "+
			"stream it instead (send Accept: application/x-ndjson) or run it as an export job (POST /v2beta/db/{account}/{db}/export/)", what)
}

// bufferSink keeps the last statement's result in memory, encoded.
type bufferSink struct {
	objects  bool
	maxRows  int
	maxBytes int64
	// totals across statements before this one (batch shares caps).
	usedRows  int
	usedBytes int64

	cols     []column
	keys     [][]byte
	data     []byte
	rows     int64
	hasRows  bool
	tag      pgconn.CommandTag
	returned int64 // rows read, for usage

	// reserve, when set, makes the memory budget cover n bytes of
	// encoded rows (usedBytes+len(data)) and returns the bytes covered;
	// it is called only when the answer grows past covered.
	reserve func(n int64) (int64, error)
	covered int64

	ended int // statements completed (end called)
}

// untouched reports whether no statement has completed into s: the
// answer is rebuilt from scratch by the next begin, so the query may run
// again.
func (s *bufferSink) untouched() bool { return s.ended == 0 }

func newBufferSink(objects bool, maxRows int, maxBytes int64) *bufferSink {
	return &bufferSink{objects: objects, maxRows: maxRows, maxBytes: maxBytes}
}

func (s *bufferSink) begin(cols []column) error {
	s.cols = cols
	s.hasRows = len(cols) > 0
	if s.objects {
		s.keys = objectKeys(cols)
	}
	s.data = s.data[:0]
	s.rows = 0
	s.tag = pgconn.CommandTag{}
	return nil
}

func (s *bufferSink) row(values [][]byte) error {
	if s.usedRows+int(s.rows) >= s.maxRows {
		return tooLarge(fmt.Sprintf("%d rows", s.maxRows))
	}
	if s.rows > 0 {
		s.data = append(s.data, ',')
	}
	s.data = appendRow(s.data, s.cols, s.keys, values, s.objects)
	s.rows++
	s.returned++
	n := s.usedBytes + int64(len(s.data))
	if n > s.maxBytes {
		return tooLarge(fmt.Sprintf("%d bytes of JSON (%d MiB)", s.maxBytes, s.maxBytes>>20))
	}
	if n > s.covered && s.reserve != nil {
		c, err := s.reserve(n)
		s.covered = c
		return err
	}
	return nil
}

func (s *bufferSink) end(tag pgconn.CommandTag) error {
	s.tag = tag
	s.ended++
	return nil
}

// rowCount is the rows returned, or affected when the statement returns
// no rows.
func (s *bufferSink) rowCount() int64 {
	if s.hasRows {
		return s.rows
	}
	return s.tag.RowsAffected()
}

// response appends the answer object of the last statement to dst.
func (s *bufferSink) response(dst []byte, sql string) []byte {
	pre, suf := s.parts(sql)
	dst = append(dst, pre...)
	dst = append(dst, s.data...)
	return append(dst, suf...)
}

// parts returns the answer object around the encoded rows (s.data).
func (s *bufferSink) parts(sql string) (pre, suf []byte) {
	pre = make([]byte, 0, 64+len(sql)+64*len(s.cols)) // one allocation for most answers
	suf = make([]byte, 0, 64)
	pre = append(pre, `{"query_string":`...)
	pre = pgjson.AppendStringString(pre, sql)
	pre = append(pre, ',')
	pre = appendHeader(pre, s.cols)
	pre = append(pre, `,"data":[`...)
	suf = append(suf, `],"row_count":`...)
	suf = strconv.AppendInt(suf, s.rowCount(), 10)
	suf = append(suf, `,"command":`...)
	suf = pgjson.AppendStringString(suf, commandVerb(s.tag.String()))
	return pre, append(suf, '}')
}
