package main

import (
	"log/slog"
	"strings"

	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/api"
	"github.com/bitkit-dev/bitkit/server/internal/config"
	"github.com/bitkit-dev/bitkit/server/internal/metrics"
	"github.com/bitkit-dev/bitkit/server/internal/txn"
	"github.com/prometheus/client_golang/prometheus"
)

// newTxn builds the interactive-transaction manager. It subscribes to the
// access layer's change notifications, so call it before acc.Start.
// endpoint is this bitd's own base URL (http:// or https:// and the address
// --http bound), the default of --advertise-http; an --advertise-http
// without a scheme takes endpoint's.
// met, when not nil, gets the bitd_open_transactions gauge.
func newTxn(cfg *config.Config, acc *access.Access, endpoint string, met *metrics.Metrics, log *slog.Logger) *txn.Manager {
	adv := strings.TrimSuffix(cfg.AdvertiseHTTP, "/")
	switch {
	case adv == "":
		adv = endpoint
	case !strings.Contains(adv, "://"):
		scheme, _, _ := strings.Cut(endpoint, "://")
		adv = scheme + "://" + adv
	}
	m := txn.New(txn.Config{Secret: cfg.Secret, Advertise: adv, Resolver: acc,
		IdleTimeout: cfg.TxIdleTimeout, MaxIdleTimeout: cfg.TxMaxIdleTimeout, MaxLifetime: cfg.TxMaxLifetime,
		MaxPerPrincipal: cfg.TxMaxPerPrincipal, MaxPerDatabase: cfg.TxMaxPerDatabase, Logger: log})
	acc.OnNotify(m.OnNotify)
	if met != nil {
		met.Registry().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "bitd_open_transactions", Help: "Interactive transactions open on this bitd (each holds a database connection).",
		}, func() float64 { return float64(m.Open()) }))
	}
	return m
}

// routeTxn registers the transaction endpoints.
func routeTxn(srv *api.Server, m *txn.Manager) {
	for pattern, h := range m.Routes() {
		srv.Handle(pattern, h)
	}
}
