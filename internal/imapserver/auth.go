package imapserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"posta/internal/imapwire"
	"posta/internal/sasl"
)

// capability answers CAPABILITY (RFC 9051 6.1.1).
func (ss *session) capability(*imapwire.Command) error {
	return ss.c.enc.Capability(ss.capabilities()...)
}

// noop answers NOOP and CHECK (RFC 9051 6.1.2; CHECK is NOOP in IMAP4rev2,
// 6.4.1 of RFC 3501): the dispatcher sends pending updates.
func (ss *session) noop(*imapwire.Command) error { return nil }

// logout answers LOGOUT (RFC 9051 6.1.3): BYE, then the tagged OK.
func (ss *session) logout(*imapwire.Command) error {
	ss.state = stateLogout
	return ss.c.enc.Untagged(imapwire.BYE, "", "Logging out")
}

// id_ answers ID (RFC 2971 3.1); the client's fields go to the log.
func (ss *session) id_(cmd *imapwire.Command) error {
	if len(cmd.ID) > 0 {
		var parts []string
		for _, f := range cmd.ID {
			if len(parts) < 8 && !f.Nil {
				parts = append(parts, f.Name+"="+f.Value)
			}
		}
		ss.log("imap client id", "id", strings.Join(parts, " "))
	}
	return ss.c.enc.ID([]imapwire.IDField{{Name: "name", Value: Implementation}})
}

// starttls answers STARTTLS (RFC 9051 6.2.1) and runs the handshake. The
// tagged OK goes out before it; the reader is replaced, so octets the client
// pipelined after STARTTLS are dropped.
func (ss *session) starttls(cmd *imapwire.Command) error {
	switch {
	case ss.c.tls != nil:
		return bad("TLS is already active")
	case ss.s.tlsConfig == nil:
		return no(imapwire.CodeUnavailable, "TLS is not available")
	}
	if n := ss.c.r.Buffered(); n > 0 {
		ss.log("imap starttls: dropping octets sent before the handshake", "octets", n)
	}
	ss.c.enc.Tagged(cmd.Tag, imapwire.OK, "", "Begin TLS negotiation now")
	if err := ss.c.flush(); err != nil {
		return &abortError{err: err}
	}
	if err := ss.c.handshake(); err != nil {
		return &abortError{err: fmt.Errorf("starttls handshake: %w", err)}
	}
	return errAlreadyAnswered
}

// errAlreadyAnswered: the handler wrote its tagged response itself.
var errAlreadyAnswered = errors.New("answered")

// saslOptions describes this connection to internal/sasl.
func (ss *session) saslOptions() sasl.Options {
	return sasl.Options{
		TLS:            ss.c.tls != nil,
		AllowPlaintext: ss.s.o.Config.AllowPlaintextAuth,
		// RFC 5802 6 / RFC 9266: SCRAM-SHA-256-PLUS when TLS gives a binding.
		Binding: sasl.ChannelBindingFromTLS(ss.c.tls),
	}
}

func saslMechanisms(ss *session) []string { return sasl.Mechanisms(ss.saslOptions()) }

// login answers LOGIN (RFC 9051 6.2.3).
func (ss *session) login(cmd *imapwire.Command) error {
	if !ss.loginAllowed() {
		return errLoginDisabled
	}
	if banned, _ := ss.s.o.Guard.Banned(ss.c.ip); banned {
		return &abortError{bye: "Too many failed logins from your address"}
	}
	account, err := ss.s.o.Directory.VerifyPassword(ss.c.ctx, cmd.Login.Username, cmd.Login.Password)
	if err != nil {
		return ss.authFailed(cmd.Login.Username, "LOGIN", err)
	}
	return ss.loggedIn(account, cmd.Login.Username, "LOGIN")
}

// authenticate answers AUTHENTICATE (RFC 9051 6.2.2), with SASL-IR's
// initial response (RFC 4959).
func (ss *session) authenticate(cmd *imapwire.Command) error {
	if banned, _ := ss.s.o.Guard.Banned(ss.c.ip); banned {
		return &abortError{bye: "Too many failed logins from your address"}
	}
	mech := cmd.Auth.Mechanism
	if !slices.Contains(saslMechanisms(ss), mech) {
		if !ss.loginAllowed() {
			return errLoginDisabled
		}
		return no(imapwire.CodeCannot, "Unsupported authentication mechanism")
	}
	srv, err := sasl.NewServer(ss.c.ctx, mech, ss.s.o.Directory, ss.saslOptions())
	if err != nil {
		return no(imapwire.CodeCannot, "Unsupported authentication mechanism")
	}
	resp := cmd.Auth.Initial
	if resp == nil {
		// No initial response (RFC 4959 3): an empty challenge asks for it.
		if err := ss.c.enc.ContinueBase64(nil); err != nil {
			return err
		}
		if resp, err = ss.readSASL(); err != nil {
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
		// A challenge, or success data (SCRAM's server-final), which RFC
		// 9051 6.2.2 sends as one more challenge answered by an empty line.
		if err := ss.c.enc.ContinueBase64(challenge); err != nil {
			return err
		}
		if resp, err = ss.readSASL(); err != nil {
			return err
		}
		if done {
			if len(resp) != 0 {
				return ss.authFailed(srv.Username(), mech, sasl.ErrMalformed)
			}
			break
		}
	}
	return ss.loggedIn(srv.Account(), srv.Username(), mech)
}

// readSASL reads one AUTHENTICATE response line.
func (ss *session) readSASL() ([]byte, error) {
	var resp []byte
	err := ss.c.waitRead(true, func() error {
		var err error
		resp, err = ss.c.dec.ReadSASLResponse()
		return err
	})
	if err != nil {
		var se *imapwire.SyntaxError
		if errors.As(err, &se) {
			if errors.Is(se.Err, imapwire.ErrSASLCancelled) {
				return nil, bad("Authentication cancelled")
			}
			return nil, bad(se.Msg)
		}
		return nil, &abortError{err: err}
	}
	return resp, nil
}

// authFailed answers a failed login. A credentials failure waits the
// guard's delay before the NO (slowing guessing) and ends the session if
// the address is now banned; our own failure is NO [UNAVAILABLE].
func (ss *session) authFailed(user, mech string, err error) error {
	var re *replyError
	if errors.As(err, &re) {
		return err
	}
	if !errors.Is(err, sasl.ErrInvalidCredentials) && !errors.Is(err, sasl.ErrMalformed) {
		ss.s.log.Error("imap auth error", "conn", ss.c.id, "ip", ss.c.ip.String(), "mech", mech, "err", err.Error())
		return errAuthTemp
	}
	delay, banned := ss.s.o.Guard.AuthFailed(ss.c.ip, user)
	ss.log("imap auth failed", "username", user, "mech", mech, "delay", delay, "banned", banned, "reason", err.Error())
	ctx, cancel := context.WithCancel(ss.c.ctx)
	defer cancel()
	stop := context.AfterFunc(ss.s.ctx, cancel)
	defer stop()
	if err := ss.s.o.Guard.Sleep(ctx, delay); err != nil || ss.c.Stopping() {
		return &abortError{bye: "Server shutting down"}
	}
	if banned {
		return &abortError{bye: "Too many failed logins from your address"}
	}
	if errors.Is(err, sasl.ErrMalformed) {
		return bad("Malformed authentication exchange")
	}
	return errAuthFailed
}

// loggedIn finishes a successful authentication: the session slot, the
// account's mailboxes, the change feed, then the Authenticated state with
// the new capabilities in the OK (RFC 9051 6.2.3).
func (ss *session) loggedIn(account, username, mech string) error {
	ss.s.o.Guard.AuthSucceeded(ss.c.ip, username)
	release, ok := ss.s.sessions.acquire(account, ss.s.lim.MaxSessionsPerUser)
	if !ok {
		ss.log("imap login refused", "account", account, "reason", "too many sessions")
		return errTooMany
	}
	if err := ss.s.o.Store.EnsureAccount(ss.c.ctx, account); err != nil {
		release()
		return err
	}
	ss.account, ss.release = account, release
	ss.state = stateAuth
	ss.c.readTimeout = ss.s.lim.IdleTimeout
	ss.log("imap login", "mech", mech)
	ss.okCode, ss.okText = imapwire.CodeCapability(ss.capabilities()...), "Logged in"
	return nil
}

// enable answers ENABLE (RFC 5161 3.1, RFC 9051 6.3.1): only the
// extensions that change how the server talks are enabled; ENABLED lists
// those newly enabled by this command.
func (ss *session) enable(cmd *imapwire.Command) error {
	var done []string
	for _, name := range cmd.Enable {
		switch name {
		case "CONDSTORE":
			if !ss.condstore {
				ss.condstore = true
				done = append(done, name)
			}
		case "QRESYNC":
			// RFC 7162 3.2.3: QRESYNC implies CONDSTORE.
			if !ss.qresync {
				ss.qresync, ss.condstore = true, true
				done = append(done, name)
			}
		case "IMAP4REV2":
			if !ss.rev2 {
				ss.rev2 = true
				done = append(done, "IMAP4rev2")
			}
		case "UTF8=ACCEPT":
			// RFC 6855 3: names in UTF-8 from now on.
			if !ss.c.utf8 {
				ss.c.setUTF8()
				done = append(done, name)
			}
		}
	}
	return ss.c.enc.Enabled(done...)
}

// compress answers COMPRESS (RFC 4978 3): the OK goes out uncompressed,
// then both directions deflate.
func (ss *session) compress(cmd *imapwire.Command) error {
	switch {
	case cmd.Compress != "DEFLATE":
		return bad("Unknown compression algorithm")
	case ss.c.zw != nil:
		return no(imapwire.CodeCompressionActive, "Compression is already active")
	}
	ss.c.enc.Tagged(cmd.Tag, imapwire.OK, "", "DEFLATE active")
	if err := ss.c.flush(); err != nil {
		return &abortError{err: err}
	}
	if err := ss.c.startCompress(); err != nil {
		return &abortError{err: err}
	}
	return errAlreadyAnswered
}
