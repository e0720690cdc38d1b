package mailstore

import (
	"context"
	"testing"
	"time"

	"posta/internal/database"
)

// BenchmarkSetFlags is one STORE +FLAGS on one message of a 1000-message
// mailbox, committed alone (what one IMAP client's STORE costs).
func BenchmarkSetFlags(b *testing.B) {
	ctx := context.Background()
	st, res := benchMailbox(b, 1000)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		op := FlagsAdd
		if i%2 == 1 {
			op = FlagsRemove
		}
		// Set then clear on the same message, so that every call changes
		// something (a no-op commits nothing and syncs nothing).
		j := i / 2 % 1000
		if _, _, err := st.SetFlags(ctx, res.Mailbox, res.UIDs[j:j+1], op, Flags{System: Seen}, 0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkExpungeOne is STORE \Deleted then EXPUNGE of one message.
func BenchmarkExpungeOne(b *testing.B) {
	ctx := context.Background()
	st, res := benchMailbox(b, 5000)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		u := res.UIDs[i : i+1]
		if _, _, err := st.SetFlags(ctx, res.Mailbox, u, FlagsAdd, Flags{System: Deleted}, 0); err != nil {
			b.Fatal(err)
		}
		if _, err := st.Expunge(ctx, res.Mailbox, nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// benchMailbox opens a store in a temp dir with one account whose INBOX
// holds n small messages.
func benchMailbox(b *testing.B, n int) (*Store, AppendResult) {
	b.Helper()
	dir := b.TempDir()
	db, err := database.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	ctx := context.Background()
	st, err := Open(ctx, db, dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.EnsureAccount(ctx, "a@x"); err != nil {
		b.Fatal(err)
	}
	msgs := make([]NewMessage, n)
	for i := range msgs {
		msgs[i] = NewMessage{Inline: []byte("Subject: x\r\n\r\nhi\r\n"), Size: 18, InternalDate: time.Now(), Structure: []byte("s")}
	}
	res, err := st.Append(ctx, "a@x", "INBOX", msgs...)
	if err != nil {
		b.Fatal(err)
	}
	return st, res
}
