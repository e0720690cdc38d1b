package ftpserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"posta/internal/files"
	"posta/internal/guard"
)

// sessionState is where the login stands (RFC 959 6: the state diagrams).
type sessionState uint8

const (
	stateNew      sessionState = iota // connected (or REIN, AUTH): USER expected
	stateUser                         // USER given: PASS expected
	stateLoggedIn                     // PASS accepted: file commands allowed
)

// dataType is the representation type (RFC 959 3.1.1).
type dataType uint8

const (
	typeASCII dataType = iota // RFC 959 3.1.1.1, the default
	typeImage                 // RFC 959 3.1.1.3; also TYPE L 8
)

// errHungUp: the session wrote its last reply and closed; the loop ends.
var errHungUp = errors.New("ftp: session hung up")

// session is one control connection. Its protocol state belongs to the
// session goroutine; a transfer goroutine gets copies of what it needs and
// shares only what mu guards and the reply writer.
type session struct {
	s      *Server
	id     string
	raw    net.Conn // the TCP connection
	ip     netip.Addr
	local  netip.Addr // the address the client connected to
	start  time.Time
	ctx    context.Context // cancelled when the session ends or the server is cut
	cancel context.CancelFunc
	tag    []byte // marks this session's TLS tickets (tls.go)

	in  lineReader
	wmu sync.Mutex // one reply at a time on the control connection

	mu        sync.Mutex
	ctl       net.Conn // where replies go: raw or the *tls.Conn over it
	inRead    bool     // blocked reading the next command
	pending   *reply   // a goodbye to say at the next command boundary
	hangingUp bool
	hungUp    chan struct{} // closed when a hangup has finished
	closed    bool
	xfer      *transfer // the transfer running, nil if none

	// Protocol state, session goroutine only.
	tlsState  *tls.ConnectionState // control connection's TLS, nil in plaintext
	state     sessionState
	user      string // USER's argument
	account   string // logged-in account address, or "anonymous"
	anonymous bool
	tree      *files.Tree
	cwd       string
	typ       dataType
	pbsz      bool
	protP     bool
	restMark  int64  // REST marker set by the last REST
	cmdRest   int64  // the marker in force for the command being run
	rnfr      string // RNFR's path, for the RNTO right after it
	cmdRnfr   string
	epsvAll   bool
	pasv      *net.TCPListener
	active    netip.AddrPort
	facts     map[string]bool // MLST facts in use (OPTS MLST)
	hashAlgo  string
	host      string
	quitting  bool
	errs      int
	preErrs   int
	loginFail int
	// Totals for the disconnect log line, kept by transfer goroutines.
	transfers      atomic.Int64
	bytesIn, bytes atomic.Int64
	xwg            sync.WaitGroup // transfer goroutines
	lastXferEnd    atomic.Int64   // unix nanoseconds
}

func newSession(s *Server, c net.Conn, ip netip.Addr) *session {
	ctx, cancel := context.WithCancel(s.ctx)
	var id [8]byte
	rand.Read(id[:])
	ss := &session{
		s: s, raw: c, ctl: c, ip: ip, start: time.Now(), ctx: ctx, cancel: cancel,
		id:     fmt.Sprintf("%s-%d", s.o.Listener.Name, s.nextID.Add(1)),
		tag:    []byte(bindingPrefix + hex.EncodeToString(id[:])),
		hungUp: make(chan struct{}),
		in:     lineReader{max: s.lim.MaxLineLength},
	}
	if la, ok := c.LocalAddr().(*net.TCPAddr); ok {
		ss.local, _ = netip.AddrFromSlice(la.IP)
		ss.local = ss.local.Unmap()
	}
	ss.resetParams()
	return ss
}

// resetParams puts every transfer parameter at its default (RFC 959 5.4:
// the state right after connection).
func (ss *session) resetParams() {
	ss.cwd = "/"
	ss.typ = typeASCII
	ss.restMark, ss.rnfr = 0, ""
	ss.epsvAll = false
	ss.closePassive()
	ss.active = netip.AddrPort{}
	ss.facts = defaultFacts()
	ss.hashAlgo = "SHA-256"
}

// logout forgets the user (REIN, AUTH, USER while logged in).
func (ss *session) logout() {
	if ss.tree != nil {
		ss.tree.Close()
		ss.tree = nil
	}
	ss.state, ss.user, ss.account, ss.anonymous = stateNew, "", "", false
	ss.host = ""
}

// Serve admits or refuses the connection and runs its session
// (conntrack.Conn).
func (ss *session) Serve() {
	release, err := ss.s.o.Guard.Admit(ss.ip)
	if err != nil {
		ss.s.log.Info("ftp refused", "conn", ss.id, "ip", ss.ip.String(), "reason", err.Error())
		r := replyTooManyConns
		if errors.Is(err, guard.ErrBanned) {
			r = replyBanned
		}
		ss.refuse(r)
		return
	}
	defer release()
	ss.run()
}

// refuse answers a connection the guard did not admit: RFC 959 5.4 allows
// 421 at connection (over TLS on the implicit-TLS listener).
func (ss *session) refuse(r *reply) {
	defer ss.cancel()
	defer ss.raw.Close()
	ss.raw.SetDeadline(time.Now().Add(min(hangupWriteTimeout, ss.s.lim.ConnectTimeout)))
	var w net.Conn = ss.raw
	if ss.s.implicitTLS {
		tc, err := ss.s.handshake(ss.ctx, ss.raw, &binding{tag: ss.tag})
		if err != nil {
			return
		}
		w = tc
		defer tc.Close()
	}
	w.Write(replyLines(r.code, r.lines))
}

// run serves the session until QUIT, a hangup or the client leaving.
func (ss *session) run() {
	defer ss.close()
	setOOBInline(ss.raw)
	ss.s.log.Info("ftp connect", "conn", ss.id, "ip", ss.ip.String())
	if ss.s.implicitTLS {
		// RFC 4217 has no implicit mode; it is the convention of port 990:
		// TLS from the first byte, as RFC 8314 3.3 describes for mail.
		tc, err := ss.s.handshake(ss.ctx, ss.raw, &binding{tag: ss.tag})
		if err != nil {
			ss.s.log.Info("ftp tls handshake failed", "conn", ss.id, "ip", ss.ip.String(), "err", err.Error())
			return
		}
		ss.setTLS(tc)
	}
	// RFC 959 5.4: the server greets with 220 when ready.
	if ss.writeReply(ok(220, ss.s.o.Hostname+" Posta FTP server ready")) != nil {
		return
	}
	for {
		line, tooLong, err := ss.readCommand()
		if err != nil {
			if !errors.Is(err, errHungUp) {
				ss.s.log.Debug("ftp read ended", "conn", ss.id, "err", err.Error())
			}
			return
		}
		cmd, perr := ParseCommand(line)
		if e, known := commands[cmd.Verb]; tooLong || perr != nil || !known || e.flags&duringTransfer == 0 {
			// RFC 959 5.4: replies come in command order; anything that
			// cannot run beside a transfer (a refusal included) waits for
			// the transfer's final reply.
			ss.waitTransfer()
		}
		if tooLong {
			if !ss.rejected(ok(500, "Command line too long")) {
				return
			}
			continue
		}
		if perr != nil {
			r, _ := replyFor(perr)
			if !ss.rejected(r) {
				return
			}
			continue
		}
		if !ss.dispatch(cmd) {
			return
		}
	}
}

// setTLS switches replies and reads to the TLS connection.
func (ss *session) setTLS(tc *tls.Conn) {
	st := tc.ConnectionState()
	ss.tlsState = &st
	ss.mu.Lock()
	ss.ctl = tc
	ss.mu.Unlock()
	ss.s.log.Info("ftp tls", "conn", ss.id, "ip", ss.ip.String(), "tls", tlsDesc(st), "resumed", st.DidResume)
}

// readCommand returns the next command line. Between commands it is where
// a goodbye asked for by Shutdown is said, and where the idle timeout
// applies (not while a transfer runs: the control connection is quiet then).
func (ss *session) readCommand() (line []byte, tooLong bool, err error) {
	for {
		ss.mu.Lock()
		if ss.hangingUp || ss.closed {
			ss.mu.Unlock()
			<-ss.hungUpOrClosed()
			return nil, false, errHungUp
		}
		if ss.pending != nil && ss.xfer == nil {
			r := ss.pending
			ss.hangingUp = true
			ctl := ss.ctl
			ss.mu.Unlock()
			ss.finishHangup(ctl, r)
			return nil, false, errHungUp
		}
		ss.mu.Unlock()
		if l, long, ok := ss.in.next(); ok {
			return l, long, nil
		}
		ctl := ss.control()
		ctl.SetReadDeadline(time.Now().Add(ss.s.lim.IdleTimeout))
		buf := ss.in.space()
		ss.mu.Lock()
		ss.inRead = true
		ss.mu.Unlock()
		n, rerr := ctl.Read(buf)
		ss.mu.Lock()
		ss.inRead = false
		hanging, busy := ss.hangingUp, ss.xfer != nil
		ss.mu.Unlock()
		if hanging {
			// A goodbye was said while we waited; what arrived is not served.
			<-ss.hungUp
			return nil, false, errHungUp
		}
		ss.in.commit(n)
		if rerr != nil {
			if errors.Is(rerr, os.ErrDeadlineExceeded) {
				if busy || time.Since(time.Unix(0, ss.lastXferEnd.Load())) < ss.s.lim.IdleTimeout {
					// Quiet during a transfer is normal, and the idle time
					// counts from the transfer's end (the client may still
					// be reading what the kernel buffered).
					continue
				}
				ss.hangup(replyTimeout)
				return nil, false, errHungUp
			}
			if n > 0 {
				continue
			}
			return nil, false, rerr
		}
	}
}

func (ss *session) control() net.Conn {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.ctl
}

// writeReply sends one complete reply.
func (ss *session) writeReply(r *reply) error {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	ctl := ss.control()
	ctl.SetWriteDeadline(time.Now().Add(ss.s.lim.IdleTimeout))
	_, err := ctl.Write(replyLines(r.code, r.lines))
	return err
}

// rejected answers a line that was not a valid command and counts it; false
// when the error limit ended the session.
func (ss *session) rejected(r *reply) bool {
	if ss.writeReply(r) != nil {
		return false
	}
	return ss.countError()
}

// countError counts a rejected command toward the limits; false when the
// session was ended for it (RFC 959 4.2: 421 closing).
func (ss *session) countError() bool {
	ss.errs++
	limit := ss.s.lim.MaxErrors
	if ss.state != stateLoggedIn {
		ss.preErrs++
		if ss.preErrs >= ss.s.lim.MaxErrorsBeforeLogin {
			ss.hangup(replyTooManyErrs)
			return false
		}
	}
	if ss.errs >= limit {
		ss.hangup(replyTooManyErrs)
		return false
	}
	return true
}

// hangup writes r (normally a 421) and closes. It runs on the session
// goroutine or with the session known to be blocked in Read.
func (ss *session) hangup(r *reply) {
	ss.mu.Lock()
	if ss.hangingUp {
		ss.mu.Unlock()
		<-ss.hungUp
		return
	}
	ss.hangingUp = true
	ctl := ss.ctl
	ss.mu.Unlock()
	ss.finishHangup(ctl, r)
}

func (ss *session) finishHangup(ctl net.Conn, r *reply) {
	defer close(ss.hungUp)
	ss.wmu.Lock()
	ctl.SetWriteDeadline(time.Now().Add(min(hangupWriteTimeout, ss.s.lim.IdleTimeout)))
	ctl.Write(replyLines(r.code, r.lines))
	ss.wmu.Unlock()
	ss.s.log.Info("ftp hangup", "conn", ss.id, "ip", ss.ip.String(), "code", r.code, "reason", r.lines[0])
	ss.abortTransfer()
	ctl.Close() // a *tls.Conn sends close_notify, then closes raw
	ss.raw.Close()
}

func (ss *session) hungUpOrClosed() <-chan struct{} {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.hangingUp {
		return ss.hungUp
	}
	done := make(chan struct{})
	close(done)
	return done
}

// Goodbye is Shutdown's request (conntrack.Conn): an idle session gets 421
// now and is closed, a busy one (a command or a transfer running) at its
// next boundary.
func (ss *session) Goodbye() {
	r := replyShutdown
	ss.mu.Lock()
	switch {
	case ss.closed || ss.hangingUp:
		ss.mu.Unlock()
	case ss.inRead && ss.xfer == nil:
		// Idle: the session goroutine is blocked reading. Marking the hangup
		// under the lock makes that Read discard what arrives, so nothing is
		// written concurrently with this reply.
		ss.hangingUp = true
		ctl := ss.ctl
		ss.mu.Unlock()
		ss.finishHangup(ctl, r)
	default:
		if ss.pending == nil {
			ss.pending = r
		}
		ss.mu.Unlock()
	}
}

// Cut closes everything at once (shutdown deadline; conntrack.Conn).
func (ss *session) Cut() {
	ss.cancel()
	ss.abortTransfer()
	ss.raw.Close()
}

// close ends the session: any transfer is aborted and waited for, the data
// listener, the tree and the connection are closed.
func (ss *session) close() {
	ss.abortTransfer()
	ss.xwg.Wait()
	ss.mu.Lock()
	ss.closed = true
	ctl := ss.ctl
	ss.mu.Unlock()
	ss.closePassive()
	if ss.tree != nil {
		ss.tree.Close()
		ss.tree = nil
	}
	ctl.SetWriteDeadline(time.Now().Add(hangupWriteTimeout))
	ctl.Close()
	ss.raw.Close()
	ss.cancel()
	ss.s.log.Info("ftp disconnect", "conn", ss.id, "ip", ss.ip.String(), "account", ss.account,
		"duration", time.Since(ss.start).Round(time.Millisecond), "transfers", ss.transfers.Load(),
		"bytes_in", ss.bytesIn.Load(), "bytes_out", ss.bytes.Load(), "errors", ss.errs)
}

// dispatch runs one command through the table's rules and writes its one
// final reply; false ends the session.
func (ss *session) dispatch(c Command) bool {
	e, known := commands[c.Verb]
	if !known {
		// RFC 959 4.2: 500 for an unrecognized command; the session goes on.
		ss.s.log.Debug("ftp unknown command", "conn", ss.id, "verb", c.Verb)
		return ss.rejected(ok(500, "Unknown command"))
	}
	// What the previous command left for this one: REST must come right
	// before the transfer it restarts (RFC 3659 5.3), RNFR right before
	// RNTO (RFC 959 4.1.3).
	ss.cmdRest, ss.cmdRnfr = ss.restMark, ss.rnfr
	if e.flags&keepsRest == 0 {
		ss.restMark = 0
	}
	ss.rnfr = ""

	var r *reply
	var err error
	switch {
	case e.flags&preAuth == 0 && ss.state != stateLoggedIn:
		err = errNotLoggedIn
	case e.flags&needArg != 0 && c.Arg == "":
		err = refuse(501, c.Verb+" needs an argument")
	case e.flags&writes != 0 && ss.tree.ReadOnly():
		err = errReadOnly
	default:
		r, err = ss.call(e, c)
	}
	if errors.Is(err, errHungUp) {
		return false
	}
	if err != nil {
		var internal bool
		r, internal = replyFor(err)
		switch {
		case internal:
			ss.s.log.Error("ftp internal error", "conn", ss.id, "ip", ss.ip.String(), "cmd", c.Verb,
				"account", ss.account, "err", err.Error())
		default:
			ss.s.log.Debug("ftp refused", "conn", ss.id, "cmd", c.Verb, "code", r.code, "err", err.Error())
		}
		if ss.writeReply(r) != nil {
			return false
		}
		if r.code == 500 || r.code == 501 || errors.Is(err, errNotLoggedIn) {
			return ss.countError()
		}
		return !ss.quitting
	}
	if r != nil && ss.writeReply(r) != nil {
		return false
	}
	return !ss.quitting
}

// call runs a handler, turning a panic into a 451 (counted; tests fail on
// any).
func (ss *session) call(e command, c Command) (r *reply, err error) {
	defer func() {
		if p := recover(); p != nil {
			ss.s.panics.Add(1)
			ss.s.log.Error("ftp: command panicked", "conn", ss.id, "cmd", c.Verb, "panic", fmt.Sprint(p),
				"stack", string(debug.Stack()))
			r, err = nil, fmt.Errorf("ftp: panic in %s", c.Verb)
		}
	}()
	return e.run(ss, c.Arg)
}

// lineReader splits the control stream into lines of at most max octets
// (LF included) without losing a partial line when a read times out.
type lineReader struct {
	buf     []byte
	r, w    int
	max     int
	discard bool // inside a line that was too long: drop up to its LF
}

// next returns the next complete line (without its LF) if the buffer holds
// one. tooLong reports a line that was dropped for its length. The line is
// valid until the next call to space.
func (l *lineReader) next() (line []byte, tooLong, ok bool) {
	if i := bytes.IndexByte(l.buf[l.r:l.w], '\n'); i >= 0 {
		line = l.buf[l.r : l.r+i]
		l.r += i + 1
		if l.discard {
			l.discard = false
			return nil, true, true
		}
		if i+1 > l.max {
			return nil, true, true
		}
		return line, false, true
	}
	if l.w-l.r >= l.max || l.discard {
		l.discard = true
		l.r, l.w = 0, 0
	}
	return nil, false, false
}

// space returns room to read into.
func (l *lineReader) space() []byte {
	if l.r > 0 {
		n := copy(l.buf, l.buf[l.r:l.w])
		l.r, l.w = 0, n
	}
	if l.w == len(l.buf) {
		size := min(max(2*len(l.buf), 512), l.max+1)
		if size > len(l.buf) {
			nb := make([]byte, size)
			copy(nb, l.buf[:l.w])
			l.buf = nb
		}
	}
	return l.buf[l.w:]
}

func (l *lineReader) commit(n int) { l.w += n }

// buffered is how many octets were read but not yet returned.
func (l *lineReader) buffered() int { return l.w - l.r }

// reset drops everything buffered.
func (l *lineReader) reset() { l.r, l.w, l.discard = 0, 0, false }

// writerOnly hides a writer's ReadFrom, so io.CopyBuffer uses our buffer.
type writerOnly struct{ io.Writer }
