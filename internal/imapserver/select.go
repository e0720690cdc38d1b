package imapserver

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"

	"posta/internal/imapwire"
	"posta/internal/mailstore"
)

// selectCmd answers SELECT and EXAMINE (RFC 9051 6.3.2, 6.3.3), with the
// CONDSTORE and QRESYNC parameters (RFC 7162 3.1.8, 3.2.5).
func (ss *session) selectCmd(cmd *imapwire.Command) error {
	sel := cmd.Select
	if sel.QResync != nil && !ss.qresync {
		// RFC 7162 3.2.5: QRESYNC must be enabled first.
		return bad("ENABLE QRESYNC first")
	}
	if ss.mb != nil {
		// RFC 9051 6.3.2: the selected mailbox is deselected first, even
		// if this SELECT fails; RFC 7162 3.2.11 / RFC 9051 7.1: [CLOSED]
		// tells where the old mailbox's responses end.
		ss.leave()
		if err := ss.c.enc.Untagged(imapwire.OK, imapwire.CodeClosed, "Previous mailbox closed"); err != nil {
			return err
		}
	}
	if sel.CondStore {
		ss.condstore = true
	}
	name, err := mailboxName(sel.Mailbox)
	if err != nil {
		return err
	}
	mb, err := ss.s.o.Store.Mailbox(ss.c.ctx, ss.account, name)
	if err != nil {
		return err
	}
	// The feed is subscribed before the listing is read: a change committed
	// in between is both in the listing and queued, which the view takes
	// as a no-op, and none can fall between the two.
	ss.sub = ss.s.o.Store.Subscribe(ss.account)
	metas, err := ss.s.o.Store.Messages(ss.c.ctx, mb.ID)
	if err != nil {
		ss.leave()
		return err
	}
	readOnly := cmd.Name == "EXAMINE"
	cur := &selected{id: mb.ID, name: mb.Name, readOnly: readOnly, uidValidity: mb.UIDValidity,
		view: newView(mb.ID, metas), keywords: map[string]string{}}
	firstUnseen := 0
	var highest uint64
	for i, m := range metas {
		for _, k := range m.Flags.Keywords {
			cur.keywords[strings.ToLower(k)] = k
		}
		if firstUnseen == 0 && m.Flags.System&mailstore.Seen == 0 {
			firstUnseen = i + 1
		}
		highest = max(highest, m.ModSeq)
	}
	ss.mb, ss.state, ss.saved = cur, stateSelected, nil
	ss.modseq = max(mb.HighestModSeq, highest)
	enc := ss.c.enc
	if err := ss.sendFlags(); err != nil {
		return err
	}
	enc.Exists(uint32(len(metas)))
	if !ss.rev2 {
		// RFC 3501 6.3.1: RECENT and UNSEEN; IMAP4rev2 dropped both.
		enc.Recent(0)
		if firstUnseen > 0 {
			enc.Untagged(imapwire.OK, imapwire.CodeUnseen(uint32(firstUnseen)), "First unseen")
		}
	}
	enc.Untagged(imapwire.OK, imapwire.CodeUIDValidity(mb.UIDValidity), "UIDs valid")
	enc.Untagged(imapwire.OK, imapwire.CodeUIDNext(mb.UIDNext), "Predicted next UID")
	if readOnly {
		enc.Untagged(imapwire.OK, imapwire.CodePermanentFlags(), "No permanent flags permitted")
	} else {
		enc.Untagged(imapwire.OK, imapwire.CodePermanentFlags(permanentFlags(cur.keywordList())...), "Flags permitted")
	}
	if ss.rev2 {
		// RFC 9051 6.3.2: a LIST response for the mailbox, with accurate
		// attributes.
		attrs, err := ss.mailboxAttrs(mb)
		if err != nil {
			return err
		}
		enc.List(imapwire.ListData{Attrs: attrs, Delim: delim, Mailbox: mb.Name})
	}
	if ss.condstore {
		// RFC 7162 3.1.2.1.
		enc.Untagged(imapwire.OK, imapwire.CodeHighestModSeq(ss.modseq), "Highest")
	}
	if q := sel.QResync; q != nil && q.UIDValidity == mb.UIDValidity {
		if err := ss.resync(q); err != nil {
			return err
		}
	}
	if readOnly {
		ss.okCode = imapwire.CodeReadOnly
	} else {
		ss.okCode = imapwire.CodeReadWrite
	}
	return nil
}

// keywordList is the selected mailbox's keywords in a stable order.
func (sel *selected) keywordList() []string {
	out := make([]string, 0, len(sel.keywords))
	for _, k := range sel.keywords {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sendFlags writes FLAGS (RFC 9051 7.3.5) and, when it changed after
// SELECT, PERMANENTFLAGS with it.
func (ss *session) sendFlags() error {
	return ss.c.enc.Flags(mailboxFlags(ss.mb.keywordList())...)
}

// resync answers SELECT's QRESYNC parameter (RFC 7162 3.2.5.2): VANISHED
// (EARLIER) for what was expunged since the client's MODSEQ, then FETCH
// for what changed.
func (ss *session) resync(q *imapwire.QResync) error {
	metas, gone, err := ss.s.o.Store.Changes(ss.c.ctx, ss.mb.id, q.ModSeq)
	if err != nil {
		return err
	}
	known := q.KnownUIDs
	if len(gone) > 0 {
		var vanished []uint32
		for _, u := range gone {
			if known.IsEmpty() || known.Contains(u, ss.mb.lastUID()) {
				vanished = append(vanished, u)
			}
		}
		if len(vanished) > 0 {
			if err := ss.c.enc.Vanished(imapwire.SeqSetOf(vanished...), true); err != nil {
				return err
			}
		}
	}
	for _, m := range metas {
		n := ss.mb.view.seq(m.UID)
		if n == 0 || !known.IsEmpty() && !known.Contains(m.UID, ss.mb.lastUID()) {
			continue
		}
		fw := ss.c.enc.Fetch(uint32(n))
		fw.UID(m.UID)
		fw.Flags(flagList(m.Flags)...)
		fw.ModSeq(m.ModSeq)
		if err := fw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// lastUID is the highest UID the client knows, "*" in UID sets.
func (sel *selected) lastUID() uint32 {
	if n := sel.view.exists(); n > 0 {
		return sel.view.uid(n)
	}
	return 0
}

// leave ends the Selected state without expunging.
func (ss *session) leave() {
	if ss.sub != nil {
		// Only a selected mailbox needs the feed: idle sessions outside one
		// cost the publisher nothing.
		ss.sub.Close()
		ss.sub = nil
	}
	ss.mb, ss.saved = nil, nil
	if ss.state == stateSelected {
		ss.state = stateAuth
	}
}

// closeCmd answers CLOSE (RFC 9051 6.4.1): expunge silently (unless
// read-only), then leave.
func (ss *session) closeCmd(*imapwire.Command) error {
	if !ss.mb.readOnly {
		if _, err := ss.s.o.Store.Expunge(ss.ctx(), ss.mb.id, nil); err != nil {
			return err
		}
	}
	ss.leave()
	return nil
}

// unselect answers UNSELECT (RFC 3691, RFC 9051 6.4.2).
func (ss *session) unselect(*imapwire.Command) error {
	ss.leave()
	return nil
}

// expunge answers EXPUNGE and UID EXPUNGE (RFC 9051 6.4.3, RFC 4315 2.1).
// The EXPUNGE (or VANISHED) responses come from the change feed, like
// everyone else's, so the numbering stays one story.
func (ss *session) expunge(cmd *imapwire.Command) error {
	var uids []uint32
	if cmd.Expunge != nil {
		uids = ss.uidsOf(*cmd.Expunge, true)
		if len(uids) == 0 {
			return nil
		}
	}
	_, err := ss.s.o.Store.Expunge(ss.ctx(), ss.mb.id, uids)
	if err == nil && ss.condstore {
		// RFC 7162 3.1.11 / 3.2.9: the tagged OK carries HIGHESTMODSEQ.
		if mb, err := ss.s.o.Store.MailboxByID(ss.c.ctx, ss.mb.id); err == nil {
			ss.okCode = imapwire.CodeHighestModSeq(mb.HighestModSeq)
		}
	}
	return err
}

// uidsOf resolves a sequence set (or UID set) against the view: the UIDs
// the client means, in ascending order, leaving out what it does not know.
func (ss *session) uidsOf(set imapwire.SeqSet, uid bool) []uint32 {
	v := ss.mb.view
	if set.Saved {
		// RFC 5182 2.1: "$" is the saved result, UIDs still present.
		out := make([]uint32, 0, len(ss.saved))
		for _, u := range ss.saved {
			if v.seq(u) > 0 {
				out = append(out, u)
			}
		}
		return out
	}
	var out []uint32
	if uid {
		for _, u := range set.MatchUIDs(v.uids) {
			out = append(out, u)
		}
		return out
	}
	for n := range set.Seqs(uint32(v.exists())) {
		if u := v.uid(int(n)); u != 0 {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// errSeqRange: a sequence number beyond what the client knows (RFC 9051
// 6.4.5: BAD for an invalid message sequence number).
var errSeqRange = bad("Invalid message sequence number")

// checkSeqs refuses sequence numbers beyond EXISTS (RFC 9051 7.1.5 /
// 6.4.5); "*" is always fine.
func (ss *session) checkSeqs(set imapwire.SeqSet) error {
	if set.Saved {
		return nil
	}
	n := uint32(ss.mb.view.exists())
	for _, r := range set.Ranges {
		if r.Start != imapwire.Star && r.Start > n || r.Stop != imapwire.Star && r.Stop > n {
			return errSeqRange
		}
	}
	return nil
}

// idle answers IDLE (RFC 2177, RFC 9051 6.3.13): "+ idling", then changes
// as they come, until DONE. A reader goroutine waits for DONE so this one
// can write updates; it is the only reader meanwhile.
func (ss *session) idle(cmd *imapwire.Command) error {
	c := ss.c
	if err := c.enc.Continue("idling"); err != nil {
		return err
	}
	if err := ss.sendUpdates(true); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return &abortError{err: err}
	}
	done := make(chan error, 1) // capacity 1: the reader never blocks on it
	go func() {
		done <- c.waitRead(false, c.dec.ReadDone)
	}()
	var wake <-chan struct{} // nil outside a mailbox: nothing to report
	if ss.sub != nil {
		wake = ss.sub.C
	}
	for {
		select {
		case err := <-done:
			if err != nil {
				var se *imapwire.SyntaxError
				if errors.As(err, &se) && !se.Fatal {
					return bad("Expected DONE")
				}
				if errors.Is(err, errStopping) {
					return &abortError{bye: "Server shutting down"}
				}
				if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
					return &abortError{bye: "Autologout; idle for too long"}
				}
				return &abortError{err: err}
			}
			return nil
		case <-wake:
			if err := ss.sendUpdates(true); err != nil {
				c.Cut()
				<-done
				return err
			}
			if err := c.flush(); err != nil {
				c.Cut()
				<-done
				return &abortError{err: err}
			}
		}
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
