package query

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/bitkit-dev/bitkit/server/internal/apierr"
	"github.com/bitkit-dev/bitkit/server/internal/authn"
	"github.com/bitkit-dev/bitkit/server/internal/clientaddr"
)

// Memory budget of buffered answers: every buffered answer (POST /query
// without NDJSON, POST /query/batch) reserves its encoded bytes from a
// process-wide budget and from its account's, in budgetChunk steps once it
// passes budgetFree, and gives them back when the response is written or
// the request fails. A reservation that cannot be had waits up to
// Config.BufferWait, then the request answers 429 buffer_limit_reached.
const (
	// budgetChunk is the reservation step, so the row loop reserves once
	// per MiB, not per row.
	budgetChunk = 1 << 20
	// budgetFree is what an answer may hold before it reserves anything:
	// small answers never wait. Their total is bounded by the connection
	// pools (one answer per acquired connection).
	budgetFree = 64 << 10
)

// byteBudget bounds bytes in flight in total and per account. It is safe
// for concurrent use.
//
// Answers reserve as they grow, so several answers may each hold part of
// the budget while they need more: if they all waited, none would finish.
// So only the oldest answer that holds bytes waits for room (and answers
// that hold nothing yet wait behind it); any other answer that holds bytes
// and finds no room gives way at once (429), and what it held goes to the
// others. The oldest always finishes or times out, so some answer always
// gets through.
type byteBudget struct {
	total, perAccount int64
	wait              time.Duration

	mu       sync.Mutex
	used     int64
	accounts map[string]int64
	changed  chan struct{}       // closed (and replaced) whenever bytes are released
	seq      uint64              // age of the last grant that began to hold bytes
	holders  map[uint64]struct{} // ages of the grants holding bytes
	yield    bool                // the oldest holder waits: newcomers wait behind it
}

func newByteBudget(total, perAccount int64, wait time.Duration) *byteBudget {
	return &byteBudget{total: total, perAccount: perAccount, wait: wait,
		accounts: map[string]int64{}, changed: make(chan struct{}), holders: map[uint64]struct{}{}}
}

// acquire reserves n bytes for account, waiting up to b.wait for them. It
// returns a 429 *apierr.Error naming the limit when they cannot be had in
// time, or ctx's error when ctx ends first.
func (b *byteBudget) acquire(ctx context.Context, account string, n int64) error {
	return b.grow(ctx, account, nil, n)
}

// grow reserves n more bytes for account on behalf of g (nil: a caller
// that does not take part in the ordering above), waiting as the type's
// comment says.
func (b *byteBudget) grow(ctx context.Context, account string, g *bufferGrant, n int64) error {
	var timer *time.Timer
	for {
		b.mu.Lock()
		holds := g != nil && g.seq != 0
		oldest := holds && g.seq == b.oldestLocked()
		acct := b.accounts[account]
		fitsAccount := acct+n <= b.perAccount
		if fitsAccount && b.used+n <= b.total && (holds || !b.yield) {
			b.accounts[account] = acct + n
			b.used += n
			if g != nil && !holds {
				b.seq++
				g.seq = b.seq
				b.holders[g.seq] = struct{}{}
			}
			if oldest {
				b.yield = false
			}
			b.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			return nil
		}
		if holds && !oldest {
			b.mu.Unlock()
			return b.refusal(!fitsAccount)
		}
		if oldest {
			b.yield = true
		}
		changed := b.changed
		b.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(b.wait)
			defer timer.Stop()
		}
		select {
		case <-changed:
		case <-ctx.Done():
			b.stopYield(oldest)
			return fmt.Errorf("waiting for buffered-answer memory: %w", ctx.Err())
		case <-timer.C:
			b.stopYield(oldest)
			return b.refusal(!fitsAccount)
		}
	}
}

// oldestLocked returns the age of the oldest grant holding bytes (0: none).
func (b *byteBudget) oldestLocked() uint64 {
	var o uint64
	for s := range b.holders {
		if o == 0 || s < o {
			o = s
		}
	}
	return o
}

func (b *byteBudget) stopYield(oldest bool) {
	if !oldest {
		return
	}
	b.mu.Lock()
	b.yield = false
	close(b.changed) // newcomers waiting behind it may go
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// drop forgets grant age seq (its bytes were released).
func (b *byteBudget) drop(seq uint64) {
	if seq == 0 {
		return
	}
	b.mu.Lock()
	delete(b.holders, seq)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// release gives back n bytes of account.
func (b *byteBudget) release(account string, n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if left := b.accounts[account] - n; left > 0 {
		b.accounts[account] = left
	} else {
		delete(b.accounts, account)
	}
	close(b.changed)
	b.changed = make(chan struct{})
}

// inUse returns the bytes reserved in total and by account (for tests).
func (b *byteBudget) inUse(account string) (total, acct int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.accounts[account]
}

// refusal is the 429 of a buffered answer that found no memory.
func (b *byteBudget) refusal(account bool) *apierr.Error {
	what := fmt.Sprintf("bitd already holds %d MiB of buffered answers in total (the server's limit, --max-buffered-bytes)", b.total>>20)
	if account {
		what = fmt.Sprintf("your other buffered answers already hold %d MiB (the per-account limit, --max-buffered-bytes-per-account)", b.perAccount>>20)
	}
	e := apierr.New(http.StatusTooManyRequests, "buffer_limit_reached",
		"%s, so the query was stopped; stream the answer instead (send Accept: application/x-ndjson), "+
			"run it as an export job (POST /v2beta/db/{account}/{db}/export/), or retry when other queries have finished", what)
	e.RetryAfter = time.Second
	return e
}

// budgetAccount names whose budget a request spends: the caller's account
// (a user's personal account, a service account's account); anonymous
// callers of public databases are counted per client address.
func budgetAccount(r *http.Request) string {
	if p := authn.From(r.Context()); p != nil {
		switch {
		case p.AccountID != "":
			return "account:" + p.AccountID
		case p.UserID != "":
			return "user:" + p.UserID
		case p.ServiceAccountID != "":
			return "service:" + p.ServiceAccountID
		}
	}
	// The client's address: the TCP peer's, or behind a trusted balancer
	// the one it forwarded (clientaddr.Trusted.Middleware).
	return "address:" + clientaddr.Host(r.RemoteAddr)
}

// bufferGrant is one answer's reservation.
type bufferGrant struct {
	budget   *byteBudget
	account  string
	reserved int64
	seq      uint64 // its age among the grants holding bytes; 0 while it holds none
}

// need makes the reservation cover n bytes (rounded up to budgetChunk),
// waiting as acquire does, and returns how many bytes are now covered.
// Answers under budgetFree reserve nothing.
func (g *bufferGrant) need(ctx context.Context, n int64) (covered int64, err error) {
	if n > g.reserved && n > budgetFree {
		more := (n - g.reserved + budgetChunk - 1) / budgetChunk * budgetChunk
		if err := g.budget.grow(ctx, g.account, g, more); err != nil {
			return g.covered(), err
		}
		g.reserved += more
	}
	return g.covered(), nil
}

func (g *bufferGrant) covered() int64 { return max(g.reserved, budgetFree) }

// release gives the whole reservation back; it may be called again.
func (g *bufferGrant) release() {
	g.budget.release(g.account, g.reserved)
	g.budget.drop(g.seq)
	g.reserved, g.seq = 0, 0
}

// spend makes sink reserve its bytes from the memory budget for r's
// account; the returned function gives them back.
func (h *Handler) spend(ctx context.Context, r *http.Request, sink *bufferSink) (release func()) {
	g := &bufferGrant{budget: h.budget}
	// Answers under budgetFree reserve nothing: the sink asks only past it,
	// and only then is the account named (most answers never are).
	sink.covered = budgetFree
	sink.reserve = func(n int64) (int64, error) {
		if g.account == "" {
			g.account = budgetAccount(r)
		}
		return g.need(ctx, n)
	}
	return g.release
}
