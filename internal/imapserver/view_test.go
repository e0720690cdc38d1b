package imapserver

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"posta/internal/database"
	"posta/internal/mailstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// client models what an IMAP client knows: the UID at each sequence number,
// learnt only from the updates the server sent (EXPUNGE n, n EXISTS), with
// new messages' UIDs fetched afterwards (a UID FETCH of the new range).
type client struct {
	t    *testing.T
	name string
	uids []uint32
}

func (c *client) apply(v *view, ups []update) {
	c.t.Helper()
	for _, u := range ups {
		switch u.Kind {
		case updExpunge:
			if u.Seq < 1 || u.Seq > len(c.uids) {
				c.t.Fatalf("%s: EXPUNGE %d with %d messages known", c.name, u.Seq, len(c.uids))
			}
			if c.uids[u.Seq-1] != u.UID {
				c.t.Fatalf("%s: EXPUNGE %d means UID %d to the client but the server meant %d", c.name, u.Seq, c.uids[u.Seq-1], u.UID)
			}
			c.uids = slices.Delete(c.uids, u.Seq-1, u.Seq)
		case updExists:
			if u.Count < len(c.uids) {
				c.t.Fatalf("%s: EXISTS %d below the %d messages known (RFC 9051 7.4.1 forbids it)", c.name, u.Count, len(c.uids))
			}
			for n := len(c.uids) + 1; n <= u.Count; n++ {
				c.uids = append(c.uids, v.uid(n))
			}
		case updFetch:
			if c.uids[u.Seq-1] != u.UID {
				c.t.Fatalf("%s: FETCH %d for UID %d, client has UID %d there", c.name, u.Seq, u.UID, c.uids[u.Seq-1])
			}
		}
	}
	if !slices.Equal(c.uids, v.uids) {
		c.t.Fatalf("%s: client %v, server view %v", c.name, c.uids, v.uids)
	}
}

// TestViewsFollowTheStore: random interleavings of APPEND, STORE, EXPUNGE
// and MOVE by two sessions keep each session's sequence numbers consistent
// with what it announced, and equal to the store once everything is flushed.
func TestViewsFollowTheStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := database.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := mailstore.Open(ctx, db, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const acc = "alice@example.test"
	if err := st.EnsureAccount(ctx, acc); err != nil {
		t.Fatal(err)
	}
	inbox, _ := st.Mailbox(ctx, acc, "INBOX")
	archive, _ := st.Mailbox(ctx, acc, "Archive")
	appendN := func(n int) {
		msgs := make([]mailstore.NewMessage, n)
		for i := range msgs {
			b := []byte(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))
			msgs[i] = mailstore.NewMessage{Inline: b, Size: int64(len(b))}
		}
		if _, err := st.Append(ctx, acc, "INBOX", msgs...); err != nil {
			t.Fatal(err)
		}
	}
	appendN(5)

	type session struct {
		sub *mailstore.Subscription
		v   *view
		c   *client
	}
	var sessions []*session
	for _, name := range []string{"A", "B"} {
		sub := st.Subscribe(acc)
		defer sub.Close()
		metas, err := st.Messages(ctx, inbox.ID)
		if err != nil {
			t.Fatal(err)
		}
		v := newView(inbox.ID, metas)
		sessions = append(sessions, &session{sub: sub, v: v, c: &client{t: t, name: name, uids: slices.Clone(v.uids)}})
	}
	storeUIDs := func() []uint32 {
		metas, err := st.Messages(ctx, inbox.ID)
		if err != nil {
			t.Fatal(err)
		}
		var u []uint32
		for _, m := range metas {
			u = append(u, m.UID)
		}
		return u
	}

	r := rand.New(rand.NewSource(1))
	for step := 0; step < 400; step++ {
		// One session acts through the store on UIDs it knows.
		s := sessions[r.Intn(2)]
		known := s.v.uids
		pick := func() []uint32 {
			var out []uint32
			for _, u := range known {
				if r.Intn(3) == 0 {
					out = append(out, u)
				}
			}
			return out
		}
		switch r.Intn(4) {
		case 0:
			appendN(1 + r.Intn(3))
		case 1:
			if _, _, err := st.SetFlags(ctx, inbox.ID, pick(), mailstore.FlagsAdd, mailstore.Flags{System: mailstore.Seen}, 0); err != nil {
				t.Fatal(err)
			}
		case 2:
			uids := pick()
			st.SetFlags(ctx, inbox.ID, uids, mailstore.FlagsAdd, mailstore.Flags{System: mailstore.Deleted}, 0)
			if _, err := st.Expunge(ctx, inbox.ID, uids); err != nil {
				t.Fatal(err)
			}
		case 3:
			if _, _, err := st.Move(ctx, inbox.ID, pick(), archive.ID); err != nil {
				t.Fatal(err)
			}
		}
		// Each session takes its feed; sometimes it is inside a FETCH or
		// STORE by sequence number, where EXPUNGE may not be sent.
		for _, s := range sessions {
			ch, overflow := s.sub.Take()
			if overflow {
				t.Fatal("feed overflowed")
			}
			s.v.queue(ch)
			if r.Intn(3) > 0 {
				s.c.apply(s.v, s.v.flush(r.Intn(2) == 0))
			}
		}
	}
	want := storeUIDs()
	for _, s := range sessions {
		ch, _ := s.sub.Take()
		s.v.queue(ch)
		s.c.apply(s.v, s.v.flush(true))
		if !slices.Equal(s.v.uids, want) {
			t.Fatalf("%s after full flush: %v, store %v", s.c.name, s.v.uids, want)
		}
	}
	if len(want) == 0 {
		t.Fatal("the walk emptied the mailbox: the test checks nothing")
	}
}

func TestFlushWithoutExpungeKeepsNumbers(t *testing.T) {
	v := newView(1, []mailstore.MessageMeta{{UID: 3}, {UID: 5}, {UID: 9}})
	v.queue([]mailstore.Change{
		{Kind: mailstore.Expunged, Mailbox: 1, UIDs: []uint32{5}},
		{Kind: mailstore.Added, Mailbox: 1, UIDs: []uint32{10, 11}},
		{Kind: mailstore.Expunged, Mailbox: 1, UIDs: []uint32{11}},
		{Kind: mailstore.FlagsChanged, Mailbox: 1, Metas: []mailstore.MessageMeta{{UID: 9}, {UID: 10}}},
		{Kind: mailstore.Added, Mailbox: 2, UIDs: []uint32{99}},
	})
	ups := v.flush(false)
	// UID 5 keeps sequence 2; 10 becomes 4; 11 was never announced.
	want := []update{{Kind: updExists, Count: 4}, {Kind: updFetch, Seq: 3, UID: 9}, {Kind: updFetch, Seq: 4, UID: 10}}
	if len(ups) != len(want) {
		t.Fatalf("updates %+v", ups)
	}
	for i := range want {
		if ups[i].Kind != want[i].Kind || ups[i].Seq != want[i].Seq || ups[i].UID != want[i].UID || ups[i].Count != want[i].Count {
			t.Fatalf("update %d = %+v, want %+v", i, ups[i], want[i])
		}
	}
	if v.seq(5) != 2 {
		t.Fatal("sequence numbers changed without EXPUNGE")
	}
	ups = v.flush(true)
	if len(ups) != 1 || ups[0].Kind != updExpunge || ups[0].Seq != 2 || v.uid(2) != 9 {
		t.Fatalf("expunge flush %+v, view %v", ups, v.uids)
	}
}
