package mailstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"posta/internal/blob"
)

// BodyRef names a message body: a blob file (its blob.ID) or a small body
// kept in the database ("i" and its row id).
type BodyRef string

// FileBody refers to a committed blob file.
func FileBody(id blob.ID) BodyRef { return BodyRef(id) }

func (r BodyRef) inline() (int64, bool) {
	if !strings.HasPrefix(string(r), "i") {
		return 0, false
	}
	id, err := strconv.ParseInt(string(r[1:]), 10, 64)
	return id, err == nil
}

// Body is a message body open for reading. A body kept in a file is an
// *os.File (so callers can hand it to sendfile); a small one is in memory.
type Body interface {
	io.Reader
	io.ReaderAt
	io.Closer
}

type memBody struct{ *bytes.Reader }

func (memBody) Close() error { return nil }

// OpenBody opens a message's body.
func (s *Store) OpenBody(ctx context.Context, ref BodyRef) (Body, error) {
	if id, ok := ref.inline(); ok {
		var data []byte
		err := s.reader(ctx).QueryRow(`SELECT data FROM bodies WHERE id = ?`, id).Scan(&data)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w: body %s", ErrNoMessage, ref)
		}
		if err != nil {
			return nil, fmt.Errorf("mailstore: body: %w", err)
		}
		return memBody{bytes.NewReader(data)}, nil
	}
	return s.blobs.Open(blob.ID(ref))
}

// OpenMessageBody opens the body of message uid without reading its
// metadata: what POP3's RETR and TOP need for every message. (Two point
// queries, not one join: SQLite re-prepares a join with bound parameters
// now and then, which costs more than the second query.)
func (s *Store) OpenMessageBody(ctx context.Context, mailbox int64, uid uint32) (Body, error) {
	var ref string
	err := s.reader(ctx).QueryRow(`SELECT blob FROM messages WHERE mailbox_id = ? AND uid = ?`, mailbox, uid).Scan(&ref)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: uid %d", ErrNoMessage, uid)
	}
	if err != nil {
		return nil, fmt.Errorf("mailstore: body: %w", err)
	}
	return s.OpenBody(ctx, BodyRef(ref))
}

// materialize stores an inline body in the transaction and points the
// message at it.
func materialize(tx *wtx, m *NewMessage) error {
	if m.Inline == nil {
		if m.Body == "" {
			return errors.New("mailstore: message without a body")
		}
		return nil
	}
	res, err := tx.Exec(`INSERT INTO bodies (data) VALUES (?)`, m.Inline)
	if err != nil {
		return fmt.Errorf("mailstore: store body: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("mailstore: store body: %w", err)
	}
	m.Body, m.Inline = BodyRef("i"+strconv.FormatInt(id, 10)), nil
	return nil
}
