package delivery

import (
	"errors"
	"fmt"
	"io"

	"posta/internal/blob"
	"posta/internal/message"
)

// parseStructure computes the MIME structure stored with a message, so IMAP
// FETCH never parses a body for ENVELOPE or BODYSTRUCTURE. A message past
// the parser's limits (nesting, parts) still gets the structure parsed so far:
// the mail is kept, never refused for its shape.
func parseStructure(r io.Reader) ([]byte, error) {
	m, err := message.Parse(r)
	if err != nil && !errors.Is(err, message.ErrLimit) {
		return nil, fmt.Errorf("delivery: parse: %w", err)
	}
	b, err := m.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("delivery: structure: %w", err)
	}
	return b, nil
}

func (d *Delivery) fileStructure(id blob.ID) ([]byte, error) {
	f, err := d.store.Blobs().Open(id)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseStructure(f)
}

func syncDir(dir string) error { return blob.SyncDir(dir) }
