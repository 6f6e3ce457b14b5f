package proxy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bitkit-dev/bitkit/internal/testwait"
	"github.com/bitkit-dev/bitkit/server/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestFrameScannerTxStatus feeds ReadyForQuery messages split at every
// offset and checks that the transaction status of the last one is seen.
func TestFrameScannerTxStatus(t *testing.T) {
	t.Parallel()
	var stream []byte
	stream, _ = (&pgproto3.CommandComplete{CommandTag: []byte("BEGIN")}).Encode(stream)
	stream, _ = (&pgproto3.ReadyForQuery{TxStatus: 'T'}).Encode(stream)
	stream, _ = (&pgproto3.DataRow{Values: [][]byte{[]byte("Z")}}).Encode(stream) // a 'Z' byte in a body is no message
	stream, _ = (&pgproto3.ReadyForQuery{TxStatus: 'E'}).Encode(stream)
	stream, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(stream)
	var statusAt []int // offsets of the three status bytes
	for i := 0; i+5 < len(stream); i++ {
		if stream[i] == 'Z' && string(stream[i+1:i+5]) == "\x00\x00\x00\x05" {
			statusAt = append(statusAt, i+5)
		}
	}
	if len(statusAt) != 3 {
		t.Fatalf("status bytes at %v", statusAt)
	}
	for cut := range len(stream) + 1 {
		for _, bytewise := range []bool{false, true} {
			// The stream in two parts, or its first part and then
			// byte by byte.
			chunks := [][]byte{stream[:cut], stream[cut:]}
			if bytewise {
				chunks = chunks[:1]
				for i := cut; i < len(stream); i++ {
					chunks = append(chunks, stream[i:i+1])
				}
			}
			var fs frameScanner
			var seen []byte
			n := 0
			for _, c := range chunks {
				n += fs.count(c, &rfqType)
				if fs.tx != 0 {
					seen = append(seen, fs.tx)
					fs.tx = 0
				}
			}
			// A chunk reports the status of its last ReadyForQuery.
			want := ""
			for k, pos := range statusAt {
				last := k == 2 || statusAt[k+1] >= cut
				if (pos < cut && last) || (pos >= cut && (bytewise || k == 2)) {
					want += "TEI"[k : k+1]
				}
			}
			if n != 3 || string(seen) != want || !fs.atBoundary() {
				t.Fatalf("cut %d (bytewise %v): %d ReadyForQuery, statuses %q; want 3, %q", cut, bytewise, n, seen, want)
			}
		}
	}
}

// TestReaderIdleInTransaction: a reader session that stays idle inside a
// transaction is ended by the proxy (even when it turned the server's own
// timeout off and none was sent at start-up); a reader running a query in a
// transaction, a reader idle outside one and a writer idle inside one are
// not.
func TestReaderIdleInTransaction(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	keyR, _ := auth.key("r")
	keyW, _ := auth.key("w")
	eachRelay(t, func(t *testing.T, mode relayMode) {
		const bound = 500 * time.Millisecond
		_, addr := startProxy(t, mode.config(Config{ReaderIdleInTransaction: bound, ReaderLockTimeout: -1, RevalidateEvery: -1}), auth)
		writer := rawConnectMode(t, mode, addr, keyW, testDB)
		idleReader := rawConnectMode(t, mode, addr, keyR, testDB)
		busyReader := rawConnectMode(t, mode, addr, keyR, testDB)
		if err := writer.query(t, "BEGIN; SELECT count(*) FROM notes"); err != nil {
			t.Fatal(err)
		}
		if err := idleReader.query(t, "SELECT count(*) FROM notes"); err != nil {
			t.Fatal(err)
		}
		// Three bounds of sleep inside a transaction: not idle.
		if err := busyReader.query(t, "BEGIN; SET idle_in_transaction_session_timeout = 0; SELECT count(*) FROM notes"); err != nil {
			t.Fatal(err)
		}
		if err := busyReader.query(t, fmt.Sprintf("SELECT pg_sleep(%g)", 3*bound.Seconds())); err != nil {
			t.Fatalf("a reader's query inside a transaction: %v", err)
		}
		// Now it is idle in the transaction.
		m := busyReader.waitFatal(t)
		if m.Code != "25P03" || !strings.Contains(m.Message, "idle-in-transaction timeout") || !strings.Contains(m.Message, "commit or roll back") {
			t.Fatalf("got %s %q, want 25P03 idle-in-transaction timeout", m.Code, m.Message)
		}
		if err := idleReader.query(t, "SELECT 1"); err != nil {
			t.Errorf("a reader idle outside a transaction was ended: %v", err)
		}
		if err := writer.query(t, "SELECT 1; COMMIT"); err != nil {
			t.Errorf("a writer idle inside a transaction was ended: %v", err)
		}
	})
}

// TestReaderStartupParams: reader sessions start with lock_timeout and
// idle_in_transaction_session_timeout, whatever the client asked for;
// writer sessions keep the client's.
func TestReaderStartupParams(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	keyR, _ := auth.key("r")
	keyW, _ := auth.key("w")
	_, addr := startProxy(t, Config{DevTLS: true, ReaderIdleInTransaction: 90 * time.Second}, auth)
	for _, tc := range []struct {
		key, wantLock, wantIdle string
	}{
		{keyR, "10s", "90s"},
		{keyW, "0", "0"},
	} {
		cfg, err := pgx.ParseConfig(dsn(addr, tc.key, testDB, "require"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.RuntimeParams["LOCK_TIMEOUT"] = "0"
		cfg.RuntimeParams["idle_in_transaction_session_timeout"] = "0"
		conn, err := pgx.ConnectConfig(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		var lock, idle string
		err = conn.QueryRow(t.Context(), "SELECT current_setting('lock_timeout'), current_setting('idle_in_transaction_session_timeout')").Scan(&lock, &idle)
		conn.Close(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if idle == "90000ms" || idle == "1min 30s" {
			idle = "90s"
		}
		if lock != tc.wantLock || idle != tc.wantIdle {
			t.Errorf("lock_timeout=%s idle_in_transaction_session_timeout=%s, want %s %s", lock, idle, tc.wantLock, tc.wantIdle)
		}
	}
}

// TestRevalidateBatches: one StillAuthorized call per round, one Grant per
// distinct credential, database and role.
func TestRevalidateBatches(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	auth := newTestAuth(f)
	keyR, credR := auth.key("r")
	keyW, credW := auth.key("w")
	_, addr := startProxy(t, Config{DevTLS: true, RevalidateEvery: 50 * time.Millisecond}, auth)
	for _, k := range []string{keyR, keyR, keyR, keyW} {
		rawConnect(t, addr, k, testDB)
	}
	var last []Grant
	testwait.Eventually(t, 30*time.Second, func() error {
		auth.mu.Lock()
		last = nil
		if len(auth.checks) > 0 {
			last = slices.Clone(auth.checks[len(auth.checks)-1])
		}
		auth.mu.Unlock()
		if len(last) < 2 {
			return fmt.Errorf("last StillAuthorized call had %d grants, want 2 (for 4 sessions of 2 credentials)", len(last))
		}
		return nil
	})
	if len(last) > 2 {
		t.Fatalf("last StillAuthorized call had %d grants, want 2 (for 4 sessions of 2 credentials)", len(last))
	}
	slices.SortFunc(last, func(a, b Grant) int { return strings.Compare(a.PGRole, b.PGRole) })
	want := []Grant{{credR, f.dbID, f.reader}, {credW, f.dbID, f.owner}}
	slices.SortFunc(want, func(a, b Grant) int { return strings.Compare(a.PGRole, b.PGRole) })
	if !slices.Equal(last, want) {
		t.Fatalf("grants %v, want %v", last, want)
	}
}

// repairAuth is a testAuth that can reset roles, as bitd's can.
type repairAuth struct {
	*testAuth
	repairs int
}

func (a *repairAuth) RepairRole(ctx context.Context, t *WireTarget) error {
	conn, err := pgx.Connect(ctx, a.f.adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{t.PGRole}.Sanitize()+" RESET ALL"); err != nil {
		return err
	}
	a.mu.Lock()
	a.repairs++
	a.mu.Unlock()
	return nil
}

// TestRoleSettingsHealed: a role whose own SQL set a per-role
// statement_timeout is reset before a session is relayed, so the client
// never sees the setting; without a RoleRepairer the login is refused.
func TestRoleSettingsHealed(t *testing.T) {
	t.Parallel()
	f := sharedDB(t)
	// A database of its own: the shared reader is used by parallel tests.
	d := pgtest.New(t)
	role, pw := d.Reader, d.Password(d.Reader)
	tamper := func() {
		c, err := pgx.Connect(t.Context(), d.URL(role))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(t.Context(), "ALTER ROLE CURRENT_USER SET statement_timeout = '1ms'"); err != nil {
			t.Fatal(err)
		}
	}
	base := newTestAuth(f)
	key := "v2_" + pgtest.RandHex(20)
	base.keys[key] = &WireTarget{DatabaseID: d.ID, CredentialID: "cred-" + pgtest.RandHex(4), PGDatabase: d.Name,
		PGRole: role, PGPassword: pw, BackendAddr: d.TenantAddr.String(), Reader: true}

	tamper()
	_, plainAddr := startProxy(t, Config{DevTLS: true}, base)
	if _, err := connect(t, plainAddr, key, testDB, "require"); pgCode(err) != "57P03" || !strings.Contains(err.Error(), "ALTER ROLE") {
		t.Fatalf("tampered role without a repairer: %v, want 57P03 naming ALTER ROLE", err)
	}

	ra := &repairAuth{testAuth: base}
	_, addr := startProxy(t, Config{DevTLS: true}, ra)
	for i := range 2 {
		tamper()
		conn, err := connect(t, addr, key, testDB, "require")
		if err != nil {
			t.Fatalf("round %d: connect: %v", i, err)
		}
		var st string
		if err := conn.QueryRow(t.Context(), "SELECT current_setting('statement_timeout') FROM pg_sleep(0.05)").Scan(&st); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if st != "0" {
			t.Errorf("round %d: statement_timeout = %s, want 0", i, st)
		}
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if ra.repairs != 2 {
		t.Errorf("repairs = %d, want 2", ra.repairs)
	}
}
