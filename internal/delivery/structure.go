package delivery

import (
	"posta/internal/blob"
)

// structure computes the stored MIME structure of a committed body.
func (d *Delivery) structure(id blob.ID) ([]byte, error) {
	return nil, nil
}

func syncDir(dir string) error { return blob.SyncDir(dir) }
