//go:build js && wasm

package main

import (
	"context"
	"syscall/js"
	"time"

	"github.com/bitkit-dev/bitkit/core"
)

// Interactive transactions (POST /v2beta/tx). The Go side has the three
// calls of the wire contract, beginTx, commitTx and rollbackTx, and query,
// queryStream and batch take the option txId; client.transaction(db, fn,
// opts) is built on them in bitkit.mjs, so it works the same whether the Go
// instance runs on the page or in its Web Worker (fn stays on the page).

// isolationLevel reads the isolationLevel option ("read_committed",
// "repeatable_read", "serializable"; spaces instead of underscores too).
func isolationLevel(o js.Value, what string) (string, error) {
	switch lvl := str(o, "isolationLevel"); lvl {
	case "":
		return "", nil
	case "read_committed", "read committed":
		return "read committed", nil
	case "repeatable_read", "repeatable read":
		return "repeatable read", nil
	case "serializable":
		return "serializable", nil
	default:
		return "", argErrorf("bitkit: %s: isolationLevel must be read_committed, repeatable_read or serializable, got %q", what, lvl)
	}
}

// txOf returns the transaction named by the option txId, or nil when the
// option is absent.
func (jc *jsClient) txOf(db string, o js.Value, what string) (*core.Tx, error) {
	if !is(o, "object") {
		return nil, nil
	}
	v := o.Get("txId")
	if v.IsUndefined() || v.IsNull() {
		return nil, nil
	}
	if !is(v, "string") || v.String() == "" {
		return nil, argErrorf("bitkit: %s: txId must be the non-empty string beginTx returned", what)
	}
	return jc.c.ResumeTx(db, v.String()), nil
}

// beginTx implements client.beginTx(db, {isolationLevel, readOnly,
// deferrable, idleTimeoutMs, signal}) → {txId, expiresAt}.
func (jc *jsClient) beginTx(ctx context.Context, a []js.Value) (any, error) {
	db, err := reqString(a, 0, "beginTx: the database name (\"account/db\")")
	if err != nil {
		return nil, err
	}
	o := optObject(a, 1)
	var opts core.TxOptions
	if opts.IsolationLevel, err = isolationLevel(o, "beginTx"); err != nil {
		return nil, err
	}
	opts.ReadOnly, _ = optBool(o, "readOnly")
	opts.Deferrable, _ = optBool(o, "deferrable")
	if ms, ok := optNumber(o, "idleTimeoutMs"); ok {
		if ms <= 0 {
			return nil, argErrorf("bitkit: beginTx: idleTimeoutMs must be a positive number of milliseconds")
		}
		opts.IdleTimeout = time.Duration(ms * float64(time.Millisecond))
	}
	ctx, stop := withSignal(ctx, o)
	defer stop()
	tx, err := jc.c.Begin(ctx, db, opts)
	if err != nil {
		return nil, err
	}
	exp := ""
	if !tx.ExpiresAt().IsZero() {
		exp = tx.ExpiresAt().UTC().Format(time.RFC3339Nano)
	}
	return js.ValueOf(map[string]any{"txId": tx.ID(), "expiresAt": exp}), nil
}

// commitTx implements client.commitTx(txId): a failed transaction is rolled
// back and rejects with code "transaction_aborted".
func (jc *jsClient) commitTx(ctx context.Context, a []js.Value) (any, error) {
	id, err := reqString(a, 0, "commitTx: the txId")
	if err != nil {
		return nil, err
	}
	return nil, jc.c.ResumeTx("", id).Commit(ctx)
}

// rollbackTx implements client.rollbackTx(txId); a transaction the server
// already ended is not an error.
func (jc *jsClient) rollbackTx(ctx context.Context, a []js.Value) (any, error) {
	id, err := reqString(a, 0, "rollbackTx: the txId")
	if err != nil {
		return nil, err
	}
	return nil, jc.c.ResumeTx("", id).Rollback(ctx)
}
