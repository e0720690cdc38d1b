package guard

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeClock moves only when told. After advances it by d and fires at once, so Guard.Sleep returns without
// really waiting while tests can still see how long it "waited".
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.Advance(d)
	ch := make(chan time.Time, 1)
	ch <- c.Now()
	return ch
}

func TestSleepUsesClock(t *testing.T) {
	clk := newFakeClock()
	g := New(Limits{}, WithClock(clk))
	t0 := clk.Now()
	if err := g.Sleep(context.Background(), 3*time.Second); err != nil {
		t.Fatalf("Sleep: %v", err)
	}
	if got := clk.Now().Sub(t0); got != 3*time.Second {
		t.Fatalf("Sleep waited %v on the clock, want 3s", got)
	}
	if err := g.Sleep(context.Background(), 0); err != nil || !clk.Now().Equal(t0.Add(3*time.Second)) {
		t.Fatalf("Sleep(0) = %v and moved the clock", err)
	}
}

func TestSleepHonoursContext(t *testing.T) {
	// Real clock: a cancelled context must return at once, not after an hour.
	g := New(Limits{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep with cancelled ctx = %v, want context.Canceled", err)
	}

	// Cancelled while waiting.
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Sleep(ctx, time.Hour) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep cancelled mid-wait = %v, want context.Canceled", err)
	}
}
