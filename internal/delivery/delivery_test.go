package delivery

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"posta/internal/blob"
	"posta/internal/database"
	"posta/internal/directory"
	"posta/internal/mailstore"
	"posta/internal/message"
	"posta/internal/queue"
)

type fixture struct {
	ctx   context.Context
	dir   *directory.Directory
	store *mailstore.Store
	queue *queue.Queue
	d     *Delivery
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	data := t.TempDir()
	db, err := database.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := directory.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	st, err := mailstore.Open(ctx, db, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(); db.Close() })
	f := &fixture{ctx: ctx, dir: dir, store: st, queue: q,
		d: New(Options{Directory: dir, Store: st, Queue: q, MaxSize: 1 << 20, SenderMustOwn: true})}
	must(t, dir.AddDomain(ctx, "example.test"))
	for _, u := range []string{"alice", "bob"} {
		must(t, dir.AddAccount(ctx, u+"@example.test", u+"-password", directory.AccountOptions{}))
	}
	must(t, dir.AddAlias(ctx, "team@example.test", []string{"alice@example.test", "bob@example.test", "partner@remote.test"}))
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) inbox(t *testing.T, account string) (mailstore.Mailbox, []string) {
	t.Helper()
	mb, err := f.store.Mailbox(f.ctx, account, "INBOX")
	if err != nil {
		return mailstore.Mailbox{}, nil
	}
	metas, err := f.store.Messages(f.ctx, mb.ID)
	must(t, err)
	var bodies []string
	for _, m := range metas {
		full, err := f.store.Message(f.ctx, mb.ID, m.UID)
		must(t, err)
		r, err := f.store.OpenBody(f.ctx, full.Body)
		must(t, err)
		b, _ := io.ReadAll(r)
		r.Close()
		bodies = append(bodies, string(b))
	}
	return mb, bodies
}

const msg = "From: someone@remote.test\r\nSubject: caf\xc3\xa9\r\n\r\n..leading dot stays\r\n8-bit: \xe2\x82\xac\r\n"

func TestDeliverLocalAliasAndRemote(t *testing.T) {
	f := newFixture(t)
	env := &Envelope{MailFrom: "alice@example.test", Account: "alice@example.test", ReceivedAt: time.Unix(1700000000, 0),
		Recipients: []Recipient{{Address: "team@example.test", Notify: []string{"FAILURE"}}, {Address: "Bob+news@example.test"}, {Address: "far@away.test"}}}
	for _, r := range env.Recipients {
		must(t, f.d.CheckRecipient(f.ctx, env, r))
	}
	must(t, f.d.Deliver(f.ctx, env, strings.NewReader(msg)))

	want := "Return-Path: <alice@example.test>\r\n" + msg
	for _, acc := range []string{"alice@example.test", "bob@example.test"} {
		mb, bodies := f.inbox(t, acc)
		// bob is reached twice (alias and +detail) but gets one copy.
		if len(bodies) != 1 || bodies[0] != want {
			t.Fatalf("%s INBOX %+v: %q", acc, mb, bodies)
		}
	}
	qs, err := f.queue.List(f.ctx)
	must(t, err)
	if len(qs) != 1 || len(qs[0].Recipients) != 2 {
		t.Fatalf("queue %+v", qs)
	}
	q := qs[0]
	if q.Recipients[0].Address != "far@away.test" || q.Recipients[1].Address != "partner@remote.test" ||
		q.Recipients[1].ORCPT != "rfc822;team@example.test" || q.Recipients[1].Notify[0] != "FAILURE" {
		t.Fatalf("queued recipients %+v", q.Recipients)
	}
	r, err := f.store.Blobs().Open(q.Blob)
	must(t, err)
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b[q.BodyOffset:]) != msg || q.Size != int64(len(msg)) {
		t.Fatalf("queued body %q (offset %d, size %d)", b[q.BodyOffset:], q.BodyOffset, q.Size)
	}
	// The local copies and the queue's are independent: expunging every
	// local copy leaves the queued body readable.
	for _, acc := range []string{"alice@example.test", "bob@example.test"} {
		mb, _ := f.inbox(t, acc)
		metas, _ := f.store.Messages(f.ctx, mb.ID)
		f.store.SetFlags(f.ctx, mb.ID, []uint32{metas[0].UID}, mailstore.FlagsAdd, mailstore.Flags{System: mailstore.Deleted}, 0)
		f.store.Expunge(f.ctx, mb.ID, nil)
	}
	if r, err := f.store.Blobs().Open(q.Blob); err != nil {
		t.Fatalf("queued body gone with the local copies: %v", err)
	} else {
		r.Close()
	}
}

func TestRecipientAndSenderPolicy(t *testing.T) {
	f := newFixture(t)
	mx := &Envelope{MailFrom: "x@remote.test"}
	sub := &Envelope{MailFrom: "alice@example.test", Account: "alice@example.test"}
	cases := []struct {
		env  *Envelope
		rcpt string
		want error
	}{
		{mx, "alice@example.test", nil},
		{mx, "ALICE+tag@Example.test", nil},
		{mx, "team@example.test", nil},
		{mx, "nobody@example.test", ErrNoSuchUser},
		{mx, "someone@remote.test", ErrRelayDenied},
		{mx, "not an address", ErrBadAddress},
		{sub, "someone@remote.test", nil},
		{sub, "nobody@example.test", ErrNoSuchUser},
	}
	for _, c := range cases {
		err := f.d.CheckRecipient(f.ctx, c.env, Recipient{Address: c.rcpt})
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("CheckRecipient(account=%q, %q) = %v, want %v", c.env.Account, c.rcpt, err, c.want)
		}
	}
	// Unauthenticated mail to a remote domain is refused at DATA too.
	if err := f.d.Deliver(f.ctx, &Envelope{Recipients: []Recipient{{Address: "x@remote.test"}}}, strings.NewReader(msg)); !errors.Is(err, ErrRelayDenied) {
		t.Fatalf("relay at DATA: %v", err)
	}

	for from, want := range map[string]error{
		"alice@example.test":       nil,
		"Alice+lists@example.test": nil,
		"team@example.test":        nil, // an alias that reaches alice
		"":                         nil, // null sender
		"bob@example.test":         ErrSenderNotOwned,
		"ceo@remote.test":          ErrSenderNotOwned,
		"nobody@example.test":      ErrSenderNotOwned,
		"broken":                   ErrBadAddress,
	} {
		err := f.d.CheckSender(f.ctx, &Envelope{MailFrom: from, Account: "alice@example.test"})
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Errorf("CheckSender(%q) = %v, want %v", from, err, want)
		}
	}
	if err := f.d.CheckSender(f.ctx, &Envelope{MailFrom: "bob@example.test"}); err != nil {
		t.Errorf("unauthenticated sender checked: %v", err)
	}
}

func TestQuotaAndSize(t *testing.T) {
	f := newFixture(t)
	q := int64(200)
	must(t, f.dir.UpdateAccount(f.ctx, "bob@example.test", directory.AccountUpdate{QuotaBytes: &q}))
	env := &Envelope{MailFrom: "x@remote.test", Recipients: []Recipient{{Address: "bob@example.test"}}}
	if err := f.d.CheckRecipient(f.ctx, &Envelope{Size: 500}, Recipient{Address: "bob@example.test"}); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("declared size over quota: %v", err)
	}
	must(t, f.d.CheckRecipient(f.ctx, env, Recipient{Address: "bob@example.test"}))
	// Under quota: one message of grace, even though it ends over.
	big := strings.Repeat("x", 300)
	must(t, f.d.Deliver(f.ctx, env, strings.NewReader("Subject: big\r\n\r\n"+big+"\r\n")))
	if err := f.d.CheckRecipient(f.ctx, env, Recipient{Address: "bob@example.test"}); !errors.Is(err, ErrMailboxFull) {
		t.Fatalf("full mailbox at RCPT: %v", err)
	}
	if err := f.d.Deliver(f.ctx, env, strings.NewReader(msg)); !errors.Is(err, ErrMailboxFull) {
		t.Fatalf("full mailbox at DATA: %v", err)
	}
	if _, bodies := f.inbox(t, "bob@example.test"); len(bodies) != 1 {
		t.Fatalf("bob has %d messages", len(bodies))
	}

	huge := strings.Repeat("y", 1<<20)
	err := f.d.Deliver(f.ctx, &Envelope{Recipients: []Recipient{{Address: "alice@example.test"}}}, strings.NewReader(huge+"z"))
	if !errors.Is(err, ErrMessageTooBig) {
		t.Fatalf("over the size limit: %v", err)
	}
	if _, bodies := f.inbox(t, "alice@example.test"); len(bodies) != 0 {
		t.Fatal("oversized message stored")
	}
}

func TestLargeBodyInFileAndStructureStored(t *testing.T) {
	f := newFixture(t)
	big := "From: a@remote.test\r\nSubject: large\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 5000)
	env := &Envelope{MailFrom: "alice@example.test", Account: "alice@example.test",
		Recipients: []Recipient{{Address: "team@example.test"}}}
	must(t, f.d.Deliver(f.ctx, env, strings.NewReader(big)))
	mb, bodies := f.inbox(t, "bob@example.test")
	if len(bodies) != 1 || bodies[0] != "Return-Path: <alice@example.test>\r\n"+big {
		t.Fatalf("large body not stored byte-exact (%d messages)", len(bodies))
	}
	full, err := f.store.Message(f.ctx, mb.ID, 1)
	must(t, err)
	if strings.HasPrefix(string(full.Body), "i") {
		t.Fatalf("a %d-byte body was kept inline", len(big))
	}
	var m message.Message
	must(t, m.UnmarshalBinary(full.Structure))
	if m.Envelope().Subject != "large" || m.Size != int64(len(big))+int64(len("Return-Path: <alice@example.test>\r\n")) {
		t.Fatalf("stored structure: subject %q size %d", m.Envelope().Subject, m.Size)
	}
	qs, err := f.queue.List(f.ctx)
	must(t, err)
	if len(qs) != 1 || qs[0].Blob == blob.ID(full.Body) {
		t.Fatalf("queue must hold its own name for the body: %+v", qs)
	}
	r, err := f.store.Blobs().Open(qs[0].Blob)
	must(t, err)
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b[qs[0].BodyOffset:]) != big {
		t.Fatal("queued large body differs")
	}

	// A small message keeps its structure too.
	must(t, f.d.Deliver(f.ctx, &Envelope{Recipients: []Recipient{{Address: "bob@example.test"}}}, strings.NewReader(msg)))
	small, err := f.store.Message(f.ctx, mb.ID, 2)
	must(t, err)
	must(t, m.UnmarshalBinary(small.Structure))
	if !strings.HasPrefix(string(small.Body), "i") || m.Envelope().Subject != "caf\xc3\xa9" {
		t.Fatalf("small message: body %q subject %q", small.Body, m.Envelope().Subject)
	}
}

// RFC 8689 4.2.1: a REQUIRETLS message is relayed with REQUIRETLS; the
// local copy is delivered as usual.
func TestRequireTLSQueued(t *testing.T) {
	f := newFixture(t)
	for i, require := range []bool{true, false} {
		env := &Envelope{MailFrom: "alice@example.test", Account: "alice@example.test", ReceivedAt: time.Unix(1700000000, 0),
			RequireTLS: require, Recipients: []Recipient{{Address: "bob@example.test"}, {Address: "far@away.test"}}}
		for _, r := range env.Recipients {
			must(t, f.d.CheckRecipient(f.ctx, env, r))
		}
		must(t, f.d.Deliver(f.ctx, env, strings.NewReader(msg)))
		if _, bodies := f.inbox(t, "bob@example.test"); len(bodies) != i+1 {
			t.Fatalf("bob's INBOX after message %d: %d messages", i, len(bodies))
		}
	}
	qs, err := f.queue.List(f.ctx)
	must(t, err)
	if len(qs) != 2 || !qs[0].RequireTLS || qs[1].RequireTLS {
		t.Fatalf("queue %+v", qs)
	}
	if len(qs[0].Recipients) != 1 || qs[0].Recipients[0].Address != "far@away.test" {
		t.Fatalf("queued recipients %+v", qs[0].Recipients)
	}
}
