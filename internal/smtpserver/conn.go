package smtpserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// phase is where a connection stands, as far as shutdown cares.
type phase uint8

const (
	// phaseHandshake: implicit TLS is being negotiated; go-smtp has not seen
	// the connection yet.
	phaseHandshake phase = iota
	// phaseRefused: the guard refused the peer; a 421 is being written.
	phaseRefused
	// phaseCommand: go-smtp runs the session. Blocked in Read here means
	// idle (between commands), otherwise busy with a command.
	phaseCommand
	// phaseData: message data (DATA or BDAT) is being received and stored:
	// busy until the Deliverer answers.
	phaseData
)

// hangupWriteTimeout bounds the write of a farewell reply, so a peer that
// does not read cannot hold a shutdown.
const hangupWriteTimeout = 5 * time.Second

// conn wraps one accepted TCP connection. go-smtp reads and writes through
// it (directly, or under a *tls.Conn), which is how Posta knows whether the
// session is idle, applies the data deadline, and can say goodbye and close
// from outside go-smtp's loop.
type conn struct {
	net.Conn // the TCP connection
	s        *Server
	id       string
	ip       netip.Addr
	start    time.Time
	ctx      context.Context // cancelled when the connection closes
	cancel   context.CancelFunc
	release  func() // guard slot; nil for a refused connection
	hungUp   chan struct{}

	rdnsDone chan struct{} // closed when rdns is final
	rdns     string

	mu        sync.Mutex
	phase     phase
	top       net.Conn // where replies go: this conn or the *tls.Conn over it; nil mid-STARTTLS
	inRead    bool
	pending   *smtp.SMTPError // reply to send, then close, at the next command boundary
	dataUntil time.Time       // while receiving data: no read deadline later than this
	hangingUp bool
	closed    bool
	errs      int // rejected commands, for Limits.MaxErrors
	messages  int
	// The BDAT transfer go-smtp runs on its own goroutine (see waitBDAT).
	bdatPipe *io.PipeReader
	bdatDone chan struct{} // closed when session.Data returns
}

func newConn(s *Server, raw net.Conn, ip netip.Addr) *conn {
	ctx, cancel := context.WithCancel(s.ctx)
	return &conn{
		Conn: raw, s: s, ip: ip, start: time.Now(), ctx: ctx, cancel: cancel,
		id:       fmt.Sprintf("%s-%d", s.o.Listener.Name, s.nextID.Add(1)),
		hungUp:   make(chan struct{}),
		rdnsDone: make(chan struct{}),
	}
}

// connOf finds our wrapper under what go-smtp holds.
func connOf(nc net.Conn) *conn {
	if t, ok := nc.(*tls.Conn); ok {
		nc = t.NetConn()
	}
	c, _ := nc.(*conn)
	return c
}

// Read is go-smtp's only way to the client's bytes, so it is where a
// session found idle says goodbye.
func (c *conn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if c.hangingUp || c.closed {
		c.mu.Unlock()
		<-c.hungUpOrClosed()
		return 0, net.ErrClosed
	}
	if c.pending != nil && c.phase == phaseCommand {
		// A command boundary: the previous reply is out, the next command
		// has not been read. Shutdown or too many errors asked for a 421.
		r := c.pending
		c.hangingUp = true
		top := c.top
		c.mu.Unlock()
		c.finishHangup(top, r)
		return 0, net.ErrClosed
	}
	c.inRead = true
	c.mu.Unlock()

	n, err := c.Conn.Read(b)

	c.mu.Lock()
	c.inRead = false
	hanging, ph := c.hangingUp, c.phase
	c.mu.Unlock()
	if hanging {
		// Shutdown said goodbye while we waited; what arrived is not served.
		<-c.hungUp
		return 0, net.ErrClosed
	}
	if err != nil && ph == phaseData && errors.Is(err, os.ErrDeadlineExceeded) {
		// DataTimeout ran out. go-smtp would answer a BDAT chunk's read error
		// with its text, so the reply is ours and the session ends.
		c.hangup(replyDataTimeout)
		return 0, net.ErrClosed
	}
	return n, err
}

// hungUpOrClosed returns a channel that is closed once a hangup in progress
// has finished (or at once if the connection was closed otherwise).
func (c *conn) hungUpOrClosed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hangingUp {
		return c.hungUp
	}
	done := make(chan struct{})
	close(done)
	return done
}

// SetReadDeadline is called by go-smtp before each command line (its
// ReadTimeout, our CommandTimeout); while message data is being received it
// may not extend the data deadline, so a BDAT sender cannot stretch
// DataTimeout by sending many chunks.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	if !c.dataUntil.IsZero() && (t.IsZero() || t.After(c.dataUntil)) {
		t = c.dataUntil
	}
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

// Close closes the TCP connection once and gives back its guard slot. go-smtp
// calls it (through tls.Conn.Close) when its session ends; Posta calls it to
// hang up or cut.
func (c *conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	ph, msgs, errs := c.phase, c.messages, c.errs
	c.mu.Unlock()
	err := c.Conn.Close()
	c.cancel()
	if c.release != nil {
		c.release()
	}
	c.s.forget(c)
	if ph != phaseRefused {
		c.s.log.Info("smtp disconnect", "conn", c.id, "ip", c.ip.String(),
			"duration", time.Since(c.start).Round(time.Millisecond), "messages", msgs, "errors", errs)
	}
	return err
}

// hangup writes the replies (the last is normally a 421) and closes. It is
// called on the goroutine that runs the session, or with the session known
// to be blocked in Read; never concurrently with go-smtp writing.
func (c *conn) hangup(replies ...*smtp.SMTPError) {
	c.mu.Lock()
	if c.hangingUp {
		c.mu.Unlock()
		<-c.hungUp
		return
	}
	c.hangingUp = true
	top := c.top
	c.mu.Unlock()
	c.finishHangup(top, replies...)
}

func (c *conn) finishHangup(top net.Conn, replies ...*smtp.SMTPError) {
	defer close(c.hungUp)
	if top == nil {
		// Mid-STARTTLS nothing can be written safely; just close.
		c.Close()
		return
	}
	var b bytes.Buffer
	for _, r := range replies {
		writeReply(&b, r)
	}
	top.SetWriteDeadline(time.Now().Add(min(hangupWriteTimeout, c.s.lim.CommandTimeout.D())))
	top.Write(b.Bytes())
	for _, r := range replies {
		c.s.log.Info("smtp hangup", "conn", c.id, "ip", c.ip.String(), "code", r.Code,
			"enhanced", enhanced(r.EnhancedCode), "reason", r.Message)
	}
	top.Close() // a *tls.Conn sends close_notify, then closes c
	c.Close()
}

// writeReply formats a reply the way go-smtp does (RFC 5321 4.2, RFC 2034 4).
func writeReply(b *bytes.Buffer, r *smtp.SMTPError) {
	fmt.Fprintf(b, "%d %d.%d.%d %s\r\n", r.Code, r.EnhancedCode[0], r.EnhancedCode[1], r.EnhancedCode[2], r.Message)
}

func enhanced(e smtp.EnhancedCode) string { return fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2]) }

// goodbye is Shutdown's request: an idle session gets reply now and is
// closed; a busy one gets it at its next command boundary; one that has not
// reached SMTP yet is closed.
func (c *conn) goodbye(reply *smtp.SMTPError) {
	c.mu.Lock()
	switch {
	case c.closed || c.hangingUp:
		c.mu.Unlock()
	case c.phase == phaseHandshake || c.phase == phaseRefused:
		c.mu.Unlock()
		c.Close()
	case c.phase == phaseCommand && c.inRead:
		// Idle: go-smtp is blocked reading the next command. Marking the
		// hangup under the lock makes that Read swallow whatever arrives, so
		// go-smtp never writes concurrently with this reply.
		c.hangingUp = true
		top := c.top
		c.mu.Unlock()
		c.finishHangup(top, reply)
	default:
		if c.pending == nil {
			c.pending = reply
		}
		c.mu.Unlock()
	}
}

// takePending returns the reply a hook must hang up with, if any.
func (c *conn) takePending() *smtp.SMTPError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending
}

// setPending asks for a hangup at the next command boundary.
func (c *conn) setPending(r *smtp.SMTPError) {
	c.mu.Lock()
	if c.pending == nil {
		c.pending = r
	}
	c.mu.Unlock()
}

// setTop records where replies go, once go-smtp's session is known to run
// over it (EHLO after STARTTLS).
func (c *conn) setTop(nc net.Conn) {
	c.mu.Lock()
	c.top = nc
	c.mu.Unlock()
}

// tlsStarting is called from the TLS ClientHello callback: after STARTTLS
// the plaintext connection must not be written to any more, and the TLS one
// is known only at the next EHLO.
func (c *conn) tlsStarting() {
	c.mu.Lock()
	if c.phase == phaseCommand {
		c.top = nil
	}
	c.mu.Unlock()
}

// enterData marks the session busy receiving a message and sets the data
// deadline; leaveData ends both.
func (c *conn) enterData(d time.Duration) {
	until := time.Now().Add(d)
	c.mu.Lock()
	c.phase = phaseData
	c.dataUntil = until
	c.mu.Unlock()
	c.Conn.SetReadDeadline(until)
}

func (c *conn) leaveData() {
	c.mu.Lock()
	c.phase = phaseCommand
	c.dataUntil = time.Time{}
	c.mu.Unlock()
}

// countError records a rejected command and reports whether the session
// has now used up Limits.MaxErrors.
func (c *conn) countError() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs++
	return c.errs >= c.s.lim.MaxErrors
}

func (c *conn) countMessage() {
	c.mu.Lock()
	c.messages++
	c.mu.Unlock()
}

// lookupHost resolves the peer's reverse DNS name for the Received header.
// It runs from accept, bounded by rdnsTimeout and the connection's life.
func (c *conn) lookupHost() {
	defer close(c.rdnsDone)
	ctx, cancel := context.WithTimeout(c.ctx, rdnsTimeout)
	defer cancel()
	names, err := c.s.lookupAddr(ctx, c.ip.String())
	if err != nil || len(names) == 0 {
		return
	}
	name := names[0]
	if len(name) > 1 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	if validDomain(name, false) {
		c.rdns = name
	}
}

// remoteHost waits for the reverse lookup (bounded by rdnsTimeout).
func (c *conn) remoteHost() string {
	select {
	case <-c.rdnsDone:
		return c.rdns
	case <-c.ctx.Done():
		return ""
	}
}

// bdatStarted records the pipe go-smtp feeds a BDAT transfer through; the
// returned func marks session.Data's return.
func (c *conn) bdatStarted(r *io.PipeReader) (returned func()) {
	done := make(chan struct{})
	c.mu.Lock()
	c.bdatPipe, c.bdatDone = r, done
	c.mu.Unlock()
	return func() { close(done) }
}

// waitBDAT works around a race in go-smtp v0.25.1 (conn.go handleBdat):
// the goroutine that runs session.Data for BDAT sends its result to the
// connection's dataResult channel after Data returns, reading the field
// c.dataResult then. When a transfer is aborted (RSET, a chunk over the size
// limit, a chunk Data refused) go-smtp resets without receiving that result,
// and the next BDAT transaction replaces the field: a data race, and the old
// result can land in the new transaction's channel and answer its LAST
// chunk. So the connection goroutine, in the hooks it calls at and after a
// reset (Reset, NewSession, Mail), waits here until that goroutine is done:
// Data has returned, and go-smtp has closed the pipe's read side, which it
// does right after the send.
func (c *conn) waitBDAT() {
	c.mu.Lock()
	r, done := c.bdatPipe, c.bdatDone
	c.bdatPipe, c.bdatDone = nil, nil
	c.mu.Unlock()
	if r == nil {
		return
	}
	<-done
	// Called only once the write side is closed (by go-smtp's reset) or
	// the read side is about to be, so a zero-length Read never blocks
	// for long: it reports the writer's error until go-smtp's
	// CloseWithError, then io.ErrClosedPipe.
	for i := 0; ; i++ {
		if _, err := r.Read(nil); errors.Is(err, io.ErrClosedPipe) {
			return
		}
		if i == 100000 {
			c.s.log.Warn("smtp: BDAT goroutine did not finish", "conn", c.id)
			return
		}
		runtime.Gosched()
	}
}
