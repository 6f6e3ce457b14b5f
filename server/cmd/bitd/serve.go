package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/api"
	"github.com/bitkit-dev/bitkit/server/internal/clientaddr"
	"github.com/bitkit-dev/bitkit/server/internal/config"
	"github.com/bitkit-dev/bitkit/server/internal/cors"
	"github.com/bitkit-dev/bitkit/server/internal/httpcomp"
	"github.com/bitkit-dev/bitkit/server/internal/metrics"
	"github.com/bitkit-dev/bitkit/server/internal/pgaddr"
	"github.com/bitkit-dev/bitkit/server/internal/pgcluster"
	"github.com/bitkit-dev/bitkit/server/internal/pgpool"
	"github.com/bitkit-dev/bitkit/server/internal/quota"
	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/bitkit-dev/bitkit/server/internal/store"
	"github.com/bitkit-dev/bitkit/server/internal/tlsconf"
	"github.com/bitkit-dev/bitkit/server/internal/tracing"
	"github.com/bitkit-dev/bitkit/server/internal/webui"
)

// devOptions are the flags only `bitd dev` has.
type devOptions struct {
	ephemeral bool
	user      string
	tls       bool   // --tls: HTTPS and wire TLS with the dev CA
	caCert    string // the dev CA's certificate file, under --tls
	// metricsAddr is the metrics listener as bound (demo.env), "" without
	// --metrics.
	metricsAddr string
}

func newLogger(cfg *config.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	ho := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(logOut, ho)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(logOut, ho)
	}
	return slog.New(logHandler{h, logOut})
}

// logOut is where bitd's log goes: standard error, in batches (logBuffer);
// main flushes it before bitd exits.
var logOut = newLogBuffer(os.Stderr)

func cmdServe(args []string, dev bool) error {
	cfg := config.Default()
	var d devOptions
	name, synopsis := "serve", "bitd serve --database-url URL [flags]"
	if dev {
		name, synopsis = "dev", "bitd dev [--http ADDR] [--pg ADDR] [--data DIR] [--database-url URL] [--ephemeral] [--user NAME] [--tls] [flags]"
		cfg.PGAddr = "127.0.0.1:6432"
		cfg.DataDir = ".bitd"
		cfg.DBStock = 2
		cfg.NameReservation = 0
		cfg.DrainTimeout = 5 * time.Second
	}
	cfg.AllowPrivateFileURLs = dev // default of --allow-private-urls
	fs := newFlagSet(name, synopsis)
	cfg.RegisterFlags(fs)
	if dev {
		fs.BoolVar(&d.ephemeral, "ephemeral", false, "on exit, drop every database and role this instance created and the metadata database")
		fs.BoolVar(&d.tls, "tls", false, "serve HTTPS (and wire TLS) with a certificate for localhost/127.0.0.1/::1 from a local CA kept in DATA/tls (demo.env names it in BITKIT_CA_CERT)")
		fs.StringVar(&d.user, "user", envOr("BITD_DEV_USER", "demo"), "demo user to create (with its personal account) and issue an API key for")
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return exitUsage{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	cfg.Dev = dev
	cfg.AllowPlaintextLoopback = dev
	if dev {
		if err := access.ValidateAccountName(d.user); err != nil {
			return exitUsage{"--user: " + err.Error()}
		}
	}
	if dev && cfg.DatabaseURL == "" {
		cfg.DatabaseURL = "private" // replaced once the private cluster runs
	}
	if err := cfg.Validate(); err != nil {
		return exitUsage{err.Error()}
	}
	// Tracing: --otlp-endpoint, else the standard OTEL_ variables.
	if cfg.OTLPEndpoint, err = tracing.ResolveEndpoint(cfg.OTLPEndpoint, os.Getenv); err != nil {
		return exitUsage{err.Error()}
	}
	if _, err := cors.ParseOrigins(cfg.AllowedOrigins); err != nil {
		return exitUsage{"--allowed-origins: " + err.Error()}
	}
	trusted, err := clientaddr.ParseTrusted(cfg.TrustedProxies)
	if err != nil {
		return exitUsage{"--trusted-proxies: " + err.Error()}
	}
	if cfg.WireProxyProtocol && trusted.Empty() {
		return exitUsage{"--wire-proxy-protocol needs --trusted-proxies: the addresses of the balancers that send the PROXY header"}
	}
	log := newLogger(&cfg)
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C ends bitd at once
	}()
	return serve(ctx, &cfg, dev, d, log)
}

// nameReservation maps --name-reservation (0: none) to
// store.Options.NameReservation (0: the default, negative: none).
func nameReservation(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

func envOr(k, def string) string {
	if v, ok := os.LookupEnv(k); ok {
		return v
	}
	return def
}

func serve(ctx context.Context, cfg *config.Config, dev bool, d devOptions, log *slog.Logger) (err error) {
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("create data directory: %w", err)
		}
		if abs, err := filepath.Abs(cfg.DataDir); err == nil {
			cfg.DataDir = abs
		}
	}
	cfg.Secret, err = secret.LoadServerSecret(os.Getenv("BITD_SECRET"), cfg.DataDir)
	if err != nil {
		return err
	}
	// The HTTPS certificate (nil: plain HTTP), kept current until serve returns.
	tlsCtx, stopTLS := context.WithCancel(ctx)
	defer stopTLS()
	tlsSrc, err := httpsSource(tlsCtx, cfg, &d, log)
	if err != nil {
		return err
	}

	var cluster *pgcluster.Cluster
	if cfg.DatabaseURL == "private" {
		log.Info("starting a private PostgreSQL cluster", "dir", filepath.Join(cfg.DataDir, "pg"))
		cluster, err = pgcluster.Start(ctx, filepath.Join(cfg.DataDir, "pg"), filepath.Join(cfg.DataDir, "postgres.log"))
		if err != nil {
			return err
		}
		defer func() {
			cluster.Stop(30 * time.Second)
			log.Info("private PostgreSQL cluster stopped")
		}()
		cfg.DatabaseURL = cluster.URL
		if cfg.PGBackend == "" {
			// bitd's own cluster accepts password logins on its socket:
			// the cheaper way for the wire proxy to reach it.
			cfg.PGBackend = cluster.SocketDir
		}
		log.Info("private PostgreSQL cluster ready", "port", cluster.Port)
	}

	st, err := store.Open(ctx, store.Options{AdminURL: cfg.DatabaseURL, MetadataDB: cfg.MetadataDB, Secret: cfg.Secret,
		TempFileLimit: cfg.TempFileLimit, Logger: log, MaxDatabasesPerAccount: cfg.MaxDatabasesPerAccount,
		NameReservation: nameReservation(cfg.NameReservation)})
	if err != nil {
		return err
	}
	st.CheckLockdown(ctx) // logs a loud warning when tenant roles can log in directly
	st.CheckClusters(ctx) // the same for the other clusters holding databases (store/clusters.go)
	defer func() {
		if d.ephemeral {
			dctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if derr := st.DropEverything(dctx); derr != nil {
				log.Error("ephemeral clean-up incomplete", "err", derr)
			} else {
				log.Info("ephemeral clean-up done: platform databases, roles and the metadata database dropped")
			}
			return
		}
		st.Close()
	}()
	// The database stock and the reaper of deleted databases; stopped
	// (by the defer) before the store closes.
	stopBackground := st.StartBackground(ctx, store.BackgroundOptions{StockSize: cfg.DBStock,
		StockMax: stockMaxOption(cfg.DBStockMax), StockDecay: cfg.DBStockDecay})
	defer stopBackground()
	// Storage quotas: databases over storage_limit_bytes are frozen (and
	// thawed) by a pass every --storage-check-interval.
	quotas := &quota.Enforcer{Store: st, Every: cfg.StorageCheckInterval, Log: log}
	quotaCtx, stopQuotas := context.WithCancel(ctx)
	quotaDone := make(chan struct{})
	go func() { defer close(quotaDone); quotas.Run(quotaCtx) }()
	defer func() { stopQuotas(); <-quotaDone }()

	// One answer for the HTTP pools and the wire proxy: a locked-down
	// cluster takes tenant roles only on its Unix socket.
	tenantAddr, err := pgaddr.Tenant(ctx, cfg.DatabaseURL, cfg.PGBackend)
	if err != nil {
		return err
	}
	cfg.PGBackend = tenantAddr.String()
	log.Info("tenant roles reach PostgreSQL at "+tenantAddr.String(), "why", tenantAddr.Why)
	if tenantAddr.NoSocket {
		log.Warn("tenant roles reach PostgreSQL over TCP at "+tenantAddr.String()+", which a locked-down cluster refuses "+
			"(docs/bitd.md, \"Locking the cluster\"): pass --pg-backend with the server's socket directory, or let the admin read it "+
			"(GRANT pg_read_all_settings TO <admin role>)", "why", tenantAddr.Why)
	}
	if tenantAddr.OpenToOthers() {
		log.Warn("SECURITY: PostgreSQL's Unix socket " + tenantAddr.String() + " is open to every OS user of this host; if pg_hba.conf " +
			"trusts tenant roles there (docs/bitd.md, \"Locking the cluster\"), any local user can log in as one: set " +
			"unix_socket_permissions = 0700 (or 0770 with unix_socket_group) and make the directory private")
	}
	var pools *pgpool.Manager
	budget, err := newBudget(ctx, cfg, st, log, func(match func(string) bool) int {
		if pools == nil {
			return 0
		}
		return pools.ReleaseIdle(match)
	})
	if err != nil {
		return err
	}
	pools = pgpool.New(pgpool.Config{ConnString: cfg.DatabaseURL, TenantAddr: cfg.PGBackend, Secret: cfg.Secret, Logger: log, Budget: budget,
		MaxConnsPerPool: int32(cfg.PoolMaxConns), Clusters: st}) // Clusters: databases placed on other clusters (store/clusters.go)
	defer pools.Close()
	stopPprof, err := startPprof(cfg.PprofAddr, log)
	if err != nil {
		return err
	}
	defer stopPprof()

	// The access layer: principals and database resolutions, cached and
	// kept true by LISTEN on the store's access-change channel.
	acc := access.New(access.Config{Store: st, Pools: pools, Logger: log})

	// The HTTP listener is bound before the job service, which needs the
	// public URL; it serves once every component is built. Components are
	// built in order (store, pools, access, jobs, wire proxy, HTTP API) and
	// the defers stop them in reverse, after the HTTP server.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s (--http): %w", cfg.HTTPAddr, err)
	}
	defer ln.Close() // when serving never started
	endpoint := "http://" + ln.Addr().String()
	if tlsSrc != nil {
		endpoint = "https://" + ln.Addr().String()
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = endpoint
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")

	met := metrics.New()
	// Traces (trace.go): off (nil tracer) unless an OTLP endpoint is set.
	tracer, log, stopTracing, err := startTracing(ctx, cfg, endpoint, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	jobSvc, drainJobs, closeJobs, err := newJobs(ctx, cfg, st, pools, acc, met, tracer, log)
	if err != nil {
		return err
	}
	defer closeJobs()
	ptls, err := wireTLS(tlsCtx, cfg, tlsSrc, log)
	if err != nil {
		return err
	}
	wire, err := newWire(cfg, acc, pools, ptls, tracer, log)
	if err != nil {
		return err
	}
	defer wire.stop()
	registerCollectors(met, pools, acc, wire, jobSvc, st)
	metricsAddr, stopMetrics, err := startMetrics(cfg.MetricsAddr, met, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	d.metricsAddr = metricsAddr
	dr := &drainer{met: met}
	txns := newTxn(cfg, acc, endpoint, met, log)
	defer txns.Close()
	// Listening starts once its subscribers (the wire proxy) are in place;
	// until then every lookup goes to the store.
	acc.Start()
	defer acc.Stop()

	srv := api.New(api.Options{
		Store: st, Access: acc, Logger: log, TokenTTL: cfg.TokenTTL,
		RefreshIdle: cfg.RefreshIdle, RefreshLifetime: cfg.RefreshLifetime,
		StorageLimit: storageLimitOption(cfg.StorageLimit),
		OnDeleteDatabase: func(pgDB, id string) {
			wire.terminateDatabase(id)
			txns.EndDatabase(id)
			// CloseDatabase waits for connections in use; DROP DATABASE
			// WITH (FORCE), which runs next, ends their queries.
			go pools.CloseDatabase(pgDB)
		},
		OnRevokeCredential: func(id string) { wire.terminateCredential(id); txns.EndCredential(id) },
		OnAccessChanged:    wire.recheck,
		Metrics:            met,
		Ready:              dr.ready,
		Tracer:             tracer,
	})
	origins, _ := cors.ParseOrigins(cfg.AllowedOrigins)
	srv.Use(cors.Middleware(origins))
	srv.Use(httpcomp.Handler) // compressed JSON/NDJSON answers, gzip request bodies
	srv.SetFallback(webui.Handler())
	flushUsage := wireQuery(cfg, srv, acc, countRows{&access.Usage{Store: st, Log: log.Warn}, met}, txns, quotas, log)
	routeTxn(srv, txns)
	defer flushUsage()
	routeJobs(cfg, srv, jobSvc)

	// Every request context derives from reqCtx, so shutdown can end
	// in-flight requests (NDJSON streams, long queries) after the drain
	// timeout, with apierr.ErrShuttingDown as the cause.
	reqCtx, cancelRequests := context.WithCancelCause(context.Background())
	defer cancelRequests(nil)
	// Behind trusted balancers, requests carry the client's address from
	// X-Forwarded-For/Forwarded (validated in cmdServe).
	trusted, _ := clientaddr.ParseTrusted(cfg.TrustedProxies)
	// Slow clients: the header, then the body (uploads extend it per read,
	// see api.StallDeadline), then the wait for the next request are bounded.
	hs := &http.Server{Handler: trusted.Middleware(srv.Handler()), ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout,
		ReadTimeout: cfg.HTTPReadTimeout, IdleTimeout: cfg.HTTPIdleTimeout,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return reqCtx }}
	serveErr := make(chan error, 1)
	if tlsSrc != nil {
		// HTTPS; ServeTLS adds HTTP/2.
		hs.TLSConfig = tlsconf.ServerConfig(tlsSrc)
		go func() { serveErr <- hs.ServeTLS(ln, "", "") }()
		obtainACME(tlsCtx, tlsSrc, log)
	} else {
		go func() { serveErr <- hs.Serve(ln) }()
	}
	log.Info("bitd listening", "http", endpoint, "pg", wire.addr(), "metadata_db", cfg.MetadataDB, "version", version)

	if dev {
		if err := devBootstrap(ctx, cfg, st, d, endpoint, wire.addr()); err != nil {
			_ = hs.Close()
			return err
		}
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
		// drain.go: /readyz goes 503, then HTTP, wire sessions and jobs
		// get --drain-timeout to finish.
		dr.drain(cfg.DrainDelay, cfg.DrainTimeout, hs, cancelRequests, wire, drainJobs, log)
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		shutdownHTTP(hs, cancelRequests, cfg.DrainTimeout, log)
	}
	return nil
}

// writeFileAtomic writes b to path with mode 0600 via a temp file + rename.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// adminInfo is DATA/bitd.json: how `bitd admin --data DIR` reaches the
// metadata database.
type adminInfo struct {
	DatabaseURL string `json:"database_url"`
	MetadataDB  string `json:"metadata_db"`
}

func devBootstrap(ctx context.Context, cfg *config.Config, st *store.Store, d devOptions, endpoint, pgAddr string) error {
	u, err := st.EnsureUser(ctx, d.user)
	if err != nil {
		return fmt.Errorf("create demo user: %w", err)
	}
	key, err := st.CreateUserAPIKey(ctx, u.ID)
	if err != nil {
		return err
	}
	info, _ := jsonx.Marshal(adminInfo{DatabaseURL: cfg.DatabaseURL, MetadataDB: cfg.MetadataDB})
	if err := writeFileAtomic(filepath.Join(cfg.DataDir, "bitd.json"), append(info, '\n')); err != nil {
		return fmt.Errorf("write bitd.json: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "BITKIT_ENDPOINT=%s\nBITKIT_API_KEY=%s\nBITKIT_DEMO_USER=%s\n", endpoint, key, u.Name)
	if pgAddr != "" {
		fmt.Fprintf(&b, "BITKIT_PG_ADDR=%s\n", pgAddr)
	}
	if d.caCert != "" {
		fmt.Fprintf(&b, "BITKIT_CA_CERT=%s\n", d.caCert)
	}
	if d.metricsAddr != "" {
		fmt.Fprintf(&b, "BITKIT_METRICS_ADDR=%s\n", d.metricsAddr)
	}
	envPath := filepath.Join(cfg.DataDir, "demo.env")
	if err := writeFileAtomic(envPath, []byte(b.String())); err != nil {
		return fmt.Errorf("write demo.env: %w", err)
	}
	fmt.Printf("bitd dev is ready\n  HTTP API:   %s\n", endpoint)
	if d.caCert != "" {
		fmt.Printf("  TLS CA:     %s (trust it: BITKIT_CA_CERT, curl --cacert, sslrootcert=, NODE_EXTRA_CA_CERTS)\n", d.caCert)
	}
	if pgAddr != "" {
		fmt.Printf("  PG proxy:   %s (password = API key, database = %s/<db>)\n", pgAddr, u.Name)
	}
	fmt.Printf("  demo user:  %s\n  API key:    in %s (source it: set -a; . %s)\n", u.Name, envPath, envPath)
	return nil
}

// stockMaxOption maps --db-stock-max (0: the stock does not follow
// demand) to store.BackgroundOptions.StockMax (0: the default).
func stockMaxOption(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// storageLimitOption maps --storage-limit (0: no limit) to
// api.Options.StorageLimit (-1: no limit).
func storageLimitOption(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}
