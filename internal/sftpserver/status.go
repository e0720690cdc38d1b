package sftpserver

import (
	"context"
	"errors"
	"io"

	"github.com/pkg/sftp"

	"posta/internal/files"
)

// StatusError is an SFTP failure as the client sees it: an SSH_FXP_STATUS
// code (draft-ietf-secsh-filexfer-02 7) and a message safe to show. Err is
// the cause, for the log only. pkg/sftp sends the code it finds with
// errors.As (Unwrap gives it the code) and Error() as the message.
type StatusError struct {
	Code error  // one of sftp.ErrSSHFx*
	Text string // safe for the client
	Err  error  // cause, for the log
}

func (e *StatusError) Error() string { return e.Text }

// Unwrap gives pkg/sftp the code. The cause is deliberately not reachable:
// pkg/sftp would otherwise find an *os.PathError in it and pick its own
// code and text.
func (e *StatusError) Unwrap() error { return e.Code }

func status(code error, text string, cause error) *StatusError {
	return &StatusError{Code: code, Text: text, Err: cause}
}

// Statuses Posta sends on its own account.
var (
	errNotSymlinks  = status(sftp.ErrSSHFxOpUnsupported, "symbolic links are not supported", nil)
	errNoHardLinks  = status(sftp.ErrSSHFxOpUnsupported, "hard links are not supported", nil)
	errNotALink     = status(sftp.ErrSSHFxFailure, "not a symbolic link", nil)
	errTargetExists = status(sftp.ErrSSHFxFailure, "target exists", nil)
	errFileExists   = status(sftp.ErrSSHFxFailure, "file exists", nil)
	errNoFile       = status(sftp.ErrSSHFxNoSuchFile, "no such file", nil)
	errBadFlags     = status(sftp.ErrSSHFxBadMessage, "bad open flags", nil)
	errOwner        = status(sftp.ErrSSHFxPermissionDenied, "changing owners is not permitted", nil)
	errSpecialMode  = status(sftp.ErrSSHFxPermissionDenied, "setuid, setgid and sticky bits are not permitted", nil)
	errRewrite      = status(sftp.ErrSSHFxOpUnsupported, "rewriting bytes already written is not supported; upload the file again", nil)
	errInPlace      = status(sftp.ErrSSHFxOpUnsupported, "writing inside an existing file is not supported; open it with truncate, or write at its end", nil)
	errReorder      = status(sftp.ErrSSHFxFailure, "too many out-of-order writes", nil)
	errFarWrite     = status(sftp.ErrSSHFxOpUnsupported, "writing this far past the end of the file is not supported", nil)
	errReadUpload   = status(sftp.ErrSSHFxOpUnsupported, "reading a file that is being uploaded is not supported", nil)
	errPendingSize  = status(sftp.ErrSSHFxOpUnsupported, "truncating a file that is being uploaded is not supported", nil)
	errTooManyOpen  = status(sftp.ErrSSHFxFailure, "too many open handles", nil)
	errWriteFailed  = status(sftp.ErrSSHFxFailure, "an earlier write failed; the upload was discarded", nil)
	errShutdown     = status(sftp.ErrSSHFxFailure, "server shutting down", nil)
	errInternal     = status(sftp.ErrSSHFxFailure, "internal server error", nil)
)

// statusFor is the one mapping from an error of internal/files (or of this
// package) to what the client gets. internal reports an unexpected error:
// our own fault, logged by the caller with its cause, never shown.
func statusFor(err error) (st error, internal bool) {
	var se *StatusError
	switch {
	case err == nil:
		return nil, false
	case errors.Is(err, io.EOF):
		// draft-02 7: SSH_FX_EOF ends a READ or a READDIR.
		return io.EOF, false
	case errors.As(err, &se):
		return se, false
	case errors.Is(err, files.ErrNotExist):
		return errNoFile, false
	case errors.Is(err, files.ErrReadOnly):
		return status(sftp.ErrSSHFxPermissionDenied, "read-only account", err), false
	case errors.Is(err, files.ErrOutside):
		// A link that leads out of the tree: the jail refused it.
		return status(sftp.ErrSSHFxPermissionDenied, "permission denied", err), false
	case errors.Is(err, files.ErrPermission):
		return status(sftp.ErrSSHFxPermissionDenied, "permission denied", err), false
	case errors.Is(err, files.ErrQuota):
		// Protocol version 3 has no quota code (SSH_FX_QUOTA_EXCEEDED is
		// version 5's); FAILURE with the reason is what v3 clients show.
		return status(sftp.ErrSSHFxFailure, "quota exceeded", err), false
	case errors.Is(err, files.ErrExist):
		return status(sftp.ErrSSHFxFailure, "file exists", err), false
	case errors.Is(err, files.ErrNotEmpty):
		return status(sftp.ErrSSHFxFailure, "directory not empty", err), false
	case errors.Is(err, files.ErrIsDir):
		return status(sftp.ErrSSHFxFailure, "is a directory", err), false
	case errors.Is(err, files.ErrNotDir):
		return status(sftp.ErrSSHFxFailure, "not a directory", err), false
	case errors.Is(err, files.ErrInvalidName):
		return status(sftp.ErrSSHFxBadMessage, "invalid file name", err), false
	case errors.Is(err, files.ErrBadOffset):
		return status(sftp.ErrSSHFxFailure, "offset beyond end of file", err), false
	case errors.Is(err, context.Canceled):
		return errShutdown, false
	}
	return errInternal, true
}
