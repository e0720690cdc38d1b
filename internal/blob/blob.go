// Package blob keeps immutable message bodies on disk with the fsync
// discipline the store's acknowledgements rely on: write to a temp file,
// fsync, rename into place, fsync the directory (the caller may batch the
// directory syncs of several bodies into one, see Writer.Commit).
//
// It knows nothing of messages or accounts; S3-compatible storage can stand
// behind the same methods later. It imports nothing of Posta's own.
package blob

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ID names a body: 32 hex digits, the first 8 a time bucket (unix seconds
// / 1024, about 17 minutes) and the rest random. It is not a content hash:
// bodies are never shared by content, only by reference (COPY points a new
// row at the same ID). Bodies written at about the same time share their
// bucket directory, so a group commit syncs one directory, not one per body.
type ID string

// bucketLen is the length of the time-bucket prefix that names the directory.
const bucketLen = 8

// newID makes a fresh ID for now.
func newID() (ID, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("blob: id: %w", err)
	}
	return ID(fmt.Sprintf("%08x", uint32(time.Now().Unix()>>10)) + hex.EncodeToString(b[:])), nil
}

// valid reports whether id has the shape New gives, so an ID read from the
// database can never name a path outside the store.
func (id ID) valid() bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ErrNotFound: no body with that ID.
var ErrNotFound = errors.New("blob: not found")

// Store is a directory of bodies: <dir>/<time bucket>/<id>, temp files in <dir>/tmp.
type Store struct {
	dir string
	tmp string
	// made remembers fan-out directories already created (and synced into
	// their parent), so a commit does not stat them every time.
	made sync.Map
}

// Open prepares dir (created 0700 if missing) and removes temp files left by
// a crash: they were never acknowledged.
func Open(dir string) (*Store, error) {
	s := &Store{dir: dir, tmp: filepath.Join(dir, "tmp")}
	if err := os.MkdirAll(s.tmp, 0o700); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	ents, err := os.ReadDir(s.tmp)
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	for _, e := range ents {
		os.Remove(filepath.Join(s.tmp, e.Name()))
	}
	return s, nil
}

func (s *Store) path(id ID) string { return filepath.Join(s.dir, string(id[:bucketLen]), string(id)) }

// Writer receives one body. It is not safe for concurrent use.
type Writer struct {
	s    *Store
	f    *os.File
	id   ID
	n    int64
	done bool
}

// Create starts a new body in a temp file.
func (s *Store) Create() (*Writer, error) {
	id, err := newID()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(s.tmp, string(id)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("blob: create: %w", err)
	}
	return &Writer{s: s, f: f, id: id}, nil
}

// Write implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("blob: write: %w", err)
	}
	return n, nil
}

// ReadFrom lets io.Copy hand the file to the kernel where it can.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(w.f, r)
	w.n += n
	return n, err
}

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// ID is the body's name once committed.
func (w *Writer) ID() ID { return w.id }

// Commit makes the body durable under its ID: fsync the file, close it,
// rename it into its fan-out directory. It returns that directory, which the
// caller must fsync (SyncDir) before it acknowledges anything that refers to
// the body; callers committing many bodies at once sync each directory once.
func (w *Writer) Commit() (dir string, err error) {
	if w.done {
		return "", errors.New("blob: commit after commit or abort")
	}
	w.done = true
	defer func() {
		if err != nil {
			os.Remove(w.f.Name())
		}
	}()
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		return "", fmt.Errorf("blob: fsync: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return "", fmt.Errorf("blob: close: %w", err)
	}
	dir, err = w.s.fanout(w.id)
	if err != nil {
		return "", err
	}
	if err := os.Rename(w.f.Name(), w.s.path(w.id)); err != nil {
		return "", fmt.Errorf("blob: rename: %w", err)
	}
	return dir, nil
}

// Abort discards an uncommitted body.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

// SyncDir fsyncs a directory so the renames into it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blob: sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("blob: sync dir %s: %w", dir, err)
	}
	return nil
}

// Open returns the body for reading. The returned *os.File lets callers use
// ReadAt for sections and sendfile for whole bodies.
func (s *Store) Open(id ID) (*os.File, error) {
	if !id.valid() {
		return nil, fmt.Errorf("%w: bad id %q", ErrNotFound, id)
	}
	f, err := os.Open(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: open: %w", err)
	}
	return f, nil
}

// Remove deletes a body; removing one that is already gone is not an error,
// so a crash halfway through a batch of removals can simply be redone.
func (s *Store) Remove(id ID) error {
	if !id.valid() {
		return fmt.Errorf("%w: bad id %q", ErrNotFound, id)
	}
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: remove: %w", err)
	}
	return nil
}

// Dir is where the bodies live.
func (s *Store) Dir() string { return s.dir }

// Link gives an existing body a second, independent name (a hard link: no
// copy), so two owners (a mailbox row and the outbound queue) can each
// remove theirs. The returned directory must be synced like Commit's.
func (s *Store) Link(id ID) (ID, string, error) {
	if !id.valid() {
		return "", "", fmt.Errorf("%w: bad id %q", ErrNotFound, id)
	}
	nid, err := newID()
	if err != nil {
		return "", "", err
	}
	dir, err := s.fanout(nid)
	if err != nil {
		return "", "", err
	}
	if err := os.Link(s.path(id), s.path(nid)); err != nil {
		return "", "", fmt.Errorf("blob: link: %w", err)
	}
	return nid, dir, nil
}

// fanout makes sure id's fan-out directory exists; a new one is synced into
// its parent so it is itself durable.
func (s *Store) fanout(id ID) (string, error) {
	dir := filepath.Join(s.dir, string(id[:bucketLen]))
	if _, ok := s.made.Load(dir); ok {
		return dir, nil
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("blob: %w", err)
	} else if err == nil {
		if err := SyncDir(s.dir); err != nil {
			return "", err
		}
	}
	s.made.Store(dir, true)
	return dir, nil
}
