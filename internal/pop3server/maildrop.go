package pop3server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"posta/internal/mailstore"
)

// Store is what the server needs from internal/mailstore (declared here, on
// the consumer side; *mailstore.Store implements it). Errors are mapped by
// replyFor; mailstore.ErrNoMessage means another session removed the
// message.
type Store interface {
	// EnsureAccount creates the account's mail state and INBOX on first use,
	// so an account that never received mail can log in.
	EnsureAccount(ctx context.Context, account string) error
	Mailbox(ctx context.Context, account, name string) (mailstore.Mailbox, error)
	Mailboxes(ctx context.Context, account string) ([]mailstore.Mailbox, error)
	CreateMailbox(ctx context.Context, account, name, specialUse string) (mailstore.Mailbox, error)
	// Messages lists a mailbox in UID order: the maildrop at login.
	Messages(ctx context.Context, mailbox int64) ([]mailstore.MessageMeta, error)
	// OpenMessageBody opens a message's body: an *os.File for large ones,
	// in memory for small.
	OpenMessageBody(ctx context.Context, mailbox int64, uid uint32) (mailstore.Body, error)
	SetFlags(ctx context.Context, mailbox int64, uids []uint32, op mailstore.FlagOp, f mailstore.Flags,
		unchangedSince uint64) ([]mailstore.MessageMeta, []uint32, error)
	// Remove expunges exactly the given UIDs, in one change.
	Remove(ctx context.Context, mailbox int64, uids []uint32) ([]uint32, error)
	Move(ctx context.Context, from int64, uids []uint32, to int64) (mailstore.AppendResult, []uint32, error)
}

// maildropName is the mailbox POP3 serves: RFC 1939 has one maildrop per
// user, and IMAP's INBOX is where mail arrives.
const maildropName = "INBOX"

// retrievedKeyword prefixes the keyword that records the day (UTC,
// YYYYMMDD) a message was first retrieved over POP3, when Policy.ExpireDays
// is set. The mail store keeps no retrieval time, and a keyword needs no
// schema change; IMAP clients see it as a keyword. Without a retention
// policy no keyword is written.
const retrievedKeyword = "$POP3Retrieved-"

const keywordDay = "20060102"

// msg is one message of the maildrop as fixed at login.
type msg struct {
	uid       uint32
	size      int64
	deleted   bool // DELE in this session
	retrieved bool // a RETR completed in this session
	seen      bool // \Seen at login
	stamped   bool // carries a retrieval keyword already
}

// maildrop is the session's view of INBOX: numbered 1..n in UID order at
// login and fixed for the session (RFC 1939 5: numbers do not change;
// deleted messages keep theirs).
type maildrop struct {
	account     string
	mailbox     int64
	uidValidity uint32
	msgs        []msg
	count       int   // not deleted
	size        int64 // octets of the messages not deleted
	expired     int   // removed at login by the retention policy
	seenDone    bool
}

// openMaildrop lists INBOX for a session that just logged in, first
// applying the retention policy. It runs under the maildrop lock.
func openMaildrop(ss *session, account string) (*maildrop, error) {
	ctx := ss.s.ctx
	st := ss.s.o.Store
	mb, err := st.Mailbox(ctx, account, maildropName)
	if errors.Is(err, mailstore.ErrNoMailbox) {
		// A new account's mail state starts at its first delivery; one that
		// never received mail gets it now (a write, so only when missing).
		if err := st.EnsureAccount(ctx, account); err != nil {
			return nil, err
		}
		mb, err = st.Mailbox(ctx, account, maildropName)
	}
	if err != nil {
		return nil, err
	}
	metas, err := st.Messages(ctx, mb.ID)
	if err != nil {
		return nil, err
	}
	md := &maildrop{account: account, mailbox: mb.ID, uidValidity: mb.UIDValidity}
	if days := ss.s.o.Policy.ExpireDays; days > 0 {
		if metas, err = md.expire(ctx, st, metas, days, ss.s.now()); err != nil {
			return nil, err
		}
	}
	md.msgs = make([]msg, len(metas))
	for i, m := range metas {
		_, stamped := retrievedDay(m.Flags.Keywords)
		md.msgs[i] = msg{uid: m.UID, size: m.Size, seen: m.Flags.System&mailstore.Seen != 0, stamped: stamped}
		md.size += m.Size
	}
	md.count = len(md.msgs)
	return md, nil
}

// retrievedDay finds the earliest retrieval keyword among kw.
func retrievedDay(kw []string) (time.Time, bool) {
	var first time.Time
	found := false
	for _, k := range kw {
		if len(k) <= len(retrievedKeyword) || !strings.EqualFold(k[:len(retrievedKeyword)], retrievedKeyword) {
			continue
		}
		d, err := time.Parse(keywordDay, k[len(retrievedKeyword):])
		if err != nil {
			continue
		}
		if !found || d.Before(first) {
			first, found = d, true
		}
	}
	return first, found
}

// expire removes the messages whose retention is over: first retrieved on
// day D (UTC), they are kept through D plus days full days, so every
// message stays at least days*24h after its retrieval (RFC 2449 6.7: the
// announced EXPIRE value is a minimum). It returns the rest.
func (md *maildrop) expire(ctx context.Context, st Store, metas []mailstore.MessageMeta, days int, now time.Time) ([]mailstore.MessageMeta, error) {
	var gone []uint32
	keep := metas[:0:0]
	for _, m := range metas {
		if d, ok := retrievedDay(m.Flags.Keywords); ok && !now.Before(d.AddDate(0, 0, days+1)) {
			gone = append(gone, m.UID)
			continue
		}
		keep = append(keep, m)
	}
	if len(gone) == 0 {
		return metas, nil
	}
	if err := expungeUIDs(ctx, st, md.mailbox, gone); err != nil {
		return nil, err
	}
	md.expired = len(gone)
	return keep, nil
}

// expungeUIDs removes exactly these messages from the shared store, all in
// one change (IMAP sessions see them expunged together).
func expungeUIDs(ctx context.Context, st Store, mailbox int64, uids []uint32) error {
	_, err := st.Remove(ctx, mailbox, uids)
	return err
}

// uidl is the unique-id of a message (RFC 1939 7 UIDL: 1 to 70 characters
// from 0x21 to 0x7E, the same for the message in every session). UID and
// UIDVALIDITY together identify a message for its whole life, and the
// format is Dovecot's default pop3_uidl_format (%08Xu%08Xv), so a maildrop
// moved from Dovecot with its UIDs keeps its UIDLs.
func (md *maildrop) uidl(m *msg) string {
	return fmt.Sprintf("%08X%08X", m.uid, md.uidValidity)
}

// lookup resolves a message-number argument: RFC 1939 5, a message marked
// deleted may not be referred to.
func (md *maildrop) lookup(arg string) (int, *msg, error) {
	n, ok := parseMsgNum(arg)
	if !ok {
		return 0, nil, errSyntax
	}
	if n > len(md.msgs) {
		return 0, nil, errNoMessage
	}
	m := &md.msgs[n-1]
	if m.deleted {
		return 0, nil, errMsgDeleted
	}
	return n, m, nil
}

func (md *maildrop) retrievedCount() int {
	n := 0
	for _, m := range md.msgs {
		if m.retrieved {
			n++
		}
	}
	return n
}

// stat answers STAT (RFC 1939 5): count and octets of the messages not
// marked deleted.
func (ss *session) stat(cmd Command) error {
	if len(cmd.Args) != 0 {
		return errSyntax
	}
	return ss.c.writeLine(fmt.Sprintf("+OK %d %d", ss.md.count, ss.md.size))
}

// list answers LIST (RFC 1939 5): one scan listing, or all of them.
func (ss *session) list(cmd Command) error {
	return ss.listing(cmd, func(_ int, m *msg) string { return strconv.FormatInt(m.size, 10) })
}

// uidl answers UIDL (RFC 1939 7).
func (ss *session) uidl(cmd Command) error {
	return ss.listing(cmd, func(_ int, m *msg) string { return ss.md.uidl(m) })
}

// listing is LIST and UIDL: with an argument one "+OK n value" line, without
// a multi-line response over the messages not marked deleted.
func (ss *session) listing(cmd Command, value func(int, *msg) string) error {
	md := ss.md
	switch len(cmd.Args) {
	case 0:
	case 1:
		n, m, err := md.lookup(cmd.Args[0])
		if err != nil {
			return err
		}
		return ss.c.writeLine("+OK " + strconv.Itoa(n) + " " + value(n, m))
	default:
		return errSyntax
	}
	w := ss.c.w
	if cmd.Verb == "LIST" {
		fmt.Fprintf(w, "+OK %d messages (%d octets)\r\n", md.count, md.size)
	} else {
		w.WriteString("+OK Unique-ID listing follows\r\n")
	}
	for i := range md.msgs {
		m := &md.msgs[i]
		if m.deleted {
			continue
		}
		w.WriteString(strconv.Itoa(i + 1))
		w.WriteByte(' ')
		w.WriteString(value(i+1, m))
		w.WriteString("\r\n")
	}
	_, err := w.WriteString(".\r\n")
	return err
}

// retr answers RETR (RFC 1939 5): the message, byte-stuffed. The size in
// "+OK n octets" is the stored size, which is the message without the
// stuffing (RFC 1939 11). The message is marked \Seen when the session ends
// (session.end), only if the whole response was handed to the connection.
func (ss *session) retr(cmd Command) error {
	if len(cmd.Args) != 1 {
		return errSyntax
	}
	_, m, err := ss.md.lookup(cmd.Args[0])
	if err != nil {
		return err
	}
	if err := ss.sendMessage(m, fmt.Sprintf("+OK %d octets", m.size), -1); err != nil {
		return err
	}
	m.retrieved = true
	return nil
}

// top answers TOP msg n (RFC 1939 7): the header, the blank line, and the
// first n body lines. It does not mark the message \Seen.
func (ss *session) top(cmd Command) error {
	if len(cmd.Args) != 2 {
		return errSyntax
	}
	_, m, err := ss.md.lookup(cmd.Args[0])
	if err != nil {
		return err
	}
	lines, ok := parseCount(cmd.Args[1])
	if !ok {
		return errSyntax
	}
	return ss.sendMessage(m, "+OK Top of message follows", lines)
}

// sendMessage streams a message body as a multi-line response: all of it
// (lines < 0) or TOP's part. Nothing is loaded whole: the body is read and
// stuffed through one pooled 64 KiB buffer each way. Errors before the +OK
// line are ordinary -ERR replies; after it, the response cannot be finished
// and the session ends.
func (ss *session) sendMessage(m *msg, status string, lines int) error {
	ctx := ss.c.ctx
	st := ss.s.o.Store
	body, err := st.OpenMessageBody(ctx, ss.md.mailbox, m.uid)
	if err != nil {
		return err
	}
	defer body.Close()

	bw := bodyBuffers.Get().(*bufio.Writer)
	bw.Reset(deadlineWriter{ss.c})
	defer func() {
		bw.Reset(nil)
		bodyBuffers.Put(bw)
	}()
	// Whatever is pending (pipelined replies) goes first, in order.
	if err := ss.c.w.Flush(); err != nil {
		return &abortError{err: err}
	}
	bw.WriteString(status)
	bw.WriteString("\r\n")
	dw := newDotWriter(bw)
	var dst io.Writer = dw
	if lines >= 0 {
		dst = newTopWriter(dw, lines)
	}
	bufp := readBuffers.Get().(*[]byte)
	defer readBuffers.Put(bufp)
	if err := copyBody(dst, body, *bufp); err != nil && !errors.Is(err, errTopDone) {
		return &abortError{err: fmt.Errorf("sending message uid %d: %w", m.uid, err)}
	}
	if err := dw.Close(); err != nil {
		return &abortError{err: err}
	}
	if err := bw.Flush(); err != nil {
		return &abortError{err: err}
	}
	return nil
}

// copyBody copies src to dst through buf. (io.CopyBuffer would hand an
// *os.File to its own WriteTo, which allocates a buffer per call.)
func copyBody(dst io.Writer, src io.Reader, buf []byte) error {
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// dele answers DELE (RFC 1939 5): the message is only marked; the UPDATE
// state removes it.
func (ss *session) dele(cmd Command) error {
	if len(cmd.Args) != 1 {
		return errSyntax
	}
	n, m, err := ss.md.lookup(cmd.Args[0])
	if err != nil {
		return err
	}
	m.deleted = true
	ss.md.count--
	ss.md.size -= m.size
	return ss.c.writeLine("+OK Message " + strconv.Itoa(n) + " deleted")
}

// noop answers NOOP (RFC 1939 5).
func (ss *session) noop(cmd Command) error {
	if len(cmd.Args) != 0 {
		return errSyntax
	}
	return ss.c.writeLine("+OK")
}

// rset answers RSET (RFC 1939 5): every deletion mark is removed.
func (ss *session) rset(cmd Command) error {
	if len(cmd.Args) != 0 {
		return errSyntax
	}
	md := ss.md
	md.count, md.size = 0, 0
	for i := range md.msgs {
		md.msgs[i].deleted = false
		md.count++
		md.size += md.msgs[i].size
	}
	return ss.c.writeLine(fmt.Sprintf("+OK Maildrop has %d messages (%d octets)", md.count, md.size))
}

// quit answers QUIT (RFC 1939 4, 6). After login it enters the UPDATE state:
// the messages marked deleted are removed from the shared store (or moved
// to Trash), and only then is the maildrop unlocked. Before login it only
// says goodbye.
func (ss *session) quit(cmd Command) error {
	if ss.state == stateAuthorization {
		ss.state = stateUpdate
		return ss.c.writeLine("+OK Bye")
	}
	ss.state = stateUpdate
	ss.quitted = true
	deleted, err := ss.md.update(ss)
	// The maildrop is unlocked before the reply goes out, so a client that
	// logs in again as soon as it has the +OK does not find it IN-USE.
	ss.release()
	if err != nil {
		ss.s.log.Error("pop3 update failed", "conn", ss.c.id, "account", ss.account, "err", err.Error())
		return errNotRemoved.with(err)
	}
	ss.log("pop3 update", "deleted", deleted, "retrieved", ss.md.retrievedCount(), "trash", ss.s.o.Policy.DeletedToTrash)
	return ss.c.writeLine(fmt.Sprintf("+OK Bye, %d messages deleted", deleted))
}

// update is the UPDATE state (RFC 1939 6): \Seen for what was retrieved,
// then the deletions. It uses the server's context, not the connection's: a
// client may send QUIT and close at once, and its deletions must still
// happen. POP3's changes carry no origin (mailstore.WithOrigin): no POP3
// session reads the change feed, and an id from this server's counter
// could equal an IMAP session's, which would then take the change for its
// own and not report it.
func (md *maildrop) update(ss *session) (int, error) {
	trash := ss.s.o.Policy.DeletedToTrash
	// With Trash the deleted messages keep their \Seen there; expunged ones
	// need none.
	if err := md.applySeen(ss, trash); err != nil {
		return 0, err
	}
	var uids []uint32
	for _, m := range md.msgs {
		if m.deleted {
			uids = append(uids, m.uid)
		}
	}
	if len(uids) == 0 {
		return 0, nil
	}
	ctx := ss.s.ctx
	st := ss.s.o.Store
	if trash {
		to, err := trashMailbox(ctx, st, md.account)
		if err != nil {
			return 0, err
		}
		if _, _, err := st.Move(ctx, md.mailbox, uids, to); err != nil {
			return 0, err
		}
		return len(uids), nil
	}
	if err := expungeUIDs(ctx, st, md.mailbox, uids); err != nil {
		return 0, err
	}
	return len(uids), nil
}

// trashMailbox finds the account's Trash: the mailbox with special use
// \Trash (RFC 6154), else the one named Trash, else a new Trash.
func trashMailbox(ctx context.Context, st Store, account string) (int64, error) {
	mbs, err := st.Mailboxes(ctx, account)
	if err != nil {
		return 0, err
	}
	var named int64
	for _, mb := range mbs {
		if mb.SpecialUse == `\Trash` {
			return mb.ID, nil
		}
		if strings.EqualFold(mb.Name, "Trash") {
			named = mb.ID
		}
	}
	if named != 0 {
		return named, nil
	}
	mb, err := st.CreateMailbox(ctx, account, "Trash", `\Trash`)
	if errors.Is(err, mailstore.ErrMailboxExists) {
		mb, err = st.Mailbox(ctx, account, "Trash")
	}
	return mb.ID, err
}

// applySeen writes \Seen on the messages retrieved in this session (and,
// under a retention policy, the retrieval keyword on those retrieved for the
// first time): one store change per session rather than one per RETR.
// Messages marked deleted are skipped unless includeDeleted. It runs once.
func (md *maildrop) applySeen(ss *session, includeDeleted bool) error {
	if md.seenDone {
		return nil
	}
	md.seenDone = true
	var seen, stamp []uint32
	for _, m := range md.msgs {
		if !m.retrieved || (m.deleted && !includeDeleted) {
			continue
		}
		if ss.s.o.Policy.ExpireDays > 0 && !m.stamped {
			stamp = append(stamp, m.uid)
		} else if !m.seen {
			seen = append(seen, m.uid)
		}
	}
	ctx := ss.s.ctx
	st := ss.s.o.Store
	if len(seen) > 0 {
		if _, _, err := st.SetFlags(ctx, md.mailbox, seen, mailstore.FlagsAdd, mailstore.Flags{System: mailstore.Seen}, 0); err != nil {
			return err
		}
	}
	if len(stamp) > 0 {
		kw := retrievedKeyword + ss.s.now().UTC().Format(keywordDay)
		f := mailstore.Flags{System: mailstore.Seen, Keywords: []string{kw}}
		if _, _, err := st.SetFlags(ctx, md.mailbox, stamp, mailstore.FlagsAdd, f, 0); err != nil {
			return err
		}
	}
	return nil
}
