package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/store"
)

// adminSecret reads the server secret for admin commands that provision:
// BITD_SECRET, else DATA/secret, which must exist (never created here).
func adminSecret(data string) ([]byte, error) {
	if v := os.Getenv("BITD_SECRET"); v != "" {
		if len(v) < 32 {
			return nil, errors.New("BITD_SECRET is too short: it must be the server's secret (at least 32 characters)")
		}
		return []byte(v), nil
	}
	if data == "" {
		return nil, errors.New("this command needs the server secret: set BITD_SECRET (as for bitd serve) or pass --data DIR")
	}
	b, err := os.ReadFile(filepath.Join(data, "secret"))
	if err != nil {
		return nil, fmt.Errorf("read the server secret: %w (set BITD_SECRET, or pass the --data of the bitd that made it)", err)
	}
	return b, nil
}

// adminClusters runs the cluster commands and db move.
func adminClusters(ctx context.Context, st *store.Store, cmd string, rest []string, pgBackend string) error {
	need := func(n int, what string) error {
		if len(rest) != n {
			return exitUsage{fmt.Sprintf("%s needs %s", cmd, what)}
		}
		return nil
	}
	switch cmd {
	case "cluster add":
		if err := need(2, "NAME URL"); err != nil {
			return err
		}
		v, err := st.AddCluster(ctx, rest[0], rest[1], pgBackend)
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("a cluster named %q exists already (bitd admin cluster list)", rest[0])
		}
		if err != nil {
			return err
		}
		out := map[string]any{"added": rest[0], "locked_down": v.Locked && len(v.HBA) == 0}
		if v.Problem != "" {
			out["lockdown_problem"] = v.Problem
		}
		if len(v.Open) > 0 || len(v.HBA) > 0 {
			out["tenant_logins_open"] = map[string]any{"databases": v.Open, "hba_lines": v.HBA}
		}
		return printJSON(out)
	case "cluster list":
		if err := need(0, "no argument"); err != nil {
			return err
		}
		cs, err := st.ListClusters(ctx)
		if err != nil {
			return err
		}
		// Whether each answers now: a ping through bitd's admin
		// connection to it, all clusters at once.
		hs, err := st.ClustersHealth(ctx, 5*time.Second)
		if err != nil {
			return err
		}
		up := map[string]store.ClusterHealth{}
		for _, h := range hs {
			up[h.Name] = h
		}
		type listed struct {
			store.Cluster
			Up    bool   `json:"up"`
			Cause string `json:"down_cause,omitempty"`
		}
		out := make([]listed, len(cs))
		for i, c := range cs {
			out[i] = listed{Cluster: c, Up: up[c.Name].Up, Cause: up[c.Name].Cause}
		}
		return printJSON(map[string]any{"clusters": out})
	case "cluster drain", "cluster activate":
		if err := need(1, "NAME"); err != nil {
			return err
		}
		state := store.ClusterDraining
		if cmd == "cluster activate" {
			state = store.ClusterActive
		}
		if err := st.SetClusterState(ctx, rest[0], state); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no cluster named %q (bitd admin cluster list)", rest[0])
		} else if err != nil {
			return err
		}
		return printJSON(map[string]any{"cluster": rest[0], "state": state})
	case "db move":
		if err := need(2, "ACCOUNT/NAME CLUSTER"); err != nil {
			return err
		}
		account, name, ok := strings.Cut(rest[0], "/")
		if !ok || account == "" || name == "" {
			return exitUsage{fmt.Sprintf("db move needs ACCOUNT/NAME, such as alice/sales, not %q", rest[0])}
		}
		r, err := st.MoveDatabase(ctx, account, name, rest[1])
		if err != nil {
			return err
		}
		return printJSON(r)
	}
	return exitUsage{fmt.Sprintf("unknown admin command %q", cmd)}
}
