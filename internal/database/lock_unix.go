//go:build unix

package database

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Lock takes the data directory's lock (LockName, flock(2)), held until
// release or the process ends (a crash releases it too). The server holds
// it while it runs: the mail store keeps state in memory that another
// process's writes would make stale, so imports wait for it to stop.
func Lock(dataDir string) (release func(), err error) {
	path := filepath.Join(dataDir, LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("database: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s)", ErrLocked, path)
		}
		return nil, fmt.Errorf("database: lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
