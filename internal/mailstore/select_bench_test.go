package mailstore

import (
	"context"
	"posta/internal/database"
	"testing"
	"time"
)

// BenchmarkMessages100k lists a 100k-message mailbox, what IMAP SELECT does.
func BenchmarkMessages100k(b *testing.B) {
	dir := b.TempDir()
	db, err := database.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	st, err := Open(context.Background(), db, dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	defer st.Close()
	e := &env{dir: dir, s: st, ctx: context.Background()}
	if err := st.EnsureAccount(e.ctx, "a@x"); err != nil {
		b.Fatal(err)
	}
	msgs := make([]NewMessage, 1000)
	for i := range msgs {
		msgs[i] = NewMessage{Inline: []byte("Subject: x\r\n\r\nhi\r\n"), Size: 18, InternalDate: time.Now(), Structure: []byte("s")}
	}
	for range 100 {
		if _, err := e.s.Append(e.ctx, "a@x", "INBOX", msgs...); err != nil {
			b.Fatal(err)
		}
	}
	mb, _ := e.s.Mailbox(e.ctx, "a@x", "INBOX")
	b.ResetTimer()
	for b.Loop() {
		m, err := e.s.Messages(e.ctx, mb.ID)
		if err != nil || len(m) != 100000 {
			b.Fatal(err, len(m))
		}
	}
}
