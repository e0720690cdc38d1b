package pop3server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"time"
)

// state is where a session stands (RFC 1939 3).
type state uint8

const (
	// stateAuthorization: greeted, not logged in (RFC 1939 4).
	stateAuthorization state = iota
	// stateTransaction: logged in, maildrop locked and listed (RFC 1939 5).
	stateTransaction
	// stateUpdate: QUIT received in TRANSACTION; the session ends (RFC 1939 6).
	stateUpdate
)

// flag is a rule the dispatcher applies to a verb before running it.
type flag uint8

const (
	// authorization: valid before login.
	authorization flag = 1 << iota
	// transaction: valid after login.
	transaction
	// needsTLS: carries a password or starts a login; refused without TLS
	// unless Config.AllowPlaintextAuth (RFC 2595 2.2 and RFC 5034 4: a
	// server must be able to refuse plaintext passwords before STLS; like
	// smtpserver, AUTH as a whole waits for TLS, SCRAM included).
	needsTLS
	// keepsUser: does not clear a pending USER name (only PASS may follow
	// USER, RFC 1939 7; the name is consumed or dropped by anything else).
	keepsUser
)

type command struct {
	run   func(*session, Command) error
	flags flag
}

// commands is the table of verbs; the dispatcher enforces the flags, so a
// handler never checks the state itself. APOP is absent on purpose (see
// doc.go), so it is an unknown command. Handlers write their own +OK
// (several are multi-line); a returned error becomes the one -ERR line.
var commands = map[string]command{
	// RFC 2449 5: CAPA in both states.
	"CAPA": {(*session).capa, authorization | transaction},
	// RFC 1939 4, 6: QUIT in both states; only after login does it delete.
	"QUIT": {(*session).quit, authorization | transaction},
	// RFC 2595 4: STLS only before login.
	"STLS": {(*session).stls, authorization},
	// RFC 1939 7: USER and PASS; RFC 5034 4: AUTH; all before login only.
	"USER": {(*session).userCmd, authorization | needsTLS},
	"PASS": {(*session).pass, authorization | needsTLS | keepsUser},
	"AUTH": {(*session).auth, authorization | needsTLS},
	// RFC 1939 5, 7: the TRANSACTION commands.
	"STAT": {(*session).stat, transaction},
	"LIST": {(*session).list, transaction},
	"RETR": {(*session).retr, transaction},
	"DELE": {(*session).dele, transaction},
	"NOOP": {(*session).noop, transaction},
	"RSET": {(*session).rset, transaction},
	"TOP":  {(*session).top, transaction},
	"UIDL": {(*session).uidl, transaction},
}

// session is one POP3 session on a connection.
type session struct {
	s     *Server
	c     *conn
	state state

	user    string // USER name waiting for PASS
	account string // canonical account once logged in
	mech    string // "USER" or the SASL mechanism
	preAuth int    // commands before login
	errs    int    // refused commands
	md      *maildrop
	release func() // maildrop lock
	quitted bool   // QUIT ran the UPDATE state
}

func newSession(c *conn) *session { return &session{s: c.s, c: c} }

// run greets and serves commands until the session ends.
func (ss *session) run() {
	c := ss.c
	// RFC 1939 4: the greeting is a positive response. No APOP timestamp:
	// APOP is not offered (doc.go).
	c.writeLine("+OK " + ss.s.o.Config.Hostname + " " + Implementation + " POP3 server ready")
	defer c.flushFinal()
	for {
		max := ss.s.lim.MaxLineLength
		line, err := c.readLine(max)
		if err != nil {
			if ss.readFailed(err) {
				return
			}
			continue
		}
		cmd, perr := ParseCommand(line)
		if ss.dispatch(cmd, perr) {
			return
		}
	}
}

// readFailed handles a failed read of a command line and reports whether
// the session ends.
func (ss *session) readFailed(err error) (end bool) {
	c := ss.c
	switch {
	case errors.Is(err, errLineTooLong):
		// RFC 2449 4 allows refusing longer commands; the line is consumed.
		return ss.refused("", errLineLong)
	case errors.Is(err, errLineFlood):
		ss.log("pop3 hangup", "reason", "endless line")
		c.hangup(replyLineFlood)
	case errors.Is(err, errStopping):
		ss.log("pop3 hangup", "reason", "shutdown")
		c.hangup(replyShutdown)
	case errors.Is(err, os.ErrDeadlineExceeded):
		// RFC 1939 3: on autologout close without a response and without
		// the UPDATE state.
		ss.log("pop3 idle timeout")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
	default:
		ss.log("pop3 read error", "err", err.Error())
	}
	return true
}

// dispatch applies the table's rules to one command, runs it, and writes
// its -ERR if it failed. It reports whether the session ends.
func (ss *session) dispatch(cmd Command, perr error) (end bool) {
	cmdDef, known := commands[cmd.Verb]
	if perr != nil || !known || cmdDef.flags&keepsUser == 0 {
		ss.user = "" // RFC 1939 7: only PASS may use a USER name
	}
	if ss.state == stateAuthorization {
		ss.preAuth++
		if ss.preAuth > ss.s.lim.MaxCommandsBeforeAuth {
			ss.log("pop3 hangup", "reason", "too many commands before login")
			ss.c.hangup(replyTooManyPreAuth)
			return true
		}
	}
	if perr != nil {
		return ss.refused(cmd.Verb, errSyntax.with(perr))
	}
	if !known {
		if ss.state == stateAuthorization {
			// An unknown command before login ends the session: it is most
			// likely another protocol talking to this port (an HTTP request
			// in a cross-protocol attack), not a POP3 client.
			ss.log("pop3 hangup", "reason", "unknown command before login")
			ss.c.hangup(replyUnknownPreAuth)
			return true
		}
		return ss.refused(cmd.Verb, errUnknownCommand)
	}
	switch {
	case ss.state == stateAuthorization && cmdDef.flags&authorization == 0:
		return ss.refused(cmd.Verb, errNotLoggedIn)
	case ss.state == stateTransaction && cmdDef.flags&transaction == 0:
		// RFC 5034 4: after a successful AUTH, further AUTH gets -ERR.
		return ss.refused(cmd.Verb, errAlreadyLoggedIn)
	case cmdDef.flags&needsTLS != 0 && ss.c.tls == nil && !ss.s.o.Config.AllowPlaintextAuth:
		return ss.refused(cmd.Verb, errTLSRequired)
	}
	err := ss.call(cmdDef, cmd)
	if cmdDef.flags&keepsUser != 0 {
		ss.user = "" // PASS consumed it, whatever the outcome
	}
	if err == nil {
		return ss.state == stateUpdate
	}
	return ss.refused(cmd.Verb, err)
}

// call runs a handler, turning a panic into an error that ends the session
// (counted, so tests fail on it).
func (ss *session) call(cmdDef command, cmd Command) (err error) {
	defer func() {
		if v := recover(); v != nil {
			ss.s.panics.Add(1)
			ss.s.log.Error("pop3 command panicked", "conn", ss.c.id, "cmd", cmd.Verb, "panic", fmt.Sprint(v),
				"stack", string(debug.Stack()))
			err = &abortError{reply: replyInternal, err: fmt.Errorf("panic: %v", v)}
		}
	}()
	return cmdDef.run(ss, cmd)
}

// abortError ends the session without the usual reply: the command has
// already started a multi-line response (a RETR whose body could not be
// read), so the only honest signal left is to close; or, with reply set,
// the session ends with that line.
type abortError struct {
	reply *ReplyError // nil: close without a reply
	err   error
}

func (a *abortError) Error() string { return "pop3: session aborted: " + a.err.Error() }
func (a *abortError) Unwrap() error { return a.err }

// refused writes the reply for a failed command, logs it, counts it toward
// MaxErrors, and reports whether the session ends.
func (ss *session) refused(verb string, err error) (end bool) {
	var ab *abortError
	if errors.As(err, &ab) {
		ss.log("pop3 aborted", "cmd", verb, "err", ab.err.Error())
		if ab.reply != nil {
			ss.c.hangup(ab.reply)
		}
		return true
	}
	r, internal := classify(err)
	if internal {
		// Our own failure: the cause goes to the log, the client gets
		// [SYS/TEMP] without it.
		ss.s.log.Error("pop3 internal error", "conn", ss.c.id, "ip", ss.c.ip.String(), "cmd", verb, "err", err.Error())
	} else {
		ss.s.log.Debug("pop3 refused", "conn", ss.c.id, "cmd", verb, "reply", r.line(), "err", errText(err))
	}
	if r.Close {
		ss.log("pop3 hangup", "reason", r.Text)
		ss.c.hangup(r)
		return true
	}
	if !internal {
		ss.errs++
		if ss.errs >= ss.s.lim.MaxErrors {
			// The limit is the server's to choose (RFC 1939 says nothing);
			// the last reply says why the connection closes.
			ss.log("pop3 hangup", "reason", "too many errors")
			ss.c.hangup(replyTooManyErrors)
			return true
		}
	}
	if err := ss.c.writeLine(r.line()); err != nil {
		return true
	}
	return false
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// log writes one session event with the connection's attributes.
func (ss *session) log(msg string, args ...any) {
	attrs := append([]any{"conn", ss.c.id, "ip", ss.c.ip.String()}, args...)
	if ss.account != "" {
		attrs = append(attrs, "account", ss.account)
	}
	ss.s.log.Info(msg, attrs...)
}

// end runs when the connection ends, however it ended: the \Seen flags of
// what was retrieved are written (never deletions, unless QUIT ran the
// UPDATE state already), and the maildrop lock is released.
func (ss *session) end() {
	if ss.md != nil && !ss.quitted {
		// Without QUIT the deletion marks are void (RFC 1939 6), so the
		// messages marked deleted get \Seen too.
		if err := ss.md.applySeen(ss, true); err != nil {
			ss.s.log.Error("pop3 could not mark retrieved messages seen", "conn", ss.c.id, "account", ss.account,
				"err", err.Error())
		}
	}
	if ss.release != nil {
		ss.release()
	}
	args := []any{"duration", time.Since(ss.c.start).Round(time.Millisecond), "errors", ss.errs}
	if ss.md != nil {
		args = append(args, "retrieved", ss.md.retrievedCount(), "quit", ss.quitted)
	}
	ss.log("pop3 disconnect", args...)
}
