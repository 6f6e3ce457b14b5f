package query

import (
	"context"
	"sync"

	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
)

// usageBuffer coalesces rows-queried counts before they reach the
// UsageRecorder. Recording a count is a metadata-database write, and
// concurrent writes to one database's usage row serialize on its row lock:
// done inline, every query would wait for the previous one's commit. Instead
// a request adds its count to a pending map and returns; one goroutine, which
// exists only while counts are pending, hands each database's summed count to
// the recorder, then whatever accumulated meanwhile, until nothing is left.
type usageBuffer struct {
	rec      UsageRecorder
	mu       sync.Mutex
	pending  map[string]int64
	flushing bool
	idle     *sync.Cond
}

func newUsageBuffer(rec UsageRecorder) *usageBuffer {
	u := &usageBuffer{rec: rec, pending: map[string]int64{}}
	u.idle = sync.NewCond(&u.mu)
	return u
}

func (u *usageBuffer) add(id string, rows int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.pending[id] += rows
	if !u.flushing {
		u.flushing = true
		go u.flush()
	}
}

func (u *usageBuffer) flush() {
	for {
		u.mu.Lock()
		if len(u.pending) == 0 {
			u.flushing = false
			u.idle.Broadcast()
			u.mu.Unlock()
			return
		}
		batch := u.pending
		u.pending = map[string]int64{}
		u.mu.Unlock()
		for id, rows := range batch {
			u.rec.AddRowsQueried(context.Background(), id, rows)
		}
	}
}

// wait blocks until every pending count has been handed to the recorder.
func (u *usageBuffer) wait() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for u.flushing {
		u.idle.Wait()
	}
}

func (h *Handler) recordUsage(_ context.Context, t *dbaccess.Target, rows int64) {
	if h.usage != nil && rows > 0 {
		h.usage.add(t.DatabaseID, rows)
	}
}

// FlushUsage waits until the rows-queried counts of finished queries have
// been handed to the UsageRecorder. Call it after the HTTP server has shut
// down so that no count is lost.
func (h *Handler) FlushUsage() {
	if h.usage != nil {
		h.usage.wait()
	}
}
