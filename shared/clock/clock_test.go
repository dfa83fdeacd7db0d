package clock

import (
	"sync"
	"testing"
	"time"
)

func TestAdvanceMovesNowAndNeverBack(t *testing.T) {
	c := New()
	before := c.Now()
	c.Advance(time.Hour)
	if got := c.Now().Sub(before); got < time.Hour {
		t.Fatalf("after Advance(1h) the clock moved %v", got)
	}
	c.Advance(-time.Hour)
	if c.Offset() != time.Hour {
		t.Fatalf("negative Advance changed the offset to %v", c.Offset())
	}
}

func TestTimerFiresOnAdvance(t *testing.T) {
	c := New()
	tm := c.NewTimer(10 * time.Minute)
	select {
	case <-tm.C:
		t.Fatal("timer fired before its deadline")
	default:
	}
	c.Advance(9 * time.Minute)
	select {
	case <-tm.C:
		t.Fatal("timer fired 1 minute early")
	default:
	}
	c.Advance(time.Minute)
	select {
	case <-tm.C:
	case <-time.After(time.Second):
		t.Fatal("timer did not fire when the clock reached its deadline")
	}
}

func TestTimerFiresInRealTime(t *testing.T) {
	c := New()
	select {
	case <-c.After(20 * time.Millisecond):
	case <-time.After(2 * time.Second):
		t.Fatal("timer did not fire in real time")
	}
}

func TestStopAndAfterFunc(t *testing.T) {
	c := New()
	var mu sync.Mutex
	fired := 0
	done := make(chan struct{})
	c.AfterFunc(time.Minute, func() { mu.Lock(); fired++; mu.Unlock(); close(done) })
	stopped := c.AfterFunc(time.Minute, func() { mu.Lock(); fired += 100; mu.Unlock() })
	if !stopped.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	if stopped.Stop() {
		t.Fatal("second Stop reported true")
	}
	c.Advance(time.Minute)
	<-done
	time.Sleep(10 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if fired != 1 {
		t.Fatalf("fired = %d, want 1 (the stopped timer must not run)", fired)
	}
}

func TestZeroDurationFiresAtOnce(t *testing.T) {
	c := New()
	select {
	case <-c.After(0):
	case <-time.After(time.Second):
		t.Fatal("After(0) did not fire at once")
	}
}
