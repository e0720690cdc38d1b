package delivery

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"posta/internal/mailstore"
)

// CheckQuota reports whether account may store size more octets: nil, or
// an error wrapping ErrMailboxFull or ErrQuotaExceeded.
func (d *Delivery) CheckQuota(ctx context.Context, account string, size int64) error {
	return d.checkQuota(ctx, account, size)
}

// Spool readies a message a client stores itself (IMAP APPEND) for
// mailstore.Append: exactly size octets are read from r; a body of at most
// inlineMax stays in memory, to be written inside the store's transaction,
// and a larger one goes to a blob file made durable (fsynced) before
// Spool returns. release removes that file; call it when the message is
// not stored after all. date is the internal date.
func (d *Delivery) Spool(r io.Reader, size int64, date time.Time) (msg mailstore.NewMessage, release func(), err error) {
	release = func() {}
	msg = mailstore.NewMessage{Size: size, InternalDate: date}
	if size <= inlineMax {
		buf := make([]byte, size)
		if _, err := io.ReadFull(r, buf); err != nil {
			return msg, release, fmt.Errorf("delivery: read message: %w", err)
		}
		if msg.Structure, err = parseStructure(bytes.NewReader(buf)); err != nil {
			return msg, release, err
		}
		msg.Inline = buf
		return msg, release, nil
	}
	w, err := d.store.Blobs().Create()
	if err != nil {
		return msg, release, err
	}
	if n, err := io.CopyN(w, r, size); err != nil {
		w.Abort()
		return msg, release, fmt.Errorf("delivery: read message (%d of %d octets): %w", n, size, err)
	}
	dir, err := w.Commit()
	if err != nil {
		return msg, release, err
	}
	id := w.ID()
	release = func() { d.store.Blobs().Remove(id) }
	if msg.Structure, err = d.fileStructure(id); err != nil {
		release()
		return msg, func() {}, err
	}
	msg.Body, msg.BlobDir = mailstore.FileBody(id), dir
	return msg, release, nil
}
