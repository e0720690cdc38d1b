package smtpserver

import (
	"context"
	"strings"

	gosasl "github.com/emersion/go-sasl"

	"posta/internal/sasl"
)

// AuthMechanisms is go-smtp's AuthSession hook for the EHLO reply (RFC 4954
// 3). AUTH is offered only under TLS unless the config allows plaintext
// passwords; then even SCRAM is withheld, so clients are not tempted to
// authenticate before STARTTLS.
func (ss *session) AuthMechanisms() []string {
	// go-smtp asks only while composing an EHLO reply: that is how the
	// session learns the client speaks ESMTP (Received "with", RFC 3848).
	ss.esmtp = true
	o, ok := ss.saslOptions()
	if !ok {
		return nil
	}
	return sasl.Mechanisms(o)
}

// saslOptions describes this connection to internal/sasl; false when no
// AUTH may happen on it.
func (ss *session) saslOptions() (sasl.Options, bool) {
	o := sasl.Options{
		TLS:            ss.tls != nil,
		AllowPlaintext: ss.s.o.Config.AllowPlaintextAuth,
		// RFC 5802 6 / RFC 9266: SCRAM-SHA-256-PLUS when TLS gives a binding.
		Binding: sasl.ChannelBindingFromTLS(ss.tls),
	}
	return o, o.TLS || o.AllowPlaintext
}

// Auth starts one AUTH exchange (RFC 4954 4). go-smtp drives it: it sends
// each challenge as 334, reads the responses, handles "*", and answers 235
// when the exchange reports done.
func (ss *session) Auth(mech string) (gosasl.Server, error) {
	srv, err := ss.auth(mech)
	if err != nil {
		return nil, ss.finish("AUTH", err, true)
	}
	return srv, nil
}

func (ss *session) auth(mech string) (gosasl.Server, error) {
	if err := ss.admit("AUTH"); err != nil {
		return nil, err
	}
	if ss.account != "" {
		return nil, errAlreadyAuthed
	}
	// internal/guard: a ban placed by another session stops this one too.
	if banned, _ := ss.s.o.Guard.Banned(ss.c.ip); banned {
		ss.c.hangup(replyBanned)
		return nil, &hungUpError{replyBanned}
	}
	o, ok := ss.saslOptions()
	if !ok {
		return nil, errEncryptionRequired
	}
	srv, err := sasl.NewServer(ss.c.ctx, mech, ss.s.o.Directory, o)
	if err != nil {
		return nil, err
	}
	return &authExchange{ss: ss, srv: srv, mech: strings.ToUpper(mech)}, nil
}

// authExchange adapts internal/sasl's Server to go-sasl's, which go-smtp
// drives. The two differ at the end: ours reports done together with final
// server data (SCRAM's "v=..."), and go-smtp, on done, answers 235 and
// drops that data. RFC 4954 4 has no additional-data field on 235 that
// clients expect, so the data goes in one more 334 challenge and the client
// must answer it with an empty line before 235 (RFC 4422 3, 5 step 3).
type authExchange struct {
	ss    *session
	srv   sasl.Server
	mech  string
	final bool // server-final data sent; an empty response completes
}

func (a *authExchange) Next(response []byte) ([]byte, bool, error) {
	if a.final {
		if len(response) != 0 {
			return nil, false, a.fail(sasl.ErrMalformed)
		}
		a.succeed()
		return nil, true, nil
	}
	challenge, done, err := a.srv.Next(response)
	switch {
	case err != nil:
		return nil, false, a.fail(err)
	case !done:
		return challenge, false, nil
	case len(challenge) > 0:
		a.final = true
		return challenge, false, nil
	}
	a.succeed()
	return nil, true, nil
}

func (a *authExchange) succeed() {
	ss := a.ss
	ss.account, ss.mech = a.srv.Account(), a.mech
	ss.s.o.Guard.AuthSucceeded(ss.c.ip, a.srv.Username())
	ss.s.log.Info("smtp auth ok", "conn", ss.c.id, "ip", ss.c.ip.String(), "account", ss.account, "mech", a.mech)
}

// fail answers a failed exchange. A credentials failure waits the guard's
// delay before the 535 (slowing guessing) and ends the session with 421 if
// the address is now banned; our own failure (directory down) is a 454
// without any of that.
func (a *authExchange) fail(err error) error {
	ss, c := a.ss, a.ss.c
	r, internal := classify(err)
	if internal {
		// RFC 4954 6: 454 4.7.0 temporary authentication failure.
		ss.s.log.Error("smtp auth error", "conn", c.id, "ip", c.ip.String(), "mech", a.mech, "err", err.Error())
		return replyFor(reject(454, 4, 7, 0, "Temporary authentication failure", err))
	}
	user := a.srv.Username() // as the client presented it: never the password
	delay, banned := ss.s.o.Guard.AuthFailed(c.ip, user)
	ss.s.log.Info("smtp auth failed", "conn", c.id, "ip", c.ip.String(), "username", user, "mech", a.mech,
		"code", r.Code, "delay", delay, "banned", banned)
	// The wait ends early when the connection closes or the server stops,
	// so a throttled client never holds up shutdown.
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	stop := context.AfterFunc(ss.s.stopping, cancel)
	defer stop()
	if err := ss.s.o.Guard.Sleep(ctx, delay); err != nil {
		c.hangup(replyShutdown)
		return replyShutdown
	}
	if banned {
		c.hangup(replyBanned)
		return replyBanned
	}
	if c.countError() {
		c.hangup(r, replyTooManyErrors)
	}
	return r
}
