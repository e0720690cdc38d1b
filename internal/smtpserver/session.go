package smtpserver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-smtp"

	"posta/internal/delivery"
)

// flag is a rule the dispatcher (admit and finish) applies to a verb.
type flag uint8

const (
	// needAuth: on submission listeners the verb is refused with 530 5.7.0
	// until AUTH has succeeded (RFC 4954 6, RFC 6409 4.3).
	needAuth flag = 1 << iota
	// stopsOnShutdown: once Shutdown (or too many errors) asked the session
	// to end, the verb is answered with that 421 and the connection closed
	// (RFC 5321 3.8). Data verbs lack it: a message in flight may finish.
	stopsOnShutdown
	// countsErrors: a rejection counts toward Limits.MaxErrors.
	countsErrors
)

type command struct{ flags flag }

// commands is the table of verbs that reach Posta: go-smtp parses every
// command and calls a hook for these (EHLO/HELO: Backend.NewSession; DATA
// and BDAT: Session.Data; AUTH: AuthSession.Auth). Each hook starts with
// admit and ends with finish, which read the flags here.
//
// go-smtp answers the rest itself, without a hook: RSET, NOOP, QUIT,
// STARTTLS (RFC 3207), VRFY with 252 2.5.0 (RFC 5321 3.5.3: no user is
// revealed), EXPN, HELP, TURN, SEND, SOML, SAML with 502 5.5.1, and syntax
// errors with 500/501 (closing after its fixed threshold of 3).
var commands = map[string]command{
	"EHLO": {stopsOnShutdown},
	"HELO": {stopsOnShutdown},
	"AUTH": {stopsOnShutdown | countsErrors},
	"MAIL": {needAuth | stopsOnShutdown | countsErrors},
	"RCPT": {needAuth | stopsOnShutdown | countsErrors},
	"DATA": {needAuth | countsErrors},
	"BDAT": {needAuth | countsErrors},
}

// backend is go-smtp's Backend: one session per EHLO/HELO (and a fresh
// one after STARTTLS, RFC 3207 4.2).
type backend struct{ s *Server }

func (b backend) NewSession(sc *smtp.Conn) (smtp.Session, error) {
	c := connOf(sc.Conn())
	if c == nil {
		return nil, replyFor(errors.New("smtpserver: connection not from our listener"))
	}
	// After STARTTLS this is the *tls.Conn: from now on replies that Posta
	// writes itself go there.
	c.setTop(sc.Conn())
	c.waitBDAT()
	ss := &session{s: b.s, c: c, sc: sc}
	if st, ok := sc.TLSConnectionState(); ok {
		ss.tls = &st
		ss.tlsDesc = strings.ReplaceAll(tls.VersionName(st.Version), " ", "") + " " + tls.CipherSuiteName(st.CipherSuite)
		if !b.s.implicitTLS {
			b.s.log.Info("smtp starttls", "conn", c.id, "ip", c.ip.String(), "tls", ss.tlsDesc)
		}
	}
	if err := ss.admit("EHLO"); err != nil {
		return nil, ss.finish("EHLO", err, true)
	}
	// RFC 5321 4.1.1.1: the argument is a domain or an address literal.
	// Names that are merely wrong are tolerated (the Received header shows
	// them sanitised), control characters are not: go-smtp echoes the
	// argument in its 250 reply and would send them back.
	if strings.ContainsFunc(sc.Hostname(), func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return nil, ss.finish("EHLO", errBadHELO, true)
	}
	return ss, nil
}

// session is one go-smtp Session. Its hooks run on the connection's
// goroutine, except Data for BDAT, which go-smtp runs on its own goroutine
// while the connection goroutine keeps reading chunks (and may call Reset).
type session struct {
	s  *Server
	c  *conn
	sc *smtp.Conn

	tls     *tls.ConnectionState // nil without TLS
	tlsDesc string               // "TLS1.3 TLS_AES_128_GCM_SHA256"
	esmtp   bool                 // the client used EHLO (see AuthMechanisms)
	account string               // authenticated account, "" before AUTH
	mech    string

	mu  sync.Mutex // guards env against the BDAT goroutine
	env *delivery.Envelope
}

// admit applies verb's flags before its hook runs.
func (ss *session) admit(verb string) error {
	cmd := commands[verb]
	if cmd.flags&stopsOnShutdown != 0 {
		if r := ss.c.takePending(); r != nil {
			ss.c.hangup(r)
			return &hungUpError{r}
		}
	}
	if cmd.flags&needAuth != 0 && ss.s.submission && ss.account == "" {
		if ss.tls == nil && !ss.s.o.Config.AllowPlaintextAuth {
			return errTLSRequired
		}
		return errAuthRequired
	}
	return nil
}

// finish turns a hook's error into its one reply: logged, counted toward
// MaxErrors, and mapped by replyFor. sessionGoroutine is false for BDAT's
// Data, which must not write: a hangup then waits for the next boundary.
func (ss *session) finish(verb string, err error, sessionGoroutine bool) error {
	if err == nil {
		return nil
	}
	var hu *hungUpError
	if errors.As(err, &hu) {
		return hu.reply
	}
	if errors.Is(err, smtp.ErrDataReset) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		// The client reset or left mid-transfer: nobody reads a reply, and
		// it is no rejected command.
		ss.s.log.Info("smtp transfer aborted", "conn", ss.c.id, "ip", ss.c.ip.String(), "cmd", verb)
		return replyFor(err)
	}
	r, internal := classify(err)
	if internal {
		// Our own failure: the cause goes to the log, the client gets 451.
		ss.s.log.Error("smtp internal error", "conn", ss.c.id, "ip", ss.c.ip.String(), "cmd", verb,
			"code", r.Code, "err", err.Error())
	} else {
		ss.s.log.Info("smtp reject", "conn", ss.c.id, "ip", ss.c.ip.String(), "cmd", verb,
			"code", r.Code, "enhanced", enhanced(r.EnhancedCode), "err", err.Error())
	}
	if commands[verb].flags&countsErrors != 0 && !internal && r.Code != 421 && ss.c.countError() {
		// RFC 5321 4.3.2 leaves the limit to the server; 421 says we close.
		if sessionGoroutine {
			ss.c.hangup(r, replyTooManyErrors)
		} else {
			ss.c.setPending(replyTooManyErrors)
		}
	}
	return r
}

// opCtx bounds one Deliverer check by the command timeout.
func (ss *session) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(ss.c.ctx, ss.s.lim.CommandTimeout.D())
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	return ss.finish("MAIL", ss.mail(from, opts), true)
}

func (ss *session) mail(from string, opts *smtp.MailOptions) error {
	ss.c.waitBDAT()
	if err := ss.admit("MAIL"); err != nil {
		return err
	}
	if ss.currentEnv() != nil {
		return errNestedMail
	}
	if from != "" { // "" is the null reverse-path <> (RFC 5321 4.5.5)
		switch err := checkMailbox(from, opts.UTF8); {
		case errors.Is(err, errAddrNonASCII):
			return reject(550, 5, 6, 7, "Non-ASCII sender address needs SMTPUTF8", err) // RFC 6531 3.5
		case err != nil:
			return reject(553, 5, 1, 7, "Bad sender address syntax", err) // RFC 3463 3.2 X.1.7
		}
	}
	// RFC 3461 4.4: ENVID is xtext of printable ASCII; go-smtp decoded it.
	if opts.EnvelopeID != "" && !checkXtextValue(opts.EnvelopeID, false) {
		return reject(501, 5, 5, 4, "Malformed ENVID parameter", nil)
	}
	// RFC 8689 4.1: REQUIRETLS is only offered under TLS, and go-smtp
	// accepts the parameter whether or not the session is; a message that
	// demands TLS must not have arrived without it.
	if opts.RequireTLS && ss.tls == nil {
		return reject(530, 5, 7, 10, "REQUIRETLS needs a TLS session", nil)
	}
	env := &delivery.Envelope{
		MailFrom:   from,
		Account:    ss.account,
		RemoteIP:   ss.c.ip,
		RemoteHost: ss.c.remoteHost(),
		HELO:       ss.sc.Hostname(),
		TLS:        ss.tlsDesc,
		// RFC 5321 2.2.1: extension parameters only follow EHLO.
		ESMTP: ss.esmtp || opts.Size != 0 || opts.Body != "" || opts.UTF8 || opts.Return != "" || opts.EnvelopeID != "" ||
			opts.RequireTLS,
		Auth:     ss.account != "",
		Listener: ss.s.o.Listener.Name,
		SMTPUTF8: opts.UTF8,
		Body:     string(opts.Body),
		Ret:      string(opts.Return),
		EnvID:    opts.EnvelopeID,
		Size:     opts.Size,
		// RFC 8689 4.1: checked above to arrive over TLS.
		RequireTLS: opts.RequireTLS,
	}
	if ss.account != "" && ss.s.o.Config.SMTP.SenderMustOwn {
		ctx, cancel := ss.opCtx()
		defer cancel()
		if err := ss.s.o.Deliverer.CheckSender(ctx, env); err != nil {
			return err
		}
	}
	ss.setEnv(env)
	return nil
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	return ss.finish("RCPT", ss.rcpt(to, opts), true)
}

func (ss *session) rcpt(to string, opts *smtp.RcptOptions) error {
	if err := ss.admit("RCPT"); err != nil {
		return err
	}
	env := ss.envCopy()
	if env == nil {
		return reject(503, 5, 5, 1, "Need MAIL command", nil)
	}
	switch err := checkMailbox(to, env.SMTPUTF8); {
	case errors.Is(err, errAddrNonASCII):
		return reject(553, 5, 6, 7, "Non-ASCII recipient address needs SMTPUTF8", err) // RFC 6531 3.5
	case err != nil:
		return reject(553, 5, 1, 3, "Bad recipient address syntax", err) // RFC 3463 3.2 X.1.3
	}
	rcpt := delivery.Recipient{Address: to}
	for _, n := range opts.Notify {
		rcpt.Notify = append(rcpt.Notify, string(n)) // RFC 3461 4.1, checked by go-smtp
	}
	if opts.OriginalRecipient != "" {
		// RFC 3461 4.2: addr-type ";" xtext, kept decoded for the DSN's
		// Original-Recipient field (RFC 3464 2.3.1).
		orcpt := string(opts.OriginalRecipientType) + ";" + opts.OriginalRecipient
		if !checkXtextValue(orcpt, opts.OriginalRecipientType == smtp.DSNAddressTypeUTF8) {
			return reject(501, 5, 5, 4, "Malformed ORCPT parameter", nil)
		}
		rcpt.ORCPT = orcpt
	}
	ctx, cancel := ss.opCtx()
	defer cancel()
	if err := ss.s.o.Deliverer.CheckRecipient(ctx, env, rcpt); err != nil {
		return err
	}
	ss.mu.Lock()
	if ss.env != nil {
		ss.env.Recipients = append(ss.env.Recipients, rcpt)
	}
	ss.mu.Unlock()
	return nil
}

func (ss *session) Data(r io.Reader) error {
	// go-smtp passes its dot-unstuffing reader for DATA and a pipe fed by
	// the connection goroutine for BDAT (RFC 3030).
	pr, bdat := r.(*io.PipeReader)
	verb := "DATA"
	if bdat {
		verb = "BDAT"
		defer ss.c.bdatStarted(pr)()
	}
	return ss.finish(verb, ss.data(r, bdat), !bdat)
}

func (ss *session) data(r io.Reader, bdat bool) error {
	env := ss.envCopy()
	if env == nil || len(env.Recipients) == 0 {
		return reject(503, 5, 5, 1, "Need RCPT command", nil) // go-smtp checks first
	}
	c := ss.c
	c.enterData(ss.s.lim.DataTimeout.D())
	defer c.leaveData()
	env.ID = newID()
	env.ReceivedAt = ss.s.now()
	hdr := receivedHeader(env, ss.s.o.Config.Hostname)
	body := &bodyReader{r: r}
	err := ss.s.o.Deliverer.Deliver(c.ctx, env, io.MultiReader(strings.NewReader(hdr), body))
	switch {
	case body.err != nil:
		// The data was refused (bare LF, too big, too slow, client gone):
		// that is the reply, whatever the Deliverer made of the read error.
		if err == nil {
			ss.s.log.Error("smtp deliverer stored a message after a read error", "conn", c.id, "id", env.ID,
				"err", body.err.Error())
		}
		err = body.err
	case err == nil && !body.eof:
		err = fmt.Errorf("smtpserver: Deliver returned before reading the message to its end (id %s)", env.ID)
	}
	if err != nil {
		if !bdat && !errors.Is(err, smtp.ErrDataTooLarge) && !errors.Is(err, os.ErrDeadlineExceeded) {
			// Read the rest of the message here, still busy in the data
			// phase (so a shutdown lets it finish and DataTimeout bounds
			// it), before the reply. go-smtp would drain it after Data
			// returns anyway; a too-big message is drained there because
			// its reader refuses more bytes until Data returns.
			io.Copy(io.Discard, r)
		}
		return err
	}
	c.countMessage()
	ss.s.log.Info("smtp message accepted", "conn", c.id, "ip", c.ip.String(), "id", env.ID,
		"from", env.MailFrom, "recipients", len(env.Recipients), "size", body.n, "account", env.Account)
	return nil
}

// Reset is called by go-smtp on RSET, a new EHLO, and after each message
// (and each aborted BDAT transfer), on the connection goroutine.
func (ss *session) Reset() {
	ss.c.waitBDAT()
	ss.setEnv(nil)
}

func (ss *session) Logout() error { return nil }

func (ss *session) currentEnv() *delivery.Envelope {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.env
}

// envCopy is the open transaction's envelope, copied so a Deliverer never
// shares our state.
func (ss *session) envCopy() *delivery.Envelope {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.env == nil {
		return nil
	}
	e := *ss.env
	e.Recipients = slices.Clone(e.Recipients)
	return &e
}

func (ss *session) setEnv(env *delivery.Envelope) {
	ss.mu.Lock()
	ss.env = env
	ss.mu.Unlock()
}

// newID is a message id for the Received header and the logs: 16 base32
// characters from 80 random bits.
func newID() string {
	var b [10]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}
