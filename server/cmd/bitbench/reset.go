package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

var resetOnly bool

func init() {
	flag.BoolVar(&resetOnly, "reset-only", false, "run only the session-reset comparison (h)")
}

// keepStatementsReset is DISCARD ALL without DEALLOCATE ALL and DISCARD
// PLANS: what a reset that kept bitd's own prepared statements would have
// to send at the least (a tenant's SQL-level PREPAREs would still need
// deallocating, which this leaves out, so it is a lower bound).
const keepStatementsReset = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; " +
	"SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES"

// benchReset runs (h): the point query on one connection to the scratch
// database, in four ways, with the PostgreSQL backend's CPU per query
// (from /proc): the unnamed statement and DISCARD ALL (what bitd sends),
// a kept named statement with the reset that keeps it, a kept named
// statement without a reset (the reference gateway), and the unnamed
// statement without a reset. It tells whether a statement cache that
// survives the reset would pay for itself.
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
		{name: "unnamed + DISCARD ALL (bitd)", f: func(i int) error {
			if err := exec("", i); err != nil {
				return err
			}
			return simple("DISCARD ALL")
		}},
		{name: "kept + a reset keeping it", f: func(i int) error {
			if err := exec("kept", i); err != nil {
				return err
			}
			return simple(keepStatementsReset)
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
		fmt.Printf("    %-30s %6.1f µs backend CPU  %6.1f µs wall\n", v.name,
			float64(v.cpu.Microseconds())/float64(v.n), float64(v.wall.Microseconds())/float64(v.n))
	}
	fmt.Println()
	return nil
}
