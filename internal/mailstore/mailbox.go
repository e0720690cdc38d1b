package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// Separator is the hierarchy separator of mailbox names.
const Separator = "/"

// Mailbox is one folder's state.
type Mailbox struct {
	ID            int64
	Account       string
	Name          string
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64
	Messages      int
	Unseen        int
	Size          int64
	Subscribed    bool
	SpecialUse    string // "\Sent", "\Drafts", ... or ""
}

// defaultMailboxes are created with every account (RFC 6154 special uses).
var defaultMailboxes = []struct{ name, use string }{
	{"INBOX", ""}, {"Drafts", `\Drafts`}, {"Sent", `\Sent`}, {"Archive", `\Archive`}, {"Junk", `\Junk`}, {"Trash", `\Trash`},
}

// CleanName validates a mailbox name and canonicalises INBOX's case
// (RFC 9051 5.1: INBOX is case-insensitive).
func CleanName(name string) (string, error) {
	if name == "" || !utf8.ValidString(name) || len(name) > 1000 {
		return "", fmt.Errorf("%w: %q", ErrBadName, name)
	}
	if strings.HasPrefix(name, Separator) || strings.HasSuffix(name, Separator) || strings.Contains(name, Separator+Separator) {
		return "", fmt.Errorf("%w: %q has an empty level", ErrBadName, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%w: control character in %q", ErrBadName, name)
		}
	}
	first, rest, _ := strings.Cut(name, Separator)
	if strings.EqualFold(first, "INBOX") {
		if rest == "" {
			return "INBOX", nil
		}
		return "INBOX" + Separator + rest, nil
	}
	return name, nil
}

// EnsureAccount creates the account's mail state and default mailboxes if
// they do not exist yet.
func (s *Store) EnsureAccount(ctx context.Context, account string) error {
	return s.write(ctx, nil, func(tx *wtx, o *op) error {
		return s.ensureAccount(tx, o, account)
	})
}

func (s *Store) ensureAccount(tx *wtx, o *op, account string) error {
	var one int
	err := tx.QueryRow(`SELECT 1 FROM mail_accounts WHERE account = ?`, account).Scan(&one)
	if err == nil {
		return nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("mailstore: account %s: %w", account, err)
	}
	// UIDVALIDITY starts from the clock so a re-created account never
	// reuses a value a client may have cached (RFC 9051 2.3.1.1).
	if _, err := tx.Exec(`INSERT INTO mail_accounts (account, modseq, uidvalidity_next) VALUES (?, 1, ?)`,
		account, uint32(s.now().Unix())); err != nil {
		return fmt.Errorf("mailstore: account %s: %w", account, err)
	}
	for _, m := range defaultMailboxes {
		if _, err := s.createMailbox(tx, o, account, m.name, m.use, true); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) createMailbox(tx *wtx, o *op, account, name, use string, subscribed bool) (Mailbox, error) {
	var uv uint32
	err := tx.QueryRow(`UPDATE mail_accounts SET uidvalidity_next = uidvalidity_next + 1 WHERE account = ?
		RETURNING uidvalidity_next - 1`, account).Scan(&uv)
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, fmt.Errorf("%w: %s", ErrNoAccount, account)
	}
	if err != nil {
		return Mailbox{}, fmt.Errorf("mailstore: uidvalidity: %w", err)
	}
	res, err := tx.Exec(`INSERT INTO mailboxes (account, name, uidvalidity, uidnext, highestmodseq, subscribed, special_use)
		VALUES (?, ?, ?, 1, 1, ?, ?)`, account, name, uv, subscribed, use)
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE") {
			return Mailbox{}, fmt.Errorf("%w: %s", ErrMailboxExists, name)
		}
		return Mailbox{}, fmt.Errorf("mailstore: create %s: %w", name, err)
	}
	id, _ := res.LastInsertId()
	o.after = append(o.after, func() {
		s.feed.publish(account, Change{Kind: MailboxCreated, Mailbox: id, Name: name, Origin: origin(o.ctx)})
	})
	return Mailbox{ID: id, Account: account, Name: name, UIDValidity: uv, UIDNext: 1, HighestModSeq: 1,
		Subscribed: subscribed, SpecialUse: use}, nil
}

// CreateMailbox creates a mailbox and any missing parents (RFC 9051 6.3.4).
func (s *Store) CreateMailbox(ctx context.Context, account, name, specialUse string) (Mailbox, error) {
	name, err := CleanName(name)
	if err != nil {
		return Mailbox{}, err
	}
	var mb Mailbox
	err = s.write(ctx, nil, func(tx *wtx, o *op) error {
		if err := s.ensureAccount(tx, o, account); err != nil {
			return err
		}
		parts := strings.Split(name, Separator)
		for i := 1; i < len(parts); i++ {
			parent := strings.Join(parts[:i], Separator)
			if _, err := s.createMailbox(tx, o, account, parent, "", false); err != nil && !errors.Is(err, ErrMailboxExists) {
				return err
			}
		}
		mb, err = s.createMailbox(tx, o, account, name, specialUse, false)
		return err
	})
	return mb, err
}

// DeleteMailbox removes a mailbox and its messages. INBOX cannot be
// deleted (RFC 9051 6.3.5); a mailbox with children is refused, as Dovecot
// does, rather than turned into a \Noselect placeholder.
func (s *Store) DeleteMailbox(ctx context.Context, account, name string) error {
	name, err := CleanName(name)
	if err != nil {
		return err
	}
	if name == "INBOX" {
		return ErrInbox
	}
	err = s.write(ctx, nil, func(tx *wtx, o *op) error {
		mb, err := mailboxTx(tx, account, name)
		if err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(`SELECT COUNT(*) FROM mailboxes WHERE account = ? AND name LIKE ? ESCAPE '\'`,
			account, likePrefix(name+Separator)).Scan(&n); err != nil {
			return fmt.Errorf("mailstore: delete %s: %w", name, err)
		}
		if n > 0 {
			return fmt.Errorf("%w: %s", ErrHasChildren, name)
		}
		bodies, err := bodiesOf(tx, mb.ID)
		if err != nil {
			return err
		}
		for _, stmt := range []string{`DELETE FROM messages WHERE mailbox_id = ?`, `DELETE FROM tombstones WHERE mailbox_id = ?`,
			`DELETE FROM mailboxes WHERE id = ?`} {
			if _, err := tx.Exec(stmt, mb.ID); err != nil {
				return fmt.Errorf("mailstore: delete %s: %w", name, err)
			}
		}
		if _, err := tx.Exec(`UPDATE mail_accounts SET used_bytes = used_bytes - ? WHERE account = ?`, mb.Size, account); err != nil {
			return fmt.Errorf("mailstore: delete %s: %w", name, err)
		}
		gone, err := dropUnreferenced(tx, bodies)
		if err != nil {
			return err
		}
		o.after = append(o.after, func() {
			s.feed.publish(account, Change{Kind: MailboxDeleted, Mailbox: mb.ID, Name: name, Origin: origin(o.ctx)})
			s.removeBlobs(gone)
		})
		return nil
	})
	return err
}

// RenameMailbox renames a mailbox and its children (RFC 9051 6.3.6).
// Renaming INBOX moves its messages to a new mailbox of that name and
// leaves INBOX empty, with its UIDVALIDITY (RFC 9051 6.3.6).
func (s *Store) RenameMailbox(ctx context.Context, account, from, to string) error {
	from, err := CleanName(from)
	if err != nil {
		return err
	}
	to, err = CleanName(to)
	if err != nil {
		return err
	}
	if to == "INBOX" {
		return fmt.Errorf("%w: INBOX", ErrMailboxExists)
	}
	return s.write(ctx, nil, func(tx *wtx, o *op) error {
		mb, err := mailboxTx(tx, account, from)
		if err != nil {
			return err
		}
		if _, err := mailboxTx(tx, account, to); err == nil {
			return fmt.Errorf("%w: %s", ErrMailboxExists, to)
		}
		if strings.HasPrefix(to, from+Separator) {
			return fmt.Errorf("%w: cannot move %s into itself", ErrBadName, from)
		}
		parts := strings.Split(to, Separator)
		for i := 1; i < len(parts); i++ {
			parent := strings.Join(parts[:i], Separator)
			if _, err := s.createMailbox(tx, o, account, parent, "", false); err != nil && !errors.Is(err, ErrMailboxExists) {
				return err
			}
		}
		if from == "INBOX" {
			// RFC 9051 6.3.6: renaming INBOX moves its messages to a new
			// mailbox and leaves INBOX empty. INBOX keeps its identity, so
			// sessions that have it selected see the messages expunged.
			dst, err := s.createMailbox(tx, o, account, to, "", mb.Subscribed)
			if err != nil {
				return err
			}
			rows, err := tx.Query(`SELECT uid FROM messages WHERE mailbox_id = ?`, mb.ID)
			if err != nil {
				return fmt.Errorf("mailstore: rename INBOX: %w", err)
			}
			var uids []uint32
			for rows.Next() {
				var u uint32
				if err := rows.Scan(&u); err != nil {
					rows.Close()
					return fmt.Errorf("mailstore: rename INBOX: %w", err)
				}
				uids = append(uids, u)
			}
			rows.Close()
			_, _, err = s.copyMoveTx(tx, o, mb.ID, uids, dst, true)
			return err
		}
		if _, err := tx.Exec(`UPDATE mailboxes SET name = ? WHERE id = ?`, to, mb.ID); err != nil {
			return fmt.Errorf("mailstore: rename: %w", err)
		}
		{
			// Children move along: a/b -> c/b.
			rows, err := tx.Query(`SELECT id, name FROM mailboxes WHERE account = ? AND name LIKE ? ESCAPE '\'`,
				account, likePrefix(from+Separator))
			if err != nil {
				return fmt.Errorf("mailstore: rename: %w", err)
			}
			type kid struct {
				id   int64
				name string
			}
			var kids []kid
			for rows.Next() {
				var k kid
				if err := rows.Scan(&k.id, &k.name); err != nil {
					rows.Close()
					return fmt.Errorf("mailstore: rename: %w", err)
				}
				kids = append(kids, k)
			}
			rows.Close()
			for _, k := range kids {
				if _, err := tx.Exec(`UPDATE mailboxes SET name = ? WHERE id = ?`, to+strings.TrimPrefix(k.name, from), k.id); err != nil {
					return fmt.Errorf("mailstore: rename child: %w", err)
				}
			}
		}
		o.after = append(o.after, func() {
			s.feed.publish(account, Change{Kind: MailboxRenamed, Mailbox: mb.ID, Name: to, OldName: from, Origin: origin(o.ctx)})
		})
		return nil
	})
}

// SetSubscribed changes a mailbox's subscription (RFC 9051 6.3.7, 6.3.8).
func (s *Store) SetSubscribed(ctx context.Context, account, name string, on bool) error {
	name, err := CleanName(name)
	if err != nil {
		return err
	}
	return s.write(ctx, nil, func(tx *wtx, o *op) error {
		res, err := tx.Exec(`UPDATE mailboxes SET subscribed = ? WHERE account = ? AND name = ?`, on, account, name)
		if err != nil {
			return fmt.Errorf("mailstore: subscribe: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %s", ErrNoMailbox, name)
		}
		return nil
	})
}

const mailboxColumns = `id, account, name, uidvalidity, uidnext, highestmodseq, messages, unseen, size, subscribed, special_use`

func scanMailbox(sc interface{ Scan(...any) error }) (Mailbox, error) {
	var m Mailbox
	err := sc.Scan(&m.ID, &m.Account, &m.Name, &m.UIDValidity, &m.UIDNext, &m.HighestModSeq, &m.Messages, &m.Unseen,
		&m.Size, &m.Subscribed, &m.SpecialUse)
	return m, err
}

type rowQuerier interface {
	QueryRow(query string, args ...any) *sql.Row
}

func mailboxTx(q rowQuerier, account, name string) (Mailbox, error) {
	m, err := scanMailbox(q.QueryRow(`SELECT `+mailboxColumns+` FROM mailboxes WHERE account = ? AND name = ?`, account, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, fmt.Errorf("%w: %s", ErrNoMailbox, name)
	}
	if err != nil {
		return Mailbox{}, fmt.Errorf("mailstore: mailbox %s: %w", name, err)
	}
	return m, nil
}

// Mailbox returns one mailbox by name.
func (s *Store) Mailbox(ctx context.Context, account, name string) (Mailbox, error) {
	name, err := CleanName(name)
	if err != nil {
		return Mailbox{}, err
	}
	return mailboxTx(s.reader(ctx), account, name)
}

// MailboxByID returns one mailbox by id.
func (s *Store) MailboxByID(ctx context.Context, id int64) (Mailbox, error) {
	m, err := scanMailbox(s.reader(ctx).QueryRow(`SELECT `+mailboxColumns+` FROM mailboxes WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, fmt.Errorf("%w: id %d", ErrNoMailbox, id)
	}
	if err != nil {
		return Mailbox{}, fmt.Errorf("mailstore: mailbox %d: %w", id, err)
	}
	return m, nil
}

// Mailboxes lists an account's mailboxes sorted by name, INBOX first.
func (s *Store) Mailboxes(ctx context.Context, account string) ([]Mailbox, error) {
	rows, err := s.reader(ctx).Query(`SELECT `+mailboxColumns+` FROM mailboxes WHERE account = ?`, account)
	if err != nil {
		return nil, fmt.Errorf("mailstore: mailboxes: %w", err)
	}
	defer rows.Close()
	var out []Mailbox
	for rows.Next() {
		m, err := scanMailbox(rows)
		if err != nil {
			return nil, fmt.Errorf("mailstore: mailboxes: %w", err)
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Name, out[j].Name
		if (a == "INBOX") != (b == "INBOX") {
			return a == "INBOX"
		}
		return a < b
	})
	return out, rows.Err()
}

// Usage is the bytes of mail the account stores, for quota.
func (s *Store) Usage(ctx context.Context, account string) (int64, error) {
	var n int64
	err := s.reader(ctx).QueryRow(`SELECT used_bytes FROM mail_accounts WHERE account = ?`, account).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("mailstore: usage: %w", err)
	}
	return n, nil
}

// likePrefix makes a LIKE pattern matching names that start with p.
func likePrefix(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(p) + "%"
}
