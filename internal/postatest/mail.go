package postatest

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"posta/internal/mailstore"
)

// Messages returns the raw bytes of every message in an account's mailbox,
// in UID order, read back from the store (nil if the mailbox does not exist
// yet: an account's mail state starts at its first delivery).
func (in *Instance) Messages(t testing.TB, account, mailbox string) [][]byte {
	t.Helper()
	return ReadMailbox(t, in.Mail, account, mailbox)
}

// ReadMailbox reads every message of a mailbox from a store.
func ReadMailbox(t testing.TB, st *mailstore.Store, account, mailbox string) [][]byte {
	t.Helper()
	ctx := context.Background()
	mb, err := st.Mailbox(ctx, account, mailbox)
	if errors.Is(err, mailstore.ErrNoMailbox) {
		return nil
	}
	if err != nil {
		t.Fatalf("postatest: mailbox %s/%s: %v", account, mailbox, err)
	}
	metas, err := st.Messages(ctx, mb.ID)
	if err != nil {
		t.Fatalf("postatest: messages: %v", err)
	}
	var out [][]byte
	for _, m := range metas {
		full, err := st.Message(ctx, mb.ID, m.UID)
		if err != nil {
			t.Fatalf("postatest: message %d: %v", m.UID, err)
		}
		f, err := st.OpenBody(ctx, full.Body)
		if err != nil {
			t.Fatalf("postatest: body of %d: %v", m.UID, err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatalf("postatest: body of %d: %v", m.UID, err)
		}
		out = append(out, b)
	}
	return out
}

// WaitMessages polls until the mailbox holds at least n messages and
// returns them; the test fails after a deadline.
func (in *Instance) WaitMessages(t testing.TB, account, mailbox string, n int) [][]byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		msgs := in.Messages(t, account, mailbox)
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("postatest: %s/%s has %d messages, want %d", account, mailbox, len(msgs), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
