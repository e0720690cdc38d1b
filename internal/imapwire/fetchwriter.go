package imapwire

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// FetchWriter writes one FETCH response item by item (RFC 9051 7.5.2: message-data = nz-number
// SP "FETCH" SP msg-att). Errors are kept: after the first one every method does nothing, and
// Close returns it. A failure while streaming a literal leaves a partial response on the wire:
// the session must then close the connection.
type FetchWriter struct {
	e   *Encoder
	n   int
	err error
}

// Fetch starts "* seq FETCH (". The session calls the item methods, then Close. The FetchWriter
// belongs to the Encoder and is reused by its next Fetch: one response at a time.
func (e *Encoder) Fetch(seq uint32) *FetchWriter {
	fw := &e.fw
	*fw = FetchWriter{e: e}
	if seq == 0 {
		fw.err = errBadArg
		return fw
	}
	b := append(e.begin(), "* "...)
	b = appendUint(b, uint64(seq))
	b = append(b, " FETCH ("...)
	fw.err = e.end(b)
	return fw
}

// item starts an item: a separating SP, then the name.
func (fw *FetchWriter) item(b []byte) []byte {
	if fw.n > 0 {
		b = append(b, ' ')
	}
	fw.n++
	return b
}

func (fw *FetchWriter) write(b []byte) {
	if fw.err == nil {
		fw.err = fw.e.end(b)
	}
}

func (fw *FetchWriter) start() []byte {
	if fw.err != nil {
		return nil
	}
	return fw.item(fw.e.begin())
}

// UID writes "UID" SP uniqueid.
func (fw *FetchWriter) UID(uid uint32) {
	if uid == 0 && fw.err == nil {
		fw.err = errBadArg
	}
	if b := fw.start(); fw.err == nil {
		b = append(b, "UID "...)
		fw.write(appendUint(b, uint64(uid)))
	}
}

// Flags writes "FLAGS" SP "(" [flag-fetch *(SP flag-fetch)] ")".
func (fw *FetchWriter) Flags(flags ...string) {
	if !validAtoms(flags) && fw.err == nil {
		fw.err = errBadArg
	}
	if b := fw.start(); fw.err == nil {
		b = append(b, "FLAGS "...)
		fw.write(appendAtomList(b, flags))
	}
}

// InternalDate writes "INTERNALDATE" SP date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" quoted.
func (fw *FetchWriter) InternalDate(t time.Time) {
	if b := fw.start(); fw.err == nil {
		b = append(b, `INTERNALDATE "`...)
		b = appendDateTime(b, t)
		fw.write(append(b, '"'))
	}
}

// RFC822Size writes "RFC822.SIZE" SP number64.
func (fw *FetchWriter) RFC822Size(n int64) {
	if n < 0 && fw.err == nil {
		fw.err = errBadArg
	}
	if b := fw.start(); fw.err == nil {
		b = append(b, "RFC822.SIZE "...)
		fw.write(strconv.AppendInt(b, n, 10))
	}
}

// ModSeq writes fetch-mod-resp = "MODSEQ" SP "(" permsg-modsequence ")" (RFC 7162 7): a
// mod-sequence-value, 1 to 2^63-1.
func (fw *FetchWriter) ModSeq(modseq uint64) {
	if (modseq == 0 || modseq > maxNumber64) && fw.err == nil {
		fw.err = errBadArg
	}
	if b := fw.start(); fw.err == nil {
		b = append(b, "MODSEQ ("...)
		b = appendUint(b, modseq)
		fw.write(append(b, ')'))
	}
}

// Envelope writes "ENVELOPE" SP envelope, with the envelope pre-rendered (internal/message).
func (fw *FetchWriter) Envelope(raw []byte) { fw.Raw("ENVELOPE", raw) }

// BodyStructure writes "BODYSTRUCTURE" SP body, or "BODY" SP body (the non-extensible form) when
// extended is false, with the body pre-rendered (internal/message).
func (fw *FetchWriter) BodyStructure(raw []byte, extended bool) {
	if extended {
		fw.Raw("BODYSTRUCTURE", raw)
	} else {
		fw.Raw("BODY", raw)
	}
}

// Raw writes name SP raw, for items rendered elsewhere. raw is not checked.
func (fw *FetchWriter) Raw(name string, raw []byte) {
	if b := fw.start(); fw.err == nil {
		b = append(b, name...)
		b = append(b, ' ')
		fw.write(append(b, raw...))
	}
}

// BinarySize writes "BINARY.SIZE" section-binary SP number (RFC 3516 4.3).
func (fw *FetchWriter) BinarySize(part []int, n uint32) {
	if b := fw.start(); fw.err == nil {
		b = FetchItem{Attr: FetchBinarySize, Section: Section{Part: part}}.appendResponseName(b)
		b = append(b, ' ')
		fw.write(appendUint(b, uint64(n)))
	}
}

var errSectionItem = errors.New("imapwire: not a section item")

func sectionItem(it FetchItem) bool {
	switch it.Attr {
	case FetchBodySection, FetchBinary, FetchRFC822, FetchRFC822Header, FetchRFC822Text:
		return true
	}
	return false
}

// Section writes the data of a BODY[...], BINARY[...], RFC822, RFC822.HEADER or RFC822.TEXT item,
// named as it.ResponseName. The data goes as a quoted string when its octets allow (no CR, LF or
// NUL, no 8-bit unless UTF-8 is enabled; RFC 9051 4.3), else as a literal; for BINARY data with
// NUL, as a literal8 "~{n}" (RFC 3516 4.3).
func (fw *FetchWriter) Section(it FetchItem, data []byte) {
	if !sectionItem(it) && fw.err == nil {
		fw.err = errSectionItem
	}
	b := fw.start()
	if fw.err != nil {
		return
	}
	b = it.appendResponseName(b)
	b = append(b, ' ')
	s := string(data)
	switch {
	case quotable(s, fw.e.utf8):
		b = appendQuoted(b, s)
	case it.Attr == FetchBinary && hasNUL(data):
		b = append(b, '~')
		b = appendLiteral(b, s, false)
	default:
		b = appendLiteral(b, s, false)
	}
	fw.write(b)
}

func hasNUL(b []byte) bool {
	for _, c := range b {
		if c == 0 {
			return true
		}
	}
	return false
}

// SectionNil writes the item's name and NIL: the part does not exist (RFC 9051 4.5, 7.5.2).
func (fw *FetchWriter) SectionNil(it FetchItem) {
	if !sectionItem(it) && fw.err == nil {
		fw.err = errSectionItem
	}
	if b := fw.start(); fw.err == nil {
		b = it.appendResponseName(b)
		fw.write(append(b, " NIL"...))
	}
}

// SectionReader streams size octets from r as the item's data: a literal "{size}", or for BINARY
// a literal8 "~{size}" (RFC 3516 4.3: it may carry NUL). It is how a big BODY[] goes out without
// sitting in memory. If r yields fewer than size octets the response is broken: the error says
// so and the session must close the connection.
func (fw *FetchWriter) SectionReader(it FetchItem, size int64, r io.Reader) {
	if (!sectionItem(it) || size < 0) && fw.err == nil {
		fw.err = errSectionItem
	}
	b := fw.start()
	if fw.err != nil {
		return
	}
	b = it.appendResponseName(b)
	b = append(b, ' ')
	if it.Attr == FetchBinary {
		b = append(b, '~')
	}
	b = append(b, '{')
	b = strconv.AppendInt(b, size, 10)
	b = append(b, "}\r\n"...)
	fw.write(b)
	if fw.err != nil {
		return
	}
	n, err := io.CopyN(fw.e.w, r, size)
	if err != nil {
		fw.err = fmt.Errorf("imapwire: FETCH literal: wrote %d of %d octets: %w", n, size, err)
	}
}

// Close writes ")" CRLF and returns the first error.
func (fw *FetchWriter) Close() error {
	if fw.err != nil {
		return fw.err
	}
	if fw.n == 0 {
		// msg-att = "(" (msg-att-dynamic / msg-att-static) *(SP ...) ")": at least one item.
		return errBadArg
	}
	fw.write(append(fw.e.begin(), ")\r\n"...))
	return fw.err
}
