package files

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// fsLinkError is what os.Root.Rename and Link return.
type fsLinkError = os.LinkError

// Errors every operation returns, wrapped with the operation and path (test
// with errors.Is). Protocols map them to their codes in one place each (FTP:
// ftpserver replyFor; SFTP: a status code).
var (
	ErrNotExist    = errors.New("files: no such file or directory")
	ErrExist       = errors.New("files: already exists")
	ErrPermission  = errors.New("files: permission denied")
	ErrReadOnly    = errors.New("files: the tree is read-only")
	ErrQuota       = errors.New("files: quota exceeded")
	ErrNotDir      = errors.New("files: not a directory")
	ErrIsDir       = errors.New("files: is a directory")
	ErrNotEmpty    = errors.New("files: directory not empty")
	ErrOutside     = errors.New("files: path leads outside the tree")
	ErrInvalidName = errors.New("files: invalid file name")
	// ErrBadOffset: a resume offset past the end of the file.
	ErrBadOffset = errors.New("files: offset beyond end of file")
	// ErrNoAnonymous: the anonymous area is not configured.
	ErrNoAnonymous = errors.New("files: no anonymous area")
)

// Error is an operation's failure: Kind is one of the Err values above (or
// nil for an unexpected failure, our own fault), Err the underlying cause for
// the log.
type Error struct {
	Op   string
	Path string // the client path, as cleaned by Join
	Kind error
	Err  error
}

func (e *Error) Error() string {
	s := "files: " + e.Op + " " + e.Path
	if e.Kind != nil {
		s += ": " + e.Kind.Error()
	}
	if e.Err != nil && e.Err != e.Kind {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap gives both the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	var out []error
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil && e.Err != e.Kind {
		out = append(out, e.Err)
	}
	return out
}

func newErr(op, p string, kind error) error { return &Error{Op: op, Path: p, Kind: kind} }

// osErr classifies an error from os or os.Root.
func osErr(op, p string, err error) error {
	if err == nil {
		return nil
	}
	var fe *Error
	if errors.As(err, &fe) {
		return err
	}
	return &Error{Op: op, Path: p, Kind: kindOf(err), Err: err}
}

// kindOf maps OS errors to our kinds; nil means unexpected.
func kindOf(err error) error {
	var pe *fs.PathError
	var le *fsLinkError
	switch {
	case errors.As(err, &pe) && isEscape(pe.Err), errors.As(err, &le) && isEscape(le.Err):
		return ErrOutside
	case errors.Is(err, fs.ErrNotExist):
		return ErrNotExist
	case errors.Is(err, syscall.ENOTEMPTY): // before ErrExist, which Errno also matches for ENOTEMPTY
		return ErrNotEmpty
	case errors.Is(err, fs.ErrExist):
		return ErrExist
	case errors.Is(err, syscall.ENOTDIR):
		return ErrNotDir
	case errors.Is(err, syscall.EISDIR):
		return ErrIsDir
	case errors.Is(err, syscall.EROFS):
		return ErrReadOnly
	case errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.ENOSPC):
		// The disk (or a filesystem quota) is full: our fault, not the
		// client's, but the client must hear it as "no space".
		return ErrQuota
	case errors.Is(err, fs.ErrPermission):
		return ErrPermission
	case errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ENAMETOOLONG), errors.Is(err, syscall.ELOOP):
		return ErrInvalidName
	}
	return nil
}

// isEscape recognises os.Root's refusal. Go does not export that error
// (os.errPathEscapes, "path escapes from parent"), so its text is compared;
// TestSymlinkOut fails if a Go release changes it.
func isEscape(err error) bool {
	return err != nil && err.Error() == "path escapes from parent"
}
