package main

// The reference gateway: what an HTTP query endpoint costs without bitd's
// work (no authentication, no database lookup, no session reset). It runs
// as a child process of bitbench (`bitbench --reference-gateway ADDR`), so
// its CPU time is measured apart from the load generator's, like bitd's.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// referencePoolConns matches bitd's pool size per (database, role).
const referencePoolConns = 10

type refRequest struct {
	DatabaseName string `json:"database_name"`
	QueryString  string `json:"query_string"`
	Params       []any  `json:"params"`
}

type refColumn struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	TypeOID uint32 `json:"type_oid"`
}

// serveReference runs the reference gateway on addr against dbURL until
// stdin closes; it prints its address on stdout once it listens.
func serveReference(addr, dbURL string) error {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("reference gateway: parse database URL: %w", err)
	}
	cfg.MaxConns = referencePoolConns
	if os.Getenv("BITBENCH_REFERENCE_UNNAMED") != "" {
		// As bitd: the unnamed statement, parsed and planned every time.
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req refRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for i, p := range req.Params {
			if f, ok := p.(float64); ok && f == float64(int64(f)) {
				req.Params[i] = int64(f)
			}
		}
		rows, err := pool.Query(r.Context(), req.QueryString, req.Params...)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		tm := rows.Conn().TypeMap()
		fds := rows.FieldDescriptions()
		cols := make([]refColumn, len(fds))
		meta := make(map[string]string, len(fds))
		for i, fd := range fds {
			name := "unknown"
			if t, ok := tm.TypeForOID(fd.DataTypeOID); ok {
				name = t.Name
			}
			cols[i] = refColumn{Name: fd.Name, Type: name, TypeOID: fd.DataTypeOID}
			meta[fd.Name] = name
		}
		data := [][]any{}
		for rows.Next() {
			v, err := rows.Values()
			if err != nil {
				break
			}
			data = append(data, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		tag := rows.CommandTag().String()
		if i := strings.IndexByte(tag, ' '); i > 0 {
			tag = tag[:i]
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			QueryString string            `json:"query_string"`
			Metadata    map[string]string `json:"metadata"`
			Columns     []refColumn       `json:"columns"`
			Data        [][]any           `json:"data"`
			RowCount    int               `json:"row_count"`
			Command     string            `json:"command"`
		}{req.QueryString, meta, cols, data, len(data), tag})
	}), ReadHeaderTimeout: 10 * time.Second}
	if cert := os.Getenv("BITBENCH_REFERENCE_TLS_CERT"); cert != "" {
		// HTTPS, HTTP/2 by ALPN as bitd serves it: (f)'s measure of what
		// Go's TLS and HTTP/2 cost a handler that does nothing else.
		go func() { _ = hs.ServeTLS(ln, cert, os.Getenv("BITBENCH_REFERENCE_TLS_KEY")) }()
	} else {
		go func() { _ = hs.Serve(ln) }()
	}
	fmt.Println(ln.Addr().String())
	_, _ = io.Copy(io.Discard, os.Stdin) // the parent closes stdin to stop us
	return hs.Close()
}

// startReference starts the reference gateway as a child process and
// returns its endpoint, its process ID and a function that stops it.
func startReference(dbURL string, env ...string) (ep string, pid int, stop func(), err error) {
	self, err := os.Executable()
	if err != nil {
		return "", 0, nil, err
	}
	cmd := exec.Command(self, "--reference-gateway", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "BITBENCH_REFERENCE_DB="+dbURL) // not argv: ps shows it
	if *refUnnamed {
		cmd.Env = append(cmd.Env, "BITBENCH_REFERENCE_UNNAMED=1")
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return "", 0, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, nil, fmt.Errorf("start the reference gateway: %w", err)
	}
	stop = func() { _ = in.Close(); _ = cmd.Wait() }
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", 0, nil, errors.New("the reference gateway exited before listening")
	}
	return "http://" + strings.TrimSpace(line), cmd.Process.Pid, stop, nil
}

// cpuTime returns the user+system CPU time of process pid so far, from
// /proc/PID/stat (clock ticks of 1/100 s, Linux's USER_HZ); 0 without /proc.
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
