package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

var resetOnly bool

func init() {
	flag.BoolVar(&resetOnly, "reset-only", false, "run only the session-reset comparison (h)")
}

// keepStatementsReset is DISCARD ALL without DEALLOCATE ALL and DISCARD
// PLANS: what a reset that kept bitd's own prepared statements would have
// to send at the least (a tenant's SQL-level PREPAREs would still need
// finding and deallocating, which this leaves out, so it is a lower bound).
const keepStatementsReset = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; " +
	"SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES"

// resetFunctionSQL creates, in the scratch database, a PL/pgSQL function
// doing what DISCARD ALL does, but callable inside the statement's own
// implicit transaction (DISCARD ALL refuses to run in one). Its statements
// are planned once per session.
const resetFunctionSQL = `CREATE OR REPLACE FUNCTION bitbench_reset() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE 'CLOSE ALL';
	RESET ROLE;
	RESET ALL;
	UNLISTEN *;
	PERFORM pg_catalog.pg_advisory_unlock_all();
	DISCARD TEMP;
	DISCARD SEQUENCES;
	EXECUTE 'DEALLOCATE ALL';
END $$`

// benchReset runs (h): the point query on one connection to the scratch
// database, in six ways, with the PostgreSQL backend's CPU per query (from
// /proc): the unnamed statement with DISCARD ALL behind it in the same
// write (what bitd sends) and in a round trip of its own; with a PL/pgSQL
// reset inside the statement's implicit transaction; a kept named statement
// with the least reset that keeps it, in the same write; a kept named
// statement without a reset (the reference gateway); the unnamed statement
// without a reset. It tells what the reset and the parse cost, and whether
// a statement cache that survives the reset would pay for itself.
func benchReset(scratchURL string) error {
	ctx := context.Background()
	pc, err := pgconn.Connect(ctx, scratchURL)
	if err != nil {
		return fmt.Errorf("(h): connect to the scratch database: %w", err)
	}
	defer pc.Close(ctx)
	const q = "SELECT id, name, v, at FROM points WHERE id = $1"
	oids := []uint32{23}
	pid := int(pc.PID())
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
		return fmt.Errorf("(h) needs PostgreSQL on this machine (its backend's CPU time is read from /proc): %w", err)
	}
	if _, err := pc.Exec(ctx, resetFunctionSQL).ReadAll(); err != nil {
		return fmt.Errorf("(h): create the reset function: %w", err)
	}
	prepare := func() error {
		_, err := pc.Prepare(ctx, "kept", q, oids)
		return err
	}
	point := func(i int) [][]byte { return [][]byte{[]byte(strconv.Itoa(1 + i%pointRows))} }
	exec := func(name string, i int) error {
		var rr *pgconn.ResultReader
		if name == "" {
			rr = pc.ExecParams(ctx, q, point(i), oids, nil, nil)
		} else {
			rr = pc.ExecPrepared(ctx, name, point(i), nil, nil)
		}
		_, err := rr.Close()
		return err
	}
	simple := func(sql string) error { _, err := pc.Exec(ctx, sql).ReadAll(); return err }
	variants := []struct {
		name string
		f    func(i int) error
		cpu  time.Duration
		wall time.Duration
		n    int
	}{
		{name: "unnamed + DISCARD ALL in one write (bitd)", f: func(i int) error {
			return pipelined(ctx, pc, q, point(i), oids, "DISCARD ALL", true)
		}},
		{name: "unnamed + DISCARD ALL, own round trip", f: func(i int) error {
			if err := exec("", i); err != nil {
				return err
			}
			return simple("DISCARD ALL")
		}},
		{name: "unnamed + reset function, one transaction", f: func(i int) error {
			return pipelined(ctx, pc, q, point(i), oids, "SELECT bitbench_reset()", false)
		}},
		{name: "kept + a reset keeping it, one write", f: func(i int) error {
			return keptPipelined(ctx, pc, "kept", point(i), keepStatementsReset)
		}},
		{name: "kept, no reset (reference)", f: func(i int) error { return exec("kept", i) }},
		{name: "unnamed, no reset", f: func(i int) error { return exec("", i) }},
	}
	per := *duration / 3
	if per < time.Second {
		per = time.Second
	}
	for range 3 {
		for v := range variants {
			if err := simple("DISCARD ALL"); err != nil {
				return err
			}
			if err := prepare(); err != nil {
				return err
			}
			c0, t0 := cpuTime(pid), time.Now()
			n := 0
			for time.Since(t0) < per {
				if err := variants[v].f(n); err != nil {
					return fmt.Errorf("(h) %s: %w", variants[v].name, err)
				}
				n++
			}
			variants[v].wall += time.Since(t0)
			variants[v].cpu += cpuTime(pid) - c0
			variants[v].n += n
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("(h) the point query on one connection, PostgreSQL backend CPU per query (/proc), 3 alternating rounds; load average %s", load)
	for _, v := range variants {
		fmt.Printf("    %-42s %6.1f µs backend CPU  %6.1f µs wall\n", v.name,
			float64(v.cpu.Microseconds())/float64(v.n), float64(v.wall.Microseconds())/float64(v.n))
	}
	fmt.Println()
	return nil
}

// pipelined sends the statement and the reset in one write, in one
// implicit transaction or (ownSync) two, and reads both answers.
func pipelined(ctx context.Context, pc *pgconn.PgConn, q string, params [][]byte, oids []uint32, reset string, ownSync bool) error {
	p := pc.StartPipeline(ctx)
	p.SendQueryParams(q, params, oids, nil, nil)
	if ownSync {
		p.SendPipelineSync()
	}
	p.SendQueryParams(reset, nil, nil, nil, nil)
	p.SendPipelineSync()
	if err := p.Flush(); err != nil {
		return err
	}
	for syncs := 0; syncs < 1 || (ownSync && syncs < 2); {
		r, err := p.GetResults()
		if err != nil {
			return err
		}
		switch r := r.(type) {
		case *pgconn.ResultReader:
			if _, err := r.Close(); err != nil {
				return err
			}
		case *pgconn.PipelineSync:
			syncs++
		}
	}
	return p.Close()
}

// keptPipelined executes the prepared statement name and sends the
// simple-protocol reset behind it in the same write, then reads both
// answers (two ReadyForQuery).
func keptPipelined(ctx context.Context, pc *pgconn.PgConn, name string, params [][]byte, reset string) error {
	fe := pc.Frontend()
	fe.Send(&pgproto3.Bind{PreparedStatement: name, Parameters: params})
	fe.Send(&pgproto3.Describe{ObjectType: 'P'})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Sync{})
	fe.Send(&pgproto3.Query{String: reset})
	if err := fe.Flush(); err != nil {
		return err
	}
	var failed error
	for ready := 0; ready < 2; {
		msg, err := pc.ReceiveMessage(ctx)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			failed = pgconn.ErrorResponseToPgError(m)
		case *pgproto3.ReadyForQuery:
			ready++
		}
	}
	return failed
}
