package jwks

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is the injected clock of the remote tests: Now moves only when the test calls
// Advance, and an After channel fires when Advance reaches its deadline.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	pending []*fakeTimer
	added   chan struct{} // closed and replaced each time a timer is added
}

type fakeTimer struct {
	at time.Time
	d  time.Duration
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), added: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1) // buffered: a timer nobody reads any more never blocks Advance
	c.mu.Lock()
	defer c.mu.Unlock()
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.pending = append(c.pending, &fakeTimer{at: c.now.Add(d), d: d, ch: ch})
	close(c.added)
	c.added = make(chan struct{})
	return ch
}

// Advance moves the clock by d and fires every timer now due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.pending[:0]
	for _, tm := range c.pending {
		if tm.at.After(c.now) {
			kept = append(kept, tm)
			continue
		}
		tm.ch <- c.now
	}
	clear(c.pending[len(kept):])
	c.pending = kept
}

// pendingOf counts the timers of duration d not yet fired.
func (c *fakeClock) pendingOf(d time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, tm := range c.pending {
		if tm.d == d {
			n++
		}
	}
	return n
}

// waitPending blocks until at least n timers of duration d are pending: the goroutines that set
// them are then parked on them.
func (c *fakeClock) waitPending(t *testing.T, d time.Duration, n int) {
	t.Helper()
	deadline := time.After(5 * time.Minute) // a safety net, not a sleep: 10,000 goroutines under -race on a loaded 2-core machine can take minutes to park
	for {
		c.mu.Lock()
		added := c.added
		c.mu.Unlock()
		if c.pendingOf(d) >= n {
			return
		}
		select {
		case <-added:
		case <-deadline:
			t.Fatalf("waited 5m for %d pending %s timers, have %d", n, d, c.pendingOf(d))
		}
	}
}

func TestFakeClock(t *testing.T) {
	c := newFakeClock()
	t0 := c.Now()
	a, b := c.After(time.Second), c.After(2*time.Second)
	select {
	case <-c.After(0):
	default:
		t.Fatal("After(0) did not fire at once")
	}
	c.Advance(999 * time.Millisecond)
	select {
	case <-a:
		t.Fatal("fired early")
	default:
	}
	c.Advance(time.Millisecond)
	if got := <-a; !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("fired at %v", got)
	}
	if c.pendingOf(2*time.Second) != 1 || c.pendingOf(time.Second) != 0 {
		t.Fatal("pending timers wrong")
	}
	c.Advance(time.Hour)
	<-b
}
