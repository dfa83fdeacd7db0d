package lambdaruntime

import (
	"context"
	"sync"
	"time"
)

// deadlineContext is an in-process handler's context. Its deadline is on
// the Runtime's clock, so it ends when the clock reaches the deadline by
// clock.Advance as well as by the passing of time; Err is then
// context.DeadlineExceeded. It also ends, with context.Canceled, when the
// invocation is over. Values come from the parent, which never ends.
type deadlineContext struct {
	context.Context
	deadline time.Time
	done     chan struct{}

	mu  sync.Mutex
	err error
}

func newDeadlineContext(parent context.Context, deadline time.Time) *deadlineContext {
	return &deadlineContext{Context: parent, deadline: deadline, done: make(chan struct{})}
}

func (c *deadlineContext) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *deadlineContext) Done() <-chan struct{}       { return c.done }

func (c *deadlineContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// end ends the context with err; only the first call counts.
func (c *deadlineContext) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
}
