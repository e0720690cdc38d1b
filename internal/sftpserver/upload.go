package sftpserver

import (
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/pkg/sftp"

	"posta/internal/files"
)

// uploadKind is how an upload writes (see handlers.openWrite).
type uploadKind uint8

const (
	kindReplace uploadKind = iota // new version: temporary file, renamed at CLOSE
	kindInPlace                   // existing file, offsets absolute, from its end on
	kindAppend                    // SSH_FXF_APPEND: at the end, offsets absolute or from the old end
)

func (k uploadKind) String() string {
	return [...]string{"replace", "in-place", "append"}[k]
}

// upload is a file open for writing: SSH_FXP_WRITE packets (draft-02 6.4)
// become sequential writes of a files.Upload, which is what keeps the
// atomic-upload, quota and durability rules of internal/files.
//
// SFTP writes carry offsets and a client may send them in any order. A
// write at the next offset is written at once; one further on (a gap
// before it) is held in memory, within the session's MaxReorderBytes, until
// the gap is filled; at CLOSE, gaps still open are filled with zeros (the
// draft's "holes"). A write before the next offset would rewrite bytes
// already written, which files.Upload cannot do: it is refused. Real
// clients write front to back (OpenSSH's sftp and scp, curl, pkg/sftp,
// WinSCP, FileZilla); pkg/sftp's request server runs a session's writes on
// 8 goroutines, so they arrive here slightly out of order, which the held
// chunks absorb. Only a client that really writes at random meets the
// limits.
//
// Any failed write makes the upload fail: CLOSE answers with the first
// error and a Replace leaves nothing behind (an in-place one keeps what was
// written, for a later resume, as FTP's APPE does).
type upload struct {
	h     *handlers
	up    *files.Upload
	path  string
	kind  uploadKind
	base  int64 // file size when opened (where in-place and append writes start)
	seq   uint64
	start time.Time

	mu       sync.Mutex
	next     int64   // file position of the next byte to write in sequence
	shift    int64   // added to client offsets (APPEND counted from the old end)
	decided  bool    // shift is set (at the first write)
	held     []chunk // writes past next, sorted by offset, not overlapping
	heldN    int64
	highest  int64 // end of the furthest write accepted (the size FSTAT shows)
	err      error // first failure, returned again at CLOSE
	lost     bool  // the connection ended with the handle open
	closed   bool
	reader   *os.File // READ on a READ|WRITE handle of an in-place file
	perm     fs.FileMode
	setPerm  bool
	mtime    time.Time
	setMtime bool
}

type chunk struct {
	off  int64
	data []byte
}

func (w *upload) WriteAt(b []byte, off int64) (n int, err error) {
	defer w.h.recover("write", &err)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, os.ErrClosed
	}
	if len(b) == 0 {
		// An empty SSH_FXP_WRITE changes nothing, wherever it points
		// (found by FuzzUploadWrites: one inside written bytes was refused
		// as a rewrite).
		return 0, nil
	}
	if err := w.writeAt(b, off); err != nil {
		w.err = w.h.fail("write", w.path, err)
		return 0, w.err
	}
	return len(b), nil
}

func (w *upload) writeAt(b []byte, off int64) error {
	if off < 0 {
		return files.ErrBadOffset
	}
	if !w.decided {
		w.decided = true
		if w.kind == kindAppend && off < w.base {
			w.shift = w.base
		}
	}
	off += w.shift
	end := off + int64(len(b))
	switch {
	case off == w.next && len(w.held) > 0 && end > w.held[0].off:
		// It would overwrite a write held for later (found by
		// FuzzUploadWrites): the same refusal as any other rewrite.
		return errRewrite
	case off == w.next:
		if err := w.write(b); err != nil {
			return err
		}
		if err := w.drain(); err != nil {
			return err
		}
	case off > w.next:
		if off-w.next > w.h.c.s.lim.MaxReorderBytes {
			// The gap would be filled with real zeros at CLOSE (files has no
			// sparse files): bounded, so one write far out cannot fill the disk.
			return errFarWrite
		}
		if err := w.hold(off, b); err != nil {
			return err
		}
	case w.kind != kindReplace && w.next == w.base && off < w.base:
		return errInPlace
	default:
		return errRewrite
	}
	w.highest = max(w.highest, end)
	return nil
}

// write appends b at next.
func (w *upload) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if _, err := w.up.Write(b); err != nil {
		return err
	}
	w.next += int64(len(b))
	return nil
}

// hold keeps a write that lies past a gap.
func (w *upload) hold(off int64, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	i, _ := slices.BinarySearchFunc(w.held, off, func(c chunk, o int64) int {
		switch {
		case c.off < o:
			return -1
		case c.off > o:
			return 1
		}
		return 0
	})
	end := off + int64(len(b))
	if i > 0 && w.held[i-1].off+int64(len(w.held[i-1].data)) > off || i < len(w.held) && w.held[i].off < end {
		return errRewrite // overlaps a write already held
	}
	if !w.h.reserveReorder(int64(len(b))) {
		return errReorder
	}
	w.held = slices.Insert(w.held, i, chunk{off: off, data: slices.Clone(b)})
	w.heldN += int64(len(b))
	return nil
}

// drain writes the held chunks that now continue the sequence.
func (w *upload) drain() error {
	for len(w.held) > 0 && w.held[0].off == w.next {
		c := w.held[0]
		w.held = w.held[1:]
		w.heldN -= int64(len(c.data))
		w.h.releaseReorder(int64(len(c.data)))
		if err := w.write(c.data); err != nil {
			return err
		}
	}
	return nil
}

// fillGaps writes what is held with zeros in the gaps before each chunk.
func (w *upload) fillGaps() error {
	for len(w.held) > 0 {
		gap := w.held[0].off - w.next
		if gap > 0 {
			n, err := w.up.ReadFrom(&io.LimitedReader{R: zeros{}, N: gap})
			w.next += n
			if err != nil {
				return err
			}
		}
		if err := w.drain(); err != nil {
			return err
		}
	}
	return nil
}

func (w *upload) releaseHeld() {
	w.h.releaseReorder(w.heldN)
	w.held, w.heldN = nil, 0
}

// ReadAt serves READ on a READ|WRITE handle: an in-place or append upload
// reads the real file (which holds what was written so far); a new version
// is not readable before CLOSE.
func (w *upload) ReadAt(b []byte, off int64) (n int, err error) {
	defer w.h.recover("read", &err)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.kind == kindReplace {
		return 0, errReadUpload
	}
	if w.reader == nil {
		f, err := w.h.tree.Open(w.path)
		if err != nil {
			return 0, w.h.fail("read", w.path, err)
		}
		w.reader = f
	}
	n, err = w.reader.ReadAt(b, off)
	if err != nil && err != io.EOF {
		return n, w.h.fail("read", w.path, err)
	}
	return n, err
}

// TransferError is pkg/sftp's notice that the connection ended with this
// handle open: the upload is abandoned at the Close that follows.
func (w *upload) TransferError(error) {
	w.mu.Lock()
	w.lost = true
	w.mu.Unlock()
}

// Close is SSH_FXP_CLOSE (draft-02 6.3): the upload is committed (fsync,
// rename for a new version, fsync of the directory) before the status is
// sent, so an OK means durable, and a failure here means nothing changed
// for a new version ("even a close can fail").
func (w *upload) Close() (err error) {
	defer w.h.recover("close", &err)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	defer func() {
		if w.reader != nil {
			w.reader.Close()
		}
		w.releaseHeld()
		w.h.forgetUpload(w)
		w.h.releaseHandle()
		w.h.c.fileClosed()
	}()
	log := w.h.c.s.log
	if w.err != nil || w.lost {
		w.up.Abort()
		log.Info("sftp upload failed", "conn", w.h.c.id, "account", w.h.c.account, "path", w.path,
			"mode", w.kind.String(), "bytes", w.up.Written(), "connection_lost", w.lost)
		if w.err != nil {
			return w.err
		}
		return errWriteFailed
	}
	if err := w.fillGaps(); err != nil {
		w.up.Abort()
		return w.h.fail("write", w.path, err)
	}
	if err := w.up.Commit(); err != nil {
		return w.h.fail("commit", w.path, err)
	}
	// Attributes given at OPEN or by FSETSTAT while open. The upload is
	// durable already; a failure here is logged, not reported as a failed
	// transfer.
	if w.setPerm {
		if err := w.h.tree.Chmod(w.path, w.perm); err != nil {
			log.Warn("sftp: chmod after upload failed", "conn", w.h.c.id, "path", w.path, "err", err.Error())
		}
	}
	if w.setMtime {
		if err := w.h.tree.Chtimes(w.path, w.mtime); err != nil {
			log.Warn("sftp: chtimes after upload failed", "conn", w.h.c.id, "path", w.path, "err", err.Error())
		}
	}
	log.Info("sftp upload", "conn", w.h.c.id, "account", w.h.c.account, "path", w.path, "mode", w.kind.String(),
		"bytes", w.up.Written(), "duration", time.Since(w.start).Round(time.Millisecond))
	return nil
}

// setAttrs records FSETSTAT/SETSTAT attributes for CLOSE.
func (w *upload) setAttrs(fl sftp.FileAttrFlags, a *sftp.FileStat, perm fs.FileMode) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if fl.Size && int64(a.Size) != max(w.highest, w.base) {
		return errPendingSize
	}
	if fl.Permissions {
		w.perm, w.setPerm = perm, true
	}
	if fl.Acmodtime {
		w.mtime, w.setMtime = time.Unix(int64(a.Mtime), 0), true
	}
	return nil
}

// info describes a new version being written, as its own session sees it.
func (w *upload) info() fs.FileInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	perm := fs.FileMode(0o644)
	if w.setPerm {
		perm = w.perm
	}
	return pendingInfo{name: files.Base(w.path), size: max(w.highest, w.base), mode: perm, mtime: time.Now()}
}

type pendingInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (i pendingInfo) Name() string       { return i.name }
func (i pendingInfo) Size() int64        { return i.size }
func (i pendingInfo) Mode() fs.FileMode  { return i.mode }
func (i pendingInfo) ModTime() time.Time { return i.mtime }
func (i pendingInfo) IsDir() bool        { return false }
func (i pendingInfo) Sys() any           { return nil }
