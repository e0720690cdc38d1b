package message

import (
	"errors"
	"fmt"
)

// Message is the structure of one stored message, computed once at delivery by Parse and kept by the store in
// binary form (MarshalBinary) so that FETCH never reads the body to answer ENVELOPE, BODYSTRUCTURE or to locate a
// BODY[section].
type Message struct {
	// Size is the message's length in octets: RFC822.SIZE (RFC 9051 7.5.2).
	Size int64
	// Root is the top-level part: its header is the message header, its body the message text. Root.Envelope is
	// always set.
	Root *Part
}

// Part is one MIME entity (RFC 2045 2.4) with the byte offsets of its header and body in the raw message and its
// parsed MIME header fields. Offsets satisfy HeaderStart <= BodyStart <= End, and a child lies inside its parent's
// body.
type Part struct {
	// HeaderStart is the offset of the part's first header line; BodyStart the offset just after the blank line
	// ending the header (or where the header ended without one); End the offset just past the body, excluding the
	// line break that RFC 2046 5.1.1 makes part of the following boundary delimiter.
	HeaderStart, BodyStart, End int64
	// Lines counts the line feeds in the body (RFC 9051 7.5.2 body-fld-lines, reported for text/* and
	// message/rfc822).
	Lines int64

	// Type and Subtype are the lowercased media type (RFC 2045 5.1). A part without Content-Type gets the RFC 2045
	// 5.2 default (text/plain, or message/rfc822 inside multipart/digest, RFC 2046 5.1.5). A Content-Type that
	// cannot be parsed leaves both empty, as Dovecot does, so that a broken header is not presented as text.
	Type, Subtype string
	// Params are the Content-Type parameters as an IMAP server reports them: names lowercased, values as given
	// (quoted strings unquoted), RFC 2231 continuations joined into one "name*" parameter whose value keeps its
	// charset'language'%XX form. Use ParamValue for the decoded value.
	Params []Param
	// ID, Description, MD5 and Location are the unfolded Content-ID, Content-Description, Content-MD5 and
	// Content-Location values (RFC 2045 7, 8; RFC 1864; RFC 2557); "" when absent.
	ID, Description, MD5, Location string
	// Encoding is the lowercased Content-Transfer-Encoding token (RFC 2045 6.1); "" when absent (7bit).
	Encoding string
	// Disposition is the Content-Disposition type as given (RFC 2183); "" when absent.
	Disposition       string
	DispositionParams []Param
	// Language holds the Content-Language tags (RFC 3282).
	Language []string

	// Children are the body parts of a multipart. A multipart in which no boundary was found gets one empty
	// text/plain child, because RFC 9051 7.5.2 body-type-mpart needs at least one body.
	Children []*Part
	// Encapsulated is the root part of the message inside a message/rfc822 (or message/global) part: its header
	// starts at this part's BodyStart.
	Encapsulated *Part
	// Envelope is set on the root part of every message: Message.Root and each Encapsulated part.
	Envelope *Envelope
}

// Param is one MIME parameter (RFC 2045 5.1).
type Param struct {
	Name, Value string
}

// Envelope is the RFC 9051 7.5.2 envelope structure. The strings are the raw header values, unfolded (RFC 5322
// 2.2.3) and trimmed but not decoded (RFC 9051 7.5.2 leaves RFC 2047 words to the client); "" stands for NIL.
type Envelope struct {
	Date, Subject                      string
	From, Sender, ReplyTo, To, Cc, Bcc []Address
	InReplyTo, MessageID               string
}

// Address is the RFC 9051 7.5.2 address structure; "" stands for NIL. RFC 3501 7.4.2 group syntax: a group
// starts with an address whose Host is "" and Mailbox is the group name, and ends with an address whose Mailbox
// and Host are both "".
type Address struct {
	Name, AtDomainList, Mailbox, Host string
}

// IsGroupStart reports whether a is the start-of-group marker of RFC 3501 7.4.2.
func (a Address) IsGroupStart() bool { return a.Host == "" && a.Mailbox != "" }

// IsGroupEnd reports whether a is the end-of-group marker of RFC 3501 7.4.2.
func (a Address) IsGroupEnd() bool { return a.Host == "" && a.Mailbox == "" }

// Size is the body's length in octets (RFC 9051 7.5.2 body-fld-octets).
func (p *Part) Size() int64 { return p.End - p.BodyStart }

// IsMultipart reports whether the part has children (its type is multipart).
func (p *Part) IsMultipart() bool { return p.Type == "multipart" }

// Envelope returns the envelope of the top-level message.
func (m *Message) Envelope() Envelope {
	if m.Root == nil || m.Root.Envelope == nil {
		return Envelope{}
	}
	return *m.Root.Envelope
}

// Limits bound what Parse keeps. A zero field takes its default: zero never means unlimited.
type Limits struct {
	// MaxDepth is the deepest nesting of multipart and message/rfc822 parts parsed as such; deeper ones are
	// treated as opaque leaves. Default 50.
	MaxDepth int
	// MaxParts is the number of parts created; past it no further boundary is recognised (as Dovecot does), so the
	// remaining text stays in the part being read. Default 10000.
	MaxParts int
	// MaxHeaderBytes is how much of each part's header is kept for parsing its fields; offsets stay exact past
	// it. Default 1 MiB.
	MaxHeaderBytes int
}

// DefaultLimits are the limits Parse applies.
var DefaultLimits = Limits{MaxDepth: 50, MaxParts: 10000, MaxHeaderBytes: 1 << 20}

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultLimits.MaxDepth
	}
	if l.MaxParts <= 0 {
		l.MaxParts = DefaultLimits.MaxParts
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultLimits.MaxHeaderBytes
	}
	return l
}

// ErrLimit is returned (wrapped in a *LimitError) together with a complete, usable Message when a limit was
// reached: every offset is still exact, only the structure is flatter than the text would allow.
var ErrLimit = errors.New("message: structure limit reached")

// LimitError says which limit was reached first.
type LimitError struct {
	What string // "depth", "parts" or "header"
	Max  int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("message: %s limit %d reached; rest parsed flat", e.What, e.Max)
}

func (e *LimitError) Unwrap() error { return ErrLimit }
