package query

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
	"github.com/bitkit-dev/bitkit/server/internal/pgjson"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	streamBufferSize = 64 << 10
	// streamFlushEvery bounds how long a row can wait in the buffer.
	streamFlushEvery = 200 * time.Millisecond
)

// commitWriter writes to the ResponseWriter and flushes it after every
// write; it records whether anything reached the client. Every write and
// flush has a write deadline (see deadline), so a client that stops reading
// makes the write fail instead of blocking the stream, and its query, forever.
type commitWriter struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	ctx       context.Context // its deadline bounds the write deadline
	stall     time.Duration
	committed bool
	err       error // the first failed write or flush
}

// deadline returns the write deadline of a write starting now: stall from
// now, but never beyond ctx's deadline while that is still ahead.
func (c *commitWriter) deadline() time.Time {
	now := time.Now()
	d := now.Add(c.stall)
	if dl, ok := c.ctx.Deadline(); ok && dl.After(now) && dl.Before(d) {
		d = dl
	}
	return d
}

func (c *commitWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.committed = true
	_ = c.rc.SetWriteDeadline(c.deadline())
	n, err := c.w.Write(p)
	if err == nil {
		err = c.rc.Flush()
	}
	if err != nil {
		c.err = fmt.Errorf("writing the stream to the client (stall timeout %s): %w", c.stall, err)
	}
	return n, c.err
}

// streamSink writes NDJSON: a header line, one line per row, a trailer.
type streamSink struct {
	cw        *commitWriter
	bw        *bufio.Writer
	objects   bool
	line      []byte
	cols      []column
	keys      [][]byte
	header    bool // header line written
	streamed  bool // a statement with columns was streamed
	current   bool // the current statement has columns
	rows      int64
	tag       pgconn.CommandTag
	lastFlush time.Time
	ended     int // statements completed (end called)
}

// untouched reports whether nothing of the stream was written (not even
// to the buffer) and no statement has completed, so the query may run
// again.
func (s *streamSink) untouched() bool { return !s.header && s.ended == 0 }

var errMultipleResultSets = apierr.BadRequest("multiple_result_sets",
	"the query string has more than one statement that returns rows, which a streamed answer cannot carry; "+
		"stream one row-returning statement at a time, or drop Accept: application/x-ndjson to get the last statement's result")

func (s *streamSink) writeHeader(cols []column) error {
	s.line = append(s.line[:0], '{')
	s.line = appendColumns(s.line, cols)
	s.line = append(s.line, ',')
	s.line = appendMetadata(s.line, cols)
	s.line = append(s.line, '}', '\n')
	s.header = true
	_, err := s.bw.Write(s.line)
	return err
}

func (s *streamSink) begin(cols []column) error {
	s.current = len(cols) > 0
	if !s.current {
		return nil
	}
	if s.streamed {
		return errMultipleResultSets
	}
	s.streamed = true
	s.cols = cols
	if s.objects {
		s.keys = objectKeys(cols)
	}
	s.rows = 0
	return s.writeHeader(cols)
}

func (s *streamSink) row(values [][]byte) error {
	if !s.header { // a row-returning statement with zero columns
		if err := s.writeHeader(nil); err != nil {
			return err
		}
	}
	s.line = appendRow(s.line[:0], s.cols, s.keys, values, s.objects)
	s.line = append(s.line, '\n')
	s.rows++
	if _, err := s.bw.Write(s.line); err != nil {
		return err
	}
	if s.rows&63 == 0 {
		if now := time.Now(); now.Sub(s.lastFlush) >= streamFlushEvery {
			s.lastFlush = now
			return s.bw.Flush()
		}
	}
	return nil
}

func (s *streamSink) end(tag pgconn.CommandTag) error {
	s.ended++
	if s.current {
		s.tag = tag
	} else if !s.streamed {
		s.tag = tag
		s.rows = tag.RowsAffected()
	}
	return nil
}

// serveStream runs the query and streams NDJSON. With a lease it runs in
// that interactive transaction. It returns an error only while nothing of
// the stream reached the client; later errors end the stream with an
// error line.
func (h *Handler) serveStream(w http.ResponseWriter, r *http.Request, t *dbaccess.Target, req *queryRequest, objects bool, timeout time.Duration, lease *TxLease) error {
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// A stream lasts as long as its query (bounded by the statement
	// timeout), not as long as the server's write timeout for ordinary
	// answers; each write gets its own deadline (commitWriter.deadline).
	cw := &commitWriter{w: w, rc: http.NewResponseController(w), ctx: ctx, stall: h.cfg.StreamStallTimeout}
	_ = cw.rc.SetWriteDeadline(cw.deadline())
	s := &streamSink{cw: cw, bw: bufio.NewWriterSize(cw, streamBufferSize), objects: objects, lastFlush: time.Now()}
	var err error
	if lease == nil {
		err = h.run(ctx, cancel, t, req.QueryString, req.Params, s)
	} else {
		err = h.runOn(ctx, cancel, lease.Conn, t, req.QueryString, req.Params, s, false)
		lease.Done()
	}
	if err == nil && !s.header {
		err = s.writeHeader(nil)
	}
	if s.streamed {
		h.recordUsage(r.Context(), t, s.rows)
	}
	// The trailer or error line is written after ctx may have expired.
	cw.ctx = r.Context()
	_ = cw.rc.SetWriteDeadline(cw.deadline())
	if err != nil && cw.err != nil {
		// The client stopped reading (or left): the query was cancelled and
		// its connection released; no error line can reach the client.
		h.cfg.Logger.Info("query: stream stopped: the client did not read it", "err", cw.err)
		return nil
	}
	if err != nil {
		e := apierr.As(h.mapError(r.Context(), ctx, timeout, err))
		// bitd's drain timeout passed (e is shutting_down): the client is
		// still there and must see that its stream was cut.
		shutdown := apierr.ShuttingDown(r.Context())
		if !cw.committed {
			// Nothing reached the client: answer a plain error.
			s.bw.Reset(cw)
			return e
		}
		if r.Context().Err() != nil && !shutdown {
			return nil // the client is gone
		}
		out := *e
		out.RequestID = apierr.RequestID(r.Context())
		b, merr := jsonx.Marshal(&out)
		if merr != nil {
			b = []byte(`{"error":"internal server error","code":"internal"}`)
		}
		line := append([]byte(`{"error":`), b...)
		line = append(line, '}', '\n')
		_, _ = s.bw.Write(line)
		_ = s.bw.Flush()
		return nil
	}
	line := append(s.line[:0], `{"row_count":`...)
	line = strconv.AppendInt(line, s.rows, 10)
	line = append(line, `,"command":`...)
	line = pgjson.AppendStringString(line, commandVerb(s.tag.String()))
	line = append(line, '}', '\n')
	_, _ = s.bw.Write(line)
	_ = s.bw.Flush()
	return nil
}
