package guard

import (
	"context"
	"time"
)

// Clock is the guard's source of time; tests pass a fake so bans expire without waiting.
type Clock interface{ Now() time.Time }

// Waiter is implemented by a Clock that can also wait. Sleep uses it when present, so a fake clock lets tests
// exercise a protocol's failure delay without really sleeping.
type Waiter interface {
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Sleep waits d on the guard's clock, or until ctx is done (then it returns ctx.Err()). Protocols call it with the
// delay from AuthFailed before answering, with the session context, so shutdown is not held up by a throttled
// client. It holds no lock while waiting.
func (g *Guard) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil || d <= 0 {
		return err
	}
	var c <-chan time.Time
	if w, ok := g.clock.(Waiter); ok {
		c = w.After(d)
	} else {
		t := time.NewTimer(d)
		defer t.Stop()
		c = t.C
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c:
		return nil
	}
}
