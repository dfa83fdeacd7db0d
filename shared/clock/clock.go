// Package clock is the one source of time for the local cloud, the runner and
// the functions' injected "now".
//
// A Clock runs with the wall clock but can be moved forward: Advance adds an
// offset that every later Now reflects, and fires at once every timer whose
// deadline the jump passed. Tests use it to skip visibility timeouts,
// presigned-URL expiry and schedules without sleeping, while everything that
// is not waiting on the clock keeps running in real time. Time never goes
// backwards.
package clock

import (
	"sync"
	"time"
)

// Clock is safe for concurrent use. The zero value is not usable; call New.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
	timers map[*timer]struct{}
	now    func() time.Time // the underlying wall clock
}

// New returns a clock that follows the wall clock until Advance is called.
func New() *Clock {
	return &Clock{timers: make(map[*timer]struct{}), now: time.Now}
}

// Now returns the current time of the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now().Add(c.offset)
}

// Offset reports how far the clock has been moved ahead of the wall clock.
func (c *Clock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

// Advance moves the clock forward by d (negative d is ignored) and fires every
// timer whose deadline is now reached.
func (c *Clock) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	c.offset += d
	now := c.now().Add(c.offset)
	var due []*timer
	for t := range c.timers {
		if !now.Before(t.deadline) {
			due = append(due, t)
			delete(c.timers, t)
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		t.fire(now)
	}
}

// Since returns the clock time elapsed since t.
func (c *Clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Until returns the clock time left until t.
func (c *Clock) Until(t time.Time) time.Duration { return t.Sub(c.Now()) }

// Timer fires once, when the clock reaches its deadline either by the passing
// of real time or by Advance.
type Timer struct {
	C <-chan time.Time
	t *timer
	c *Clock
}

type timer struct {
	deadline time.Time
	ch       chan time.Time
	once     sync.Once
	real     *time.Timer
	fn       func()
}

func (t *timer) fire(now time.Time) {
	t.once.Do(func() {
		if t.real != nil {
			t.real.Stop()
		}
		if t.fn != nil {
			go t.fn()
			return
		}
		t.ch <- now // buffered: never blocks
	})
}

// NewTimer returns a timer that fires after d of clock time.
func (c *Clock) NewTimer(d time.Duration) *Timer {
	t := c.arm(d, nil)
	return &Timer{C: t.ch, t: t, c: c}
}

// AfterFunc calls fn in its own goroutine after d of clock time, unless the
// returned timer is stopped first.
func (c *Clock) AfterFunc(d time.Duration, fn func()) *Timer {
	t := c.arm(d, fn)
	return &Timer{t: t, c: c}
}

// After is NewTimer(d).C.
func (c *Clock) After(d time.Duration) <-chan time.Time { return c.NewTimer(d).C }

func (c *Clock) arm(d time.Duration, fn func()) *timer {
	t := &timer{ch: make(chan time.Time, 1), fn: fn}
	c.mu.Lock()
	now := c.now().Add(c.offset)
	t.deadline = now.Add(d)
	if d <= 0 {
		c.mu.Unlock()
		t.fire(now)
		return t
	}
	c.timers[t] = struct{}{}
	// The wall clock reaches the deadline no later than d from now, since the
	// offset only grows.
	t.real = time.AfterFunc(d, func() {
		c.mu.Lock()
		delete(c.timers, t)
		c.mu.Unlock()
		t.fire(c.Now())
	})
	c.mu.Unlock()
	return t
}

// Stop prevents the timer from firing. It reports whether the call stopped
// the timer, false if it had already fired or been stopped.
func (t *Timer) Stop() bool {
	t.c.mu.Lock()
	_, pending := t.c.timers[t.t]
	delete(t.c.timers, t.t)
	t.c.mu.Unlock()
	stopped := false
	t.t.once.Do(func() { stopped = true })
	if t.t.real != nil {
		t.t.real.Stop()
	}
	return pending && stopped
}
