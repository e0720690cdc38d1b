package ftpserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"posta/internal/files"
	"posta/internal/sasl"
)

// ReplyError is a refusal with the reply the client gets. Text is safe to
// show; Err is the cause, for the log only.
type ReplyError struct {
	Code int // RFC 959 4.2 reply code
	Text string
	Err  error
}

func (e *ReplyError) Error() string {
	s := fmt.Sprintf("%d %s", e.Code, e.Text)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *ReplyError) Unwrap() error { return e.Err }

func refuse(code int, text string) *ReplyError { return &ReplyError{Code: code, Text: text} }

// reply is a positive (or informative) reply a handler returns.
type reply struct {
	code  int
	lines []string
}

func ok(code int, text string) *reply { return &reply{code: code, lines: []string{text}} }

// Refusals the server makes on its own account.
var (
	// RFC 959 4.2: 530 Not logged in.
	errNotLoggedIn = refuse(530, "Please log in with USER and PASS first")
	// RFC 959 5.4: a command out of sequence.
	errBadSequence = refuse(503, "Bad sequence of commands")
	// RFC 959 4.2: 425 Can't open data connection.
	errNoDataConn = refuse(425, "Use PASV, EPSV, PORT or EPRT first")
	// RFC 4217 10.1 / RFC 2228 3: the policy needs TLS before a password.
	errTLSLogin = refuse(530, "TLS required: send AUTH TLS first")
	// RFC 4217 10.2: 521 when the PROT level is refused for a transfer.
	errTLSData = refuse(521, "Data connections must be protected: send PBSZ 0 and PROT P")
	// RFC 4217 10.2: the data connection did not resume the control
	// connection's TLS session.
	errNoResume = refuse(522, "Data connection must resume the TLS session of the control connection")
	// RFC 4217 10.2: the TLS handshake on the data connection failed.
	errDataTLS = refuse(522, "TLS negotiation on the data connection failed")
	// RFC 959 4.2: 426 Connection closed; transfer aborted.
	errAborted = refuse(426, "Connection closed; transfer aborted")
	// RFC 2577 3 (quoted in RFC 4217 15.2.1): no bounce, no privileged port.
	errBounce = refuse(504, "PORT/EPRT only to your own address and a port above 1023")
	// RFC 2428 4: after EPSV ALL every other data setup command is refused.
	errEPSVAll  = refuse(503, "EPSV ALL in effect: use EPSV")
	errReadOnly = refuse(550, "Permission denied: the file area is read-only")
)

// Replies that end the session (RFC 959 4.2: 421 then close).
var (
	replyShutdown     = ok(421, "Service shutting down, try again later")
	replyTimeout      = ok(421, "Idle timeout, closing control connection")
	replyTooManyConns = ok(421, "Too many connections, try again later")
	replyBanned       = ok(421, "Too many failed logins, try again later")
	replyTooManyErrs  = ok(421, "Too many errors, closing control connection")
	replyLoginFails   = ok(421, "Too many failed logins, closing control connection")
)

// replyFor maps any error to the one reply the client gets; internal is set
// when it was our own failure (451, logged with its cause, text never shown).
// It is the only place error classes become codes.
func replyFor(err error) (r *reply, internal bool) {
	var re *ReplyError
	if errors.As(err, &re) {
		return ok(re.Code, re.Text), false
	}
	switch {
	// Grammar (wire.go).
	case errors.Is(err, errSyntax):
		return ok(500, "Syntax error, command unrecognized"), false
	case errors.Is(err, errArg):
		return ok(501, "Syntax error in parameters or arguments"), false
	case errors.Is(err, errNetProto):
		// RFC 2428 2: the text names the families we serve in parentheses.
		return ok(522, "Network protocol not supported, use (1,2)"), false
	// The file store (internal/files); RFC 959 4.2 file codes.
	case errors.Is(err, files.ErrQuota):
		return ok(552, "Requested file action aborted: exceeded storage allocation"), false
	case errors.Is(err, files.ErrReadOnly):
		return ok(550, "Permission denied: the file area is read-only"), false
	case errors.Is(err, files.ErrNotExist):
		return ok(550, "No such file or directory"), false
	case errors.Is(err, files.ErrExist):
		return ok(550, "File exists"), false
	case errors.Is(err, files.ErrNotDir):
		return ok(550, "Not a directory"), false
	case errors.Is(err, files.ErrIsDir):
		return ok(550, "Is a directory"), false
	case errors.Is(err, files.ErrNotEmpty):
		return ok(550, "Directory not empty"), false
	case errors.Is(err, files.ErrOutside), errors.Is(err, files.ErrPermission):
		// An escape attempt gets the same answer as any refusal.
		return ok(550, "Permission denied"), false
	case errors.Is(err, files.ErrInvalidName):
		return ok(553, "File name not allowed"), false
	case errors.Is(err, files.ErrBadOffset):
		// RFC 3659 5.3: an out-of-range marker is reported at the transfer.
		return ok(554, "Invalid REST parameter"), false
	case errors.Is(err, files.ErrNoAnonymous), errors.Is(err, sasl.ErrInvalidCredentials):
		return ok(530, "Login incorrect"), false
	// The data connection.
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ok(426, "Data connection timed out; transfer aborted"), false
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), isConnReset(err):
		return ok(426, "Connection closed; transfer aborted"), false
	case errors.Is(err, context.Canceled):
		return replyShutdown, false
	}
	// RFC 959 4.2: 451 Requested action aborted: local error in processing.
	return ok(451, "Requested action aborted: local error in processing"), true
}

// isConnReset reports a peer that reset or vanished mid-transfer (also
// when the error comes wrapped from the file side of a splice).
func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ETIMEDOUT)
}
