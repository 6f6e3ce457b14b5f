package jobs

import "context"

// testSignals are the hooks tests set on a Service to watch or steer it
// (as river's rivershared/testsignal keeps them off its production types).
// A Service holds them in one field, nil in production; tests store the
// whole struct once, right after New, before any request. Every method is
// safe on a nil *testSignals and then does nothing.
type testSignals struct {
	// noFastPath turns the upload fast path off (tests of the job path).
	noFastPath bool
	// onLoad is called with every load progress report of a job.
	onLoad func(ctx context.Context, jobID string, rows int64)
	// onFastPath is told how each fast-path attempt ended: "loaded",
	// "fallback" or "commit_failed", with the reason.
	onFastPath func(jobID, outcome string, reason error)
	// crash stops the fast path for table at point ("before_commit",
	// "after_commit") as if bitd died there, when it returns true.
	crash func(table, point string) bool
}

func (ts *testSignals) fastPathOff() bool { return ts != nil && ts.noFastPath }

func (ts *testSignals) loadProgress(ctx context.Context, jobID string, rows int64) {
	if ts != nil && ts.onLoad != nil {
		ts.onLoad(ctx, jobID, rows)
	}
}

func (ts *testSignals) fastPathEnded(jobID, outcome string, reason error) {
	if ts != nil && ts.onFastPath != nil {
		ts.onFastPath(jobID, outcome, reason)
	}
}

func (ts *testSignals) crashAt(table, point string) bool {
	return ts != nil && ts.crash != nil && ts.crash(table, point)
}
