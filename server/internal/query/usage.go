package query

import (
	"context"
	"sync"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/dbaccess"
)

// usageFlushInterval paces the usage writes: at most one per database per
// interval while queries keep coming.
const usageFlushInterval = time.Second

// usageBuffer coalesces rows-queried counts before they reach the
// UsageRecorder. Recording a count is a metadata-database write (a commit),
// and concurrent writes to one database's usage row serialize on its row
// lock: done inline, every query would wait for the previous one's commit,
// and even off the request path, one write per query would spend as much
// CPU as the queries. Instead a request adds its count to a pending map and
// returns; one goroutine, which exists only while counts are pending, hands
// each database's summed count to the recorder, pauses usageFlushInterval
// (counts added meanwhile are summed), and starts over until nothing is
// left. wait (shutdown) makes it finish without pausing.
type usageBuffer struct {
	rec      UsageRecorder
	mu       sync.Mutex
	pending  map[string]int64
	flushing bool
	idle     *sync.Cond
	hurry    chan struct{} // closed by wait: no more pauses
}

func newUsageBuffer(rec UsageRecorder) *usageBuffer {
	u := &usageBuffer{rec: rec, pending: map[string]int64{}, hurry: make(chan struct{})}
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
		batch, hurry := u.pending, u.hurry
		u.pending = map[string]int64{}
		u.mu.Unlock()
		for id, rows := range batch {
			u.rec.AddRowsQueried(context.Background(), id, rows)
		}
		t := time.NewTimer(usageFlushInterval)
		select {
		case <-t.C:
		case <-hurry:
			t.Stop()
		}
	}
}

// wait blocks until every pending count has been handed to the recorder.
func (u *usageBuffer) wait() {
	u.mu.Lock()
	defer u.mu.Unlock()
	select {
	case <-u.hurry: // another wait closed it
	default:
		close(u.hurry)
	}
	for u.flushing {
		u.idle.Wait()
	}
	u.hurry = make(chan struct{})
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
