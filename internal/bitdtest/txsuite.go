package bitdtest

import (
	"reflect"
	"testing"
)

// The JavaScript transaction suite, wasm/testdata/txapp/suite.mjs, runs in
// headless Chromium (wasm's TestBrowserTransactions) and in workerd
// (workers/workerdtest's TestWorkerdTransactions); both check its outcome
// here.

// TxOutcome is what wasm/testdata/txapp/suite.mjs reports for one run.
type TxOutcome struct {
	Steps                                                    []string
	CoreResult, CoreThrow, CoreDone, CoreEnded               string
	CoreInside, CoreOutsideBefore, CoreAfter                 []int
	CoreAfterThrow                                           []int
	CoreStreamed, CoreRetried, CoreAttempts                  int
	ReadOnlyState                                            string
	KyselyResult, KyselyThrow                                string
	KyselyUpdated                                            int
	KyselyOutsideBefore, KyselyAfter, KyselyAfterThrow       []int
	DrizzleResult, DrizzleRollback                           string
	DrizzleOutsideBefore, DrizzleAfter, DrizzleAfterRollback []int
}

// CheckTxOutcome fails t unless o is the outcome of a correct run: each
// transfer committed once, invisible to other requests until its commit,
// and each failed transaction left no trace.
func CheckTxOutcome(t testing.TB, where string, o TxOutcome) {
	t.Helper()
	eq := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %s = %v, want %v", where, what, got, want)
		}
	}
	eq("steps", o.Steps, []string{"core read-modify-write", "core rollback", "core retries, read only", "kysely", "drizzle"})
	// client.transaction: 30 from row 1 to row 2.
	eq("core result", o.CoreResult, "moved")
	eq("balances inside the transaction", o.CoreInside, []int{70, 30})
	eq("balances seen outside before the commit", o.CoreOutsideBefore, []int{100, 0})
	eq("sum streamed inside the transaction", o.CoreStreamed, 100)
	eq("balances after the commit", o.CoreAfter, []int{70, 30})
	eq("a throwing function's error", o.CoreThrow, "rethrown")
	eq("balances after the throw", o.CoreAfterThrow, []int{70, 30})
	eq("a call on a finished tx", o.CoreDone, "transaction_done")
	eq("the thrown transaction's tx_id afterwards", o.CoreEnded, "transaction_not_found")
	eq("attempts with one serialization failure", o.CoreAttempts, 2)
	eq("the retried transaction's result", o.CoreRetried, 2)
	eq("SQLSTATE of a write in a read-only transaction", o.ReadOnlyState, "25006")
	// Kysely: 20 more.
	eq("kysely result", o.KyselyResult, "moved")
	eq("kysely numUpdatedRows", o.KyselyUpdated, 1)
	eq("balances outside before kysely's commit", o.KyselyOutsideBefore, []int{70, 30})
	eq("balances after kysely's commit", o.KyselyAfter, []int{50, 50})
	eq("kysely's throwing transaction", o.KyselyThrow, "rethrown")
	eq("balances after kysely's throw", o.KyselyAfterThrow, []int{50, 50})
	// Drizzle: 10 more.
	eq("drizzle result", o.DrizzleResult, "moved")
	eq("balances outside before drizzle's commit", o.DrizzleOutsideBefore, []int{50, 50})
	eq("balances after drizzle's commit", o.DrizzleAfter, []int{40, 60})
	eq("drizzle's tx.rollback()", o.DrizzleRollback, "TransactionRollbackError")
	eq("balances after drizzle's rollback", o.DrizzleAfterRollback, []int{40, 60})
}
