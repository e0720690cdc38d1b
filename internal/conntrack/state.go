package conntrack

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// ErrStopping is what a session's read returns when Goodbye woke it, or
// when Goodbye came first: the session says goodbye itself and ends.
var ErrStopping = errors.New("server shutting down")

// aLongTimeAgo is a deadline in the past: it makes a blocked Read return
// at once (net/http does the same).
var aLongTimeAgo = time.Unix(1, 0)

// State is the part of a line-protocol connection that Shutdown needs to
// see: whether its session is idle (blocked reading the next command), in
// a TLS handshake, or asked to stop. Goodbye runs on Shutdown's goroutine;
// everything else on the session's, so a reply is never written by two
// goroutines: an idle session is only woken, and says goodbye itself.
type State struct {
	raw net.Conn // deadlines are set on the TCP connection, under any TLS

	mu          sync.Mutex
	idle        bool
	handshaking bool
	stopping    bool
}

// NewState tracks the session on raw.
func NewState(raw net.Conn) *State { return &State{raw: raw} }

// WaitRead runs read (which waits for the client) with the session marked
// idle and a read deadline timeout from now. A Goodbye meanwhile makes the
// read fail at once, and WaitRead return ErrStopping, as it does when the
// Goodbye came first.
func (s *State) WaitRead(timeout time.Duration, read func() error) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return ErrStopping
	}
	s.idle = true
	// Set under the lock: a Goodbye that follows sees idle and moves the
	// deadline into the past; one that came first was seen above.
	s.raw.SetReadDeadline(time.Now().Add(timeout))
	s.mu.Unlock()

	err := read()

	s.mu.Lock()
	s.idle = false
	stopping := s.stopping
	s.mu.Unlock()
	if err != nil && stopping && errors.Is(err, os.ErrDeadlineExceeded) {
		return ErrStopping
	}
	return err
}

// Handshake runs a TLS handshake (fn) that a Goodbye aborts; ErrStopping
// when the Goodbye came first.
func (s *State) Handshake(fn func() error) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return ErrStopping
	}
	s.handshaking = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.handshaking = false
		s.mu.Unlock()
	}()
	return fn()
}

// Goodbye is Shutdown's request (Conn.Goodbye): an idle session is woken
// now (its WaitRead returns ErrStopping), a busy one sees Stopping at its
// next command boundary, a handshake is aborted.
func (s *State) Goodbye() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	if s.idle || s.handshaking {
		s.raw.SetReadDeadline(aLongTimeAgo)
	}
}

// Idle reports whether the session is waiting for the client.
func (s *State) Idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idle
}

// Stopping reports whether Goodbye was asked.
func (s *State) Stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}
