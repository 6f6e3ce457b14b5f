// Package proxy is bitd's PostgreSQL wire proxy: PostgreSQL clients (psql,
// pgbench, pgx, any driver) connect to bitd with an API key or access token as
// the password and "account/db" as the database name; the proxy checks the
// credential, opens a backend connection to the real database as the role
// that the caller's permission maps to, and then relays bytes both ways.
//
// # Wiring (cmd/bitd)
//
//	srv := proxy.New(proxy.Config{DevTLS: true, AllowPlaintext: true}, authorizer, logger)
//	go srv.Serve(ln)                 // ln from net.Listen("tcp", "127.0.0.1:5432")
//	...
//	srv.TerminateCredential(id)      // after an API key or token is revoked
//	srv.TerminateDatabase(id)        // before/after a database is dropped
//	srv.Recheck(ctx, id)             // after a database's access changed (made private)
//	srv.Shutdown(ctx)                // on SIGTERM
//
// The Authorizer maps (password, "account/db") to a WireTarget: the platform
// database id, the credential id (to cut sessions when it is revoked), the
// real PostgreSQL database, role and role password, and the backend address.
// It returns errors wrapping ErrBadPassword or ErrUnknownDatabase; anything
// else is reported to the client as an internal error and logged. Every
// RevalidateEvery its StillAuthorized re-checks the Grant (credential,
// database, role) of every open session in one call; sessions whose grant
// no longer holds are ended. The proxy never keeps the plaintext credential.
//
// # Protocol
//
// The proxy answers SSLRequest with 'S' and a TLS handshake (Config.TLS, or a
// self-signed certificate generated at start-up with Config.DevTLS) and
// GSSENCRequest with 'N'. It accepts any user name and asks for a cleartext
// password, which is only acceptable inside TLS: a plaintext startup is
// refused with FATAL 28000 "SSL required: connect with sslmode=require"
// unless Config.AllowPlaintext is set and the client is on a loopback
// address. The database may be given as account/db, "account/db" (quoted) or
// URL-encoded (account%2Fdb). Clients asking for protocol 3.2 get a
// NegotiateProtocolVersion down to 3.0.
//
// Behind a TCP load balancer, Config.ClientAddr runs first on every
// connection and may read a PROXY protocol header (bitd passes
// clientaddr.Trusted.Conn: required from trusted balancers, refused from
// anyone else), before the SSLRequest or CancelRequest; its address is
// the client's in logs, for the loopback rule above, and for the
// Authorizer (ClientFrom), which may refuse an address over its limit of
// failures with ErrLoginLimited.
//
// After the backend accepted the role, the client receives AuthenticationOk,
// the backend's ParameterStatus messages, a BackendKeyData with a random
// process id and secret of the proxy's own (mapped to the backend's, so
// CancelRequest works through the proxy, with or without TLS; with
// Config.CancelRelay, also when it reaches another replica: see cancel.go)
// and ReadyForQuery. From then on bytes are relayed with 64 KiB buffers; the
// proxy only walks message headers to know whether a query is in flight.
//
// # Errors sent to clients (all FATAL)
//
//   - 28P01 wrong or revoked API key/token
//   - 3D000 unknown or invisible database, or a name not of the form account/db
//   - 28000 TLS required, or ErrLoginLimited (too many failed logins from
//     the client's address)
//   - 08P01 invalid startup packet, or Config.ClientAddr failed (no valid
//     PROXY header from a trusted balancer)
//   - 53300 Config.MaxConns or Config.MaxConnsPerDatabase reached
//   - 57P05 idle session closed after Config.IdleTimeout
//   - 57P01 session ended by TerminateCredential, TerminateDatabase,
//     Recheck, revalidation (every Config.RevalidateEvery: a revoked
//     credential, or a permission withdrawn or changed) or Shutdown
//   - 25P03 reader session idle inside a transaction for
//     Config.ReaderIdleInTransaction
//   - 57P03 the login role has per-role settings that could not be reset
//
// # Reader sessions and tampered roles
//
// Reader sessions (WireTarget.Reader) start with lock_timeout and
// idle_in_transaction_session_timeout, and the proxy itself ends one that
// stays idle in a transaction (it reads the status byte of every
// ReadyForQuery it relays, without copying or allocating), whatever the
// session SET. Before a session is relayed, its backend connection checks
// pg_db_role_setting for the login role; a role changed by SQL run as it
// (ALTER ROLE CURRENT_USER SET …, or a new password that makes the login
// fail) is reset through RoleRepairer and connected once more.
//
// Backend errors during connection set-up (e.g. PostgreSQL's own 53300 or
// 57P03) are passed through with their SQLSTATE. The password is never
// logged or echoed.
//
// # Idle sessions
//
// A session with no client traffic for IdleTimeout that is not in the middle
// of a query (every Query, Sync and FunctionCall has been answered by
// ReadyForQuery) gets FATAL 57P05 "terminating connection due to idle timeout
// (5m0s); reconnect" and is closed. The decision and the relaying of client
// bytes are mutually exclusive, so when a client receives this FATAL the
// proxy has forwarded nothing it sent after its last ReadyForQuery: pooled
// clients (pgdirect) may safely retry on a fresh connection.
//
// A Server is safe for concurrent use.
package proxy
