package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"posta/internal/blob"
)

// Flag is a system flag (RFC 9051 2.3.2).
type Flag uint8

// System flags. \Recent is not kept: IMAP4rev2 removed it (RFC 9051
// Appendix E) and its IMAP4rev1 meaning is a per-session artefact.
const (
	Seen Flag = 1 << iota
	Answered
	Flagged
	Deleted
	Draft
)

// Flags is a message's flags: system flags and keywords.
type Flags struct {
	System   Flag
	Keywords []string // sorted, unique (case-insensitively, RFC 9051 2.3.2)
}

// normKeywords sorts keywords and drops case-insensitive duplicates.
func normKeywords(kw []string) []string {
	if len(kw) == 0 {
		return nil
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(kw))
	for _, k := range kw {
		l := strings.ToLower(k)
		if k == "" || seen[l] {
			continue
		}
		seen[l] = true
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i]) < strings.ToLower(out[j]) })
	return out
}

func joinKeywords(kw []string) string { return strings.Join(normKeywords(kw), " ") }

func splitKeywords(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

// MessageMeta is what SELECT, FETCH FLAGS and POP3 LIST need of a message.
type MessageMeta struct {
	UID          uint32
	ModSeq       uint64
	Flags        Flags
	Size         int64
	InternalDate time.Time
}

// Message is a message's metadata plus where its body and structure are.
type Message struct {
	MessageMeta
	Body      BodyRef
	Structure []byte
}

// NewMessage is a message to add. Its body is either Inline (small bodies,
// stored in the same transaction as the metadata, so one group-commit fsync
// makes body and metadata durable together) or already committed in the
// blob store (Body from a blob.ID, with BlobDir the directory to sync before
// the commit).
type NewMessage struct {
	Body         BodyRef
	BlobDir      string
	Inline       []byte
	Size         int64
	InternalDate time.Time
	Flags        Flags
	Structure    []byte
}

// Delivery puts one message into one account's mailbox.
type Delivery struct {
	Account string
	Mailbox string // "" means INBOX
}

// AppendResult says where appended messages went (RFC 4315 APPENDUID).
type AppendResult struct {
	Mailbox     int64
	UIDValidity uint32
	UIDs        []uint32
}

// Append adds messages to one mailbox atomically (MULTIAPPEND, RFC 3502).
func (s *Store) Append(ctx context.Context, account, mailbox string, msgs ...NewMessage) (AppendResult, error) {
	name, err := CleanName(mailbox)
	if err != nil {
		return AppendResult{}, err
	}
	var res AppendResult
	err = s.write(ctx, blobDirs(msgs), func(tx *wtx, o *op) error {
		mb, err := mailboxTx(tx, account, name)
		if err != nil {
			return err
		}
		msgs := append([]NewMessage(nil), msgs...)
		for i := range msgs {
			if err := materialize(tx, &msgs[i]); err != nil {
				return err
			}
		}
		uids, err := s.insert(tx, o, mb, msgs)
		res = AppendResult{Mailbox: mb.ID, UIDValidity: mb.UIDValidity, UIDs: uids}
		return err
	})
	return res, err
}

// Deliver stores one message (body already committed) for several
// recipients in one transaction: each gets its own row pointing at the same
// body. Accounts and mailboxes missing are created (a new account's mail
// state starts at its first delivery); a missing non-INBOX mailbox falls back
// to INBOX.
func (s *Store) Deliver(ctx context.Context, msg NewMessage, to []Delivery) error {
	return s.write(ctx, blobDirs([]NewMessage{msg}), func(tx *wtx, o *op) error {
		msg := msg
		// One body row for all recipients.
		if err := materialize(tx, &msg); err != nil {
			return err
		}
		for _, d := range to {
			if err := s.ensureAccount(tx, o, d.Account); err != nil {
				return err
			}
			name := "INBOX"
			if d.Mailbox != "" {
				if n, err := CleanName(d.Mailbox); err == nil {
					name = n
				}
			}
			mb, err := mailboxTx(tx, d.Account, name)
			if errors.Is(err, ErrNoMailbox) {
				mb, err = mailboxTx(tx, d.Account, "INBOX")
			}
			if err != nil {
				return err
			}
			if _, err := s.insert(tx, o, mb, []NewMessage{msg}); err != nil {
				return err
			}
		}
		return nil
	})
}

func blobDirs(msgs []NewMessage) []string {
	var dirs []string
	for _, m := range msgs {
		if m.BlobDir != "" {
			dirs = append(dirs, m.BlobDir)
		}
	}
	return dirs
}

// insert adds msgs to mb with fresh UIDs and one new MODSEQ, and updates
// the mailbox counters and the account's usage in the same transaction.
func (s *Store) insert(tx *wtx, o *op, mb Mailbox, msgs []NewMessage) ([]uint32, error) {
	modseq, err := nextModSeq(tx, mb.Account)
	if err != nil {
		return nil, err
	}
	uids := make([]uint32, len(msgs))
	metas := make([]MessageMeta, len(msgs))
	var size int64
	unseen := 0
	for i, m := range msgs {
		uid := mb.UIDNext + uint32(i)
		date := m.InternalDate
		if date.IsZero() {
			date = s.now()
		}
		_, off := date.Zone()
		kw := normKeywords(m.Flags.Keywords)
		if _, err := tx.Exec(`INSERT INTO messages (mailbox_id, uid, modseq, blob, size, internal_date, date_offset, flags, keywords, structure)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, mb.ID, uid, modseq, string(m.Body), m.Size, date.Unix(), off,
			m.Flags.System, strings.Join(kw, " "), m.Structure); err != nil {
			return nil, fmt.Errorf("mailstore: insert message: %w", err)
		}
		uids[i] = uid
		metas[i] = MessageMeta{UID: uid, ModSeq: modseq, Flags: Flags{System: m.Flags.System, Keywords: kw}, Size: m.Size,
			InternalDate: time.Unix(date.Unix(), 0).In(time.FixedZone("", off))}
		size += m.Size
		if m.Flags.System&Seen == 0 {
			unseen++
		}
	}
	if _, err := tx.Exec(`UPDATE mailboxes SET uidnext = uidnext + ?, highestmodseq = ?, messages = messages + ?,
		unseen = unseen + ?, size = size + ? WHERE id = ?`, len(msgs), modseq, len(msgs), unseen, size, mb.ID); err != nil {
		return nil, fmt.Errorf("mailstore: mailbox counters: %w", err)
	}
	if _, err := tx.Exec(`UPDATE mail_accounts SET used_bytes = used_bytes + ? WHERE account = ?`, size, mb.Account); err != nil {
		return nil, fmt.Errorf("mailstore: usage: %w", err)
	}
	o.after = append(o.after, func() {
		s.feed.publish(mb.Account, Change{Kind: Added, Mailbox: mb.ID, ModSeq: modseq, UIDs: uids, Metas: metas, Origin: origin(o.ctx)})
	})
	return uids, nil
}

const metaColumns = `uid, modseq, flags, keywords, size, internal_date, date_offset`

func scanMeta(sc interface{ Scan(...any) error }, extra ...any) (MessageMeta, error) {
	var m MessageMeta
	var kw string
	var unix int64
	var off int
	err := sc.Scan(append([]any{&m.UID, &m.ModSeq, &m.Flags.System, &kw, &m.Size, &unix, &off}, extra...)...)
	m.Flags.Keywords = splitKeywords(kw)
	m.InternalDate = time.Unix(unix, 0).In(time.FixedZone("", off))
	return m, err
}

// Messages lists a mailbox's messages in UID order (what SELECT and POP3
// login need).
func (s *Store) Messages(ctx context.Context, mailbox int64) ([]MessageMeta, error) {
	if metas, ok := s.index.get(mailbox); ok {
		return metas, nil
	}
	gen := s.index.generation()
	metas, err := s.listMessages(ctx, mailbox)
	if err == nil {
		s.index.put(mailbox, metas, gen)
	}
	return metas, err
}

func (s *Store) listMessages(ctx context.Context, mailbox int64) ([]MessageMeta, error) {
	rows, err := s.reader(ctx).Query(`SELECT `+metaColumns+` FROM messages WHERE mailbox_id = ? ORDER BY uid`, mailbox)
	if err != nil {
		return nil, fmt.Errorf("mailstore: messages: %w", err)
	}
	defer rows.Close()
	var out []MessageMeta
	for rows.Next() {
		m, err := scanMeta(rows)
		if err != nil {
			return nil, fmt.Errorf("mailstore: messages: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// bulkMetas is how many UIDs make one listing of the whole mailbox cheaper
// than a point query each, when the mailbox is not in the index.
const bulkMetas = 64

// Metas returns the metadata of the messages with the given UIDs, in the
// order given, leaving out those that do not exist (expunged): from the
// index when the mailbox is in it (IMAP FETCH and STORE of a few messages
// then cost no query), else by point queries, or one listing for many.
func (s *Store) Metas(ctx context.Context, mailbox int64, uids []uint32) ([]MessageMeta, error) {
	if out, ok := s.index.lookup(mailbox, uids); ok {
		return out, nil
	}
	if len(uids) > bulkMetas {
		all, err := s.Messages(ctx, mailbox)
		if err != nil {
			return nil, err
		}
		return pick(all, uids), nil
	}
	out := make([]MessageMeta, 0, len(uids))
	q := s.reader(ctx)
	for _, u := range uids {
		m, err := scanMeta(q.QueryRow(`SELECT `+metaColumns+` FROM messages WHERE mailbox_id = ? AND uid = ?`, mailbox, u))
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("mailstore: message metadata: %w", err)
		}
		out = append(out, m)
	}
	return out, nil
}

// MessageRange returns the messages with UIDs from first to last (inclusive),
// with body references and structures, in UID order: one query for what
// FETCH of many messages would otherwise ask one by one.
func (s *Store) MessageRange(ctx context.Context, mailbox int64, first, last uint32) ([]Message, error) {
	rows, err := s.reader(ctx).Query(`SELECT `+metaColumns+`, blob, structure FROM messages
		WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid`, mailbox, first, last)
	if err != nil {
		return nil, fmt.Errorf("mailstore: message range: %w", err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		var m Message
		var b string
		meta, err := scanMeta(rows, &b, &m.Structure)
		if err != nil {
			return nil, fmt.Errorf("mailstore: message range: %w", err)
		}
		m.MessageMeta, m.Body = meta, BodyRef(b)
		out = append(out, m)
	}
	return out, rows.Err()
}

// Message returns one message with its body reference and structure.
func (s *Store) Message(ctx context.Context, mailbox int64, uid uint32) (Message, error) {
	var m Message
	var b string
	meta, err := scanMeta(s.reader(ctx).QueryRow(`SELECT `+metaColumns+`, blob, structure FROM messages
		WHERE mailbox_id = ? AND uid = ?`, mailbox, uid), &b, &m.Structure)
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, fmt.Errorf("%w: uid %d", ErrNoMessage, uid)
	}
	if err != nil {
		return Message{}, fmt.Errorf("mailstore: message: %w", err)
	}
	m.MessageMeta, m.Body = meta, BodyRef(b)
	return m, nil
}

// Changes returns what changed in a mailbox after modseq: messages whose
// MODSEQ is higher (RFC 7162 CHANGEDSINCE) and UIDs expunged since
// (QRESYNC VANISHED).
func (s *Store) Changes(ctx context.Context, mailbox int64, since uint64) ([]MessageMeta, []uint32, error) {
	rows, err := s.reader(ctx).Query(`SELECT `+metaColumns+` FROM messages WHERE mailbox_id = ? AND modseq > ? ORDER BY uid`, mailbox, since)
	if err != nil {
		return nil, nil, fmt.Errorf("mailstore: changes: %w", err)
	}
	var changed []MessageMeta
	for rows.Next() {
		m, err := scanMeta(rows)
		if err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("mailstore: changes: %w", err)
		}
		changed = append(changed, m)
	}
	rows.Close()
	rows, err = s.reader(ctx).Query(`SELECT uid FROM tombstones WHERE mailbox_id = ? AND modseq > ? ORDER BY uid`, mailbox, since)
	if err != nil {
		return nil, nil, fmt.Errorf("mailstore: vanished: %w", err)
	}
	defer rows.Close()
	var vanished []uint32
	for rows.Next() {
		var u uint32
		if err := rows.Scan(&u); err != nil {
			return nil, nil, fmt.Errorf("mailstore: vanished: %w", err)
		}
		vanished = append(vanished, u)
	}
	return changed, vanished, rows.Err()
}

// FlagOp is how SetFlags applies flags (RFC 9051 6.4.6: FLAGS, +FLAGS, -FLAGS).
type FlagOp int

const (
	FlagsReplace FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// SetFlags changes the flags of the given UIDs. With unchangedSince > 0
// (RFC 7162 3.1.3 UNCHANGEDSINCE), messages whose MODSEQ is higher are left
// alone and returned in modified. updated holds every message whose flags
// actually changed, with its new MODSEQ.
func (s *Store) SetFlags(ctx context.Context, mailbox int64, uids []uint32, fop FlagOp, f Flags, unchangedSince uint64) (updated []MessageMeta, modified []uint32, err error) {
	err = s.writeFlags(ctx, func(tx *wtx, o *op) error {
		updated, modified = nil, nil
		var account string
		if err := tx.QueryRow(`SELECT account FROM mailboxes WHERE id = ?`, mailbox).Scan(&account); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNoMailbox
			}
			return fmt.Errorf("mailstore: flags: %w", err)
		}
		var modseq uint64
		unseenDelta := 0
		for _, uid := range uids {
			m, err := scanMeta(tx.QueryRow(`SELECT `+metaColumns+` FROM messages WHERE mailbox_id = ? AND uid = ?`, mailbox, uid))
			if errors.Is(err, sql.ErrNoRows) {
				continue // expunged meanwhile: nothing to do (RFC 9051 6.4.6 allows silence)
			}
			if err != nil {
				return fmt.Errorf("mailstore: flags: %w", err)
			}
			if unchangedSince > 0 && m.ModSeq > unchangedSince {
				modified = append(modified, uid)
				continue
			}
			nf := applyFlags(m.Flags, fop, f)
			if nf.System == m.Flags.System && joinKeywords(nf.Keywords) == joinKeywords(m.Flags.Keywords) {
				continue
			}
			if modseq == 0 {
				if modseq, err = nextModSeq(tx, account); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(`UPDATE messages SET flags = ?, keywords = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?`,
				nf.System, joinKeywords(nf.Keywords), modseq, mailbox, uid); err != nil {
				return fmt.Errorf("mailstore: flags: %w", err)
			}
			if (m.Flags.System&Seen == 0) != (nf.System&Seen == 0) {
				if nf.System&Seen != 0 {
					unseenDelta--
				} else {
					unseenDelta++
				}
			}
			m.Flags, m.ModSeq = Flags{System: nf.System, Keywords: normKeywords(nf.Keywords)}, modseq
			updated = append(updated, m)
		}
		if modseq == 0 {
			return nil
		}
		if _, err := tx.Exec(`UPDATE mailboxes SET highestmodseq = ?, unseen = unseen + ? WHERE id = ?`, modseq, unseenDelta, mailbox); err != nil {
			return fmt.Errorf("mailstore: flags: %w", err)
		}
		changed := updated
		o.after = append(o.after, func() {
			uids := make([]uint32, len(changed))
			for i, m := range changed {
				uids[i] = m.UID
			}
			s.feed.publish(account, Change{Kind: FlagsChanged, Mailbox: mailbox, ModSeq: modseq, UIDs: uids, Metas: changed, Origin: origin(o.ctx)})
		})
		return nil
	})
	return updated, modified, err
}

func applyFlags(cur Flags, fop FlagOp, f Flags) Flags {
	switch fop {
	case FlagsAdd:
		return Flags{System: cur.System | f.System, Keywords: normKeywords(append(append([]string{}, cur.Keywords...), f.Keywords...))}
	case FlagsRemove:
		drop := map[string]bool{}
		for _, k := range f.Keywords {
			drop[strings.ToLower(k)] = true
		}
		var kw []string
		for _, k := range cur.Keywords {
			if !drop[strings.ToLower(k)] {
				kw = append(kw, k)
			}
		}
		return Flags{System: cur.System &^ f.System, Keywords: kw}
	default:
		return Flags{System: f.System, Keywords: normKeywords(f.Keywords)}
	}
}

// Expunge removes messages: the given UIDs that carry \Deleted, or every
// \Deleted message when uids is nil (RFC 9051 6.4.3, 6.4.9 UID EXPUNGE).
// Each leaves a tombstone for QRESYNC. Bodies no other message refers to
// are removed after the commit.
func (s *Store) Expunge(ctx context.Context, mailbox int64, uids []uint32) ([]uint32, error) {
	var expunged []uint32
	err := s.write(ctx, nil, func(tx *wtx, o *op) error {
		var err error
		expunged, err = s.remove(tx, o, mailbox, uids, true)
		return err
	})
	return expunged, err
}

// Remove expunges exactly the given messages, whatever their flags, in one
// change: POP3's UPDATE state (RFC 1939 6) deletes what the session marked,
// and a crash leaves either all of them or none, never messages that are
// only flagged \Deleted. Unknown UIDs are skipped; the removed ones are
// returned.
func (s *Store) Remove(ctx context.Context, mailbox int64, uids []uint32) ([]uint32, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	var removed []uint32
	err := s.write(ctx, nil, func(tx *wtx, o *op) error {
		var err error
		removed, err = s.remove(tx, o, mailbox, uids, false)
		return err
	})
	return removed, err
}

// remove deletes messages from a mailbox (only \Deleted ones if
// onlyDeleted), writes tombstones, fixes counters and schedules body removal.
func (s *Store) remove(tx *wtx, o *op, mailbox int64, uids []uint32, onlyDeleted bool) ([]uint32, error) {
	var account string
	if err := tx.QueryRow(`SELECT account FROM mailboxes WHERE id = ?`, mailbox).Scan(&account); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNoMailbox
		}
		return nil, fmt.Errorf("mailstore: expunge: %w", err)
	}
	var cands []uint32
	if uids == nil {
		// The condition is the messages_deleted index's, word for word
		// (a partial index serves only a query that implies its WHERE).
		rows, err := tx.Query(`SELECT uid FROM messages WHERE mailbox_id = ? AND (flags & 8) <> 0 ORDER BY uid`, mailbox)
		if err != nil {
			return nil, fmt.Errorf("mailstore: expunge: %w", err)
		}
		for rows.Next() {
			var u uint32
			if err := rows.Scan(&u); err != nil {
				rows.Close()
				return nil, fmt.Errorf("mailstore: expunge: %w", err)
			}
			cands = append(cands, u)
		}
		rows.Close()
	} else {
		cands = append([]uint32(nil), uids...)
		sort.Slice(cands, func(i, j int) bool { return cands[i] < cands[j] })
	}
	var gone []uint32
	var bodies []BodyRef
	var size int64
	unseen := 0
	var modseq uint64
	for _, uid := range cands {
		var b string
		var sz int64
		var fl Flag
		err := tx.QueryRow(`SELECT blob, size, flags FROM messages WHERE mailbox_id = ? AND uid = ?`, mailbox, uid).Scan(&b, &sz, &fl)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("mailstore: expunge: %w", err)
		}
		if onlyDeleted && fl&Deleted == 0 {
			continue
		}
		if modseq == 0 {
			if modseq, err = nextModSeq(tx, account); err != nil {
				return nil, err
			}
		}
		if _, err := tx.Exec(`DELETE FROM messages WHERE mailbox_id = ? AND uid = ?`, mailbox, uid); err != nil {
			return nil, fmt.Errorf("mailstore: expunge: %w", err)
		}
		if _, err := tx.Exec(`INSERT INTO tombstones (mailbox_id, uid, modseq) VALUES (?, ?, ?)`, mailbox, uid, modseq); err != nil {
			return nil, fmt.Errorf("mailstore: tombstone: %w", err)
		}
		gone = append(gone, uid)
		bodies = append(bodies, BodyRef(b))
		size += sz
		if fl&Seen == 0 {
			unseen++
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	if _, err := tx.Exec(`UPDATE mailboxes SET messages = messages - ?, unseen = unseen - ?, size = size - ?, highestmodseq = ?
		WHERE id = ?`, len(gone), unseen, size, modseq, mailbox); err != nil {
		return nil, fmt.Errorf("mailstore: expunge counters: %w", err)
	}
	if _, err := tx.Exec(`UPDATE mail_accounts SET used_bytes = used_bytes - ? WHERE account = ?`, size, account); err != nil {
		return nil, fmt.Errorf("mailstore: usage: %w", err)
	}
	dead, err := dropUnreferenced(tx, bodies)
	if err != nil {
		return nil, err
	}
	o.after = append(o.after, func() {
		s.feed.publish(account, Change{Kind: Expunged, Mailbox: mailbox, ModSeq: modseq, UIDs: gone, Origin: origin(o.ctx)})
		s.removeBlobs(dead)
	})
	return gone, nil
}

// Copy copies messages to another mailbox of the same account; the copies
// share the bodies. It returns the source UIDs copied and their new UIDs in
// the same order (RFC 4315 COPYUID).
func (s *Store) Copy(ctx context.Context, from int64, uids []uint32, to int64) (AppendResult, []uint32, error) {
	return s.copyMove(ctx, from, uids, to, false)
}

// Move moves messages (RFC 6851): a copy and an expunge of the source in one
// transaction, so no other session can see both or neither.
func (s *Store) Move(ctx context.Context, from int64, uids []uint32, to int64) (AppendResult, []uint32, error) {
	return s.copyMove(ctx, from, uids, to, true)
}

func (s *Store) copyMove(ctx context.Context, from int64, uids []uint32, to int64, move bool) (AppendResult, []uint32, error) {
	var res AppendResult
	var src []uint32
	err := s.write(ctx, nil, func(tx *wtx, o *op) error {
		dst, err := scanMailbox(tx.QueryRow(`SELECT `+mailboxColumns+` FROM mailboxes WHERE id = ?`, to))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoMailbox
		}
		if err != nil {
			return fmt.Errorf("mailstore: copy: %w", err)
		}
		res, src, err = s.copyMoveTx(tx, o, from, uids, dst, move)
		return err
	})
	return res, src, err
}

// copyMoveTx copies (or moves) messages into dst inside a transaction.
func (s *Store) copyMoveTx(tx *wtx, o *op, from int64, uids []uint32, dst Mailbox, move bool) (AppendResult, []uint32, error) {
	var src []uint32
	sorted := append([]uint32(nil), uids...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	var msgs []NewMessage
	for _, uid := range sorted {
		var m NewMessage
		var b string
		var unix int64
		var off int
		var kw string
		err := tx.QueryRow(`SELECT blob, size, internal_date, date_offset, flags, keywords, structure FROM messages
			WHERE mailbox_id = ? AND uid = ?`, from, uid).Scan(&b, &m.Size, &unix, &off, &m.Flags.System, &kw, &m.Structure)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return AppendResult{}, nil, fmt.Errorf("mailstore: copy: %w", err)
		}
		m.Body = BodyRef(b)
		m.InternalDate = time.Unix(unix, 0).In(time.FixedZone("", off))
		m.Flags.Keywords = splitKeywords(kw)
		msgs = append(msgs, m)
		src = append(src, uid)
	}
	if len(msgs) == 0 {
		return AppendResult{}, nil, nil
	}
	newUIDs, err := s.insert(tx, o, dst, msgs)
	if err != nil {
		return AppendResult{}, nil, err
	}
	if move {
		if _, err := s.remove(tx, o, from, src, false); err != nil {
			return AppendResult{}, nil, err
		}
	}
	return AppendResult{Mailbox: dst.ID, UIDValidity: dst.UIDValidity, UIDs: newUIDs}, src, nil
}

// bodiesOf lists the bodies of a mailbox's messages.
func bodiesOf(tx *wtx, mailbox int64) ([]BodyRef, error) {
	rows, err := tx.Query(`SELECT blob FROM messages WHERE mailbox_id = ?`, mailbox)
	if err != nil {
		return nil, fmt.Errorf("mailstore: bodies: %w", err)
	}
	defer rows.Close()
	var out []BodyRef
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("mailstore: bodies: %w", err)
		}
		out = append(out, BodyRef(b))
	}
	return out, rows.Err()
}

// dropUnreferenced finds the bodies among refs that no message row refers
// to any more (call after the rows are deleted, inside the transaction).
// Inline bodies are deleted in the transaction; the blob files are returned
// for removal after the commit.
func dropUnreferenced(tx *wtx, refs []BodyRef) ([]blob.ID, error) {
	var files []blob.ID
	seen := map[BodyRef]bool{}
	for _, ref := range refs {
		if seen[ref] {
			continue
		}
		seen[ref] = true
		var one int
		err := tx.QueryRow(`SELECT 1 FROM messages WHERE blob = ? LIMIT 1`, string(ref)).Scan(&one)
		if err == nil {
			continue
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("mailstore: body refs: %w", err)
		}
		if id, ok := ref.inline(); ok {
			if _, err := tx.Exec(`DELETE FROM bodies WHERE id = ?`, id); err != nil {
				return nil, fmt.Errorf("mailstore: drop body: %w", err)
			}
			continue
		}
		files = append(files, blob.ID(ref))
	}
	return files, nil
}

// removeBlobs deletes body files after the commit that dropped their last
// row. A crash before this leaves only unreferenced files (space, not data).
func (s *Store) removeBlobs(ids []blob.ID) {
	for _, id := range ids {
		if err := s.blobs.Remove(id); err != nil {
			s.log.Warn("mailstore: remove body", "blob", string(id), "err", err)
		}
	}
}
