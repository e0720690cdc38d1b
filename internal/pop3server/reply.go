package pop3server

import (
	"context"
	"errors"
	"strings"

	"posta/internal/mailstore"
	"posta/internal/sasl"
)

// Response codes (RFC 2449 8, advertised with RESP-CODES; RFC 3206 adds SYS
// and AUTH, advertised with AUTH-RESP-CODE).
const (
	codeInUse      = "IN-USE"      // RFC 2449 8.1.2: credentials good, maildrop busy
	codeLoginDelay = "LOGIN-DELAY" // RFC 2449 8.1.1: logged in too recently
	codeAuth       = "AUTH"        // RFC 3206 5: the credentials (or mechanism) failed
	codeSysTemp    = "SYS/TEMP"    // RFC 3206 4: our problem, try again later
	codeSysPerm    = "SYS/PERM"    // RFC 3206 4: our problem, do not retry as is
)

// ReplyError is a refusal with the -ERR line the client gets. Text is safe
// to show; Err is the cause, for the log only.
type ReplyError struct {
	Code string // RFC 2449 8 response code without brackets, "" for none
	Text string
	// Close: the session ends after this reply.
	Close bool
	Err   error
}

func (e *ReplyError) Error() string {
	s := "-ERR "
	if e.Code != "" {
		s += "[" + e.Code + "] "
	}
	s += e.Text
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *ReplyError) Unwrap() error { return e.Err }

// line is the reply as sent, without CRLF. RFC 2449 3: at most 512 octets
// with CRLF; every Text here is a short constant.
func (e *ReplyError) line() string {
	var b strings.Builder
	b.WriteString("-ERR ")
	if e.Code != "" {
		b.WriteString("[" + e.Code + "] ")
	}
	b.WriteString(e.Text)
	return b.String()
}

func refuse(code, text string) *ReplyError { return &ReplyError{Code: code, Text: text} }

// with returns a copy of e carrying a cause for the log.
func (e *ReplyError) with(cause error) *ReplyError {
	c := *e
	c.Err = cause
	return &c
}

// Replies Posta sends on its own account.
var (
	// RFC 1939 3: an unknown or malformed command gets a negative reply.
	errUnknownCommand = refuse("", "Unknown command")
	errSyntax         = refuse("", "Syntax error")
	errLineLong       = refuse("", "Line too long")
	// RFC 1939 3: a command in the wrong state gets a negative reply.
	errNotLoggedIn     = refuse("", "Log in first")
	errAlreadyLoggedIn = refuse("", "Already logged in")
	// RFC 2595 2.2 / RFC 5034 4: no passwords before TLS unless configured.
	errTLSRequired = refuse("", "Authentication requires TLS: use STLS first")
	// RFC 2595 4: STLS when TLS is already active.
	errTLSActive      = refuse("", "TLS already active")
	errTLSUnavailable = refuse("", "TLS not available")
	// RFC 1939 7: PASS only right after a successful USER.
	errUserFirst = refuse("", "Send USER first")
	// One answer for every credentials failure, so a guesser does not learn
	// which part was wrong (RFC 3206 5: AUTH).
	errAuthFailed    = refuse(codeAuth, "Authentication failed")
	errAuthCancelled = refuse("", "Authentication cancelled")
	// RFC 5034 4: an undecodable response fails the exchange.
	errBadBase64   = refuse("", "Invalid base64 in authentication response")
	errBadAuthResp = refuse("", "Invalid authentication response")
	errNoMech      = refuse("", "Unsupported authentication mechanism")
	errAuthTemp    = refuse(codeSysTemp, "Temporary authentication failure, try again later")
	errInUse       = refuse(codeInUse, "Maildrop is in use by another POP3 session")
	errLoginDelay  = refuse(codeLoginDelay, "Logged in too recently, try again later")
	errNoMessage   = refuse("", "No such message")
	errMsgDeleted  = refuse("", "Message already deleted")
	errMsgGone     = refuse("", "Message was removed by another session")
	// RFC 1939 6 QUIT: -ERR when the UPDATE state could not remove them all.
	// The session ends all the same.
	errNotRemoved = &ReplyError{Code: codeSysTemp, Text: "Some deleted messages not removed, try again later", Close: true}
	errTemp       = refuse(codeSysTemp, "Temporary server problem, try again later")
)

// Replies that end the session.
var (
	replyShutdown       = &ReplyError{Code: codeSysTemp, Text: "Server shutting down, try again later", Close: true}
	replyTooManyErrors  = &ReplyError{Text: "Too many bad commands, closing connection", Close: true}
	replyTooManyPreAuth = &ReplyError{Text: "Too many commands before login, closing connection", Close: true}
	replyUnknownPreAuth = &ReplyError{Text: "Unknown command, closing connection", Close: true}
	replyBanned         = &ReplyError{Code: codeSysTemp, Text: "Too many failed logins, try again later", Close: true}
	replyTooManyConns   = &ReplyError{Code: codeSysTemp, Text: "Too many connections, try again later", Close: true}
	replyLineFlood      = &ReplyError{Text: "Line too long, closing connection", Close: true}
	replyInternal       = &ReplyError{Code: codeSysTemp, Text: "Internal server error, closing connection", Close: true}
)

// replyFor maps any error from a command to the one -ERR line the client
// gets. It is the only place error classes become replies.
func replyFor(err error) *ReplyError {
	r, _ := classify(err)
	return r
}

// classify is replyFor plus whether err was our own failure, to be logged
// with its cause at error level. Our failures are [SYS/TEMP] (RFC 3206 4):
// the client should try again, never give up on the mail.
func classify(err error) (reply *ReplyError, internal bool) {
	if err == nil {
		return nil, false
	}
	var re *ReplyError
	if errors.As(err, &re) {
		return re, false
	}
	switch {
	case errors.Is(err, sasl.ErrInvalidCredentials), errors.Is(err, sasl.ErrAuthzidNotAllowed),
		errors.Is(err, sasl.ErrBindingMismatch), errors.Is(err, sasl.ErrDowngrade):
		return errAuthFailed.with(err), false
	case errors.Is(err, sasl.ErrMalformed), errors.Is(err, sasl.ErrExchangeOver):
		return errBadAuthResp.with(err), false
	case errors.Is(err, sasl.ErrUnsupportedMechanism):
		return errNoMech.with(err), false
	case errors.Is(err, mailstore.ErrNoMessage):
		return errMsgGone.with(err), false
	case errors.Is(err, mailstore.ErrClosed), errors.Is(err, context.Canceled):
		return replyShutdown, false
	}
	return errTemp.with(err), true
}
