package smtpserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/emersion/go-smtp"

	"posta/internal/delivery"
	"posta/internal/sasl"
)

// ReplyError is a rejection with the reply the client gets. Text is safe to
// show; Err is the cause, for the log only.
type ReplyError struct {
	Code     int    // RFC 5321 4.2 basic reply code
	Enhanced [3]int // RFC 3463 enhanced status code, advertised with ENHANCEDSTATUSCODES (RFC 2034)
	Text     string
	Err      error
}

func (e *ReplyError) Error() string {
	s := fmt.Sprintf("%d %d.%d.%d %s", e.Code, e.Enhanced[0], e.Enhanced[1], e.Enhanced[2], e.Text)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *ReplyError) Unwrap() error { return e.Err }

// reject returns a ReplyError with a cause.
func reject(code int, a, b, c int, text string, cause error) *ReplyError {
	return &ReplyError{Code: code, Enhanced: [3]int{a, b, c}, Text: text, Err: cause}
}

// Replies Posta sends on its own account (go-smtp has its own for syntax).
var (
	// RFC 5321 4.1.4: MAIL while a transaction is open is a sequence error.
	errNestedMail = reject(503, 5, 5, 1, "Nested MAIL command", nil)
	// RFC 4954 6: 530 5.7.0 when policy requires authentication.
	errAuthRequired = reject(530, 5, 7, 0, "Authentication required", nil)
	// RFC 3207 4: 530 5.7.0 "Must issue a STARTTLS command first".
	errTLSRequired = reject(530, 5, 7, 0, "Must issue a STARTTLS command first", nil)
	// RFC 4954 6: 538 5.7.11 when the mechanism needs an encrypted connection.
	errEncryptionRequired = reject(538, 5, 7, 11, "Encryption required for requested authentication mechanism", nil)
	// RFC 5321 4.1.1.1 / 4.3.2: 501 for a bad EHLO/HELO argument.
	errBadHELO = reject(501, 5, 5, 2, "Invalid domain in EHLO/HELO", nil)
	// RFC 4954 4: 503 after a successful AUTH.
	errAlreadyAuthed = reject(503, 5, 5, 1, "Already authenticated", nil)
	// RFC 5321 2.3.8 and 4.1.1.4: CR and LF only as CRLF. Accepting a bare
	// one is what SMTP smuggling exploits; the data is refused whole.
	errBareLineEnding = reject(554, 5, 6, 0, "Message contains a bare CR or LF; lines must end with CRLF (RFC 5321 2.3.8)", nil)
	// RFC 5322 2.2.3: the message begins with a header field, never with a
	// continuation line, which would continue our Received header.
	errLeadingWhitespace = reject(554, 5, 6, 0, "Message must not begin with white space (RFC 5322 2.2.3)", nil)
	// RFC 5321 4.5.3.1.6 bounds text lines; go-smtp enforces MaxLineLength.
	errDataLineTooLong = reject(554, 5, 6, 0, "Line too long in message data", nil)
)

// Replies that end the session (RFC 5321 3.8: 421 and close).
var (
	replyShutdown      = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down, try again later"}
	replyTooManyErrors = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many errors, closing connection"}
	replyBanned        = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failed logins, try again later"}
	replyDataTimeout   = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Timeout receiving message data, closing connection"}
	replyTooManyConns  = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many connections, try again later"}
)

// replyFor maps any error from a session hook to the one reply the client
// gets. It is the only place error classes become codes: policy errors
// (ReplyError), the Deliverer's and sasl's sentinels (errors.Is), go-smtp's
// own replies (errors.As), and everything else, which is our own failure:
// 451 4.3.0, temporary so the sender retries, its text never shown.
func replyFor(err error) *smtp.SMTPError {
	r, _ := classify(err)
	return r
}

// classify is replyFor plus whether err was our own failure (to be logged
// with its cause at error level).
func classify(err error) (reply *smtp.SMTPError, internal bool) {
	if err == nil {
		return nil, false
	}
	mk := func(code, a, b, c int, text string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{a, b, c}, Message: text}
	}
	var re *ReplyError
	if errors.As(err, &re) {
		return mk(re.Code, re.Enhanced[0], re.Enhanced[1], re.Enhanced[2], re.Text), false
	}
	switch {
	// Delivery (internal/delivery envelope.go); codes from RFC 3463.
	case errors.Is(err, delivery.ErrNoSuchUser):
		return mk(550, 5, 1, 1, "No such user here"), false // 3.2 X.1.1 bad destination mailbox
	case errors.Is(err, delivery.ErrRelayDenied):
		return mk(550, 5, 7, 1, "Relaying denied"), false // 3.8 X.7.1 delivery not authorized
	case errors.Is(err, delivery.ErrBadAddress):
		return mk(553, 5, 1, 3, "Bad recipient address syntax"), false // 3.2 X.1.3
	case errors.Is(err, delivery.ErrMailboxFull):
		return mk(452, 4, 2, 2, "Mailbox full, try again later"), false // 3.3 X.2.2, transient
	case errors.Is(err, delivery.ErrQuotaExceeded):
		return mk(552, 5, 2, 2, "Message exceeds the mailbox quota"), false
	case errors.Is(err, delivery.ErrSenderNotOwned):
		return mk(550, 5, 7, 1, "Sender address not owned by the authenticated user"), false
	case errors.Is(err, delivery.ErrMessageTooBig), errors.Is(err, smtp.ErrDataTooLarge):
		return mk(552, 5, 3, 4, "Message too big"), false // 3.4 X.3.4, RFC 1870 6.1
	case errors.Is(err, delivery.ErrDMARCReject):
		// RFC 7489 10.3: 550 with 5.7.1 (RFC 3463 3.8, delivery not
		// authorized), the text saying why.
		return mk(550, 5, 7, 1, dmarcRejectText(err)), false
	// SASL (internal/sasl); RFC 4954 6.
	case errors.Is(err, sasl.ErrInvalidCredentials), errors.Is(err, sasl.ErrAuthzidNotAllowed),
		errors.Is(err, sasl.ErrBindingMismatch), errors.Is(err, sasl.ErrDowngrade):
		// One answer for every failure, so the reply does not tell a guesser
		// which part was wrong.
		return mk(535, 5, 7, 8, "Authentication credentials invalid"), false
	case errors.Is(err, sasl.ErrMalformed), errors.Is(err, sasl.ErrExchangeOver):
		return mk(501, 5, 5, 2, "Cannot decode authentication response"), false
	case errors.Is(err, sasl.ErrUnsupportedMechanism):
		return mk(504, 5, 5, 4, "Unrecognized authentication type"), false
	// The data stream.
	case errors.Is(err, smtp.ErrTooLongLine):
		return replyFor(errDataLineTooLong), false
	case errors.Is(err, os.ErrDeadlineExceeded):
		return mk(421, 4, 4, 2, "Timeout, closing connection"), false
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), errors.Is(err, smtp.ErrDataReset):
		// The client went away or reset mid-message; nobody reads this.
		return mk(451, 4, 4, 0, "Message transfer aborted"), false
	case errors.Is(err, context.Canceled):
		return replyShutdown, false
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se, false
	}
	// RFC 3463 3.4 X.3.0 other mail system status: our fault, temporary.
	return mk(451, 4, 3, 0, "Temporary local problem, try again later"), true
}

// dmarcRejectText is the reply text of a DMARC rejection: mailauth's
// reason, which names the author domain (taken from the message's From
// field, so from the client), reduced to printable ASCII on one line of
// bounded length.
func dmarcRejectText(err error) string {
	const fallback = "Rejected by the author domain's DMARC policy"
	var re *delivery.DMARCRejectError
	if !errors.As(err, &re) {
		return fallback
	}
	text := strings.Map(func(c rune) rune {
		if c < ' ' || c > '~' {
			return '?'
		}
		return c
	}, re.Reason)
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	if strings.TrimSpace(text) == "" {
		return fallback
	}
	return text
}

// hungUpError is returned by a hook that has already written its final
// reply and closed the connection: go-smtp's own write of it then fails
// silently.
type hungUpError struct{ reply *smtp.SMTPError }

func (h *hungUpError) Error() string { return "connection closed: " + h.reply.Error() }
