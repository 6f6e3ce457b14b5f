// Package config holds bitd's run-time configuration: what `bitd serve` and
// `bitd dev` read from flags and BITD_* environment variables, handed to the
// API, query, job and proxy packages.
package config

import (
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is bitd's configuration. The zero value is not usable: start from
// Default.
type Config struct {
	// DatabaseURL is the cluster admin connection string (superuser, or a
	// role with CREATEDB and CREATEROLE). BITD_DATABASE_URL.
	DatabaseURL string
	// MetadataDB is the metadata database name (default "bitkit").
	MetadataDB string
	// HTTPAddr is the HTTP listen address (default 127.0.0.1:8080).
	HTTPAddr string
	// AdvertiseHTTP is host:port (or scheme://host:port) where the other
	// replicas reach this one's HTTP API, for requests on an interactive
	// transaction this replica holds (--advertise-http); "" means the
	// HTTP listener's address, with its scheme.
	AdvertiseHTTP string
	// Interactive transactions (package txn): the idle timeout when begin
	// gives none and its cap, the absolute lifetime, and the caps on open
	// transactions per principal and per database; 0 means the defaults
	// (15s, 5m, 15m, 8, 8).
	TxIdleTimeout     time.Duration
	TxMaxIdleTimeout  time.Duration
	TxMaxLifetime     time.Duration
	TxMaxPerPrincipal int
	TxMaxPerDatabase  int
	// PGAddr is the PostgreSQL wire proxy listen address; "" disables it.
	PGAddr string
	// PGTLSCert and PGTLSKey are PEM files of the wire proxy's TLS
	// certificate; without them the proxy uses the HTTP API's certificate
	// (TLSCert, ACME or the dev CA), else a self-signed one generated at
	// start-up.
	PGTLSCert string
	PGTLSKey  string
	// TLSCert and TLSKey are PEM files of the HTTP API's certificate
	// (--tls-cert, --tls-key): HTTPS with HTTP/2, reloaded on SIGHUP and
	// when the files change.
	TLSCert string
	TLSKey  string
	// ACMEDomains (comma-separated), ACMEEmail, ACMEDirectory and
	// ACMECACert configure certificates from an ACME CA instead
	// (--acme-domain, --acme-email, --acme-directory, --acme-ca-cert).
	ACMEDomains   string
	ACMEEmail     string
	ACMEDirectory string
	ACMECACert    string
	// PGIdleTimeout closes wire-proxy sessions idle this long (0: the
	// proxy's default, 5 minutes; negative disables it).
	PGIdleTimeout time.Duration
	// PGReaderIdleInTx ends a reader's wire-proxy session that stays idle
	// inside a transaction this long (FATAL 25P03), so that readers cannot
	// hold the owner's DDL hostage (0: the proxy's default, 60 s; negative
	// disables it).
	PGReaderIdleInTx time.Duration
	// PGMaxConns and PGMaxConnsPerDB cap wire-proxy sessions in total and
	// per platform database (0: no cap beyond PostgreSQL's own; the role
	// connection limits still apply). Over a cap a client gets FATAL 53300.
	PGMaxConns      int
	PGMaxConnsPerDB int
	// MaxBackendConns caps bitd's connections to the platform cluster as
	// tenant roles (HTTP pools, wire sessions and jobs together); 0 derives
	// it at start-up from the cluster's max_connections, less its reserved
	// connections, bitd's own pools and a margin for operators.
	// MaxBackendConnsPerAccount is each account's share of it, and its cap
	// (0: a quarter of MaxBackendConns, at least 10). Over them a client
	// gets HTTP 429 (or 503 at the total) or FATAL 53300.
	MaxBackendConns           int
	MaxBackendConnsPerAccount int
	// MaxDatabasesPerAccount caps the live databases of one account
	// (default 100; 0 means no cap).
	MaxDatabasesPerAccount int
	// DBStock is how many databases bitd keeps provisioned ahead of
	// demand on each active cluster, shared by the replicas of a metadata
	// store, so that creating one answers in milliseconds (--db-stock;
	// default 4, 2 under dev; 0 disables).
	DBStock int
	// DBStockMax is the most a burst of creations raises a cluster's stock
	// target to (--db-stock-max, default 64; not above DBStock: the stock
	// does not follow demand), and DBStockDecay how long the raised target
	// stays after the last creation that found the stock empty
	// (--db-stock-decay, default 1h).
	DBStockMax   int
	DBStockDecay time.Duration
	// NameReservation is how long a deleted database's name stays
	// reserved (--name-reservation; default 30 days, 0 under dev; 0 means
	// not at all).
	NameReservation time.Duration
	// PGRelay picks how wire-proxy sessions are relayed: "loop" (default:
	// every session on one epoll loop, on Linux) or
	// "goroutines" (two goroutines per session, always).
	PGRelay string
	// PGBackend is how bitd reaches PostgreSQL as tenant roles (the HTTP
	// pools and the wire proxy): host:port, or the directory of
	// PostgreSQL's Unix socket (e.g. /var/run/postgresql), used with the
	// port of DatabaseURL, or /dir:port. "" means: when DatabaseURL's host
	// is loopback, the server's own Unix socket (a locked-down cluster
	// takes tenant roles only there; see pgaddr.Tenant), else DatabaseURL's
	// host and port.
	PGBackend string
	// DataDir holds the server secret, blobs and (dev) the private cluster.
	DataDir string
	// BlobURL names the blob store for uploads and exports (file:///dir,
	// s3://bucket?region=…); "" means DataDir/blobs.
	BlobURL string
	// PublicURL is the externally visible base URL (for status and download
	// URLs); "" means http://<HTTPAddr as bound>.
	PublicURL string
	// TokenTTL is the lifetime of access tokens (default 1h).
	TokenTTL time.Duration
	// RefreshIdle is how long a login session's refresh token stays valid
	// unused (--refresh-idle, default 14 days); RefreshLifetime is the
	// session's absolute lifetime from its login (--refresh-lifetime,
	// default 90 days). Both must be positive.
	RefreshIdle     time.Duration
	RefreshLifetime time.Duration
	// StatementTimeout is the default per-query timeout (30s);
	// MaxStatementTimeout caps timeout_ms (10m).
	StatementTimeout    time.Duration
	MaxStatementTimeout time.Duration
	// MaxResultRows and MaxResultBytes cap buffered (non-streamed) results;
	// 0 means the query package's defaults.
	MaxResultRows  int
	MaxResultBytes int64
	// StreamStallTimeout bounds each write of a streamed query answer: a
	// client that reads nothing for this long loses its stream and its
	// query is cancelled; 0 means the query package's default (30s).
	StreamStallTimeout time.Duration
	// MaxBufferedBytes and MaxBufferedBytesPerAccount bound the encoded
	// rows of all buffered query answers in flight, in total and per
	// caller account; 0 means the query package's defaults (256 MiB,
	// 64 MiB). Past them an answer waits briefly, then gets 429.
	MaxBufferedBytes           int64
	MaxBufferedBytesPerAccount int64
	// HTTPReadHeaderTimeout bounds reading a request's header,
	// HTTPReadTimeout its whole body (uploads: each read of it, so a large
	// upload may take longer while it keeps arriving), HTTPIdleTimeout a
	// keep-alive connection waiting for its next request. Defaults 10s,
	// 60s, 2m; they must be positive.
	HTTPReadHeaderTimeout time.Duration
	HTTPReadTimeout       time.Duration
	HTTPIdleTimeout       time.Duration
	// AllowedOrigins is the comma-separated CORS allowlist ("*" for any);
	// empty allows no cross-origin callers.
	AllowedOrigins string
	// LogFormat is "text" or "json"; LogLevel is debug|info|warn|error.
	LogFormat string
	LogLevel  string
	// Dev is set by `bitd dev`: file_url may point at private addresses and
	// the wire proxy accepts plaintext passwords on loopback.
	Dev bool
	// AllowPrivateFileURLs lets import file_url reach private/loopback
	// addresses (--allow-private-urls; default true under `bitd dev`, false
	// under `bitd serve`).
	AllowPrivateFileURLs bool
	// DownloadURLTTL is how long an export's download_url stays valid after
	// the job is read (--download-url-ttl; 0 means the jobs default, 1h).
	DownloadURLTTL time.Duration
	// ExportRetention is how long an export's file stays in the blob store
	// after the export finished (--export-retention, default 168h); then
	// the jobs' retention sweep deletes it. It must be positive.
	ExportRetention time.Duration
	// JobStatementTimeout bounds an import's load and an export's query
	// (--job-statement-timeout; 0 means the jobs default, 30m).
	JobStatementTimeout time.Duration

	// JobRescueAfter is how long a job may stay running before another
	// worker may take it over (--job-rescue-after; 0 means the default:
	// 1h, 1m under bitd dev): how long the jobs of a replica that died
	// wait.
	JobRescueAfter time.Duration
	// JobWorkers is how many jobs one bitd runs at once (--job-workers; 0
	// means the jobs default, 8).
	JobWorkers int
	// JobMaxPerAccount caps the running jobs of one account across every
	// bitd (--job-max-per-account; 0 means the jobs default, 2).
	JobMaxPerAccount int
	// AllowPlaintextLoopback lets the wire proxy accept cleartext passwords
	// without TLS from loopback clients (dev only by default).
	AllowPlaintextLoopback bool
	// TrustedProxies lists the load balancers (comma-separated addresses
	// and CIDR ranges, --trusted-proxies) whose word bitd takes for the
	// client's address: X-Forwarded-For or Forwarded on HTTP, a PROXY
	// protocol header on the wire proxy (with WireProxyProtocol). Empty
	// (the default) trusts nobody: the client is the TCP peer.
	TrustedProxies string
	// WireProxyProtocol makes the wire proxy require a PROXY protocol
	// header (version 1 or 2) at the start of every connection from a
	// TrustedProxies address (--wire-proxy-protocol); other peers must
	// not send one.
	WireProxyProtocol bool
	// TempFileLimit is the temp_file_limit bitd sets on every platform
	// database (--temp-file-limit): a PostgreSQL size ("5GB", "512MB"; a
	// bare number is kB) or "-1" for no per-database limit. Validate
	// rewrites it in canonical form (ParseTempFileLimit).
	TempFileLimit string
	// StorageCheckInterval is the period of the storage-quota pass that
	// measures every platform database and freezes those over their
	// storage_limit_bytes (--storage-check-interval, default 10s; see
	// docs/bitd.md, "Storage quotas"). It must be positive.
	StorageCheckInterval time.Duration
	// StorageLimit is the storage_limit_bytes of new databases, and the
	// most a request may ask for (--storage-limit, default 3 GiB); 0 means
	// none.
	StorageLimit int64
	// Secret is the server secret (BITD_SECRET or DataDir/secret).
	Secret []byte
	// PoolMaxConns bounds each HTTP query pool, one per (platform
	// database, role) (--pool-max-conns; 0 means pgpool's default, 10).
	PoolMaxConns int
	// PprofAddr, when set, serves net/http/pprof on its own listener
	// (--pprof). It must be a loopback address unless PprofAnyAddr.
	PprofAddr    string
	PprofAnyAddr bool
	// MetricsAddr, when set, serves Prometheus metrics at /metrics on its
	// own listener (--metrics), never on the public one. It must be a
	// loopback address unless MetricsAnyAddr.
	MetricsAddr    string
	MetricsAnyAddr bool
	// OTLPEndpoint, when set, exports OpenTelemetry traces to this
	// OTLP/HTTP receiver (--otlp-endpoint; empty: the standard
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT,
	// else tracing is off). TraceSample is the share of new traces
	// recorded (--trace-sample, 0..1, default 1); TraceSQL adds the SQL
	// text (never parameters) to query spans (--trace-sql, default off).
	OTLPEndpoint string
	TraceSample  float64
	TraceSQL     bool
	// DrainDelay is how long bitd keeps serving after SIGTERM with /readyz
	// answering 503, so that load balancers stop sending it requests
	// (--drain-delay, default 0). DrainTimeout then bounds the wait for
	// in-flight HTTP requests and streams, wire-proxy sessions and running
	// jobs (--drain-timeout; default 30s, 5s under dev); past it requests
	// are cancelled, sessions ended with 57P01 and jobs handed back.
	DrainDelay   time.Duration
	DrainTimeout time.Duration
}

// Default returns the defaults.
func Default() Config {
	return Config{
		MetadataDB:          "bitkit",
		HTTPAddr:            "127.0.0.1:8080",
		TraceSample:         1,
		TokenTTL:            time.Hour,
		RefreshIdle:         14 * 24 * time.Hour,
		RefreshLifetime:     90 * 24 * time.Hour,
		StatementTimeout:    30 * time.Second,
		MaxStatementTimeout: 10 * time.Minute,
		LogFormat:           "text",
		LogLevel:            "info",
		TempFileLimit:       "5GB",
		ExportRetention:     7 * 24 * time.Hour,

		MaxDatabasesPerAccount: 100,
		StorageCheckInterval:   10 * time.Second,
		StorageLimit:           3 << 30,
		DBStock:                4,
		DBStockMax:             64,
		DBStockDecay:           time.Hour,
		NameReservation:        30 * 24 * time.Hour,

		HTTPReadHeaderTimeout: 10 * time.Second,
		HTTPReadTimeout:       60 * time.Second,
		HTTPIdleTimeout:       2 * time.Minute,

		DrainTimeout: 30 * time.Second,
	}
}

// envOr returns BITD_<name> or def.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv("BITD_" + name); ok {
		return v
	}
	return def
}

func envDur(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv("BITD_" + name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func envInt(name string, def int64) int64 {
	if v, ok := os.LookupEnv("BITD_" + name); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v, ok := os.LookupEnv("BITD_" + name); ok {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return def
}

func envBool(name string, def bool) bool {
	if v, ok := os.LookupEnv("BITD_" + name); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return def
}

// RegisterFlags defines the serve flags on fs, defaulting each to its
// BITD_* environment variable, then to c's current value.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DatabaseURL, "database-url", envOr("DATABASE_URL", c.DatabaseURL), "cluster admin URL: superuser or CREATEDB+CREATEROLE (env BITD_DATABASE_URL)")
	fs.StringVar(&c.MetadataDB, "metadata-db", envOr("METADATA_DB", c.MetadataDB), "metadata database name, created if missing (env BITD_METADATA_DB)")
	fs.StringVar(&c.HTTPAddr, "http", envOr("HTTP", c.HTTPAddr), "HTTP listen address (env BITD_HTTP)")
	fs.StringVar(&c.AdvertiseHTTP, "advertise-http", envOr("ADVERTISE_HTTP", c.AdvertiseHTTP), "host:port or https://name:port where the other replicas reach this one's HTTP API (interactive transactions); empty = the --http address as bound (env BITD_ADVERTISE_HTTP)")
	fs.DurationVar(&c.TxIdleTimeout, "tx-idle-timeout", envDur("TX_IDLE_TIMEOUT", c.TxIdleTimeout), "roll back an interactive transaction idle this long when begin gives no idle_timeout_ms; 0 = 15s (env BITD_TX_IDLE_TIMEOUT)")
	fs.DurationVar(&c.TxMaxIdleTimeout, "tx-max-idle-timeout", envDur("TX_MAX_IDLE_TIMEOUT", c.TxMaxIdleTimeout), "largest idle_timeout_ms a transaction may ask for; 0 = 5m (env BITD_TX_MAX_IDLE_TIMEOUT)")
	fs.DurationVar(&c.TxMaxLifetime, "tx-max-lifetime", envDur("TX_MAX_LIFETIME", c.TxMaxLifetime), "roll back an interactive transaction this long after its begin; 0 = 15m (env BITD_TX_MAX_LIFETIME)")
	fs.IntVar(&c.TxMaxPerPrincipal, "tx-max-per-principal", int(envInt("TX_MAX_PER_PRINCIPAL", int64(c.TxMaxPerPrincipal))), "open interactive transactions per user or service account on this bitd; 0 = 8 (env BITD_TX_MAX_PER_PRINCIPAL)")
	fs.IntVar(&c.TxMaxPerDatabase, "tx-max-per-database", int(envInt("TX_MAX_PER_DATABASE", int64(c.TxMaxPerDatabase))), "open interactive transactions per database on this bitd; keep it below --pool-max-conns; 0 = 8 (env BITD_TX_MAX_PER_DATABASE)")
	fs.StringVar(&c.PGAddr, "pg", envOr("PG", c.PGAddr), "PostgreSQL wire proxy listen address; empty disables it (env BITD_PG)")
	fs.StringVar(&c.PGTLSCert, "pg-tls-cert", envOr("PG_TLS_CERT", c.PGTLSCert), "PEM certificate of the wire proxy; empty = self-signed (env BITD_PG_TLS_CERT)")
	fs.StringVar(&c.PGTLSKey, "pg-tls-key", envOr("PG_TLS_KEY", c.PGTLSKey), "PEM private key of the wire proxy (env BITD_PG_TLS_KEY)")
	fs.StringVar(&c.TLSCert, "tls-cert", envOr("TLS_CERT", c.TLSCert), "PEM certificate chain for HTTPS (and the wire proxy); reloaded on SIGHUP and when the file changes (env BITD_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", envOr("TLS_KEY", c.TLSKey), "PEM private key of --tls-cert (env BITD_TLS_KEY)")
	fs.StringVar(&c.ACMEDomains, "acme-domain", envOr("ACME_DOMAIN", c.ACMEDomains), "serve HTTPS with certificates obtained by ACME (TLS-ALPN-01) for these comma-separated domains; --http must be reachable on port 443 of each (env BITD_ACME_DOMAIN)")
	fs.StringVar(&c.ACMEEmail, "acme-email", envOr("ACME_EMAIL", c.ACMEEmail), "contact e-mail of the ACME account (env BITD_ACME_EMAIL)")
	fs.StringVar(&c.ACMEDirectory, "acme-directory", envOr("ACME_DIRECTORY", c.ACMEDirectory), "ACME directory URL; empty = Let's Encrypt (env BITD_ACME_DIRECTORY)")
	fs.StringVar(&c.ACMECACert, "acme-ca-cert", envOr("ACME_CA_CERT", c.ACMECACert), "PEM CA certificate to trust for the ACME server's own HTTPS (a private ACME CA such as Pebble); empty = system roots (env BITD_ACME_CA_CERT)")
	fs.DurationVar(&c.PGIdleTimeout, "pg-idle-timeout", envDur("PG_IDLE_TIMEOUT", c.PGIdleTimeout), "close wire-proxy sessions idle this long; 0 = 5m (env BITD_PG_IDLE_TIMEOUT)")
	fs.DurationVar(&c.PGReaderIdleInTx, "pg-reader-idle-in-transaction-timeout", envDur("PG_READER_IDLE_IN_TRANSACTION_TIMEOUT", c.PGReaderIdleInTx), "end a reader's wire-proxy session idle inside a transaction this long; 0 = 60s, negative = never (env BITD_PG_READER_IDLE_IN_TRANSACTION_TIMEOUT)")
	fs.IntVar(&c.PGMaxConns, "pg-max-conns", int(envInt("PG_MAX_CONNS", int64(c.PGMaxConns))), "cap on wire-proxy sessions in total; 0 = none (env BITD_PG_MAX_CONNS)")
	fs.IntVar(&c.PGMaxConnsPerDB, "pg-max-conns-per-db", int(envInt("PG_MAX_CONNS_PER_DB", int64(c.PGMaxConnsPerDB))), "cap on wire-proxy sessions per database; 0 = none (env BITD_PG_MAX_CONNS_PER_DB)")
	fs.IntVar(&c.MaxBackendConns, "max-backend-conns", int(envInt("MAX_BACKEND_CONNS", int64(c.MaxBackendConns))), "cap on bitd's connections to PostgreSQL as tenant roles (HTTP, wire, jobs); 0 = derived from max_connections (env BITD_MAX_BACKEND_CONNS)")
	fs.IntVar(&c.MaxBackendConnsPerAccount, "max-backend-conns-per-account", int(envInt("MAX_BACKEND_CONNS_PER_ACCOUNT", int64(c.MaxBackendConnsPerAccount))), "each account's share (and cap) of --max-backend-conns; 0 = a quarter of it, at least 10 (env BITD_MAX_BACKEND_CONNS_PER_ACCOUNT)")
	fs.IntVar(&c.MaxDatabasesPerAccount, "max-databases-per-account", int(envInt("MAX_DATABASES_PER_ACCOUNT", int64(c.MaxDatabasesPerAccount))), "cap on the databases of one account; 0 = no cap (env BITD_MAX_DATABASES_PER_ACCOUNT)")
	fs.IntVar(&c.DBStock, "db-stock", int(envInt("DB_STOCK", int64(c.DBStock))), "databases kept provisioned ahead of demand, so that creating one takes milliseconds; shared by replicas; 0 = none (env BITD_DB_STOCK)")
	fs.IntVar(&c.DBStockMax, "db-stock-max", int(envInt("DB_STOCK_MAX", int64(c.DBStockMax))), "the most a burst of creations raises a cluster's stock to (each creation that finds the stock empty adds one); not above --db-stock = the stock does not follow demand (env BITD_DB_STOCK_MAX)")
	fs.DurationVar(&c.DBStockDecay, "db-stock-decay", envDur("DB_STOCK_DECAY", c.DBStockDecay), "how long a raised stock stays after the last creation that found it empty; then it falls back to --db-stock (env BITD_DB_STOCK_DECAY)")
	fs.DurationVar(&c.NameReservation, "name-reservation", envDur("NAME_RESERVATION", c.NameReservation), "how long a deleted database's name stays reserved (720h = 30 days); 0 = not at all; `bitd admin db release` frees one early (env BITD_NAME_RESERVATION)")
	fs.StringVar(&c.PGRelay, "pg-relay", envOr("PG_RELAY", c.PGRelay), "wire-proxy relay: loop (default; epoll loop for plaintext sessions) or goroutines (env BITD_PG_RELAY)")
	fs.StringVar(&c.PGBackend, "pg-backend", envOr("PG_BACKEND", c.PGBackend), "how bitd reaches PostgreSQL as tenant roles (HTTP pools and wire proxy): host:port or a Unix-socket directory; empty = the server's Unix socket when --database-url is loopback, else its host (env BITD_PG_BACKEND)")
	fs.StringVar(&c.DataDir, "data", envOr("DATA", c.DataDir), "data directory: server secret, blobs, dev cluster (env BITD_DATA)")
	fs.StringVar(&c.BlobURL, "blob-url", envOr("BLOB_URL", c.BlobURL), "blob store for uploads and exports (file:///dir, s3://bucket); empty = DATA/blobs (env BITD_BLOB_URL)")
	fs.StringVar(&c.PublicURL, "public-url", envOr("PUBLIC_URL", c.PublicURL), "externally visible base URL (env BITD_PUBLIC_URL)")
	fs.DurationVar(&c.TokenTTL, "token-ttl", envDur("TOKEN_TTL", c.TokenTTL), "access token lifetime (env BITD_TOKEN_TTL)")
	fs.DurationVar(&c.RefreshIdle, "refresh-idle", envDur("REFRESH_IDLE", c.RefreshIdle), "a login session ends when its refresh token is unused this long (env BITD_REFRESH_IDLE)")
	fs.DurationVar(&c.RefreshLifetime, "refresh-lifetime", envDur("REFRESH_LIFETIME", c.RefreshLifetime), "a login session ends this long after its login, however often it is refreshed (env BITD_REFRESH_LIFETIME)")
	fs.DurationVar(&c.StatementTimeout, "statement-timeout", envDur("STATEMENT_TIMEOUT", c.StatementTimeout), "default query timeout (env BITD_STATEMENT_TIMEOUT)")
	fs.DurationVar(&c.MaxStatementTimeout, "max-statement-timeout", envDur("MAX_STATEMENT_TIMEOUT", c.MaxStatementTimeout), "largest timeout_ms a query may ask for (env BITD_MAX_STATEMENT_TIMEOUT)")
	fs.IntVar(&c.MaxResultRows, "max-result-rows", int(envInt("MAX_RESULT_ROWS", int64(c.MaxResultRows))), "row cap of a buffered query result; 0 = default (env BITD_MAX_RESULT_ROWS)")
	fs.Int64Var(&c.MaxResultBytes, "max-result-bytes", envInt("MAX_RESULT_BYTES", c.MaxResultBytes), "byte cap of a buffered query result; 0 = default (env BITD_MAX_RESULT_BYTES)")
	fs.DurationVar(&c.StreamStallTimeout, "stream-stall-timeout", envDur("STREAM_STALL_TIMEOUT", c.StreamStallTimeout), "cancel a streamed query whose client reads nothing for this long; 0 = 30s (env BITD_STREAM_STALL_TIMEOUT)")
	fs.Int64Var(&c.MaxBufferedBytes, "max-buffered-bytes", envInt("MAX_BUFFERED_BYTES", c.MaxBufferedBytes), "bound on the bytes of all buffered query answers in flight; 0 = 256 MiB (env BITD_MAX_BUFFERED_BYTES)")
	fs.Int64Var(&c.MaxBufferedBytesPerAccount, "max-buffered-bytes-per-account", envInt("MAX_BUFFERED_BYTES_PER_ACCOUNT", c.MaxBufferedBytesPerAccount), "bound on the bytes of one account's buffered query answers in flight; 0 = 64 MiB (env BITD_MAX_BUFFERED_BYTES_PER_ACCOUNT)")
	fs.DurationVar(&c.HTTPReadHeaderTimeout, "http-read-header-timeout", envDur("HTTP_READ_HEADER_TIMEOUT", c.HTTPReadHeaderTimeout), "close HTTP connections whose request header takes longer (env BITD_HTTP_READ_HEADER_TIMEOUT)")
	fs.DurationVar(&c.HTTPReadTimeout, "http-read-timeout", envDur("HTTP_READ_TIMEOUT", c.HTTPReadTimeout), "answer 408 to a request whose body takes longer; uploads: to one that sends nothing for this long (env BITD_HTTP_READ_TIMEOUT)")
	fs.DurationVar(&c.HTTPIdleTimeout, "http-idle-timeout", envDur("HTTP_IDLE_TIMEOUT", c.HTTPIdleTimeout), "close keep-alive HTTP connections idle this long (env BITD_HTTP_IDLE_TIMEOUT)")
	fs.BoolVar(&c.AllowPrivateFileURLs, "allow-private-urls", envBool("ALLOW_PRIVATE_URLS", c.AllowPrivateFileURLs), "let import file_url reach private and loopback addresses; default true under dev, false under serve (env BITD_ALLOW_PRIVATE_URLS)")
	fs.DurationVar(&c.DownloadURLTTL, "download-url-ttl", envDur("DOWNLOAD_URL_TTL", c.DownloadURLTTL), "lifetime of export download URLs; 0 = 1h (env BITD_DOWNLOAD_URL_TTL)")
	fs.DurationVar(&c.ExportRetention, "export-retention", envDur("EXPORT_RETENTION", c.ExportRetention), "how long export files are kept after the export finished, then deleted; must be positive (env BITD_EXPORT_RETENTION)")
	fs.Int64Var(&c.StorageLimit, "storage-limit", envInt("STORAGE_LIMIT", c.StorageLimit), "storage_limit_bytes of new databases, and the most an API request may ask for; 0 = no limit; `bitd admin db limit` changes one database's (env BITD_STORAGE_LIMIT)")
	fs.DurationVar(&c.StorageCheckInterval, "storage-check-interval", envDur("STORAGE_CHECK_INTERVAL", c.StorageCheckInterval), "how often every database's size is compared with its storage_limit_bytes (over it: writes refused until it is back under); must be positive (env BITD_STORAGE_CHECK_INTERVAL)")
	fs.DurationVar(&c.JobRescueAfter, "job-rescue-after", envDur("JOB_RESCUE_AFTER", c.JobRescueAfter), "how long a job may run before another worker takes it over, e.g. after its replica died; 0 = 1h (1m under dev) (env BITD_JOB_RESCUE_AFTER)")
	fs.DurationVar(&c.JobStatementTimeout, "job-statement-timeout", envDur("JOB_STATEMENT_TIMEOUT", c.JobStatementTimeout), "bound on an import's load and an export's query; 0 = 30m (env BITD_JOB_STATEMENT_TIMEOUT)")
	fs.IntVar(&c.JobWorkers, "job-workers", int(envInt("JOB_WORKERS", int64(c.JobWorkers))), "import/export jobs this bitd runs at once; 0 = 8 (env BITD_JOB_WORKERS)")
	fs.IntVar(&c.JobMaxPerAccount, "job-max-per-account", int(envInt("JOB_MAX_PER_ACCOUNT", int64(c.JobMaxPerAccount))), "running import/export jobs per account across all bitds; 0 = 2 (env BITD_JOB_MAX_PER_ACCOUNT)")
	fs.StringVar(&c.TempFileLimit, "temp-file-limit", envOr("TEMP_FILE_LIMIT", c.TempFileLimit), "temp_file_limit of every platform database (PostgreSQL size: 5GB, 512MB); -1 = no limit (env BITD_TEMP_FILE_LIMIT)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", envOr("TRUSTED_PROXIES", c.TrustedProxies), "comma-separated addresses and CIDR ranges of load balancers whose X-Forwarded-For/Forwarded (HTTP) and PROXY protocol header (wire, with --wire-proxy-protocol) name the client; empty = trust nobody (env BITD_TRUSTED_PROXIES)")
	fs.BoolVar(&c.WireProxyProtocol, "wire-proxy-protocol", envBool("WIRE_PROXY_PROTOCOL", c.WireProxyProtocol), "require a PROXY protocol header (v1 or v2, e.g. HAProxy send-proxy-v2) on wire-proxy connections from --trusted-proxies (env BITD_WIRE_PROXY_PROTOCOL)")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", envOr("ALLOWED_ORIGINS", c.AllowedOrigins), "comma-separated CORS origins, * for any (env BITD_ALLOWED_ORIGINS)")
	fs.StringVar(&c.LogFormat, "log-format", envOr("LOG_FORMAT", c.LogFormat), "log format: text or json (env BITD_LOG_FORMAT)")
	fs.StringVar(&c.LogLevel, "log-level", envOr("LOG_LEVEL", c.LogLevel), "log level: debug, info, warn, error (env BITD_LOG_LEVEL)")
	fs.IntVar(&c.PoolMaxConns, "pool-max-conns", int(envInt("POOL_MAX_CONNS", int64(c.PoolMaxConns))), "connections of each HTTP query pool (one per database and role); 0 = 10 (env BITD_POOL_MAX_CONNS)")
	fs.StringVar(&c.PprofAddr, "pprof", envOr("PPROF", c.PprofAddr), "serve Go profiles (net/http/pprof) on this loopback address, e.g. 127.0.0.1:6060; empty = off (env BITD_PPROF)")
	fs.StringVar(&c.MetricsAddr, "metrics", envOr("METRICS", c.MetricsAddr), "serve Prometheus metrics at /metrics on this loopback address, e.g. 127.0.0.1:9090; empty = off (env BITD_METRICS)")
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", envOr("OTLP_ENDPOINT", c.OTLPEndpoint), "export OpenTelemetry traces to this OTLP/HTTP receiver, e.g. http://127.0.0.1:4318; empty = OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT if set, else no tracing (env BITD_OTLP_ENDPOINT)")
	fs.Float64Var(&c.TraceSample, "trace-sample", envFloat("TRACE_SAMPLE", c.TraceSample), "share of new traces recorded when tracing, 0 to 1; a request continuing a client's trace follows the client's decision (env BITD_TRACE_SAMPLE)")
	fs.BoolVar(&c.TraceSQL, "trace-sql", envBool("TRACE_SQL", c.TraceSQL), "record the SQL text (never its parameters) on query spans (env BITD_TRACE_SQL)")
	fs.BoolVar(&c.MetricsAnyAddr, "metrics-any-addr", envBool("METRICS_ANY_ADDR", c.MetricsAnyAddr), "let --metrics listen on a non-loopback address (keep it on a private network) (env BITD_METRICS_ANY_ADDR)")
	fs.DurationVar(&c.DrainDelay, "drain-delay", envDur("DRAIN_DELAY", c.DrainDelay), "after SIGTERM, keep serving this long with /readyz answering 503 so load balancers move away (env BITD_DRAIN_DELAY)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", envDur("DRAIN_TIMEOUT", c.DrainTimeout), "after SIGTERM (and --drain-delay), wait this long for in-flight requests, streams, wire sessions and jobs before cutting them; default 30s, 5s under dev (env BITD_DRAIN_TIMEOUT)")
	fs.BoolVar(&c.PprofAnyAddr, "pprof-any-addr", envBool("PPROF_ANY_ADDR", c.PprofAnyAddr), "let --pprof listen on a non-loopback address (profiles reveal internals: keep it private) (env BITD_PPROF_ANY_ADDR)")
}

// Validate checks values that flags cannot, and rewrites TempFileLimit in
// canonical form.
func (c *Config) Validate() error {
	if c.DatabaseURL == "" {
		return fmt.Errorf("--database-url (or BITD_DATABASE_URL) is required: a PostgreSQL URL of a superuser or a role with CREATEDB and CREATEROLE")
	}
	if !(c.TraceSample >= 0 && c.TraceSample <= 1) {
		return fmt.Errorf("--trace-sample must be between 0 and 1 (the share of new traces recorded), not %g", c.TraceSample)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("--log-format must be text or json, not %q", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level must be debug, info, warn or error, not %q", c.LogLevel)
	}
	if c.HTTPReadHeaderTimeout <= 0 || c.HTTPReadTimeout <= 0 || c.HTTPIdleTimeout <= 0 {
		return fmt.Errorf("--http-read-header-timeout, --http-read-timeout and --http-idle-timeout must be positive durations such as 10s, 60s and 2m (the defaults)")
	}
	if c.MaxBufferedBytes < 0 || c.MaxBufferedBytesPerAccount < 0 {
		return fmt.Errorf("--max-buffered-bytes and --max-buffered-bytes-per-account must not be negative (0 means the defaults, 256 MiB and 64 MiB)")
	}
	if c.MaxBackendConns < 0 || c.MaxBackendConnsPerAccount < 0 || c.MaxDatabasesPerAccount < 0 {
		return fmt.Errorf("--max-backend-conns, --max-backend-conns-per-account and --max-databases-per-account must not be negative (0 means derived, derived and no cap)")
	}
	if c.DBStock < 0 || c.DBStock > 1000 {
		return fmt.Errorf("--db-stock (BITD_DB_STOCK) must be between 0 (no stock) and 1000, not %d", c.DBStock)
	}
	if c.DBStockMax < 0 || c.DBStockMax > 1000 {
		return fmt.Errorf("--db-stock-max (BITD_DB_STOCK_MAX) must be between 0 and 1000, not %d", c.DBStockMax)
	}
	if c.DBStockDecay <= 0 {
		return fmt.Errorf("--db-stock-decay (BITD_DB_STOCK_DECAY) must be positive, such as 1h, not %s", c.DBStockDecay)
	}
	if c.NameReservation < 0 {
		return fmt.Errorf("--name-reservation (BITD_NAME_RESERVATION) must not be negative: give a duration such as 720h (30 days, the default), or 0 to reserve nothing, not %v", c.NameReservation)
	}
	if c.MaxBackendConns > 0 && c.MaxBackendConnsPerAccount > c.MaxBackendConns {
		return fmt.Errorf("--max-backend-conns-per-account (%d) must not exceed --max-backend-conns (%d)", c.MaxBackendConnsPerAccount, c.MaxBackendConns)
	}
	if c.PoolMaxConns < 0 {
		return fmt.Errorf("--pool-max-conns must not be negative (0 means the default, 10), not %d", c.PoolMaxConns)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together: give both PEM files (certificate chain and private key) or neither")
	}
	if c.TLSCert != "" && c.ACMEDomains != "" {
		return fmt.Errorf("--tls-cert and --acme-domain are two sources of the HTTPS certificate: give one of them")
	}
	if c.ACMEDomains == "" && (c.ACMEEmail != "" || c.ACMEDirectory != "" || c.ACMECACert != "") {
		return fmt.Errorf("--acme-email, --acme-directory and --acme-ca-cert need --acme-domain (the domain names to obtain certificates for)")
	}
	if err := checkPprofAddr(c.PprofAddr, c.PprofAnyAddr); err != nil {
		return err
	}
	if err := checkPrivateAddr("--metrics", "127.0.0.1:9090", "metrics reveal the databases' activity", "--metrics-any-addr", c.MetricsAddr, c.MetricsAnyAddr); err != nil {
		return err
	}
	if c.DrainDelay < 0 || c.DrainTimeout <= 0 {
		return fmt.Errorf("--drain-delay must not be negative and --drain-timeout must be positive (e.g. 5s and 30s), not %v and %v", c.DrainDelay, c.DrainTimeout)
	}
	if c.DownloadURLTTL < 0 {
		return fmt.Errorf("--download-url-ttl must not be negative (0 means the default, 1h), not %v", c.DownloadURLTTL)
	}
	if c.JobRescueAfter < 0 {
		return fmt.Errorf("--job-rescue-after must not be negative (0 means the default: 1h, 1m under dev)")
	}
	if c.JobRescueAfter > 0 && c.JobRescueAfter < 10*time.Second {
		return fmt.Errorf("--job-rescue-after %s is too short: a live job would be handed out again every few seconds; use 10s or more", c.JobRescueAfter)
	}
	if c.JobStatementTimeout < 0 || c.JobWorkers < 0 || c.JobMaxPerAccount < 0 {
		return fmt.Errorf("--job-statement-timeout, --job-workers and --job-max-per-account must not be negative (0 means the default: 30m, 8, 2)")
	}
	if c.StorageLimit < 0 {
		return fmt.Errorf("--storage-limit (BITD_STORAGE_LIMIT) must be a number of bytes, 0 for no limit, not %d", c.StorageLimit)
	}
	if c.StorageCheckInterval <= 0 {
		return fmt.Errorf("--storage-check-interval (BITD_STORAGE_CHECK_INTERVAL) must be a positive duration such as 10s (the default), not %v: it bounds how far a database can grow past its storage limit before writes are refused", c.StorageCheckInterval)
	}
	if c.ExportRetention <= 0 {
		return fmt.Errorf("--export-retention (BITD_EXPORT_RETENTION) must be a positive duration such as 168h (the default, 7 days) or 720h, not %v: export files are deleted that long after the export finished; for practically unlimited retention give a large value such as 87600h (10 years)", c.ExportRetention)
	}
	tfl, err := ParseTempFileLimit(c.TempFileLimit)
	if err != nil {
		return fmt.Errorf("--temp-file-limit (BITD_TEMP_FILE_LIMIT): %w", err)
	}
	c.TempFileLimit = tfl
	if c.RefreshIdle <= 0 || c.RefreshLifetime <= 0 {
		return fmt.Errorf("--refresh-idle (BITD_REFRESH_IDLE) and --refresh-lifetime (BITD_REFRESH_LIFETIME) must be positive durations, such as 336h (14 days, the idle default) and 2160h (90 days, the lifetime default), not %v and %v", c.RefreshIdle, c.RefreshLifetime)
	}
	if c.TokenTTL <= 0 || c.StatementTimeout <= 0 || c.MaxStatementTimeout < c.StatementTimeout {
		return fmt.Errorf("--token-ttl and --statement-timeout must be positive and --max-statement-timeout at least --statement-timeout")
	}
	return nil
}

// maxTempFileLimitKB is the largest temp_file_limit PostgreSQL accepts (an
// int in kB).
const maxTempFileLimitKB = math.MaxInt32

// ParseTempFileLimit checks a --temp-file-limit value and returns it in the
// canonical form bitd writes to PostgreSQL: "-1" (no limit), or a whole
// number of kB written with the largest unit that divides it exactly
// ("5GB", "1536kB"). It accepts PostgreSQL's memory-size syntax: a number,
// possibly fractional, then B, kB, MB, GB or TB (units in any case); a bare
// number is kB, as in postgresql.conf. Sizes are rounded to the nearest kB
// and must be between 1kB and 2147483647kB (just under 2TB). 0 is refused:
// to PostgreSQL it forbids every temporary file, so any sort or hash larger
// than work_mem would fail; use -1 for no limit.
func ParseTempFileLimit(s string) (string, error) {
	v := strings.TrimSpace(s)
	if v == "-1" {
		return "-1", nil
	}
	i := 0
	for i < len(v) && (v[i] >= '0' && v[i] <= '9' || v[i] == '.') {
		i++
	}
	num, unit := v[:i], strings.TrimSpace(v[i:])
	units := map[string]float64{"": 1, "b": 1.0 / 1024, "kb": 1, "mb": 1 << 10, "gb": 1 << 20, "tb": 1 << 30}
	mult, ok := units[strings.ToLower(unit)]
	n, err := strconv.ParseFloat(num, 64)
	if num == "" || !ok || err != nil {
		return "", fmt.Errorf("%q is not a size: use a number and a unit (B, kB, MB, GB, TB), e.g. 5GB, or -1 for no limit", s)
	}
	kb := math.Round(n * mult)
	if kb == 0 {
		return "", fmt.Errorf("%q would forbid every temporary file (any sort or hash larger than work_mem would fail): use at least 1kB, or -1 for no limit", s)
	}
	if kb > maxTempFileLimitKB {
		return "", fmt.Errorf("%q is more than PostgreSQL's maximum, 2147483647kB (just under 2TB): use -1 for no limit", s)
	}
	k := int64(kb)
	for _, u := range []struct {
		name string
		kb   int64
	}{{"TB", 1 << 30}, {"GB", 1 << 20}, {"MB", 1 << 10}} {
		if k%u.kb == 0 {
			return strconv.FormatInt(k/u.kb, 10) + u.name, nil
		}
	}
	return strconv.FormatInt(k, 10) + "kB", nil
}

// checkPprofAddr refuses a --pprof address that is not host:port, or not
// loopback without anyAddr: profiles and goroutine dumps reveal internals.
func checkPprofAddr(addr string, anyAddr bool) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--pprof must be host:port such as 127.0.0.1:6060, not %q", addr)
	}
	if anyAddr {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--pprof must listen on a loopback address such as 127.0.0.1:6060, not %q: profiles reveal bitd's internals; add --pprof-any-addr to listen elsewhere on a private network", addr)
	}
	return nil
}

// checkPrivateAddr refuses a listen address (flag) that is not host:port,
// or not loopback without anyAddr.
func checkPrivateAddr(flag, example, why, anyFlag, addr string, anyAddr bool) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s must be host:port such as %s, not %q", flag, example, addr)
	}
	if anyAddr || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s must listen on a loopback address such as %s, not %q: %s; add %s to listen elsewhere on a private network", flag, example, addr, why, anyFlag)
	}
	return nil
}
