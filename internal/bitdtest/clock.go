package bitdtest

import (
	"context"
	"sync"
	"time"
)

// StepClock is a core.Clock whose time moves only when the test calls
// Add; Sleep waits in real time (the server's clock is real).
type StepClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewStepClock returns a StepClock reading t.
func NewStepClock(t time.Time) *StepClock { return &StepClock{t: t} }

// Now returns the clock's time.
func (c *StepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock forward by d.
func (c *StepClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Sleep waits d, or until ctx ends (then it returns ctx's error).
func (c *StepClock) Sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
