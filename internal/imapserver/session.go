package imapserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"posta/internal/imapwire"
	"posta/internal/mailstore"
)

// state is the session's IMAP state (RFC 9051 3).
type state int

const (
	stateNotAuth state = iota + 1
	stateAuth
	stateSelected
	stateLogout
)

// selected is the mailbox of the Selected state.
type selected struct {
	id          int64
	name        string
	readOnly    bool // EXAMINE, or SELECT of a mailbox the user may not change
	uidValidity uint32
	view        *view
	// keywords announced in FLAGS; a new one makes the server send FLAGS again.
	keywords map[string]string // lower case -> as first seen
}

// session is one client's IMAP session. Only its goroutine touches it.
type session struct {
	c     *conn
	s     *Server
	id    uint64 // mailstore origin of this session's changes
	state state

	account string
	release func() // the account's session slot
	sub     *mailstore.Subscription
	mb      *selected

	// ENABLEd extensions (RFC 5161).
	condstore, qresync, rev2 bool

	// saved is the SEARCHRES result "$" (RFC 5182) as UIDs; nil: none saved.
	saved []uint32
	// modseq is the highest MODSEQ the client was told (CONDSTORE); a
	// resync after an overflowed change feed starts from it.
	modseq uint64

	errors   int // BAD answers in a row
	commands int // commands before login
	// okCode is the response code of the next tagged OK, set by a handler.
	okCode imapwire.Code
	okText string
}

func newSession(c *conn) *session {
	ss := &session{c: c, s: c.s, id: c.s.nextID.Add(1), state: stateNotAuth}
	c.onLiteral = ss.onLiteral
	return ss
}

// ctx is the context of store calls: this session's changes carry its id,
// so the change feed can tell them from others'.
func (ss *session) ctx() context.Context { return mailstore.WithOrigin(ss.c.ctx, ss.id) }

func (ss *session) log(msg string, args ...any) {
	args = append([]any{"conn", ss.c.id, "ip", ss.c.ip.String()}, args...)
	if ss.account != "" {
		args = append(args, "account", ss.account)
	}
	ss.s.log.Info(msg, args...)
}

// run greets the client and serves commands until LOGOUT or the end of the
// connection.
func (ss *session) run() {
	c := ss.c
	if c.Stopping() {
		c.hangup("", "Server shutting down")
		return
	}
	// RFC 9051 7.1.1: the greeting; capabilities in it save a round trip.
	c.enc.Untagged(imapwire.OK, imapwire.CodeCapability(ss.capabilities()...), ss.s.o.Config.Hostname+" Posta IMAP ready")
	for ss.state != stateLogout {
		var cmd *imapwire.Command
		err := c.waitRead(true, func() error {
			var err error
			cmd, err = c.dec.ReadCommand()
			return err
		})
		if err != nil {
			if !ss.readFailed(err) {
				return
			}
			continue
		}
		if err := ss.dispatch(cmd); err != nil {
			var ab *abortError
			if errors.As(err, &ab) {
				if ab.bye != "" {
					c.hangup(ab.code, ab.bye)
				}
				if ab.err != nil {
					ss.log("imap session ended", "reason", ab.err.Error())
				}
			}
			return
		}
	}
	c.flush()
}

// readFailed handles a failed command read; it reports whether the session
// goes on.
func (ss *session) readFailed(err error) bool {
	c := ss.c
	var se *imapwire.SyntaxError
	switch {
	case errors.As(err, &se):
		if se.Fatal {
			c.hangup("", se.Msg)
			return false
		}
		if errors.Is(se.Err, imapwire.ErrUnknownCommand) && ss.state == stateNotAuth {
			// An unknown command before login is likely another protocol
			// talking to us (cross-protocol attacks): end the session.
			c.hangup("", "Unknown command before login")
			return false
		}
		st, code, msg := se.Status, se.Code, se.Msg
		if se.Err != nil && !errors.Is(se.Err, imapwire.ErrUnknownCommand) && !errors.Is(se.Err, imapwire.ErrSASLCancelled) {
			// A literal refused by our hook: its own reply.
			r := ss.replyFor(se.Err)
			st, code, msg = r.status, r.code, r.text
		} else if st == imapwire.BAD && code == "" {
			code = imapwire.CodeClientBug
		}
		if se.Tag == "" {
			c.enc.Untagged(imapwire.BAD, code, msg)
		} else {
			c.enc.Tagged(se.Tag, st, code, msg)
		}
		// The rest of the rejected command may still sit in the read
		// buffer, so the next read would not flush: answer now.
		if err := c.flush(); err != nil {
			return false
		}
		return ss.countError(st)
	case errors.Is(err, errStopping):
		c.hangup("", "Server shutting down")
	case errors.Is(err, os.ErrDeadlineExceeded):
		// RFC 9051 5.4: the autologout timer; BYE says why.
		c.hangup("", "Autologout; idle for too long")
	case errors.Is(err, io.EOF):
	default:
		ss.log("imap read error", "err", err.Error())
	}
	return false
}

// countError counts a BAD answer; too many in a row end the session.
func (ss *session) countError(st imapwire.Status) bool {
	if st != imapwire.BAD {
		return true
	}
	ss.errors++
	if ss.errors >= ss.s.lim.MaxErrors {
		ss.c.hangup("", "Too many bad commands")
		return false
	}
	return true
}

// end releases what the session holds.
func (ss *session) end() {
	if ss.sub != nil {
		ss.sub.Close()
	}
	if ss.release != nil {
		ss.release()
	}
	ss.log("imap disconnect")
}

// onLiteral is the Decoder's continuation hook (RFC 9051 7.5: "+" invites
// a synchronizing literal; RFC 7888: nothing for a non-synchronizing one).
func (ss *session) onLiteral(li imapwire.LiteralInfo) error {
	if li.Append {
		if ss.state == stateNotAuth {
			return errNotAuth
		}
		// RFC 7889 4 / RFC 9208 4.3: refuse what cannot be stored before
		// the client sends it.
		if err := ss.s.o.Spool.CheckQuota(ss.c.ctx, ss.account, li.Size); err != nil {
			return err
		}
	}
	if !li.Sync {
		return nil
	}
	if err := ss.c.enc.Continue("Ready"); err != nil {
		return err
	}
	return ss.c.flush()
}

// dispatch runs one command through the table: state checks, the handler,
// pending updates, and the one tagged response.
func (ss *session) dispatch(cmd *imapwire.Command) error {
	ent, ok := commands[cmd.Name]
	if !ok {
		// The Decoder knows a command we do not serve.
		return ss.tagged(cmd, &replyError{status: imapwire.BAD, code: imapwire.CodeClientBug, text: "Unknown command"})
	}
	if ss.state == stateNotAuth {
		ss.commands++
		if ss.commands > ss.s.lim.MaxCommandsBeforeAuth {
			return &abortError{bye: "Too many commands before login"}
		}
	}
	if err := ss.allowed(ent); err != nil {
		return ss.tagged(cmd, err)
	}
	ss.okCode, ss.okText = "", ""
	err := ss.safeRun(ent, cmd)
	var ab *abortError
	if errors.As(err, &ab) {
		return err
	}
	if err == errAlreadyAnswered {
		return nil
	}
	if ent.flags&noUpdates == 0 && ss.state == stateSelected {
		// RFC 9051 7.5.1: no EXPUNGE during FETCH, STORE or SEARCH by
		// sequence number; the UID forms may have them.
		if uerr := ss.sendUpdates(ent.flags&seqNums == 0); uerr != nil {
			return uerr
		}
	}
	return ss.tagged(cmd, err)
}

// safeRun runs a handler, turning a panic into an error so the session
// ends with a log line rather than the process.
func (ss *session) safeRun(ent command, cmd *imapwire.Command) (err error) {
	defer func() {
		if r := recover(); r != nil {
			ss.s.panics.Add(1)
			ss.s.log.Error("imap command panicked", "conn", ss.c.id, "command", cmd.Name, "panic", fmt.Sprint(r))
			err = &abortError{bye: "Internal error", code: imapwire.CodeServerBug, err: fmt.Errorf("panic: %v", r)}
		}
	}()
	return ent.run(ss, cmd)
}

// allowed checks the table's state flags.
func (ss *session) allowed(ent command) error {
	switch ss.state {
	case stateNotAuth:
		if ent.flags&(notAuth|anyState) == 0 {
			return errNotAuth
		}
	case stateAuth:
		if ent.flags&needSelected != 0 {
			return &replyError{status: imapwire.BAD, code: imapwire.CodeClientBug, text: "No mailbox selected"}
		}
		if ent.flags&(needAuth|anyState) == 0 {
			return &replyError{status: imapwire.BAD, code: imapwire.CodeClientBug, text: "Already logged in"}
		}
	case stateSelected:
		if ent.flags&(needAuth|needSelected|anyState) == 0 {
			return &replyError{status: imapwire.BAD, code: imapwire.CodeClientBug, text: "Already logged in"}
		}
		if ent.flags&writable != 0 && ss.mb.readOnly {
			return &replyError{status: imapwire.NO, code: imapwire.CodeReadOnly, text: "Mailbox is read-only"}
		}
	}
	return nil
}

// tagged writes the command's final response: OK, or the reply for err.
func (ss *session) tagged(cmd *imapwire.Command, err error) error {
	if err == nil {
		ss.errors = 0
		text := ss.okText
		if text == "" {
			text = cmd.Name + " completed"
		}
		return ss.c.enc.Tagged(cmd.Tag, imapwire.OK, ss.okCode, text)
	}
	r := ss.replyFor(err)
	if r.status == imapwire.BAD {
		ss.errors++
		if ss.errors >= ss.s.lim.MaxErrors {
			ss.c.enc.Tagged(cmd.Tag, r.status, r.code, r.text)
			return &abortError{bye: "Too many bad commands"}
		}
	}
	if err := ss.c.enc.Tagged(cmd.Tag, r.status, r.code, r.text); err != nil {
		return err
	}
	// A failed command may leave its unread rest (an APPEND literal never
	// invited) in the read buffer, where the next read would not flush
	// before waiting: answer now, or client and server wait for each other.
	return ss.c.flush()
}

// capabilities is what CAPABILITY lists now (RFC 9051 7.2.2): it changes
// with TLS and login.
func (ss *session) capabilities() []string {
	caps := []string{"IMAP4rev1", "IMAP4rev2"}
	if ss.state == stateNotAuth {
		if ss.c.tls == nil && ss.s.tlsConfig != nil {
			caps = append(caps, "STARTTLS")
		}
		if ss.loginAllowed() {
			for _, m := range saslMechanisms(ss) {
				caps = append(caps, "AUTH="+m)
			}
			caps = append(caps, "SASL-IR")
		} else {
			// RFC 9051 6.2.3 / 7.2.2: LOGIN refused until TLS.
			caps = append(caps, "LOGINDISABLED")
		}
	}
	caps = append(caps,
		"LITERAL+", "ID", "ENABLE", "IDLE", "NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE",
		"CHILDREN", "SPECIAL-USE", "CREATE-SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS",
		"ESEARCH", "SEARCHRES", "CONDSTORE", "QRESYNC", "STATUS=SIZE",
		fmt.Sprintf("APPENDLIMIT=%d", ss.s.lim.Wire.MaxAppend), "UTF8=ACCEPT", "BINARY", "MULTIAPPEND",
		"QUOTA", "QUOTA=RES-STORAGE",
	)
	if ss.c.zw == nil && ss.state != stateNotAuth {
		caps = append(caps, "COMPRESS=DEFLATE")
	}
	return caps
}

// loginAllowed reports whether a password may be sent on this connection.
func (ss *session) loginAllowed() bool {
	return ss.c.tls != nil || ss.s.o.Config.AllowPlaintextAuth
}

// pull takes the account's changes from the feed into the selected view.
// Own flag changes are left out: the command that made them answered them
// already (RFC 7162 3.1.3 FETCH with MODSEQ after STORE).
func (ss *session) pull() error {
	if ss.sub == nil {
		return nil
	}
	changes, overflow := ss.sub.Take()
	if ss.mb == nil {
		return nil
	}
	if overflow {
		// The feed dropped changes: ask the store what changed since the
		// last MODSEQ the client knows.
		metas, gone, err := ss.s.o.Store.Changes(ss.c.ctx, ss.mb.id, ss.modseq)
		if err != nil {
			return err
		}
		changes = []mailstore.Change{{Kind: mailstore.Expunged, Mailbox: ss.mb.id, UIDs: gone}}
		var added []uint32
		last := uint32(0)
		if n := ss.mb.view.exists(); n > 0 {
			last = ss.mb.view.uid(n)
		}
		for _, m := range metas {
			if m.UID > last {
				added = append(added, m.UID)
			}
		}
		changes = append(changes, mailstore.Change{Kind: mailstore.FlagsChanged, Mailbox: ss.mb.id, Metas: metas},
			mailstore.Change{Kind: mailstore.Added, Mailbox: ss.mb.id, UIDs: added})
	}
	own := changes[:0:0]
	for _, ch := range changes {
		switch {
		case ch.Kind == mailstore.FlagsChanged && ch.Origin == ss.id:
			continue
		case ch.Kind == mailstore.MailboxDeleted && ch.Mailbox == ss.mb.id:
			// RFC 9051 6.3.9 lets another session delete the selected
			// mailbox; this session cannot go on with it.
			return &abortError{bye: "Selected mailbox was deleted"}
		}
		own = append(own, ch)
	}
	ss.mb.view.queue(own)
	return nil
}

// sendUpdates writes the untagged responses for changes made elsewhere
// (RFC 9051 7.5: at the end of a command, or during IDLE).
func (ss *session) sendUpdates(allowExpunge bool) error {
	if err := ss.pull(); err != nil {
		var ab *abortError
		if errors.As(err, &ab) {
			return err
		}
		ss.log("imap resync failed", "err", err.Error())
		return nil
	}
	if ss.mb == nil {
		return nil
	}
	enc := ss.c.enc
	var vanished []uint32
	for _, u := range ss.mb.view.flush(allowExpunge) {
		switch u.Kind {
		case updExpunge:
			if ss.qresync {
				// RFC 7162 3.2.10: VANISHED instead of EXPUNGE.
				vanished = append(vanished, u.UID)
				continue
			}
			enc.Expunge(uint32(u.Seq))
		case updExists:
			if len(vanished) > 0 {
				enc.Vanished(imapwire.SeqSetOf(vanished...), false)
				vanished = nil
			}
			enc.Exists(uint32(u.Count))
			if !ss.rev2 {
				enc.Recent(0)
			}
		case updFetch:
			if len(vanished) > 0 {
				enc.Vanished(imapwire.SeqSetOf(vanished...), false)
				vanished = nil
			}
			if err := ss.newKeywords(u.Meta.Flags.Keywords); err != nil {
				return err
			}
			fw := enc.Fetch(uint32(u.Seq))
			if ss.wantsUID() {
				fw.UID(u.UID)
			}
			fw.Flags(flagList(u.Meta.Flags)...)
			if ss.condstore {
				// RFC 7162 3.1.4: MODSEQ in every unsolicited FETCH.
				fw.ModSeq(u.Meta.ModSeq)
				ss.modseq = max(ss.modseq, u.Meta.ModSeq)
			}
			if err := fw.Close(); err != nil {
				return err
			}
		}
	}
	if len(vanished) > 0 {
		return enc.Vanished(imapwire.SeqSetOf(vanished...), false)
	}
	return nil
}

// wantsUID reports whether FETCH responses carry the UID even when not
// asked: RFC 9051 7.5.2 (IMAP4rev2) and RFC 7162 3.2.4 (CONDSTORE/QRESYNC)
// require it in unsolicited ones, and it costs nothing elsewhere.
func (ss *session) wantsUID() bool { return ss.rev2 || ss.condstore || ss.qresync }

// newKeywords sends FLAGS again when a keyword the client was not told of
// appears (RFC 9051 7.3.5: FLAGS lists the flags in use).
func (ss *session) newKeywords(kw []string) error {
	changed := false
	for _, k := range kw {
		if _, ok := ss.mb.keywords[strings.ToLower(k)]; !ok {
			ss.mb.keywords[strings.ToLower(k)] = k
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return ss.sendFlags()
}
