package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
	"github.com/bitkit-dev/bitkit/server/internal/access"
	"github.com/bitkit-dev/bitkit/server/internal/quota"
	"github.com/bitkit-dev/bitkit/server/internal/secret"
	"github.com/bitkit-dev/bitkit/server/internal/store"
)

func cmdMigrate(args []string) error {
	fs := newFlagSet("migrate", "bitd migrate --database-url URL [--metadata-db NAME]")
	dbURL := fs.String("database-url", os.Getenv("BITD_DATABASE_URL"), "cluster admin URL (env BITD_DATABASE_URL)")
	meta := fs.String("metadata-db", envOr("BITD_METADATA_DB", "bitkit"), "metadata database name (env BITD_METADATA_DB)")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if *dbURL == "" {
		return exitUsage{"--database-url (or BITD_DATABASE_URL) is required"}
	}
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{AdminURL: *dbURL, MetadataDB: *meta})
	if err != nil {
		return err
	}
	defer st.Close()
	v, err := st.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	return printJSON(map[string]any{"metadata_db": *meta, "schema_version": v})
}

func printJSON(v any) error {
	b, err := jsonx.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(b))
	return err
}

const adminUsage = `bitd admin (--data DIR | --database-url URL --metadata-db NAME) COMMAND
  user create NAME [--password P | --password-stdin]
  user passwd NAME [--password P | --password-stdin]
  account create NAME --owner USER
  account add-member ACCOUNT USER [--role OWNER|ADMIN|WRITER|READER]
  key create USER
  key revoke KEY
  db release ACCOUNT/NAME   (end the reservation of a deleted database's name now)
  db limit ACCOUNT/NAME BYTES   (set storage_limit_bytes; 0 = no limit; applied at once)
  db move ACCOUNT/NAME CLUSTER   (move a database to another cluster; writes pause during the copy)
  cluster add NAME URL [--pg-backend ADDR]   (a PostgreSQL cluster for new databases; the URL's password is not stored)
  cluster list
  cluster drain NAME   (no new databases there; existing ones stay until moved)
  cluster activate NAME`

func cmdAdmin(args []string) error {
	fs := newFlagSet("admin", adminUsage)
	data := fs.String("data", os.Getenv("BITD_DATA"), "data directory of a bitd dev instance (reads DIR/bitd.json)")
	dbURL := fs.String("database-url", os.Getenv("BITD_DATABASE_URL"), "cluster admin URL (env BITD_DATABASE_URL)")
	meta := fs.String("metadata-db", envOr("BITD_METADATA_DB", "bitkit"), "metadata database name (env BITD_METADATA_DB)")
	password := fs.String("password", "", "password for user create/passwd (visible in the process list: prefer --password-stdin)")
	passwordStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	owner := fs.String("owner", "", "owner user of account create")
	role := fs.String("role", "WRITER", "role of account add-member: OWNER, ADMIN, WRITER or READER")
	pgBackend := fs.String("pg-backend", "", "cluster add: where tenant roles reach the cluster (host:port or socket directory); default: found like --pg-backend of bitd serve")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		fs.Usage()
		return exitUsage{"admin needs a command, e.g. `bitd admin --data .bitd user create alice`"}
	}
	url, metaDB := *dbURL, *meta
	if *data != "" && url == "" {
		b, err := os.ReadFile(filepath.Join(*data, "bitd.json"))
		if err != nil {
			return fmt.Errorf("read %s: %w (start `bitd dev --data %s` first, or pass --database-url)", filepath.Join(*data, "bitd.json"), err, *data)
		}
		var info adminInfo
		if err := jsonx.Unmarshal(b, &info); err != nil {
			return fmt.Errorf("%s is not valid JSON: %w", filepath.Join(*data, "bitd.json"), err)
		}
		url, metaDB = info.DatabaseURL, info.MetadataDB
	}
	if url == "" {
		return exitUsage{"give --data DIR (of a bitd dev instance) or --database-url URL"}
	}
	readPassword := func() (string, error) {
		if *passwordStdin {
			line, err := bufio.NewReader(os.Stdin).ReadString('\n')
			if err != nil && line == "" {
				return "", errors.New("--password-stdin: nothing on standard input")
			}
			return strings.TrimRight(line, "\r\n"), nil
		}
		return *password, nil
	}
	ctx := context.Background()
	var srvSecret []byte
	if pos[0]+" "+pos[1] == "db move" {
		// Provisioning the destination sets the role passwords, which
		// derive from the server secret: read it, never create one.
		if srvSecret, err = adminSecret(*data); err != nil {
			return err
		}
	}
	st, err := store.Open(ctx, store.Options{AdminURL: url, MetadataDB: metaDB, MustExist: true, Secret: srvSecret})
	if err != nil {
		return err
	}
	defer st.Close()
	user := func(name string) (*store.User, error) {
		u, err := st.UserByName(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("no user named %q", name)
		}
		return u, err
	}
	cmd := pos[0] + " " + pos[1]
	rest := pos[2:]
	need := func(n int, what string) error {
		if len(rest) != n {
			return exitUsage{fmt.Sprintf("%s needs %s", cmd, what)}
		}
		return nil
	}
	switch cmd {
	case "user create":
		if err := need(1, "NAME"); err != nil {
			return err
		}
		if err := access.ValidateAccountName(rest[0]); err != nil {
			return exitUsage{"user name: " + err.Error()}
		}
		pw, err := readPassword()
		if err != nil {
			return err
		}
		hash := ""
		if pw != "" {
			if hash, err = secret.HashPassword(pw); err != nil {
				return err
			}
		}
		u, err := st.CreateUser(ctx, rest[0], hash)
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("a user or account named %q already exists", rest[0])
		}
		if err != nil {
			return err
		}
		return printJSON(map[string]any{"id": u.ID, "name": u.Name, "account": map[string]string{"id": u.DefaultAccount.ID, "name": u.DefaultAccount.Name}})
	case "user passwd":
		if err := need(1, "NAME"); err != nil {
			return err
		}
		u, err := user(rest[0])
		if err != nil {
			return err
		}
		pw, err := readPassword()
		if err != nil {
			return err
		}
		if pw == "" {
			return exitUsage{"user passwd needs --password P or --password-stdin"}
		}
		hash, err := secret.HashPassword(pw)
		if err != nil {
			return err
		}
		if err := st.SetPassword(ctx, u.ID, hash); err != nil {
			return err
		}
		return printJSON(map[string]any{"name": u.Name, "password_set": true})
	case "account create":
		if err := need(1, "NAME"); err != nil {
			return err
		}
		if *owner == "" {
			return exitUsage{"account create needs --owner USER"}
		}
		if err := access.ValidateAccountName(rest[0]); err != nil {
			return exitUsage{"account name: " + err.Error()}
		}
		u, err := user(*owner)
		if err != nil {
			return err
		}
		a, err := st.CreateOrg(ctx, rest[0], u.ID)
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("an account named %q already exists", rest[0])
		}
		if err != nil {
			return err
		}
		return printJSON(map[string]any{"id": a.ID, "name": a.Name, "kind": a.Kind, "owner": u.Name})
	case "account add-member":
		if err := need(2, "ACCOUNT USER"); err != nil {
			return err
		}
		r := strings.ToUpper(*role)
		switch r {
		case "OWNER", "ADMIN", "WRITER", "READER":
		default:
			return exitUsage{fmt.Sprintf("--role must be OWNER, ADMIN, WRITER or READER, not %q", *role)}
		}
		a, err := st.AccountByName(ctx, rest[0])
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no account named %q", rest[0])
		}
		if err != nil {
			return err
		}
		if a.Kind != "org" {
			return fmt.Errorf("%q is a personal account: create an organisation with `account create`", a.Name)
		}
		u, err := user(rest[1])
		if err != nil {
			return err
		}
		if err := st.SetMember(ctx, a.ID, u.ID, r); err != nil {
			return err
		}
		return printJSON(map[string]any{"account": a.Name, "user": u.Name, "role": r})
	case "key create":
		if err := need(1, "USER"); err != nil {
			return err
		}
		u, err := user(rest[0])
		if err != nil {
			return err
		}
		key, err := st.CreateUserAPIKey(ctx, u.ID)
		if err != nil {
			return err
		}
		fmt.Println(key)
		return nil
	case "db release":
		if err := need(1, "ACCOUNT/NAME"); err != nil {
			return err
		}
		account, name, ok := strings.Cut(rest[0], "/")
		if !ok || account == "" || name == "" {
			return exitUsage{fmt.Sprintf("db release needs ACCOUNT/NAME, such as alice/sales, not %q", rest[0])}
		}
		until, err := st.ReleaseName(ctx, account, name)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("the name %s/%s is not reserved (no such account, or no deleted database of that name whose reservation is still running)", account, name)
		}
		if err != nil {
			return err
		}
		return printJSON(map[string]any{"released": account + "/" + name, "was_reserved_until": until.UTC()})
	case "db limit":
		if err := need(2, "ACCOUNT/NAME BYTES"); err != nil {
			return err
		}
		account, name, ok := strings.Cut(rest[0], "/")
		limit, perr := strconv.ParseInt(rest[1], 10, 64)
		if !ok || account == "" || name == "" || perr != nil || limit < 0 {
			return exitUsage{fmt.Sprintf("db limit needs ACCOUNT/NAME and a number of bytes (0 = no limit), such as alice/sales 1073741824, not %q", strings.Join(rest, " "))}
		}
		id, err := st.SetStorageLimit(ctx, account, name, limit)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no live database %s/%s", account, name)
		}
		if err != nil {
			return err
		}
		// Freeze or thaw now rather than at the next pass of a running bitd.
		if _, err := (&quota.Enforcer{Store: st}).Check(ctx, id); err != nil {
			return fmt.Errorf("limit set, but applying it now failed (a running bitd applies it within --storage-check-interval): %w", err)
		}
		q, err := st.QuotaState(ctx, id)
		if err != nil {
			return err
		}
		return printJSON(map[string]any{"database": account + "/" + name, "storage_limit_bytes": limit,
			"storage_usage_bytes": q.UsageBytes, "writes_refused": q.Frozen})
	case "cluster add", "cluster list", "cluster drain", "cluster activate", "db move":
		return adminClusters(ctx, st, cmd, rest, *pgBackend)
	case "key revoke":
		if err := need(1, "KEY"); err != nil {
			return err
		}
		if _, err := st.RevokeAPIKey(ctx, rest[0], ""); errors.Is(err, store.ErrNotFound) {
			return errors.New("no live API key matches the key given")
		} else if err != nil {
			return err
		}
		return printJSON(map[string]any{"revoked": true})
	}
	fs.Usage()
	return exitUsage{fmt.Sprintf("unknown admin command %q", cmd)}
}
