package store

// Moving a database to another cluster (MoveDatabase, `bitd admin db move`)
// by dump and restore:
//
//  1. the database is provisioned on the destination under the same
//     PostgreSQL name (same roles, same passwords: they derive from the
//     server secret and the role name), invisible to tenants (its
//     placement still names the source);
//  2. writes pause: the owner and writer roles lose LOGIN on the source and
//     their sessions end (an open transaction is rolled back, so it was
//     never acknowledged); readers keep reading from the source;
//  3. pg_dump (custom format) of the source is piped into pg_restore on the
//     destination, owners and grants included;
//  4. the metadata row's placement switches in one transaction that
//     announces the change (every replica's caches drop the old answer;
//     pools of the old cluster are replaced on next use); writes resume on
//     the destination;
//  5. the source database and roles are dropped (ending readers' sessions).
//
// The pause (2 to 4) is the dump and restore time, which grows with the
// database's size. Dump and restore was chosen over logical replication
// because it needs nothing of the clusters (no wal_level = logical, no
// replication role or slot, no publication that a tenant's DDL could
// break), moves schema, owners and grants exactly, and cannot lose an
// acknowledged write: nothing writes while the copy is made. Logical
// replication would shorten the pause for large databases; it is not done.
// The database's id, name, keys, collaborators and usage stay: only the
// placement changes.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/pgcluster"
	"github.com/jackc/pgx/v5"
)

// MoveResult reports a finished move.
type MoveResult struct {
	Database   string        `json:"database"`
	From       string        `json:"from"`
	To         string        `json:"to"`
	WritePause time.Duration `json:"-"`
	PauseMS    int64         `json:"write_pause_ms"`
	Bytes      int64         `json:"dump_bytes"`
}

// MoveDatabase moves the live database account/name to cluster target (see
// the top of this file). On failure before the switch, the source is left
// as it was (writes resume) and the destination copy is dropped.
func (s *Store) MoveDatabase(ctx context.Context, account, name, target string) (*MoveResult, error) {
	if len(s.secret) < 32 {
		return nil, errors.New("store: moving a database needs the server secret (role passwords derive from it): set BITD_SECRET or pass --data")
	}
	d, err := scanDB(s.DB.QueryRow(ctx, `SELECT `+dbColumns+` FROM databases d JOIN accounts a ON a.id = d.account_id
		WHERE lower(a.name) = lower($1) AND lower(d.name) = lower($2) AND d.deleted_at IS NULL`, account, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: no live database %s/%s", ErrNotFound, account, name)
	}
	if err != nil {
		return nil, err
	}
	if d.Placement == target {
		return nil, fmt.Errorf("%s is already on cluster %q", d.FullName(), target)
	}
	var state string
	if err := s.DB.QueryRow(ctx, `SELECT state FROM clusters WHERE name = $1`, target).Scan(&state); errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: cluster %q (bitd admin cluster list)", ErrNotFound, target)
	} else if err != nil {
		return nil, err
	}
	if state != ClusterActive {
		return nil, fmt.Errorf("cluster %q is %s: it takes no database", target, state)
	}
	src, err := s.on(ctx, d.Placement)
	if err != nil {
		return nil, err
	}
	dst, err := s.on(ctx, target)
	if err != nil {
		return nil, err
	}
	bin, err := pgcluster.FindBinDir()
	if err != nil {
		return nil, fmt.Errorf("moving needs pg_dump and pg_restore: %w", err)
	}
	pg := d.PGName
	var frozen bool
	if err := src.admin.QueryRow(ctx, `SELECT pg_catalog.pg_get_userbyid(datdba) = datname || $2 FROM pg_catalog.pg_database WHERE datname = $1`,
		pg, FrozenSuffix).Scan(&frozen); err != nil {
		return nil, fmt.Errorf("read the source database: %w", err)
	}
	// 1. The destination, empty.
	if err := dst.provision(ctx, pg); err != nil {
		_ = dst.dropPhysical(context.WithoutCancel(ctx), pg)
		return nil, fmt.Errorf("provision on cluster %q: %w", target, err)
	}
	if frozen {
		if err := dst.ensureFrozenRole(ctx, pg); err != nil {
			_ = dst.dropPhysical(context.WithoutCancel(ctx), pg)
			return nil, err
		}
	}
	// 2. Writes pause.
	writers := []string{pg + OwnerSuffix, pg + WriterSuffix}
	resume := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for _, r := range writers {
			if _, err := src.admin.Exec(rctx, "ALTER ROLE "+ident(r)+" LOGIN"); err != nil {
				s.log.Error("a failed move could not give the writers back their login: run ALTER ROLE … LOGIN by hand", "role", r, "err", err)
			}
		}
		_ = dst.dropPhysical(rctx, pg)
	}
	pauseStart := time.Now()
	for _, r := range writers {
		if _, err := src.admin.Exec(ctx, "ALTER ROLE "+ident(r)+" NOLOGIN"); err != nil {
			resume()
			return nil, fmt.Errorf("pause writes: %w", err)
		}
	}
	if _, err := src.admin.Exec(ctx, `SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity
		WHERE datname = $1 AND usename = ANY ($2) AND pid <> pg_catalog.pg_backend_pid()`, pg, writers); err != nil {
		resume()
		return nil, fmt.Errorf("pause writes: %w", err)
	}
	// pg_terminate_backend only signals: wait until they are gone, so no
	// transaction commits after the dump's snapshot.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var n int
		if err := src.admin.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datname = $1 AND usename = ANY ($2)`,
			pg, writers).Scan(&n); err != nil {
			resume()
			return nil, fmt.Errorf("pause writes: %w", err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			resume()
			return nil, errors.New("pause writes: writing sessions did not end within 30s")
		}
	}
	// 3. Copy.
	n, err := dumpRestore(ctx, bin, src, dst, pg)
	if err != nil {
		resume()
		return nil, err
	}
	if frozen {
		if _, err := dst.admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s OWNER TO %s", ident(pg), ident(pg+FrozenSuffix))); err != nil {
			resume()
			return nil, fmt.Errorf("keep the database frozen: %w", err)
		}
	}
	// 4. Switch.
	err = s.changeAccess(ctx, func(tx pgx.Tx) ([]string, error) {
		tag, err := tx.Exec(ctx, `UPDATE databases SET placement = $2 WHERE id = $1 AND deleted_at IS NULL AND placement = $3`, d.ID, target, d.Placement)
		if err == nil && tag.RowsAffected() == 0 {
			err = errors.New("the database was deleted or moved meanwhile")
		}
		return []string{DBTag(d.ID)}, err
	})
	if err != nil {
		resume()
		return nil, fmt.Errorf("switch the placement: %w", err)
	}
	pause := time.Since(pauseStart)
	// 5. The source goes.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := src.dropPhysical(dctx, pg); err != nil {
		s.log.Warn("the moved database's source copy could not be dropped: drop it by hand", "cluster", d.Placement, "database", pg, "err", err)
	}
	return &MoveResult{Database: d.FullName(), From: d.Placement, To: target, WritePause: pause, PauseMS: pause.Milliseconds(), Bytes: n}, nil
}

// dumpRestore pipes pg_dump of pg on src into pg_restore on dst and returns
// the dump's size. The admin URLs' passwords go through PGPASSWORD in the
// children's environment, never their command lines.
func dumpRestore(ctx context.Context, bin string, src, dst *Store, pg string) (int64, error) {
	env := func(st *Store) []string {
		cc := st.adminCfg.ConnConfig
		e := os.Environ()
		e = append(e, "PGHOST="+cc.Host, fmt.Sprintf("PGPORT=%d", cc.Port), "PGUSER="+cc.User, "PGPASSWORD="+cc.Password,
			"PGDATABASE="+pg, "PGSSLMODE="+sslmodeOf(st))
		return e
	}
	dump := exec.CommandContext(ctx, filepath.Join(bin, "pg_dump"), "--format=custom", "--compress=0", "--no-comments")
	dump.Env = env(src)
	restore := exec.CommandContext(ctx, filepath.Join(bin, "pg_restore"), "--exit-on-error", "--single-transaction", "--dbname="+pg)
	restore.Env = env(dst)
	var dumpErr, restoreErr strings.Builder
	dump.Stderr, restore.Stderr = &dumpErr, &restoreErr
	out, err := dump.StdoutPipe()
	if err != nil {
		return 0, err
	}
	in, err := restore.StdinPipe()
	if err != nil {
		return 0, err
	}
	if err := dump.Start(); err != nil {
		return 0, fmt.Errorf("start pg_dump: %w", err)
	}
	if err := restore.Start(); err != nil {
		_ = dump.Process.Kill()
		_ = dump.Wait()
		return 0, fmt.Errorf("start pg_restore: %w", err)
	}
	n, cerr := io.Copy(in, out)
	in.Close()
	derr := dump.Wait()
	rerr := restore.Wait()
	switch {
	case derr != nil:
		return n, fmt.Errorf("pg_dump failed: %v: %s", derr, strings.TrimSpace(dumpErr.String()))
	case rerr != nil:
		return n, fmt.Errorf("pg_restore failed: %v: %s", rerr, strings.TrimSpace(restoreErr.String()))
	case cerr != nil:
		return n, fmt.Errorf("copy the dump: %w", cerr)
	}
	return n, nil
}

// sslmodeOf is a PGSSLMODE that matches the admin config: disable when it
// has no TLS, else require.
func sslmodeOf(st *Store) string {
	if st.adminCfg.ConnConfig.TLSConfig == nil {
		return "disable"
	}
	return "require"
}
