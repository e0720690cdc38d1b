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
	Subscribed    bool   // the name is in the account's subscriptions
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
	res, err := tx.Exec(`INSERT INTO mailboxes (account, name, uidvalidity, uidnext, highestmodseq, special_use)
		VALUES (?, ?, ?, 1, 1, ?)`, account, name, uv, use)
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE") {
			return Mailbox{}, fmt.Errorf("%w: %s", ErrMailboxExists, name)
		}
		return Mailbox{}, fmt.Errorf("mailstore: create %s: %w", name, err)
	}
	id, _ := res.LastInsertId()
	if subscribed {
		if err := subscribeTx(tx, account, name); err != nil {
			return Mailbox{}, err
		}
	} else if subscribed, err = subscribedTx(tx, account, name); err != nil {
		// The name may have been subscribed before the mailbox existed.
		return Mailbox{}, err
	}
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
// does, rather than turned into a \Noselect placeholder. The name's
// subscription stays (RFC 3501 6.3.9: MUST NOT remove it; RFC 9051 6.3.7).
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
		rows, err := tx.Query(`SELECT name FROM mailboxes WHERE account = ? AND name LIKE ? ESCAPE '\'`,
			account, likePrefix(name+Separator))
		if err != nil {
			return fmt.Errorf("mailstore: delete %s: %w", name, err)
		}
		kids := false
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return fmt.Errorf("mailstore: delete %s: %w", name, err)
			}
			kids = kids || strings.HasPrefix(k, name+Separator) // LIKE ignores ASCII case
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("mailstore: delete %s: %w", name, err)
		}
		if kids {
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

// RenameMailbox renames a mailbox and its children (RFC 9051 6.3.6); their
// subscriptions move to the new names, as Dovecot does. Renaming INBOX
// moves its messages to a new mailbox of that name, subscribed if INBOX is,
// and leaves INBOX empty, with its UIDVALIDITY and subscription (RFC 9051
// 6.3.6).
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
				if strings.HasPrefix(k.name, from+Separator) { // LIKE ignores ASCII case
					kids = append(kids, k)
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("mailstore: rename: %w", err)
			}
			for _, k := range kids {
				if _, err := tx.Exec(`UPDATE mailboxes SET name = ? WHERE id = ?`, to+strings.TrimPrefix(k.name, from), k.id); err != nil {
					return fmt.Errorf("mailstore: rename child: %w", err)
				}
			}
		}
		if err := renameSubscriptionsTx(tx, account, from, to); err != nil {
			return err
		}
		o.after = append(o.after, func() {
			s.feed.publish(account, Change{Kind: MailboxRenamed, Mailbox: mb.ID, Name: to, OldName: from, Origin: origin(o.ctx)})
		})
		return nil
	})
}

// SetSubscribed adds a name to the account's subscriptions or removes it
// (RFC 9051 6.3.7, 6.3.8). The name need not be a mailbox (RFC 9051 6.3.7
// allows subscribing to one that does not exist); either way is idempotent.
func (s *Store) SetSubscribed(ctx context.Context, account, name string, on bool) error {
	name, err := CleanName(name)
	if err != nil {
		return err
	}
	return s.write(ctx, nil, func(tx *wtx, o *op) error {
		if on {
			return subscribeTx(tx, account, name)
		}
		if _, err := tx.Exec(`DELETE FROM subscriptions WHERE account = ? AND name = ?`, account, name); err != nil {
			return fmt.Errorf("mailstore: unsubscribe %s: %w", name, err)
		}
		return nil
	})
}

// Subscriptions lists the account's subscribed names, whether or not they
// are mailboxes, sorted as Mailboxes sorts them: INBOX first.
func (s *Store) Subscriptions(ctx context.Context, account string) ([]string, error) {
	rows, err := s.reader(ctx).Query(`SELECT name FROM subscriptions WHERE account = ?`, account)
	if err != nil {
		return nil, fmt.Errorf("mailstore: subscriptions: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("mailstore: subscriptions: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mailstore: subscriptions: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return nameLess(out[i], out[j]) })
	return out, nil
}

func subscribeTx(tx *wtx, account, name string) error {
	if _, err := tx.Exec(`INSERT INTO subscriptions (account, name) VALUES (?, ?) ON CONFLICT (account, name) DO NOTHING`, account, name); err != nil {
		return fmt.Errorf("mailstore: subscribe %s: %w", name, err)
	}
	return nil
}

func subscribedTx(tx *wtx, account, name string) (bool, error) {
	var one int
	err := tx.QueryRow(`SELECT 1 FROM subscriptions WHERE account = ? AND name = ?`, account, name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mailstore: subscription %s: %w", name, err)
	}
	return true, nil
}

// renameSubscriptionsTx moves the subscriptions of from and of the names
// below it to the same names under to. A new name already subscribed stays
// so, once.
func renameSubscriptionsTx(tx *wtx, account, from, to string) error {
	rows, err := tx.Query(`SELECT name FROM subscriptions WHERE account = ? AND (name = ? OR name LIKE ? ESCAPE '\')`,
		account, from, likePrefix(from+Separator))
	if err != nil {
		return fmt.Errorf("mailstore: rename subscriptions: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return fmt.Errorf("mailstore: rename subscriptions: %w", err)
		}
		if n == from || strings.HasPrefix(n, from+Separator) { // LIKE ignores ASCII case
			names = append(names, n)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("mailstore: rename subscriptions: %w", err)
	}
	for _, n := range names {
		if _, err := tx.Exec(`DELETE FROM subscriptions WHERE account = ? AND name = ?`, account, n); err != nil {
			return fmt.Errorf("mailstore: rename subscriptions: %w", err)
		}
		if err := subscribeTx(tx, account, to+strings.TrimPrefix(n, from)); err != nil {
			return err
		}
	}
	return nil
}

// mailboxColumns are scanMailbox's; Subscribed comes from the
// subscriptions table, so the query must be FROM mailboxes.
const mailboxColumns = `id, account, name, uidvalidity, uidnext, highestmodseq, messages, unseen, size,
	EXISTS (SELECT 1 FROM subscriptions WHERE subscriptions.account = mailboxes.account AND subscriptions.name = mailboxes.name),
	special_use`

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
	sort.Slice(out, func(i, j int) bool { return nameLess(out[i].Name, out[j].Name) })
	return out, rows.Err()
}

// nameLess orders mailbox names: INBOX first, then bytewise.
func nameLess(a, b string) bool {
	if (a == "INBOX") != (b == "INBOX") {
		return a == "INBOX"
	}
	return a < b
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

// likePrefix makes a LIKE pattern matching names that start with p. LIKE
// ignores ASCII case (SQLite's default), so callers check each name found.
func likePrefix(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(p) + "%"
}
