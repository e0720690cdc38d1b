// Package conntrack runs a protocol server's accept loop and keeps the set
// of open connections, so that Shutdown can stop accepting, ask every
// session to end at its next command boundary, wait, and cut whatever is
// left when the deadline passes (net/http's Server.Shutdown order).
//
// It knows nothing of any protocol: a session implements Conn. It imports
// only the standard library.
package conntrack

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Conn is one accepted connection's session.
type Conn interface {
	// Serve runs the session to its end and closes the connection.
	Serve()
	// Goodbye asks the session to end: at once if it waits for a command
	// (it says goodbye itself), after its command if it is busy. Shutdown
	// calls it for each session in turn, so it must not block for long:
	// it should not write to the connection, unless the protocol makes
	// that safe and the write is bounded (an FTP 421 to a session blocked
	// in its read).
	Goodbye()
	// Cut ends the connection at once, whatever it is doing.
	Cut()
}

// Tracker is one protocol server's accept loops and open connections. The
// zero value is not usable: use New.
type Tracker struct {
	name string
	log  *slog.Logger
	// stopping is cancelled when Shutdown or Close begins.
	stopping context.Context
	stop     context.CancelFunc

	mu        sync.Mutex
	closing   bool
	onCut     func()
	listeners []net.Listener
	conns     map[Conn]struct{}
	changed   chan struct{} // capacity 1: a connection ended (wakes Shutdown; a full channel already says so)
	wg        sync.WaitGroup
}

// New makes a Tracker; name ("imap", "pop3") prefixes its log lines.
func New(name string, log *slog.Logger) *Tracker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{name: name, log: log, conns: map[Conn]struct{}{}, changed: make(chan struct{}, 1)}
	t.stopping, t.stop = context.WithCancel(context.Background())
	return t
}

// Stopping is done once Shutdown or Close has begun: waits that only slow a
// client (a failed-login delay) should end then.
func (t *Tracker) Stopping() <-chan struct{} { return t.stopping.Done() }

// StoppingContext is a context cancelled once Shutdown or Close has begun,
// for context.AfterFunc and the like (Stopping is its Done channel).
func (t *Tracker) StoppingContext() context.Context { return t.stopping }

// OnCut sets f to run when sessions are about to be cut (Shutdown's
// deadline passed with sessions open, or Close found some), before any
// Cut: a server cancels there what the sessions' own contexts do not
// reach. f runs at most once per Shutdown or Close, never when every
// session ended in time. Set it before Shutdown or Close.
func (t *Tracker) OnCut(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.onCut = f
}

// Serve accepts connections on l until Shutdown or Close, then returns nil.
// newConn turns each accepted connection into its session, which runs in a
// goroutine of its own.
func (t *Tracker) Serve(l net.Listener, newConn func(net.Conn) Conn) error {
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		l.Close()
		return nil
	}
	t.listeners = append(t.listeners, l)
	t.mu.Unlock()
	var delay time.Duration
	for {
		raw, err := l.Accept()
		if err != nil {
			if t.isClosing() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Back off on temporary errors (out of file descriptors) as
			// net/http's Server.Serve does, instead of spinning.
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				t.log.Warn(t.name+": accept error, retrying", "err", err, "delay", delay)
				select {
				case <-time.After(delay):
					continue
				case <-t.stopping.Done():
					return nil
				}
			}
			return err
		}
		delay = 0
		c := newConn(raw)
		if !t.track(c) {
			c.Cut()
			continue
		}
		go func() {
			defer t.wg.Done()
			defer t.forget(c)
			c.Serve()
		}()
	}
}

func (t *Tracker) isClosing() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closing
}

// Shutdown stops accepting, asks every session for a goodbye, and waits
// for them to end. When ctx is done first it cuts the rest, waits for
// their goroutines, and returns ctx's error.
func (t *Tracker) Shutdown(ctx context.Context) error { return t.shutdown(ctx, true) }

// Close cuts every session at once and waits for their goroutines.
func (t *Tracker) Close() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	t.shutdown(ctx, false)
}

func (t *Tracker) shutdown(ctx context.Context, goodbye bool) error {
	t.mu.Lock()
	t.closing = true
	lns := t.listeners
	t.listeners = nil
	onCut := t.onCut
	t.mu.Unlock()
	t.stop()
	for _, l := range lns {
		l.Close()
	}
	if goodbye {
		for _, c := range t.Conns() {
			c.Goodbye()
		}
	}
	err := t.wait(ctx)
	if err != nil {
		if onCut != nil {
			onCut()
		}
		// A blocked Read or Write sees no context; a closed socket it does.
		for _, c := range t.Conns() {
			c.Cut()
		}
	}
	t.wg.Wait()
	return err
}

// Conns returns the open connections.
func (t *Tracker) Conns() []Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Conn, 0, len(t.conns))
	for c := range t.conns {
		out = append(out, c)
	}
	return out
}

// Len is how many connections are open.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// wait returns when no connection is open, or ctx's error.
func (t *Tracker) wait(ctx context.Context) error {
	for {
		if t.Len() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.changed:
		}
	}
}

// track registers a new connection and its goroutine; false if closing.
func (t *Tracker) track(c Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	t.conns[c] = struct{}{}
	t.wg.Add(1)
	return true
}

func (t *Tracker) forget(c Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	select {
	case t.changed <- struct{}{}:
	default:
	}
}
