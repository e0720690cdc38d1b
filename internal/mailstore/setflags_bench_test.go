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
	dir := b.TempDir()
	db, err := database.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	st, err := Open(ctx, db, dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.EnsureAccount(ctx, "a@x"); err != nil {
		b.Fatal(err)
	}
	msgs := make([]NewMessage, 1000)
	for i := range msgs {
		msgs[i] = NewMessage{Inline: []byte("Subject: x\r\n\r\nhi\r\n"), Size: 18, InternalDate: time.Now(), Structure: []byte("s")}
	}
	res, err := st.Append(ctx, "a@x", "INBOX", msgs...)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		op := FlagsAdd
		if i%2 == 1 {
			op = FlagsRemove
		}
		if _, _, err := st.SetFlags(ctx, res.Mailbox, res.UIDs[i%1000:i%1000+1], op, Flags{System: Seen}, 0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkExpungeOne is STORE \Deleted then EXPUNGE of one message.
func BenchmarkExpungeOne(b *testing.B) {
	dir := b.TempDir()
	db, err := database.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	st, err := Open(ctx, db, dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.EnsureAccount(ctx, "a@x"); err != nil {
		b.Fatal(err)
	}
	msgs := make([]NewMessage, 5000)
	for i := range msgs {
		msgs[i] = NewMessage{Inline: []byte("Subject: x\r\n\r\nhi\r\n"), Size: 18, InternalDate: time.Now(), Structure: []byte("s")}
	}
	res, err := st.Append(ctx, "a@x", "INBOX", msgs...)
	if err != nil {
		b.Fatal(err)
	}
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
