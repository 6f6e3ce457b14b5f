// Package core is the Go client of the bitkit HTTP API (the bit.io v2beta
// API as served by bitd): queries, streaming, batches, databases, API keys,
// service accounts, accounts, and import/export jobs.
//
// It depends only on the standard library and bitkit's internal JSON
// package, and builds for GOOS=js GOARCH=wasm (browsers, Workers) without
// net/http: requests go through a Fetcher, which the program supplies there
// (DefaultFetcher; package jsfetch has one on the host's fetch).
//
// # Creating a client
//
//	c, err := core.NewClient("https://bitd.example.com", core.WithAPIKey(os.Getenv("BITKIT_API_KEY")))
//
// An empty endpoint means DefaultEndpoint (a local bitd). A Client is safe
// for concurrent use; make one and share it. Auth options: WithAPIKey,
// WithToken (a fixed access token, never refreshed) or
// WithCredentials(UsernamePassword(user, password, ...)), which logs in on
// first use, replaces the token before it expires (WithRefreshSkew, default
// 60s) with one refresh shared by all concurrent callers — trading the login
// session's refresh token, and logging in with the password only once the
// session is over — and after a 401 does the same and replays the request
// once when its body can be replayed. Tokens are kept in a TokenCache:
// NewMemoryTokenCache (default) or NewFileTokenCache, one 0600 file per
// endpoint and user under os.UserCacheDir()/bitkit/tokens, shared safely by
// several processes (which take turns for a refresh). The password is never
// stored.
//
// # Queries
//
//	res, err := c.Query(ctx, "alice/shop", "SELECT id, name FROM items WHERE price > $1", 10)
//	for i := range res.Rows {
//		var id int64
//		var name string
//		err = res.Scan(i, &id, &name)
//	}
//	items, err := core.ScanAll[Item](res) // fields by `db:"name"` tag, like pgx
//
// Numbers arrive as jsonx.Number holding their exact digits: int8 and
// numeric never pass through float64 unless a *float64 destination asks for
// it. A context deadline is sent as timeout_ms (minus a small margin), so
// the server cancels the statement in time and the answer matches ErrTimeout.
//
// QueryStream reads large results row by row from an NDJSON answer:
//
//	s, err := c.QueryStream(ctx, core.QueryRequest{Database: "alice/shop", SQL: "SELECT * FROM big"})
//	defer s.Close()
//	for row, err := range s.All() { ... }
//
// Batch runs several statements in one transaction; a failing statement's
// position is APIError.Index.
//
// # Errors
//
// Every non-2xx answer is an *APIError carrying the status, the server's code
// and message, the request ID, PostgreSQL's SQLSTATE, detail, hint and
// position, and a sanitized URL. Match classes with errors.Is:
// ErrBadRequest, ErrUnauthorized, ErrForbidden, ErrNotFound, ErrConflict,
// ErrTooLarge, ErrRateLimited, ErrTimeout, ErrUnavailable; AccountID adds
// ErrAccountNotFound. No error text ever contains a key, token or password.
//
// # Retries
//
// Requests that are safe to replay are retried after transport errors, 429,
// 503 (honouring Retry-After) and other 5xx except 501 and 507, with capped
// exponential backoff and full jitter (see RetryPolicy). POSTs are retried
// only with an Idempotency-Key, which the client adds to database creation,
// export jobs, import jobs from a URL and logins. Queries and streamed
// uploads are never replayed.
//
// # Jobs
//
// Import streams a file (any io.Reader, never buffered) or a URL into a
// table; Export runs a query or table export; both wait for the job with
// capped backoff (100ms doubling to 2s, see WithPollPolicy), calling a
// progress function on each poll, and return a *JobFailedError when the job
// FAILED. Download streams an export's file into an io.Writer.
package core
