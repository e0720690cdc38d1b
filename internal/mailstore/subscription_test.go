package mailstore

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"posta/internal/database"
)

func (e *env) subscriptions(account string) []string {
	e.t.Helper()
	subs, err := e.s.Subscriptions(e.ctx, account)
	e.must(err)
	return subs
}

func (e *env) wantSubscriptions(account string, want ...string) {
	e.t.Helper()
	if got := e.subscriptions(account); !reflect.DeepEqual(got, want) {
		e.t.Fatalf("subscriptions %q, want %q", got, want)
	}
}

var defaultSubscriptions = []string{"INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"}

// withDefaults is the default subscriptions and extra, in Subscriptions'
// order.
func withDefaults(extra ...string) []string {
	out := append(slices.Clone(defaultSubscriptions), extra...)
	slices.SortFunc(out, func(a, b string) int {
		if nameLess(a, b) {
			return -1
		}
		if nameLess(b, a) {
			return 1
		}
		return 0
	})
	return out
}

func TestSubscriptionsAreNames(t *testing.T) {
	e := newEnv(t)
	const a = "alice@example.test"
	e.must(e.s.EnsureAccount(e.ctx, a))
	e.wantSubscriptions(a, defaultSubscriptions...)
	e.wantSubscriptions("nobody@example.test")

	// A name that is no mailbox (RFC 9051 6.3.7); twice is once.
	e.must(e.s.SetSubscribed(e.ctx, a, "Ghost/Child", true))
	e.must(e.s.SetSubscribed(e.ctx, a, "Ghost/Child", true))
	e.wantSubscriptions(a, withDefaults("Ghost/Child")...)
	if _, err := e.s.Mailbox(e.ctx, a, "Ghost/Child"); !errors.Is(err, ErrNoMailbox) {
		t.Fatalf("subscribing created the mailbox: %v", err)
	}
	// Names are checked as mailbox names, and INBOX is INBOX in any case.
	for _, bad := range []string{"", "/x", "a//b", "a\x00b"} {
		if err := e.s.SetSubscribed(e.ctx, a, bad, true); !errors.Is(err, ErrBadName) {
			t.Errorf("SetSubscribed(%q) = %v", bad, err)
		}
	}
	e.must(e.s.SetSubscribed(e.ctx, a, "inbox", false))
	if e.mailbox(a, "INBOX").Subscribed {
		t.Fatal("INBOX still subscribed")
	}
	e.must(e.s.SetSubscribed(e.ctx, a, "iNbOx", true))
	e.must(e.s.SetSubscribed(e.ctx, a, "Inbox/Sub", true))
	e.wantSubscriptions(a, "INBOX", "Archive", "Drafts", "Ghost/Child", "INBOX/Sub", "Junk", "Sent", "Trash")
	// Unsubscribing what is not subscribed is no error.
	e.must(e.s.SetSubscribed(e.ctx, a, "INBOX/Sub", false))
	e.must(e.s.SetSubscribed(e.ctx, a, "INBOX/Sub", false))
	e.must(e.s.SetSubscribed(e.ctx, a, "Never", false))

	// Creating the mailbox finds the subscription waiting; its new parent is
	// not subscribed.
	mb, err := e.s.CreateMailbox(e.ctx, a, "Ghost/Child", "")
	e.must(err)
	if !mb.Subscribed || !e.mailbox(a, "Ghost/Child").Subscribed || e.mailbox(a, "Ghost").Subscribed {
		t.Fatalf("created %+v; Ghost/Child %+v, Ghost %+v", mb, e.mailbox(a, "Ghost/Child"), e.mailbox(a, "Ghost"))
	}
	if mb, err := e.s.CreateMailbox(e.ctx, a, "Plain", ""); err != nil || mb.Subscribed || e.mailbox(a, "Plain").Subscribed {
		t.Fatalf("new mailbox subscribed: %+v %v", mb, err)
	}

	// The subscription outlives the mailbox (RFC 3501 6.3.9).
	e.must(e.s.DeleteMailbox(e.ctx, a, "Ghost/Child"))
	e.must(e.s.DeleteMailbox(e.ctx, a, "Sent"))
	e.wantSubscriptions(a, withDefaults("Ghost/Child")...)
	mbs, err := e.s.Mailboxes(e.ctx, a)
	e.must(err)
	for _, m := range mbs {
		if m.Name == "Ghost/Child" || m.Name == "Sent" {
			t.Fatalf("deleted mailbox listed: %+v", m)
		}
		if m.Subscribed != (m.Name != "Ghost" && m.Name != "Plain") {
			t.Errorf("Mailboxes: %s subscribed=%v", m.Name, m.Subscribed)
		}
	}
	mb, err = e.s.CreateMailbox(e.ctx, a, "Sent", `\Sent`)
	e.must(err)
	if !mb.Subscribed {
		t.Fatal("re-created Sent lost its subscription")
	}
	if byID, err := e.s.MailboxByID(e.ctx, mb.ID); err != nil || !byID.Subscribed {
		t.Fatalf("MailboxByID %+v %v", byID, err)
	}
	// Accounts do not share subscriptions.
	e.must(e.s.SetSubscribed(e.ctx, "bob@example.test", "Bobs", true))
	e.wantSubscriptions("bob@example.test", "Bobs")
	e.wantSubscriptions(a, withDefaults("Ghost/Child")...)
}

func TestRenameMovesSubscriptions(t *testing.T) {
	e := newEnv(t)
	const a = "alice@example.test"
	for _, n := range []string{"Work/A", "Work/B", "Workshop", "work/x"} {
		_, err := e.s.CreateMailbox(e.ctx, a, n, "")
		e.must(err)
	}
	// Work/Gone has no mailbox; work/x and Workshop are not below Work.
	for _, n := range []string{"Work", "Work/A", "Work/Gone", "Workshop", "work/x"} {
		e.must(e.s.SetSubscribed(e.ctx, a, n, true))
	}
	e.must(e.s.RenameMailbox(e.ctx, a, "Work", "Projects/Old"))
	e.wantSubscriptions(a, withDefaults("Projects/Old", "Projects/Old/A", "Projects/Old/Gone", "Workshop", "work/x")...)
	if !e.mailbox(a, "Projects/Old").Subscribed || !e.mailbox(a, "Projects/Old/A").Subscribed ||
		e.mailbox(a, "Projects/Old/B").Subscribed || e.mailbox(a, "Projects").Subscribed {
		t.Fatal("subscription flags after rename")
	}
	// work/x differs from Work only in case: not a child (LIKE ignores
	// ASCII case, the rename must not).
	if mb := e.mailbox(a, "work/x"); !mb.Subscribed {
		t.Fatalf("work/x after renaming Work: %+v", mb)
	}
	if _, err := e.s.Mailbox(e.ctx, a, "Projects/Oldwork/x"); !errors.Is(err, ErrNoMailbox) {
		t.Fatalf("work/x moved as Work's child: %v", err)
	}

	// Onto a name already subscribed (with no mailbox): one subscription.
	e.must(e.s.SetSubscribed(e.ctx, a, "Dest", true))
	e.must(e.s.RenameMailbox(e.ctx, a, "Workshop", "Dest"))
	subs := e.subscriptions(a)
	n := 0
	for _, s := range subs {
		if s == "Dest" {
			n++
		}
		if s == "Workshop" {
			t.Fatalf("old name still subscribed: %q", subs)
		}
	}
	if n != 1 || !e.mailbox(a, "Dest").Subscribed {
		t.Fatalf("subscriptions after rename onto a subscribed name: %q", subs)
	}

	// Renaming INBOX: the new mailbox is subscribed if INBOX is; INBOX
	// keeps its own subscription.
	e.must(e.s.RenameMailbox(e.ctx, a, "INBOX", "Old Inbox"))
	if !e.mailbox(a, "Old Inbox").Subscribed || !e.mailbox(a, "INBOX").Subscribed {
		t.Fatal("INBOX rename lost a subscription")
	}
	e.must(e.s.SetSubscribed(e.ctx, a, "INBOX", false))
	e.must(e.s.RenameMailbox(e.ctx, a, "INBOX", "Older Inbox"))
	if e.mailbox(a, "Older Inbox").Subscribed || e.mailbox(a, "INBOX").Subscribed {
		t.Fatal("INBOX rename subscribed an unsubscribed INBOX")
	}
}

// TestChildrenAreCaseSensitive: "work/x" is not a child of "Work", though
// SQLite's LIKE matches it.
func TestChildrenAreCaseSensitive(t *testing.T) {
	e := newEnv(t)
	const a = "alice@example.test"
	for _, n := range []string{"work/x", "Work"} {
		_, err := e.s.CreateMailbox(e.ctx, a, n, "")
		e.must(err)
	}
	e.must(e.s.DeleteMailbox(e.ctx, a, "Work"))
	_, err := e.s.CreateMailbox(e.ctx, a, "Work", "")
	e.must(err)
	e.must(e.s.RenameMailbox(e.ctx, a, "Work", "Other"))
	e.mailbox(a, "work/x")
	e.mailbox(a, "Other")
}

// TestMigrateSubscriptions: a database at the schema before the
// subscriptions table keeps its subscribed mailboxes as subscriptions.
func TestMigrateSubscriptions(t *testing.T) {
	e := &env{t: t, dir: t.TempDir(), ctx: t.Context()}
	db, err := database.Open(e.dir)
	e.must(err)
	const before = 2 // the steps before the subscriptions table
	e.must(database.Migrate(e.ctx, db, "mailstore", migrations[:before]))
	for _, q := range []string{
		`INSERT INTO mail_accounts (account, modseq, uidvalidity_next) VALUES ('alice', 1, 10), ('bob', 1, 10)`,
		`INSERT INTO mailboxes (account, name, uidvalidity, uidnext, highestmodseq, subscribed)
			VALUES ('alice', 'INBOX', 1, 1, 1, 1), ('alice', 'Sent', 2, 1, 1, 1), ('alice', 'Old', 3, 1, 1, 0),
				('bob', 'INBOX', 1, 1, 1, 0), ('bob', 'Lists/Go', 2, 1, 1, 1)`,
	} {
		if _, err := db.ExecContext(e.ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	e.open()
	e.wantSubscriptions("alice", "INBOX", "Sent")
	e.wantSubscriptions("bob", "Lists/Go")
	if !e.mailbox("alice", "Sent").Subscribed || e.mailbox("alice", "Old").Subscribed || e.mailbox("bob", "INBOX").Subscribed {
		t.Fatal("Mailbox.Subscribed after migration")
	}
	// The copied subscriptions are the ones now in force.
	e.must(e.s.DeleteMailbox(e.ctx, "alice", "Sent"))
	e.wantSubscriptions("alice", "INBOX", "Sent")
	var n int
	if err := e.s.db.QueryRowContext(e.ctx, `SELECT COUNT(*) FROM pragma_table_info('mailboxes') WHERE name = 'subscribed'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("mailboxes.subscribed still there: %d %v", n, err)
	}
}
