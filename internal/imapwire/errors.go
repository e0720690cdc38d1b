package imapwire

import (
	"errors"
	"strings"
)

// SyntaxError is a command the Decoder could not accept: bad grammar, a limit exceeded, or a
// literal refused by the ContinueFunc. RFC 9051 7.1.5: a bad command gets a BAD response and the
// session continues; the Decoder resynchronizes to the next command on its next read unless the
// error is Fatal.
type SyntaxError struct {
	Tag     string // the command's tag; "" if none was read, answer with an untagged "* BAD"
	Command string // the command name if it was read, e.g. "UID FETCH"
	Status  Status // BAD, or NO for a policy limit such as APPENDLIMIT (RFC 7889 4)
	Code    Code   // response code for the reply, e.g. CodeTooBig; "" for none
	Msg     string // what was wrong, safe to send to the client
	// Fatal means the input cannot be resynchronized (a literal too large to skip, an overlong
	// line that never ends within MaxSkip): send "* BYE" and close the connection.
	Fatal bool
	// Err is the cause when there is one: ErrUnknownCommand, ErrSASLCancelled, or the error a
	// ContinueFunc returned (the server then chooses the reply from it with errors.As).
	Err error
}

func (e *SyntaxError) Error() string {
	var b strings.Builder
	b.WriteString("imapwire: ")
	if e.Tag != "" {
		b.WriteString(e.Tag)
		b.WriteByte(' ')
	}
	if e.Command != "" {
		b.WriteString(e.Command)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Err != nil && e.Err.Error() != e.Msg {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *SyntaxError) Unwrap() error { return e.Err }

var (
	// ErrUnknownCommand is the Err of a SyntaxError for a command name the Decoder does not know
	// (RFC 9051 7.1.5: BAD). The server may count these (cross-protocol attacks).
	ErrUnknownCommand = errors.New("unknown command")
	// ErrSASLCancelled is the Err of a SyntaxError when the client answers an AUTHENTICATE
	// challenge with "*" (RFC 9051 6.2.2: the server MUST answer with a tagged BAD).
	ErrSASLCancelled = errors.New("authentication cancelled")
)
