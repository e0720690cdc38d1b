package imapserver

import (
	"context"
	"errors"

	"posta/internal/delivery"
	"posta/internal/imapwire"
	"posta/internal/mailstore"
	"posta/internal/sasl"
)

// replyError is a command's failure as the client sees it: the tagged
// status, response code and text (safe to send), and the cause for the log.
type replyError struct {
	status imapwire.Status
	code   imapwire.Code
	text   string
	err    error
}

func (e *replyError) Error() string {
	if e.err != nil {
		return e.text + ": " + e.err.Error()
	}
	return e.text
}

func (e *replyError) Unwrap() error { return e.err }

// abortError ends the session: an optional last "* BYE" line, and the
// cause for the log.
type abortError struct {
	bye  string
	code imapwire.Code
	err  error
}

func (e *abortError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return e.bye
}

func no(code imapwire.Code, text string) *replyError {
	return &replyError{status: imapwire.NO, code: code, text: text}
}

func bad(text string) *replyError {
	return &replyError{status: imapwire.BAD, code: imapwire.CodeClientBug, text: text}
}

var (
	errNotAuth       = bad("Log in first")
	errNoSuchMailbox = no(imapwire.CodeNonExistent, "No such mailbox")
	errTryCreate     = no(imapwire.CodeTryCreate, "No such mailbox; create it first")
	errLoginDisabled = no(imapwire.CodePrivacyRequired, "Use STARTTLS (or port 993) before sending a password")
	errAuthFailed    = no(imapwire.CodeAuthenticationFailed, "Authentication failed")
	errAuthTemp      = no(imapwire.CodeUnavailable, "Authentication is temporarily unavailable; try again later")
	errTooMany       = no(imapwire.CodeLimit, "Too many sessions for this account")
)

// replyFor maps any error a handler returned to the client's reply (STYLE:
// one place). Errors we do not know become NO [SERVERBUG] with generic
// text, and a log line; their text never reaches the client.
func (ss *session) replyFor(err error) *replyError {
	var re *replyError
	switch {
	case errors.As(err, &re):
		return re
	case errors.Is(err, mailstore.ErrNoMailbox):
		return errNoSuchMailbox
	case errors.Is(err, mailstore.ErrMailboxExists):
		return no(imapwire.CodeAlreadyExists, "Mailbox already exists")
	case errors.Is(err, mailstore.ErrHasChildren):
		// RFC 9051 6.3.4: a mailbox with inferiors and \Noselect cannot go.
		return no(imapwire.CodeHasChildren, "Mailbox has children; delete them first")
	case errors.Is(err, mailstore.ErrInbox):
		return no(imapwire.CodeCannot, "INBOX cannot be deleted")
	case errors.Is(err, mailstore.ErrBadName):
		return no(imapwire.CodeCannot, "Bad mailbox name")
	case errors.Is(err, mailstore.ErrNoMessage):
		return no(imapwire.CodeExpungeIssued, "Message was expunged")
	case errors.Is(err, delivery.ErrMailboxFull), errors.Is(err, delivery.ErrQuotaExceeded):
		// RFC 9208 4.3.
		return no(imapwire.CodeOverQuota, "Quota exceeded")
	case errors.Is(err, errUnknownCTE):
		// RFC 3516 4.3.
		return no(imapwire.CodeUnknownCTE, "Unknown content transfer encoding")
	case errors.Is(err, sasl.ErrInvalidCredentials):
		return errAuthFailed
	case errors.Is(err, context.Canceled), errors.Is(err, mailstore.ErrClosed):
		return no(imapwire.CodeUnavailable, "Server shutting down")
	}
	ss.s.log.Error("imap command failed", "conn", ss.c.id, "err", err.Error())
	return no(imapwire.CodeServerBug, "Internal error; try again later")
}
