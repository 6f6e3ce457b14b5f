// Package access answers, for a credential and a database name, "who is
// this caller and which database, role and pool do they get". It sits on
// the metadata store and the pool manager; the HTTP API, the query and job
// handlers and the wire proxy call it.
//
// Principals (by credential hash) and database resolutions are served from
// an in-memory cache that stays true across replicas: every store mutation
// that changes an answer publishes NOTIFY on store.AccessChannel in its own
// transaction, the replica that made it drops its entries before the call
// returns, and every replica LISTENs on a dedicated connection and drops
// the entries a notification names. While that connection is down the
// cache is bypassed (every lookup goes to the store) until the replica has
// listened again and flushed the cache. Entries live at most Config.MaxAge;
// negative answers (unknown, revoked or expired credentials, unknown
// databases) are never cached.
package access
