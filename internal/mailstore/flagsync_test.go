package mailstore

import (
	"testing"
	"time"

	"posta/internal/database"
)

// waitSyncs polls until the store has synced deferred commits n times.
func waitSyncs(t *testing.T, s *Store, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.syncs.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("deferred commits synced %d times, want %d", s.syncs.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFlagSyncDeferred: a flag change commits without a sync and the WAL
// is synced within the delay; other changes, and every change with the
// delay at 0, commit synced and leave nothing to sync.
func TestFlagSyncDeferred(t *testing.T) {
	e := newEnv(t)
	const a = "alice@example.test"
	e.must(e.s.EnsureAccount(e.ctx, a))
	if e.s.wal == nil {
		t.Fatal("no WAL file to sync: deferring is off")
	}
	res, err := e.s.Append(e.ctx, a, "INBOX", e.body("Subject: x\r\n\r\nhi\r\n"))
	e.must(err)
	time.Sleep(50 * time.Millisecond)
	if n := e.s.syncs.Load(); n != 0 {
		t.Fatalf("%d deferred syncs after an APPEND, want 0", n)
	}

	e.s.DeferFlagSync(30 * time.Millisecond)
	start := time.Now()
	_, _, err = e.s.SetFlags(e.ctx, res.Mailbox, res.UIDs, FlagsAdd, Flags{System: Seen}, 0)
	e.must(err)
	waitSyncs(t, e.s, 1)
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("synced after %v, before the delay", d)
	}
	if e.s.full {
		t.Fatal("the flag change committed with synchronous=FULL: not deferred")
	}

	// Several flag changes in one window: one sync. The window is long,
	// so that a slow machine still makes all five inside it.
	e.s.DeferFlagSync(time.Second)
	for i := range 5 {
		op := FlagsAdd
		if i%2 == 0 {
			op = FlagsRemove
		}
		_, _, err = e.s.SetFlags(e.ctx, res.Mailbox, res.UIDs, op, Flags{System: Flagged}, 0)
		e.must(err)
	}
	waitSyncs(t, e.s, 2)
	time.Sleep(100 * time.Millisecond)
	if n := e.s.syncs.Load(); n != 2 {
		t.Fatalf("%d syncs after one window of changes, want 2", n)
	}

	// A message commits synced (FULL) even right after a deferred change.
	_, err = e.s.Append(e.ctx, a, "INBOX", e.body("Subject: y\r\n\r\nhi\r\n"))
	e.must(err)
	if !e.s.full {
		t.Fatal("APPEND committed with synchronous=NORMAL")
	}

	e.s.DeferFlagSync(0)
	_, _, err = e.s.SetFlags(e.ctx, res.Mailbox, res.UIDs, FlagsAdd, Flags{System: Answered}, 0)
	e.must(err)
	if !e.s.full {
		t.Fatal("with no delay, a flag change committed with synchronous=NORMAL")
	}
	time.Sleep(100 * time.Millisecond)
	if n := e.s.syncs.Load(); n != 2 {
		t.Fatalf("%d syncs, want 2: nothing was deferred", n)
	}
}

// TestDeferrableBatch: only a batch made of flag changes alone is deferred.
func TestDeferrableBatch(t *testing.T) {
	e := newEnv(t)
	e.s.DeferFlagSync(time.Second)
	flags, other := &op{lazy: true}, &op{}
	for _, c := range []struct {
		batch []*op
		want  bool
	}{
		{[]*op{flags}, true},
		{[]*op{flags, flags}, true},
		{[]*op{flags, other}, false},
		{[]*op{other}, false},
	} {
		if got := e.s.deferrable(c.batch); got != c.want {
			t.Errorf("deferrable(%d ops) = %v, want %v", len(c.batch), got, c.want)
		}
	}
	e.s.DeferFlagSync(0)
	if e.s.deferrable([]*op{flags}) {
		t.Error("deferred with the delay at 0")
	}
}

// TestUncleanStopMovesModSeq: a store opened after one that did not Close
// hands out MODSEQs past anything the lost one may have given; after a
// clean Close it continues where it was.
func TestUncleanStopMovesModSeq(t *testing.T) {
	e := newEnv(t)
	const a = "alice@example.test"
	e.must(e.s.EnsureAccount(e.ctx, a))
	res, err := e.s.Append(e.ctx, a, "INBOX", e.body("Subject: x\r\n\r\nhi\r\n"))
	e.must(err)
	modseq := func(s *Store) uint64 {
		t.Helper()
		up, _, err := s.SetFlags(e.ctx, res.Mailbox, res.UIDs, FlagsAdd, Flags{Keywords: []string{time.Now().Format("k150405.000000000")}}, 0)
		e.must(err)
		if len(up) != 1 {
			t.Fatalf("SetFlags changed %d messages", len(up))
		}
		return up[0].ModSeq
	}
	before := modseq(e.s)

	// Clean: Close, then open again.
	e.must(e.s.Close())
	db, err := database.Open(e.dir)
	e.must(err)
	t.Cleanup(func() { db.Close() })
	s2, err := Open(e.ctx, db, e.dir, nil)
	e.must(err)
	if got := modseq(s2); got != before+1 {
		t.Fatalf("after a clean stop MODSEQ %d, want %d", got, before+1)
	}
	before++

	// Unclean: s2 never closes (as if killed); the next store must not
	// reuse MODSEQs s2 may have handed out.
	db3, err := database.Open(e.dir)
	e.must(err)
	t.Cleanup(func() { db3.Close() })
	s3, err := Open(e.ctx, db3, e.dir, nil)
	e.must(err)
	t.Cleanup(func() { s3.Close(); s2.Close() })
	if got := modseq(s3); got <= before+lostModSeqGap {
		t.Fatalf("after an unclean stop MODSEQ %d, want more than %d", got, before+lostModSeqGap)
	}
}

// TestSplitBatch: flag changes that may wait for their sync commit ahead of
// the rest of their batch, each part in its order; with no delay, or with
// one kind only, the batch stays whole.
func TestSplitBatch(t *testing.T) {
	e := newEnv(t)
	e.s.DeferFlagSync(time.Second)
	f1, f2, d1, d2 := &op{lazy: true}, &op{lazy: true}, &op{}, &op{}
	got := e.s.split([]*op{d1, f1, d2, f2})
	if len(got) != 2 || len(got[0]) != 2 || got[0][0] != f1 || got[0][1] != f2 || got[1][0] != d1 || got[1][1] != d2 {
		t.Fatalf("split = %v", got)
	}
	for _, b := range [][]*op{{f1, f2}, {d1, d2}, {d1}} {
		if got := e.s.split(b); len(got) != 1 || len(got[0]) != len(b) {
			t.Fatalf("split of one kind = %v", got)
		}
	}
	e.s.DeferFlagSync(0)
	if got := e.s.split([]*op{d1, f1}); len(got) != 1 {
		t.Fatalf("split with no delay = %v", got)
	}
}
