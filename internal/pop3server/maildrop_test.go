package pop3server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"posta/internal/mailstore"
)

// Messages with the cases byte-stuffing and sizes must get right.
var (
	plainMsg   = "From: a@example.test\r\nSubject: plain\r\n\r\nHello.\r\n"
	dottedMsg  = "Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nnot the end\r\n."
	noFinalEOL = "Subject: no final line break\r\n\r\nlast line"
	bareLF     = "Subject: bare\n\n.dot after a bare LF\nend\n"
)

func TestRETRByteExact(t *testing.T) {
	h := start(t)
	uids := h.add("alice@example.test", plainMsg, dottedMsg, noFinalEOL, bareLF, "")
	c := h.login(t, "alice@example.test")
	total := len(plainMsg) + len(dottedMsg) + len(noFinalEOL) + len(bareLF)
	c.is(fmt.Sprintf("+OK 5 %d", total), "STAT")
	c.is(fmt.Sprintf("+OK 5 messages (%d octets)", total), "LIST")
	want := []string{fmt.Sprint("1 ", len(plainMsg)), fmt.Sprint("2 ", len(dottedMsg)), fmt.Sprint("3 ", len(noFinalEOL)),
		fmt.Sprint("4 ", len(bareLF)), "5 0"}
	if got := c.multi(); !slices.Equal(got, want) {
		t.Fatalf("LIST: %q", got)
	}
	c.is(fmt.Sprintf("+OK 2 %d", len(dottedMsg)), "LIST 2")
	mb, _ := h.inbox("alice@example.test")
	c.is(fmt.Sprintf("+OK 3 %08X%08X", uids[2], mb.UIDValidity), "UIDL 3")

	cases := []struct {
		n   int
		msg string
		raw string // exactly what goes over the wire after "+OK n octets"
	}{
		{1, plainMsg, plainMsg + ".\r\n"},
		{2, dottedMsg, "Subject: dots\r\n\r\n..leading dot\r\n...two dots\r\n..\r\nnot the end\r\n..\r\n.\r\n"},
		// RFC 1939 3: the terminator needs a line of its own.
		{3, noFinalEOL, noFinalEOL + "\r\n.\r\n"},
		// Stuffing after a bare LF too: no client can be made to see an end.
		{4, bareLF, "Subject: bare\n\n..dot after a bare LF\nend\n.\r\n"},
		{5, "", ".\r\n"},
	}
	for _, tc := range cases {
		c.is(fmt.Sprintf("+OK %d octets", len(tc.msg)), "RETR %d", tc.n)
		raw := c.raw()
		if string(raw) != tc.raw {
			t.Fatalf("RETR %d sent %q, want %q", tc.n, raw, tc.raw)
		}
		// RFC 1939 11: the size is what the client has after un-stuffing
		// (the CRLF added before the terminator aside).
		if got := string(unstuff(raw)); got != tc.msg && got != tc.msg+"\r\n" {
			t.Fatalf("RETR %d un-stuffed %q, want %q", tc.n, got, tc.msg)
		}
	}
}

func TestTOP(t *testing.T) {
	h := start(t)
	body := "Subject: top\r\nX: y\r\n\r\nline 1\r\n.line 2\r\nline 3\r\n"
	h.add("alice@example.test", body, "Subject: header only, no blank line\r\nX: y\r\n")
	c := h.login(t, "alice@example.test")
	for _, tc := range []struct {
		args string
		want []string
	}{
		{"1 0", []string{"Subject: top", "X: y", ""}},
		{"1 2", []string{"Subject: top", "X: y", "", "line 1", ".line 2"}},
		{"1 99", []string{"Subject: top", "X: y", "", "line 1", ".line 2", "line 3"}},
		{"2 0", []string{"Subject: header only, no blank line", "X: y"}},
	} {
		c.is("+OK Top of message follows", "TOP %s", tc.args)
		if got := c.multi(); !slices.Equal(got, tc.want) {
			t.Fatalf("TOP %s: %q, want %q", tc.args, got, tc.want)
		}
	}
	c.is("-ERR Syntax error", "TOP 1")
	c.is("-ERR Syntax error", "TOP 1 -1")
	c.is("-ERR No such message", "TOP 3 0")
	c.is("+OK Bye, 0 messages deleted", "QUIT")
	// TOP does not mark \Seen.
	_, ms := h.inbox("alice@example.test")
	if ms[0].Flags.System&mailstore.Seen != 0 {
		t.Fatal("TOP set \\Seen")
	}
}

// TestLargeRETR streams a body bigger than every buffer from a blob file,
// with "\n." pairs at and around the 64 KiB buffer boundaries.
func TestLargeRETR(t *testing.T) {
	h := start(t)
	var b strings.Builder
	b.WriteString("Subject: big\r\n\r\n")
	for b.Len() < 3<<20 {
		n := b.Len()
		// Lines of varying length so dots land on every offset.
		b.WriteString(strings.Repeat("x", n%97))
		b.WriteString("\r\n.")
		if n%5 == 0 {
			b.WriteString(".")
		}
		b.WriteString("\r\n")
	}
	msg := b.String()
	h.add("bob@example.test", msg)
	c := h.login(t, "bob@example.test")
	c.is(fmt.Sprintf("+OK %d octets", len(msg)), "RETR 1")
	if got := unstuff(c.raw()); string(got) != msg {
		t.Fatalf("big message differs (got %d octets, want %d)", len(got), len(msg))
	}
	c.is("+OK", "NOOP")
}

// TestDeleteQuit: DELE marks, QUIT removes from the shared store, and the
// removal reaches the change feed as an Expunged change (what IMAP sessions
// see).
func TestDeleteQuit(t *testing.T) {
	h := start(t)
	uids := h.add("alice@example.test", plainMsg, dottedMsg, noFinalEOL)
	sub := h.store.Subscribe("alice@example.test")
	defer sub.Close()
	c := h.login(t, "alice@example.test")
	c.is("+OK Message 2 deleted", "DELE 2")
	c.is("-ERR Message already deleted", "DELE 2")
	c.is("-ERR Message already deleted", "RETR 2")
	c.is("-ERR Message already deleted", "LIST 2")
	c.is(fmt.Sprintf("+OK 2 %d", len(plainMsg)+len(noFinalEOL)), "STAT")
	c.is("+OK 2 messages ("+fmt.Sprint(len(plainMsg)+len(noFinalEOL))+" octets)", "LIST")
	if got := c.multi(); !slices.Equal(got, []string{fmt.Sprint("1 ", len(plainMsg)), fmt.Sprint("3 ", len(noFinalEOL))}) {
		t.Fatalf("LIST after DELE: %q", got)
	}
	c.is("+OK Unique-ID listing follows", "UIDL")
	if got := c.multi(); len(got) != 2 || !strings.HasPrefix(got[1], "3 ") {
		t.Fatalf("UIDL after DELE: %q", got)
	}
	// Nothing is removed before QUIT.
	if _, ms := h.inbox("alice@example.test"); len(ms) != 3 {
		t.Fatalf("%d messages before QUIT", len(ms))
	}
	c.is("+OK Bye, 1 messages deleted", "QUIT")
	if !c.closed() {
		t.Fatal("not closed after QUIT")
	}
	_, ms := h.inbox("alice@example.test")
	if len(ms) != 2 || ms[0].UID != uids[0] || ms[1].UID != uids[2] {
		t.Fatalf("after QUIT: %+v", ms)
	}
	var expunged []uint32
	waitFor(t, "the Expunged change", func() bool {
		changes, _ := sub.Take()
		for _, ch := range changes {
			if ch.Kind == mailstore.Expunged {
				expunged = append(expunged, ch.UIDs...)
			}
		}
		return len(expunged) > 0
	})
	if !slices.Equal(expunged, []uint32{uids[1]}) {
		t.Fatalf("expunged %v, want [%d]", expunged, uids[1])
	}
	// The maildrop is free again, and the numbers start over.
	c = h.login(t, "alice@example.test")
	c.is(fmt.Sprintf("+OK 2 %d", len(noFinalEOL)), "LIST 2")
}

func TestDeleteRSET(t *testing.T) {
	h := start(t)
	h.add("alice@example.test", plainMsg, dottedMsg)
	c := h.login(t, "alice@example.test")
	c.is("+OK Message 1 deleted", "DELE 1")
	c.is("+OK Message 2 deleted", "DELE 2")
	c.is("+OK 0 0", "STAT")
	c.is(fmt.Sprintf("+OK Maildrop has 2 messages (%d octets)", len(plainMsg)+len(dottedMsg)), "RSET")
	c.is(fmt.Sprintf("+OK %d octets", len(plainMsg)), "RETR 1")
	c.raw()
	c.is("+OK Bye, 0 messages deleted", "QUIT")
	if _, ms := h.inbox("alice@example.test"); len(ms) != 2 {
		t.Fatalf("%d messages after RSET and QUIT", len(ms))
	}
}

// TestDropKeeps: a session that ends without QUIT deletes nothing (RFC
// 1939 6), but what it retrieved is \Seen.
func TestDropKeeps(t *testing.T) {
	h := start(t)
	h.add("alice@example.test", plainMsg, dottedMsg)
	c := h.login(t, "alice@example.test")
	c.is(fmt.Sprintf("+OK %d octets", len(dottedMsg)), "RETR 2")
	c.raw()
	c.is("+OK Message 1 deleted", "DELE 1")
	c.is("+OK Message 2 deleted", "DELE 2")
	c.nc.Close()
	waitFor(t, "the maildrop to be released", func() bool { return !h.locks.Held("alice@example.test") })
	_, ms := h.inbox("alice@example.test")
	if len(ms) != 2 {
		t.Fatalf("%d messages after a dropped session", len(ms))
	}
	if ms[0].Flags.System&(mailstore.Seen|mailstore.Deleted) != 0 || ms[1].Flags.System != mailstore.Seen {
		t.Fatalf("flags after drop: %v %v", ms[0].Flags, ms[1].Flags)
	}
}

// TestSeen: RETR marks \Seen (written at QUIT, once for the session).
func TestSeen(t *testing.T) {
	h := start(t)
	h.add("alice@example.test", plainMsg, dottedMsg, noFinalEOL)
	c := h.login(t, "alice@example.test")
	c.is(fmt.Sprintf("+OK %d octets", len(plainMsg)), "RETR 1")
	c.raw()
	c.is(fmt.Sprintf("+OK %d octets", len(noFinalEOL)), "RETR 3")
	c.raw()
	c.is("+OK Message 3 deleted", "DELE 3")
	c.is("+OK Bye, 1 messages deleted", "QUIT")
	_, ms := h.inbox("alice@example.test")
	if len(ms) != 2 || ms[0].Flags.System != mailstore.Seen || ms[1].Flags.System != 0 {
		t.Fatalf("after QUIT: %+v", ms)
	}
}

// TestInUse: one POP3 session per maildrop, across both listeners (RFC
// 2449 8.1.2); the lock is free again after QUIT and after a drop.
func TestInUse(t *testing.T) {
	h := start(t)
	h.add("alice@example.test", plainMsg)
	first := h.login(t, "alice@example.test")
	c := dial(t, h.addr["pop3"])
	c.stls(h.clientTLS())
	c.is("+OK Send PASS", "USER alice@example.test")
	c.is("-ERR [IN-USE] Maildrop is in use by another POP3 session", "PASS %s", testUsers["alice@example.test"])
	// Still in AUTHORIZATION: a wrong password is an auth failure, and
	// another user can log in on the same connection.
	c.is("-ERR Log in first", "STAT")
	c.is("+OK Send PASS", "USER bob@example.test")
	if got := c.cmd("PASS %s", testUsers["bob@example.test"]); !strings.HasPrefix(got, "+OK Logged in") {
		t.Fatal(got)
	}
	first.is("+OK Bye, 0 messages deleted", "QUIT")
	h.login(t, "alice@example.test").nc.Close()
	waitFor(t, "the lock to be released", func() bool { return !h.locks.Held("alice@example.test") })
	h.login(t, "alice@example.test")
}

// TestNewAccount: an account that never received mail has no mail state
// yet; login creates it (mailstore.EnsureAccount).
func TestNewAccount(t *testing.T) {
	h := start(t)
	c := h.login(t, "carol@example.test")
	c.is("+OK 0 0", "STAT")
	c.is("+OK 0 messages (0 octets)", "LIST")
	if got := c.multi(); len(got) != 0 {
		t.Fatalf("LIST %q", got)
	}
	c.is("-ERR No such message", "RETR 1")
}

// TestRemovedByOtherSession: the list is fixed at login; a message another
// session expunged meanwhile gets -ERR, and the session goes on.
func TestRemovedByOtherSession(t *testing.T) {
	h := start(t)
	uids := h.add("alice@example.test", plainMsg, dottedMsg)
	c := h.login(t, "alice@example.test")
	mb, _ := h.inbox("alice@example.test")
	if err := expungeUIDs(h.ctx, h.store, mb.ID, uids[:1]); err != nil {
		t.Fatal(err)
	}
	c.is("-ERR Message was removed by another session", "RETR 1")
	c.is("+OK Message 1 deleted", "DELE 1")
	c.is(fmt.Sprintf("+OK %d octets", len(dottedMsg)), "RETR 2")
	c.raw()
	c.is("+OK Bye, 1 messages deleted", "QUIT")
	if _, ms := h.inbox("alice@example.test"); len(ms) != 1 || ms[0].UID != uids[1] {
		t.Fatalf("after QUIT: %+v", ms)
	}
}

// failingStore makes chosen store calls fail, like a full disk would.
type failingStore struct {
	Store
	expunge  error
	messages error
	openBody func()
}

func (f failingStore) Remove(ctx context.Context, mailbox int64, uids []uint32) ([]uint32, error) {
	if f.expunge != nil {
		return nil, f.expunge
	}
	return f.Store.Remove(ctx, mailbox, uids)
}

func (f failingStore) Messages(ctx context.Context, mailbox int64) ([]mailstore.MessageMeta, error) {
	if f.messages != nil {
		return nil, f.messages
	}
	return f.Store.Messages(ctx, mailbox)
}

func (f failingStore) OpenMessageBody(ctx context.Context, mailbox int64, uid uint32) (mailstore.Body, error) {
	if f.openBody != nil {
		f.openBody()
	}
	return f.Store.OpenMessageBody(ctx, mailbox, uid)
}

// TestStoreFailures: our own failures are [SYS/TEMP] without their text,
// and the session state stays consistent.
func TestStoreFailures(t *testing.T) {
	diskFull := errors.New("mailstore: disk full /secret/path")
	t.Run("update", func(t *testing.T) {
		h := start(t, withStore(func(s Store) Store { return failingStore{Store: s, expunge: diskFull} }))
		h.add("alice@example.test", plainMsg)
		c := h.login(t, "alice@example.test")
		c.is("+OK Message 1 deleted", "DELE 1")
		// RFC 1939 6: -ERR when the removal failed; the session ends.
		c.is("-ERR [SYS/TEMP] Some deleted messages not removed, try again later", "QUIT")
		if !c.closed() {
			t.Fatal("not closed")
		}
		if _, ms := h.inbox("alice@example.test"); len(ms) != 1 {
			t.Fatalf("%d messages", len(ms))
		}
		if !strings.Contains(h.log.String(), "disk full") {
			t.Fatal("cause not logged")
		}
	})
	t.Run("open maildrop", func(t *testing.T) {
		h := start(t, withStore(func(s Store) Store { return failingStore{Store: s, messages: diskFull} }))
		c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
		c.is("+OK Send PASS", "USER alice@example.test")
		c.is("-ERR [SYS/TEMP] Temporary server problem, try again later", "PASS %s", testUsers["alice@example.test"])
		// Still in AUTHORIZATION, and the maildrop is not left locked.
		c.is("-ERR Log in first", "STAT")
		if h.locks.Held("alice@example.test") {
			t.Fatal("lock held after a failed login")
		}
	})
	t.Run("panic", func(t *testing.T) {
		h := start(t, withStore(func(s Store) Store {
			return failingStore{Store: s, openBody: func() { panic("boom") }}
		}))
		h.panics = 1
		h.add("alice@example.test", plainMsg)
		c := h.login(t, "alice@example.test")
		c.is("-ERR [SYS/TEMP] Internal server error, closing connection", "RETR 1")
		if !c.closed() {
			t.Fatal("not closed")
		}
	})
}

// TestDeletedToTrash: with the policy, POP3 deletions land in Trash (a
// special-use \Trash mailbox), \Seen if they were retrieved.
func TestDeletedToTrash(t *testing.T) {
	h := start(t, withPolicy(Policy{DeletedToTrash: true}))
	h.add("alice@example.test", plainMsg, dottedMsg, noFinalEOL)
	c := h.login(t, "alice@example.test")
	c.is(fmt.Sprintf("+OK %d octets", len(plainMsg)), "RETR 1")
	c.raw()
	c.is("+OK Message 1 deleted", "DELE 1")
	c.is("+OK Message 3 deleted", "DELE 3")
	c.is("+OK Bye, 2 messages deleted", "QUIT")
	if _, ms := h.inbox("alice@example.test"); len(ms) != 1 || ms[0].Size != int64(len(dottedMsg)) {
		t.Fatalf("INBOX after QUIT: %+v", ms)
	}
	_, trash := h.mailbox("alice@example.test", "Trash")
	if len(trash) != 2 || trash[0].Flags.System != mailstore.Seen || trash[1].Flags.System != 0 {
		t.Fatalf("Trash: %+v", trash)
	}
}

// TestRetention: EXPIRE n (RFC 2449 6.7). A retrieved message is kept for n
// full days after the day it was first retrieved, then expunged at login.
func TestRetention(t *testing.T) {
	h := start(t, withPolicy(Policy{ExpireDays: 2}))
	h.add("alice@example.test", plainMsg, dottedMsg)
	c := h.login(t, "alice@example.test")
	c.is(fmt.Sprintf("+OK %d octets", len(plainMsg)), "RETR 1")
	c.raw()
	c.is("+OK Bye, 0 messages deleted", "QUIT")
	_, ms := h.inbox("alice@example.test")
	day := h.clock.Now().UTC().Format(keywordDay)
	if ms[0].Flags.System != mailstore.Seen || !slices.Equal(ms[0].Flags.Keywords, []string{retrievedKeyword + day}) ||
		len(ms[1].Flags.Keywords) != 0 {
		t.Fatalf("after RETR: %+v", ms)
	}
	// Retrieved again later: the first day counts.
	h.clock.advance(24 * time.Hour)
	c = h.login(t, "alice@example.test")
	c.is(fmt.Sprintf("+OK %d octets", len(plainMsg)), "RETR 1")
	c.raw()
	c.is("+OK Bye, 0 messages deleted", "QUIT")
	// Two days after the day of retrieval: still there (kept 2 full days).
	h.clock.advance(24 * time.Hour)
	c = h.login(t, "alice@example.test")
	c.is("+OK 2 "+fmt.Sprint(len(plainMsg)+len(dottedMsg)), "STAT")
	c.is("+OK Bye, 0 messages deleted", "QUIT")
	// A day later it has expired.
	h.clock.advance(24 * time.Hour)
	c = h.login(t, "alice@example.test")
	c.is(fmt.Sprintf("+OK 1 %d", len(dottedMsg)), "STAT")
	if _, ms := h.inbox("alice@example.test"); len(ms) != 1 || ms[0].Size != int64(len(dottedMsg)) {
		t.Fatalf("after expiry: %+v", ms)
	}
}

// TestLoginDelay: RFC 2449 6.5, 8.1.1.
func TestLoginDelay(t *testing.T) {
	h := start(t, withPolicy(Policy{LoginDelay: time.Hour}))
	h.login(t, "alice@example.test").is("+OK Bye, 0 messages deleted", "QUIT")
	c := dialTLS(t, h.addr["pop3s"], h.clientTLS())
	c.is("+OK Send PASS", "USER alice@example.test")
	c.is("-ERR [LOGIN-DELAY] Logged in too recently, try again later", "PASS %s", testUsers["alice@example.test"])
	// Another account is not delayed.
	c.is("+OK Send PASS", "USER bob@example.test")
	if got := c.cmd("PASS %s", testUsers["bob@example.test"]); !strings.HasPrefix(got, "+OK Logged in") {
		t.Fatal(got)
	}
	h.clock.advance(time.Hour)
	h.login(t, "alice@example.test")
}

// TestQuitThenLogin: the maildrop is unlocked before QUIT's +OK goes out,
// so a client that logs in again at once (a mail check right after
// another) never finds its own previous session IN-USE.
func TestQuitThenLogin(t *testing.T) {
	h := start(t)
	h.add("alice@example.test", plainMsg)
	for range 20 {
		c := h.login(t, "alice@example.test")
		c.is("+OK Bye, 0 messages deleted", "QUIT")
	}
}
