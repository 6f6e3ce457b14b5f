package txn

import (
	"bytes"
	"io"
	"net/http"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/tracing"
	"go.opentelemetry.io/otel/propagation"
)

// forwardedHeaders are the request headers handed to the owning replica.
var forwardedHeaders = []string{"Authorization", "Accept", "Content-Type", "X-Request-Id", "Origin"}

// forward hands r (whose body, already read, is body) to owner, the
// replica that holds transaction id, and copies its answer back as it
// arrives (streams too). The owner authenticates the caller again. It
// returns an error, for the caller to answer, only before it has written
// anything.
func (m *Manager) forward(w http.ResponseWriter, r *http.Request, id, owner string, body []byte) error {
	if body == nil && r.Body != nil {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			return apierr.BadRequest("invalid_request", "could not read the request body: %v", err)
		}
		body = b
	}
	u := owner + r.URL.Path
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for _, h := range forwardedHeaders {
		if v := r.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	if id := apierr.RequestID(r.Context()); id != "" && req.Header.Get("X-Request-Id") == "" {
		req.Header.Set("X-Request-Id", id)
	}
	req.Header.Set(HopHeader, hopValue(m.key, id, time.Now()))
	if tracing.Recording(r.Context()) {
		// The owner's span continues this request's trace, under it.
		tracing.Propagator.Inject(r.Context(), propagation.HeaderCarrier(req.Header))
	}
	resp, err := m.client.Do(req)
	if err != nil {
		if r.Context().Err() != nil {
			return nil // the client is gone
		}
		m.cfg.Logger.Warn("txn: cannot reach the replica that holds a transaction", "owner", owner, "err", err)
		return apierr.New(http.StatusServiceUnavailable, "transaction_owner_unreachable",
			"the server replica that holds transaction %s cannot be reached; if it stopped, the transaction was rolled back: begin a new one", id)
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		switch k {
		case "Content-Length", "Connection", "Transfer-Encoding", "Keep-Alive":
			continue
		}
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
			_ = rc.Flush()
		}
		if err != nil {
			return nil
		}
	}
}
