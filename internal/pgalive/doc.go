// Package pgalive tells, without reading anything, whether an idle
// PostgreSQL connection is dead: after a server restart, an idle close by
// bitd's proxy, or a network cut, the socket of a pooled connection is closed
// or holds an unread FATAL message. Pools (pgdirect, bitd's metadata store
// and per-database pools) use it in pgxpool's ShouldPing so that such
// connections are pinged and replaced instead of failing the next query.
//
// Gone is the narrower question bitd's wire proxy asks about a client it
// has stopped reading: did the peer reset or close the connection?
package pgalive
