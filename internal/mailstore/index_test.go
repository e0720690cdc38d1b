package mailstore

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestIndexFollowsChanges makes random changes to two mailboxes and checks
// after each that the cached listing equals the database's.
func TestIndexFollowsChanges(t *testing.T) {
	e := newEnv(t)
	const a = "alice@example.test"
	e.must(e.s.EnsureAccount(e.ctx, a))
	inbox, trash := e.mailbox(a, "INBOX"), e.mailbox(a, "Trash")
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(step int, mb Mailbox) {
		t.Helper()
		cached, err := e.s.Messages(e.ctx, mb.ID)
		e.must(err)
		fresh, err := e.s.listMessages(e.ctx, mb.ID)
		e.must(err)
		if (len(cached) > 0 || len(fresh) > 0) && !reflect.DeepEqual(cached, fresh) {
			t.Fatalf("step %d, %s: cached listing %v, database %v", step, mb.Name, cached, fresh)
		}
	}
	// Load both listings so the index holds them from here on.
	check(-1, inbox)
	check(-1, trash)
	if _, ok := e.s.index.get(inbox.ID); !ok {
		t.Fatal("INBOX listing not cached after a read")
	}
	for step := range 200 {
		metas, err := e.s.Messages(e.ctx, inbox.ID)
		e.must(err)
		var some []uint32
		for _, m := range metas {
			if rng.IntN(3) == 0 {
				some = append(some, m.UID)
			}
		}
		switch rng.IntN(5) {
		case 0, 1:
			m := e.body("Subject: x\r\n\r\nhi\r\n")
			m.Flags.Keywords = []string{"k" + string(rune('a'+rng.IntN(3)))}
			_, err = e.s.Append(e.ctx, a, "INBOX", m)
		case 2:
			_, _, err = e.s.SetFlags(e.ctx, inbox.ID, some, FlagOp(rng.IntN(3)), Flags{System: Flag(rng.IntN(32)), Keywords: []string{"kx"}}, 0)
		case 3:
			_, _, err = e.s.SetFlags(e.ctx, inbox.ID, some, FlagsAdd, Flags{System: Deleted}, 0)
			if err == nil {
				_, err = e.s.Expunge(e.ctx, inbox.ID, some)
			}
		case 4:
			if len(some) > 0 {
				_, _, err = e.s.Move(e.ctx, inbox.ID, some, trash.ID)
			}
		}
		e.must(err)
		check(step, inbox)
		check(step, trash)
	}
	// A deleted mailbox leaves the index.
	e.must(e.s.DeleteMailbox(e.ctx, a, "Trash"))
	if _, ok := e.s.index.get(trash.ID); ok {
		t.Fatal("deleted mailbox still cached")
	}
}

// TestIndexEvicts keeps the index under its bound.
func TestIndexEvicts(t *testing.T) {
	x := newIndex(3)
	x.put(1, []MessageMeta{{UID: 1}, {UID: 2}}, 0)
	x.get(1)
	x.put(2, []MessageMeta{{UID: 1}, {UID: 2}}, 0)
	if _, ok := x.get(1); ok || x.size != 2 {
		t.Fatalf("mailbox 1 not evicted (size %d)", x.size)
	}
	x.apply([]Change{{Kind: Added, Mailbox: 2, UIDs: []uint32{3}, Metas: []MessageMeta{{UID: 3}}}})
	if got, _ := x.get(2); len(got) != 3 || x.size != 3 {
		t.Fatalf("after Added: %v (size %d)", got, x.size)
	}
	// A listing read while a change was applied is not installed.
	gen := x.generation()
	x.apply([]Change{{Kind: Expunged, Mailbox: 9, UIDs: []uint32{1}}})
	x.put(9, []MessageMeta{{UID: 1}}, gen)
	if _, ok := x.get(9); ok {
		t.Fatal("stale listing installed")
	}
}

// TestMetas: the index, point queries and a whole listing give the same
// metadata for a set of UIDs, without the expunged or unknown ones.
func TestMetas(t *testing.T) {
	e := newEnv(t)
	const a = "alice@example.test"
	e.must(e.s.EnsureAccount(e.ctx, a))
	inbox := e.mailbox(a, "INBOX")
	for range 100 {
		_, err := e.s.Append(e.ctx, a, "INBOX", e.body("Subject: x\r\n\r\nhi\r\n"))
		e.must(err)
	}
	_, _, err := e.s.SetFlags(e.ctx, inbox.ID, []uint32{3, 5, 80}, FlagsAdd, Flags{System: Seen, Keywords: []string{"k"}}, 0)
	e.must(err)
	_, _, err = e.s.SetFlags(e.ctx, inbox.ID, []uint32{4, 90}, FlagsAdd, Flags{System: Deleted}, 0)
	e.must(err)
	_, err = e.s.Expunge(e.ctx, inbox.ID, []uint32{4, 90})
	e.must(err)
	fresh, err := e.s.listMessages(e.ctx, inbox.ID)
	e.must(err)
	byUID := map[uint32]MessageMeta{}
	for _, m := range fresh {
		byUID[m.UID] = m
	}
	for _, uids := range [][]uint32{
		{1, 3, 4, 5, 500},          // few: point queries without the index
		seqUIDs(1, 99),             // many: one listing
		{2, 1000, 90, 80, 3, 4, 5}, // unsorted, unknown and expunged
	} {
		var want []MessageMeta
		for _, u := range uids {
			if m, ok := byUID[u]; ok {
				want = append(want, m)
			}
		}
		e.s.index.drop(inbox.ID)
		cold, err := e.s.Metas(e.ctx, inbox.ID, uids)
		e.must(err)
		if _, err := e.s.Messages(e.ctx, inbox.ID); err != nil { // fills the index
			t.Fatal(err)
		}
		warm, err := e.s.Metas(e.ctx, inbox.ID, uids)
		e.must(err)
		if !reflect.DeepEqual(cold, want) || !reflect.DeepEqual(warm, want) {
			t.Fatalf("Metas(%v):\nwithout index %v\nwith index    %v\nwant          %v", uids, cold, warm, want)
		}
	}
}

func seqUIDs(first, last uint32) []uint32 {
	var out []uint32
	for u := first; u <= last; u++ {
		out = append(out, u)
	}
	return out
}
