package pop3server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"posta/internal/sasl"
)

// maxUserLen bounds a USER name (RFC 4616 2's 255 octets, as internal/sasl).
const maxUserLen = 255

// capa answers CAPA (RFC 2449 5). Capabilities that hold before login are
// listed in both states, as 5 requires; STLS only where it may be used
// (RFC 2595 4).
func (ss *session) capa(Command) error {
	lines := []string{"+OK Capability list follows",
		"TOP",                     // RFC 2449 6.1
		"UIDL",                    // RFC 2449 6.8
		"RESP-CODES",              // RFC 2449 6.4: "[" starts a response code
		"AUTH-RESP-CODE",          // RFC 3206 6: [AUTH] on credentials failures
		"PIPELINING",              // RFC 2449 6.6: commands are read and answered in order
		ss.expireCapability(),     // RFC 2449 6.7
		ss.loginDelayCapability(), // RFC 2449 6.5
	}
	if ss.loginAllowed() {
		// RFC 2449 6.2, 6.3: USER and SASL only when a login may happen on
		// this connection (RFC 5034 4: no plaintext mechanisms before TLS
		// unless configured).
		lines = append(lines, "USER", "SASL "+strings.Join(sasl.Mechanisms(ss.saslOptions()), " "))
	}
	if ss.state == stateAuthorization && ss.c.tls == nil && ss.s.tlsConfig != nil {
		lines = append(lines, "STLS") // RFC 2595 4
	}
	lines = append(lines, "IMPLEMENTATION "+Implementation, ".") // RFC 2449 6.9
	for _, l := range lines {
		if err := ss.c.writeLine(l); err != nil {
			return err
		}
	}
	return nil
}

// expireCapability is RFC 2449 6.7's announcement: NEVER unless a
// retention policy is set. It is the same for every user, so no "USER".
func (ss *session) expireCapability() string {
	if d := ss.s.o.Policy.ExpireDays; d > 0 {
		return "EXPIRE " + strconv.Itoa(d)
	}
	return "EXPIRE NEVER"
}

// loginDelayCapability is RFC 2449 6.5's announcement, in whole seconds
// (rounded up, so the client never waits less than enforced).
func (ss *session) loginDelayCapability() string {
	d := ss.s.o.Policy.LoginDelay
	secs := int64((d + 999_999_999) / 1_000_000_000)
	return "LOGIN-DELAY " + strconv.FormatInt(secs, 10)
}

// loginAllowed reports whether USER/PASS or AUTH may be used on this
// connection now.
func (ss *session) loginAllowed() bool {
	return ss.c.tls != nil || ss.s.o.Config.AllowPlaintextAuth
}

// saslOptions describes this connection to internal/sasl.
func (ss *session) saslOptions() sasl.Options {
	return sasl.Options{
		TLS:            ss.c.tls != nil,
		AllowPlaintext: ss.s.o.Config.AllowPlaintextAuth,
		// RFC 5802 6 / RFC 9266: SCRAM-SHA-256-PLUS when TLS gives a binding.
		Binding: sasl.ChannelBindingFromTLS(ss.c.tls),
	}
}

// stls answers STLS (RFC 2595 4) and runs the handshake. The reader is
// replaced, so bytes the client sent after STLS and before the handshake
// are dropped, not read as commands under TLS (conn.setStream).
func (ss *session) stls(cmd Command) error {
	switch {
	case len(cmd.Args) != 0:
		return errSyntax
	case ss.c.tls != nil:
		return errTLSActive
	case ss.s.tlsConfig == nil:
		return errTLSUnavailable
	}
	if n := ss.c.r.Buffered(); n > 0 {
		ss.log("pop3 stls: dropping octets sent before the handshake", "octets", n)
	}
	if err := ss.c.writeLine("+OK Begin TLS negotiation"); err != nil {
		return err
	}
	if err := ss.c.w.Flush(); err != nil {
		return &abortError{err: err}
	}
	if err := ss.c.handshake(); err != nil {
		// Nothing can be written safely any more: the TLS state is unknown.
		return &abortError{err: fmt.Errorf("stls handshake: %w", err)}
	}
	// RFC 2595 4: the session stays in AUTHORIZATION; the client must issue
	// CAPA again. A pending USER is forgotten (dispatch cleared it).
	return nil
}

// userCmd answers USER (RFC 1939 7). The reply is the same whether the
// user exists or not.
func (ss *session) userCmd(cmd Command) error {
	name := cmd.Rest
	if len(cmd.Args) != 1 || len(name) > maxUserLen {
		return errSyntax
	}
	ss.user = cmd.Args[0]
	return ss.c.writeLine("+OK Send PASS")
}

// pass answers PASS (RFC 1939 7): only right after USER; the password is
// the whole rest of the line, spaces included.
func (ss *session) pass(cmd Command) error {
	user := ss.user
	if user == "" {
		return errUserFirst
	}
	if cmd.Rest == "" {
		return errSyntax
	}
	if err := ss.checkBan(); err != nil {
		return err
	}
	account, err := ss.s.o.Directory.VerifyPassword(ss.c.ctx, user, cmd.Rest)
	if err != nil {
		return ss.authFailed(user, "USER", err)
	}
	return ss.login(account, user, "USER")
}

// checkBan ends the session of an address banned meanwhile (internal/guard:
// a ban placed through another session or protocol stops this one too).
func (ss *session) checkBan() error {
	if banned, _ := ss.s.o.Guard.Banned(ss.c.ip); banned {
		return replyBanned
	}
	return nil
}

// auth answers AUTH (RFC 5034 4). Without a mechanism it lists the
// mechanisms, as servers did before RFC 2449 and some clients still ask.
func (ss *session) auth(cmd Command) error {
	if len(cmd.Args) == 0 {
		lines := append([]string{"+OK Mechanisms follow"}, sasl.Mechanisms(ss.saslOptions())...)
		for _, l := range append(lines, ".") {
			if err := ss.c.writeLine(l); err != nil {
				return err
			}
		}
		return nil
	}
	if len(cmd.Args) > 2 {
		return errSyntax
	}
	if err := ss.checkBan(); err != nil {
		return err
	}
	mech := strings.ToUpper(cmd.Args[0])
	srv, err := sasl.NewServer(ss.c.ctx, mech, ss.s.o.Directory, ss.saslOptions())
	if err != nil {
		return err
	}
	var resp []byte // nil: no initial response (RFC 4422 3)
	if len(cmd.Args) == 2 {
		// RFC 5034 4: "=" is an empty initial response.
		if resp, err = decodeResponse(cmd.Args[1]); err != nil {
			return err
		}
	}
	for {
		challenge, done, err := srv.Next(resp)
		if err != nil {
			return ss.authFailed(srv.Username(), mech, err)
		}
		if done && len(challenge) == 0 {
			break
		}
		// RFC 5034 4: a challenge is "+ " and base64 (empty: "+ " alone).
		// A success with final data (SCRAM's "v=...") also goes out as a
		// challenge, because POP3 has no additional data on +OK (RFC 5034 4,
		// RFC 4422 3.6); the client must answer it with an empty line.
		if err := ss.c.writeLine("+ " + base64.StdEncoding.EncodeToString(challenge)); err != nil {
			return err
		}
		line, err := ss.c.readLine(ss.s.lim.MaxAuthLineLength)
		if err != nil {
			return ss.authReadFailed(err)
		}
		if string(line) == "*" {
			// RFC 5034 4: the client cancels; -ERR, and it may try again.
			return errAuthCancelled
		}
		if resp, err = decodeResponse(string(line)); err != nil {
			return err
		}
		if done {
			if len(resp) != 0 {
				return ss.authFailed(srv.Username(), mech, sasl.ErrMalformed)
			}
			break
		}
	}
	return ss.login(srv.Account(), srv.Username(), mech)
}

// authReadFailed turns a failed read of an AUTH response into the session's
// end (the same rules as between commands).
func (ss *session) authReadFailed(err error) error {
	if errors.Is(err, errLineTooLong) {
		return errLineLong
	}
	return &abortError{err: err, reply: readEndReply(err)}
}

// readEndReply is the last line for a read that ends the session mid-AUTH.
func readEndReply(err error) *ReplyError {
	switch {
	case errors.Is(err, errStopping):
		return replyShutdown
	case errors.Is(err, errLineFlood):
		return replyLineFlood
	}
	return nil
}

// decodeResponse decodes one client response (RFC 5034 4): strict base64
// (padding only at the end, no character outside the alphabet), or "=" for
// an empty initial response. An empty line is an empty response.
func decodeResponse(s string) ([]byte, error) {
	if s == "=" || s == "" {
		return []byte{}, nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return nil, errBadBase64
		}
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, errBadBase64
	}
	return b, nil
}

// authFailed answers a failed login. A credentials failure waits the
// guard's delay before the -ERR [AUTH] (slowing guessing), and ends the
// session if the address is now banned; our own failure (directory down)
// is -ERR [SYS/TEMP] without any of that.
func (ss *session) authFailed(user, mech string, err error) error {
	r, internal := classify(err)
	if internal {
		ss.s.log.Error("pop3 auth error", "conn", ss.c.id, "ip", ss.c.ip.String(), "mech", mech, "err", err.Error())
		return errAuthTemp.with(err)
	}
	delay, banned := ss.s.o.Guard.AuthFailed(ss.c.ip, user)
	ss.log("pop3 auth failed", "username", user, "mech", mech, "delay", delay, "banned", banned, "reason", err.Error())
	// The wait ends early when the connection or the server stops, so a
	// throttled client never holds up shutdown.
	ctx, cancel := context.WithCancel(ss.c.ctx)
	defer cancel()
	stop := context.AfterFunc(ss.s.conns.StoppingContext(), cancel)
	defer stop()
	if err := ss.s.o.Guard.Sleep(ctx, delay); err != nil {
		return replyShutdown
	}
	if banned {
		return replyBanned
	}
	return r
}

// login finishes a successful authentication: guard bookkeeping, LOGIN-DELAY,
// the maildrop lock (IN-USE), the maildrop itself, then +OK and the
// TRANSACTION state (RFC 1939 4). Any failure leaves the session in
// AUTHORIZATION.
func (ss *session) login(account, username, mech string) error {
	ss.s.o.Guard.AuthSucceeded(ss.c.ip, username)
	now := ss.s.now()
	release, err := ss.s.o.Locks.acquire(account, now, ss.s.o.Policy.LoginDelay)
	if err != nil {
		ss.log("pop3 login refused", "account", account, "mech", mech, "reason", err.Error())
		return err
	}
	md, err := openMaildrop(ss, account)
	if err != nil {
		release()
		return err
	}
	ss.s.o.Locks.loggedIn(account, now, ss.s.o.Policy.LoginDelay)
	ss.account, ss.mech, ss.md, ss.release = account, mech, md, release
	ss.state = stateTransaction
	ss.log("pop3 login", "mech", mech, "messages", md.count, "octets", md.size, "expired", md.expired)
	// RFC 1939 7 PASS: +OK "maildrop locked and ready".
	return ss.c.writeLine(fmt.Sprintf("+OK Logged in, %d messages (%d octets)", md.count, md.size))
}
