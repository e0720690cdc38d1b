package mailstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"posta/internal/blob"
	"posta/internal/database"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	t   *testing.T
	dir string
	s   *Store
	ctx context.Context
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, dir: t.TempDir(), ctx: context.Background()}
	e.open()
	return e
}

func (e *env) open() {
	db, err := database.Open(e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := Open(e.ctx, db, e.dir, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.s = s
	e.t.Cleanup(func() { s.Close(); db.Close() })
}

func (e *env) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// body commits a body to the blob store.
func (e *env) body(text string) NewMessage {
	e.t.Helper()
	w, err := e.s.Blobs().Create()
	e.must(err)
	_, err = io.WriteString(w, text)
	e.must(err)
	dir, err := w.Commit()
	e.must(err)
	return NewMessage{Body: FileBody(w.ID()), BlobDir: dir, Size: int64(len(text)), Structure: []byte("s:" + text[:min(5, len(text))])}
}

func (e *env) mailbox(account, name string) Mailbox {
	e.t.Helper()
	mb, err := e.s.Mailbox(e.ctx, account, name)
	e.must(err)
	return mb
}

func TestAccountDefaultsAndMailboxOps(t *testing.T) {
	e := newEnv(t)
	const a = "alice@example.test"
	e.must(e.s.EnsureAccount(e.ctx, a))
	e.must(e.s.EnsureAccount(e.ctx, a)) // idempotent
	mbs, err := e.s.Mailboxes(e.ctx, a)
	e.must(err)
	var got []string
	for _, m := range mbs {
		got = append(got, m.Name+"="+m.SpecialUse)
		if !m.Subscribed || m.UIDNext != 1 || m.UIDValidity == 0 {
			t.Errorf("default mailbox %+v", m)
		}
	}
	want := []string{"INBOX=", `Archive=\Archive`, `Drafts=\Drafts`, `Junk=\Junk`, `Sent=\Sent`, `Trash=\Trash`}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("mailboxes %v, want %v", got, want)
	}

	mb, err := e.s.CreateMailbox(e.ctx, a, "Work/2026/Q4", "")
	e.must(err)
	if mb.Name != "Work/2026/Q4" {
		t.Fatal(mb.Name)
	}
	e.mailbox(a, "Work")
	e.mailbox(a, "Work/2026")
	if _, err := e.s.CreateMailbox(e.ctx, a, "work/2026/Q4", ""); err != nil {
		t.Fatalf("mailbox names other than INBOX are case-sensitive: %v", err)
	}
	if _, err := e.s.CreateMailbox(e.ctx, a, "Work/2026/Q4", ""); !errors.Is(err, ErrMailboxExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	for _, bad := range []string{"", "/x", "x/", "a//b", "a\x00b", "\xff"} {
		if _, err := e.s.CreateMailbox(e.ctx, a, bad, ""); !errors.Is(err, ErrBadName) {
			t.Errorf("CreateMailbox(%q) = %v", bad, err)
		}
	}
	if mb := e.mailbox(a, "inbox"); mb.Name != "INBOX" {
		t.Fatalf("INBOX not case-insensitive: %q", mb.Name)
	}
	e.must(e.s.DeleteMailbox(e.ctx, a, "work/2026/Q4"))
	if err := e.s.DeleteMailbox(e.ctx, a, "Work"); !errors.Is(err, ErrHasChildren) {
		t.Fatalf("delete with children: %v", err)
	}
	if err := e.s.DeleteMailbox(e.ctx, a, "INBOX"); !errors.Is(err, ErrInbox) {
		t.Fatalf("delete INBOX: %v", err)
	}
	if err := e.s.DeleteMailbox(e.ctx, a, "Nope"); !errors.Is(err, ErrNoMailbox) {
		t.Fatalf("delete missing: %v", err)
	}

	// Rename moves children along and keeps UIDVALIDITY.
	q4 := e.mailbox(a, "Work/2026/Q4")
	e.must(e.s.RenameMailbox(e.ctx, a, "Work", "Projects/Old"))
	if moved := e.mailbox(a, "Projects/Old/2026/Q4"); moved.ID != q4.ID || moved.UIDValidity != q4.UIDValidity {
		t.Fatalf("child after rename %+v, was %+v", moved, q4)
	}
	if _, err := e.s.Mailbox(e.ctx, a, "Work/2026"); !errors.Is(err, ErrNoMailbox) {
		t.Fatalf("old child name still there: %v", err)
	}
	if err := e.s.RenameMailbox(e.ctx, a, "Sent", "Drafts"); !errors.Is(err, ErrMailboxExists) {
		t.Fatalf("rename onto existing: %v", err)
	}
	if err := e.s.RenameMailbox(e.ctx, a, "Projects", "Projects/Sub"); !errors.Is(err, ErrBadName) {
		t.Fatalf("rename into itself: %v", err)
	}

	// Renaming INBOX moves its messages to a new mailbox; INBOX stays, empty,
	// with its identity, and the moved messages leave tombstones there.
	e.must(e.s.Deliver(e.ctx, e.body("Subject: hi\r\n\r\nbody\r\n"), []Delivery{{Account: a}}))
	inbox := e.mailbox(a, "INBOX")
	e.must(e.s.RenameMailbox(e.ctx, a, "INBOX", "Old Inbox"))
	old := e.mailbox(a, "Old Inbox")
	if old.Messages != 1 || old.UIDValidity == inbox.UIDValidity || old.ID == inbox.ID || !old.Subscribed {
		t.Fatalf("renamed inbox %+v", old)
	}
	if ni := e.mailbox(a, "INBOX"); ni.Messages != 0 || ni.UIDValidity != inbox.UIDValidity || ni.ID != inbox.ID {
		t.Fatalf("INBOX after rename %+v", ni)
	}
	if _, gone, err := e.s.Changes(e.ctx, inbox.ID, inbox.HighestModSeq); err != nil || len(gone) != 1 {
		t.Fatalf("INBOX tombstones after rename: %v, %v", gone, err)
	}

	e.must(e.s.SetSubscribed(e.ctx, a, "Old Inbox", true))
	if !e.mailbox(a, "Old Inbox").Subscribed {
		t.Fatal("not subscribed")
	}
	// A subscription is a name: the mailbox need not exist (RFC 9051 6.3.7).
	if err := e.s.SetSubscribed(e.ctx, a, "Nope", true); err != nil {
		t.Fatalf("subscribe missing: %v", err)
	}
}

func TestDeliverFlagsExpungeChanges(t *testing.T) {
	e := newEnv(t)
	const a, b = "alice@example.test", "bob@example.test"
	sub := e.s.Subscribe(a)
	defer sub.Close()

	m1 := e.body("Subject: one\r\n\r\n1\r\n")
	e.must(e.s.Deliver(e.ctx, m1, []Delivery{{Account: a}, {Account: b, Mailbox: "Missing"}}))
	m2 := e.body("Subject: two\r\n\r\n22\r\n")
	m2.Flags = Flags{System: Seen, Keywords: []string{"$Label1", "$label1", "Work"}}
	e.must(e.s.Deliver(e.ctx, m2, []Delivery{{Account: a}}))

	in := e.mailbox(a, "INBOX")
	if in.Messages != 2 || in.Unseen != 1 || in.Size != m1.Size+m2.Size || in.UIDNext != 3 {
		t.Fatalf("INBOX counters %+v", in)
	}
	if bi := e.mailbox(b, "INBOX"); bi.Messages != 1 {
		t.Fatalf("bob's missing mailbox did not fall back to INBOX: %+v", bi)
	}
	if u, _ := e.s.Usage(e.ctx, a); u != m1.Size+m2.Size {
		t.Fatalf("usage %d", u)
	}
	msgs, err := e.s.Messages(e.ctx, in.ID)
	e.must(err)
	if len(msgs) != 2 || msgs[0].UID != 1 || msgs[1].UID != 2 || msgs[1].ModSeq <= msgs[0].ModSeq ||
		!reflect.DeepEqual(msgs[1].Flags.Keywords, []string{"$Label1", "Work"}) {
		t.Fatalf("messages %+v", msgs)
	}
	full, err := e.s.Message(e.ctx, in.ID, 2)
	e.must(err)
	if full.Body != m2.Body || string(full.Structure) != "s:Subje" {
		t.Fatalf("message %+v", full)
	}
	changes, ov := sub.Take()
	if ov || len(changes) < 2 || changes[len(changes)-1].Kind != Added || changes[len(changes)-1].UIDs[0] != 2 {
		t.Fatalf("feed %+v overflow=%v", changes, ov)
	}

	// Flags: +\Seen on 1 changes it; \Seen again is no change; UNCHANGEDSINCE.
	before := in.HighestModSeq
	upd, mod, err := e.s.SetFlags(e.ctx, in.ID, []uint32{1, 2, 99}, FlagsAdd, Flags{System: Seen | Flagged}, 0)
	e.must(err)
	if len(upd) != 2 || len(mod) != 0 || upd[0].Flags.System != Seen|Flagged {
		t.Fatalf("updated %+v modified %v", upd, mod)
	}
	in = e.mailbox(a, "INBOX")
	if in.Unseen != 0 || in.HighestModSeq <= before {
		t.Fatalf("after +FLAGS: %+v", in)
	}
	upd, _, err = e.s.SetFlags(e.ctx, in.ID, []uint32{1}, FlagsAdd, Flags{System: Seen}, 0)
	e.must(err)
	if len(upd) != 0 {
		t.Fatalf("no-op store reported changes: %+v", upd)
	}
	_, mod, err = e.s.SetFlags(e.ctx, in.ID, []uint32{1, 2}, FlagsRemove, Flags{System: Seen}, before)
	e.must(err)
	if !reflect.DeepEqual(mod, []uint32{1, 2}) {
		t.Fatalf("UNCHANGEDSINCE did not refuse: %v", mod)
	}
	changedSince := e.mailbox(a, "INBOX").HighestModSeq
	upd, _, err = e.s.SetFlags(e.ctx, in.ID, []uint32{2}, FlagsReplace, Flags{System: Deleted, Keywords: []string{"X"}}, 0)
	e.must(err)
	if upd[0].Flags.System != Deleted || !reflect.DeepEqual(upd[0].Flags.Keywords, []string{"X"}) {
		t.Fatalf("replace %+v", upd)
	}
	if e.mailbox(a, "INBOX").Unseen != 1 {
		t.Fatal("unseen not restored by replace")
	}
	ch, van, err := e.s.Changes(e.ctx, in.ID, changedSince)
	e.must(err)
	if len(ch) != 1 || ch[0].UID != 2 || len(van) != 0 {
		t.Fatalf("changes since %d: %+v %v", changedSince, ch, van)
	}

	// Copy shares the body; expunging the original keeps it for the copy.
	trash := e.mailbox(a, "Trash")
	cres, src, err := e.s.Copy(e.ctx, in.ID, []uint32{2, 1}, trash.ID)
	e.must(err)
	if !reflect.DeepEqual(src, []uint32{1, 2}) || !reflect.DeepEqual(cres.UIDs, []uint32{1, 2}) || cres.UIDValidity != trash.UIDValidity {
		t.Fatalf("copy %+v %v", cres, src)
	}
	if u, _ := e.s.Usage(e.ctx, a); u != 2*(m1.Size+m2.Size) {
		t.Fatalf("usage after copy %d", u)
	}
	beforeExp := e.mailbox(a, "INBOX").HighestModSeq
	gone, err := e.s.Expunge(e.ctx, in.ID, nil) // only \Deleted: uid 2
	e.must(err)
	if !reflect.DeepEqual(gone, []uint32{2}) {
		t.Fatalf("expunged %v", gone)
	}
	if _, err := e.s.OpenBody(e.ctx, m2.Body); err != nil {
		t.Fatalf("body removed while the copy refers to it: %v", err)
	}
	_, van, err = e.s.Changes(e.ctx, in.ID, beforeExp)
	e.must(err)
	if !reflect.DeepEqual(van, []uint32{2}) {
		t.Fatalf("vanished %v", van)
	}
	if gone, _ := e.s.Expunge(e.ctx, in.ID, []uint32{1}); len(gone) != 0 {
		t.Fatalf("expunged a message without \\Deleted: %v", gone)
	}

	// Move: gone from the source in the same commit, body still shared.
	arch := e.mailbox(a, "Archive")
	mres, src, err := e.s.Move(e.ctx, trash.ID, []uint32{2}, arch.ID)
	e.must(err)
	if !reflect.DeepEqual(src, []uint32{2}) || len(mres.UIDs) != 1 {
		t.Fatalf("move %+v %v", mres, src)
	}
	if tr := e.mailbox(a, "Trash"); tr.Messages != 1 {
		t.Fatalf("trash after move %+v", tr)
	}
	// Delete the archive: the last reference to m2's body goes, so does the file.
	e.must(e.s.DeleteMailbox(e.ctx, a, "Archive"))
	if _, err := e.s.OpenBody(e.ctx, m2.Body); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("unreferenced body kept: %v", err)
	}
	if u, _ := e.s.Usage(e.ctx, a); u != 2*m1.Size {
		t.Fatalf("usage at the end %d, want %d", u, 2*m1.Size)
	}
}

func TestGroupCommitAndIsolation(t *testing.T) {
	e := newEnv(t)
	e.must(e.s.EnsureAccount(e.ctx, "alice@example.test"))
	const n = 40
	msgs := make([]NewMessage, n)
	for i := range msgs {
		msgs[i] = e.body(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i))
	}
	// Hold the writer at its first batch until every delivery is queued, so
	// the rest must share one transaction.
	release := make(chan struct{})
	var once sync.Once
	e.s.beforeCommit = func() { once.Do(func() { <-release }) }
	start := e.s.commits.Load()
	var wg sync.WaitGroup
	errs := make([]error, n+1)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.s.Deliver(e.ctx, msgs[i], []Delivery{{Account: "alice@example.test"}})
		}()
	}
	// One change in the batch fails; the others must still commit.
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, errs[n] = e.s.Append(e.ctx, "alice@example.test", "No Such Box", e.body("x: y\r\n\r\n"))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(e.s.ops) < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	for i, err := range errs[:n] {
		if err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	if !errors.Is(errs[n], ErrNoMailbox) {
		t.Fatalf("failing append: %v", errs[n])
	}
	if c := e.s.commits.Load() - start; c > 3 {
		t.Fatalf("%d deliveries took %d commits; want them grouped", n, c)
	}
	in := e.mailbox("alice@example.test", "INBOX")
	if in.Messages != n || in.UIDNext != n+1 {
		t.Fatalf("INBOX %+v", in)
	}
	// All of it survives a reopen.
	e.s.Close()
	e.open()
	if in2 := e.mailbox("alice@example.test", "INBOX"); in2.Messages != n || in2.HighestModSeq != in.HighestModSeq {
		t.Fatalf("after reopen %+v", in2)
	}
}

func TestFeedOverflow(t *testing.T) {
	f := newFeed()
	s := &Store{feed: f}
	sub := s.Subscribe("a")
	defer sub.Close()
	for i := 0; i < maxPending+1; i++ {
		f.publish("a", Change{Kind: Added})
	}
	ch, ov := sub.Take()
	if !ov || len(ch) != 0 {
		t.Fatalf("overflow=%v len=%d", ov, len(ch))
	}
	f.publish("a", Change{Kind: Added})
	if ch, ov := sub.Take(); ov || len(ch) != 1 {
		t.Fatalf("after resync: overflow=%v len=%d", ov, len(ch))
	}
	f.publish("b", Change{Kind: Added})
	if ch, _ := sub.Take(); len(ch) != 0 {
		t.Fatal("got another account's change")
	}
	if !strings.Contains(fmt.Sprint(len(sub.C)), "1") {
		t.Fatal("no wake-up pending")
	}
}

func TestInlineBodies(t *testing.T) {
	e := newEnv(t)
	const a = "alice@example.test"
	text := "Subject: small\r\n\r\nkept in the database\r\n"
	m := NewMessage{Inline: []byte(text), Size: int64(len(text))}
	e.must(e.s.Deliver(e.ctx, m, []Delivery{{Account: a}, {Account: "bob@example.test"}}))
	in := e.mailbox(a, "INBOX")
	full, err := e.s.Message(e.ctx, in.ID, 1)
	e.must(err)
	if _, ok := full.Body.inline(); !ok {
		t.Fatalf("small body not inline: %q", full.Body)
	}
	read := func(ref BodyRef) (string, error) {
		b, err := e.s.OpenBody(e.ctx, ref)
		if err != nil {
			return "", err
		}
		defer b.Close()
		buf := make([]byte, 8)
		if _, err := b.ReadAt(buf, 9); err != nil {
			return "", err
		}
		all, err := io.ReadAll(b)
		if string(buf) != "small\r\n\r" {
			t.Fatalf("ReadAt: %q", buf)
		}
		return string(all), err
	}
	if got, err := read(full.Body); err != nil || got != text {
		t.Fatalf("inline body %q %v", got, err)
	}
	bob := e.mailbox("bob@example.test", "INBOX")
	bobMsg, err := e.s.Message(e.ctx, bob.ID, 1)
	e.must(err)
	if bobMsg.Body != full.Body {
		t.Fatalf("recipients do not share one body row: %q %q", bobMsg.Body, full.Body)
	}
	// Append inline too, then expunge everything: the rows go with the last reference.
	res, err := e.s.Append(e.ctx, a, "INBOX", NewMessage{Inline: []byte(text), Size: int64(len(text)), Flags: Flags{System: Deleted}})
	e.must(err)
	appended, err := e.s.Message(e.ctx, in.ID, res.UIDs[0])
	e.must(err)
	gone, err := e.s.Expunge(e.ctx, in.ID, nil)
	e.must(err)
	if len(gone) != 1 {
		t.Fatalf("expunged %v", gone)
	}
	if _, err := read(appended.Body); !errors.Is(err, ErrNoMessage) {
		t.Fatalf("expunged inline body still readable: %v", err)
	}
	e.must(markDeleted(e.s, in.ID, 1))
	e.s.Expunge(e.ctx, in.ID, nil)
	if _, err := read(full.Body); err != nil {
		t.Fatalf("body shared with bob removed with alice's copy: %v", err)
	}
	e.must(markDeleted(e.s, bob.ID, 1))
	e.s.Expunge(e.ctx, bob.ID, nil)
	if _, err := read(full.Body); !errors.Is(err, ErrNoMessage) {
		t.Fatalf("body kept after its last reference: %v", err)
	}
}

// markDeleted sets \Deleted on one message.
func markDeleted(s *Store, mailbox int64, uid uint32) error {
	_, _, err := s.SetFlags(context.Background(), mailbox, []uint32{uid}, FlagsAdd, Flags{System: Deleted}, 0)
	return err
}

// TestOpenMessageBody: one query gives the same bytes as Message then
// OpenBody, for a body in a file and one in the database, and a missing
// UID is ErrNoMessage.
func TestOpenMessageBody(t *testing.T) {
	e := newEnv(t)
	const a = "alice@example.test"
	small := "Subject: small\r\n\r\ninline\r\n"
	e.must(e.s.Deliver(e.ctx, NewMessage{Inline: []byte(small), Size: int64(len(small))}, []Delivery{{Account: a}}))
	big := "Subject: file\r\n\r\n" + strings.Repeat("in a file\r\n", 10)
	e.must(e.s.Deliver(e.ctx, e.body(big), []Delivery{{Account: a}}))
	e.must(e.s.Deliver(e.ctx, NewMessage{Inline: []byte{}}, []Delivery{{Account: a}}))
	in := e.mailbox(a, "INBOX")
	for uid, want := range map[uint32]string{1: small, 2: big, 3: ""} {
		b, err := e.s.OpenMessageBody(e.ctx, in.ID, uid)
		e.must(err)
		got, err := io.ReadAll(b)
		b.Close()
		if err != nil || string(got) != want {
			t.Errorf("uid %d: %q %v, want %q", uid, got, err, want)
		}
	}
	if _, err := e.s.OpenMessageBody(e.ctx, in.ID, 4); !errors.Is(err, ErrNoMessage) {
		t.Errorf("missing uid: %v, want ErrNoMessage", err)
	}
}

// TestDeletedIndexMatchesFlag: the partial index's constant is the Deleted
// flag, and EXPUNGE's query uses that index rather than scanning.
func TestDeletedIndexMatchesFlag(t *testing.T) {
	if Deleted != 8 {
		t.Fatalf("Deleted is %d; the messages_deleted index and remove's query say 8", Deleted)
	}
	e := newEnv(t)
	rows, err := e.s.db.Query(`EXPLAIN QUERY PLAN SELECT uid FROM messages WHERE mailbox_id = ? AND (flags & 8) <> 0 ORDER BY uid`, 1)
	e.must(err)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		e.must(rows.Scan(&id, &parent, &unused, &detail))
		plan = append(plan, detail)
	}
	if len(plan) != 1 || !strings.Contains(plan[0], "messages_deleted") {
		t.Fatalf("plan %q, want a search of messages_deleted", plan)
	}
}

// TestRemove: Remove expunges exactly the UIDs given, flagged \Deleted or
// not, in one change with tombstones, and fixes the counters.
func TestRemove(t *testing.T) {
	e := newEnv(t)
	const a = "alice@example.test"
	e.must(e.s.EnsureAccount(e.ctx, a))
	for i := range 4 {
		m := e.body(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))
		_, err := e.s.Append(e.ctx, a, "INBOX", m)
		e.must(err)
	}
	in := e.mailbox(a, "INBOX")
	_, _, err := e.s.SetFlags(e.ctx, in.ID, []uint32{2}, FlagsAdd, Flags{System: Deleted}, 0)
	e.must(err)
	sub := e.s.Subscribe(a)
	defer sub.Close()
	got, err := e.s.Remove(e.ctx, in.ID, []uint32{3, 1, 77})
	e.must(err)
	if !reflect.DeepEqual(got, []uint32{1, 3}) {
		t.Fatalf("removed %v, want [1 3]", got)
	}
	msgs, err := e.s.Messages(e.ctx, in.ID)
	e.must(err)
	if len(msgs) != 2 || msgs[0].UID != 2 || msgs[1].UID != 4 {
		t.Fatalf("left %+v, want UIDs 2 and 4 (2 still \\Deleted)", msgs)
	}
	after := e.mailbox(a, "INBOX")
	if after.Messages != 2 || after.Size != msgs[0].Size+msgs[1].Size || after.Unseen != 2 {
		t.Fatalf("counters %+v", after)
	}
	if u, _ := e.s.Usage(e.ctx, a); u != after.Size {
		t.Fatalf("usage %d, want %d", u, after.Size)
	}
	changes, _ := sub.Take()
	if len(changes) != 1 || changes[0].Kind != Expunged || !reflect.DeepEqual(changes[0].UIDs, []uint32{1, 3}) {
		t.Fatalf("feed %+v, want one expunge of 1 and 3", changes)
	}
	_, gone, err := e.s.Changes(e.ctx, in.ID, in.HighestModSeq)
	e.must(err)
	if !reflect.DeepEqual(gone, []uint32{1, 3}) {
		t.Fatalf("tombstones %v", gone)
	}
}
