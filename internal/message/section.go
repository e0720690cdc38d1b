package message

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Specifier is the text part of a section spec (RFC 9051 6.4.5).
type Specifier uint8

const (
	SpecNone            Specifier = iota // no text part: the whole message, or the part's body
	SpecHeader                           // HEADER
	SpecHeaderFields                     // HEADER.FIELDS (...)
	SpecHeaderFieldsNot                  // HEADER.FIELDS.NOT (...)
	SpecText                             // TEXT
	SpecMIME                             // MIME, only after a part number
)

// Section is a parsed BODY[section] spec (RFC 9051 6.4.5 section-spec).
type Section struct {
	Part   []int // part numbers, each >= 1; empty for the top-level message
	Spec   Specifier
	Fields []string // header field names for HEADER.FIELDS and HEADER.FIELDS.NOT
}

// SectionError reports a section spec that is not valid syntax; the IMAP server answers BAD.
type SectionError struct {
	Spec string
	Pos  int // byte offset in Spec where parsing failed
	Msg  string
}

func (e *SectionError) Error() string {
	return fmt.Sprintf("message: bad section %q at %d: %s", e.Spec, e.Pos, e.Msg)
}

// ErrNoPart is returned by Message.Section for a section that is valid syntax but names no part of this message
// (a part number past the last, or HEADER/TEXT of a part that is not message/rfc822).
var ErrNoPart = errors.New("message: no such body part")

// maxPartNumber bounds a part number; no message has this many parts (Limits.MaxParts).
const maxPartNumber = 1 << 30

// ParseSection parses the text between "[" and "]" of BODY[...] (RFC 9051 6.4.5 section-spec):
//
//	section-spec    = section-msgtext / (section-part ["." section-text])
//	section-msgtext = "HEADER" / "HEADER.FIELDS" [".NOT"] SP header-list / "TEXT"
//	section-part    = nz-number *("." nz-number)
//	section-text    = section-msgtext / "MIME"
//
// Keywords are case-insensitive; header field names are astrings (atom, quoted string or literal).
func ParseSection(spec string) (Section, error) {
	var s Section
	i := 0
	fail := func(msg string) (Section, error) {
		return Section{}, &SectionError{Spec: spec, Pos: i, Msg: msg}
	}
	for i < len(spec) && isDigit(spec[i]) {
		start := i
		for i < len(spec) && isDigit(spec[i]) {
			i++
		}
		if spec[start] == '0' {
			i = start
			return fail("part number must be a nz-number")
		}
		n, err := strconv.Atoi(spec[start:i])
		if err != nil || n > maxPartNumber {
			i = start
			return fail("part number too large")
		}
		s.Part = append(s.Part, n)
		if i == len(spec) {
			return s, nil
		}
		if spec[i] != '.' {
			return fail("expected '.' after part number")
		}
		i++
		if i == len(spec) {
			return fail("expected part number or section text after '.'")
		}
	}
	rest := spec[i:]
	switch {
	case rest == "":
		return s, nil
	case strings.EqualFold(rest, "HEADER"):
		s.Spec = SpecHeader
		return s, nil
	case strings.EqualFold(rest, "TEXT"):
		s.Spec = SpecText
		return s, nil
	case strings.EqualFold(rest, "MIME"):
		if len(s.Part) == 0 {
			return fail("MIME needs a part number")
		}
		s.Spec = SpecMIME
		return s, nil
	}
	const hf, not = "HEADER.FIELDS", ".NOT"
	if len(rest) < len(hf) || !strings.EqualFold(rest[:len(hf)], hf) {
		return fail("unknown section text")
	}
	i += len(hf)
	s.Spec = SpecHeaderFields
	if len(spec)-i >= len(not) && strings.EqualFold(spec[i:i+len(not)], not) {
		s.Spec = SpecHeaderFieldsNot
		i += len(not)
	}
	if i+1 >= len(spec) || spec[i] != ' ' || spec[i+1] != '(' {
		return fail("expected SP \"(\" before header-list")
	}
	i += 2
	for {
		name, n, msg := readAstring(spec[i:])
		if msg == "" {
			msg = checkFieldName(name)
		}
		if msg != "" {
			return fail(msg)
		}
		s.Fields = append(s.Fields, name)
		i += n
		if i < len(spec) && spec[i] == ')' {
			i++
			break
		}
		if i >= len(spec) || spec[i] != ' ' {
			return fail("expected SP or \")\" in header-list")
		}
		i++
	}
	if i != len(spec) {
		return fail("text after header-list")
	}
	return s, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// maxFieldName bounds a header field name: RFC 5322 2.1.1 lines are at most 998 octets.
const maxFieldName = 998

// checkFieldName accepts RFC 5322 3.6.8 field names (printable US-ASCII; a colon, which no name can contain,
// merely matches nothing), whichever astring form carried them.
func checkFieldName(name string) string {
	if len(name) > maxFieldName {
		return "header field name too long"
	}
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] >= 0x7f {
			return "header field name is not printable US-ASCII"
		}
	}
	return ""
}

// readAstring reads an RFC 9051 9 astring naming a header field: atom (ASTRING-CHAR+), quoted string or literal
// ("{n}" or "{n+}" CRLF n octets). It returns the value, the bytes read, or an error message.
func readAstring(s string) (string, int, string) {
	if s == "" {
		return "", 0, "expected header field name"
	}
	switch s[0] {
	case '"':
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch c := s[i]; c {
			case '"':
				if b.Len() == 0 {
					return "", 0, "empty header field name"
				}
				return b.String(), i + 1, ""
			case '\\':
				i++
				if i >= len(s) || (s[i] != '"' && s[i] != '\\') {
					return "", 0, "bad quoted-pair"
				}
				b.WriteByte(s[i])
			case '\r', '\n', 0:
				return "", 0, "CR, LF or NUL in quoted string"
			default:
				b.WriteByte(c)
			}
		}
		return "", 0, "unterminated quoted string"
	case '{':
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return "", 0, "unterminated literal"
		}
		digits := strings.TrimSuffix(s[1:end], "+")
		n, err := strconv.Atoi(digits)
		if err != nil || n <= 0 || n > maxFieldName || digits == "" || !isDigit(digits[0]) {
			return "", 0, "bad literal length"
		}
		start := end + 1
		if !strings.HasPrefix(s[start:], "\r\n") || len(s)-start-2 < n {
			return "", 0, "short literal"
		}
		v := s[start+2 : start+2+n]
		if strings.ContainsAny(v, "\r\n\x00") {
			return "", 0, "CR, LF or NUL in literal"
		}
		return v, start + 2 + n, ""
	}
	i := 0
	for i < len(s) && isAstringChar(s[i]) {
		i++
	}
	if i == 0 {
		return "", 0, "expected header field name"
	}
	return s[:i], i, ""
}

// isAstringChar reports RFC 9051 9 ASTRING-CHAR: ATOM-CHAR or "]".
func isAstringChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', '%', '*', '"', '\\':
		return false
	}
	return true
}

// String renders the section spec canonically (keywords upper case, field names as given, quoted when needed),
// for the "BODY[...]" that echoes it in the FETCH response.
func (s Section) String() string {
	var b strings.Builder
	for i, n := range s.Part {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(n))
	}
	if s.Spec != SpecNone && len(s.Part) > 0 {
		b.WriteByte('.')
	}
	switch s.Spec {
	case SpecHeader:
		b.WriteString("HEADER")
	case SpecText:
		b.WriteString("TEXT")
	case SpecMIME:
		b.WriteString("MIME")
	case SpecHeaderFields, SpecHeaderFieldsNot:
		b.WriteString("HEADER.FIELDS")
		if s.Spec == SpecHeaderFieldsNot {
			b.WriteString(".NOT")
		}
		b.WriteString(" (")
		for i, f := range s.Fields {
			if i > 0 {
				b.WriteByte(' ')
			}
			atom := f != ""
			for j := 0; j < len(f); j++ {
				if !isAstringChar(f[j]) {
					atom = false
				}
			}
			if atom {
				b.WriteString(f)
			} else {
				b.Write(appendString(nil, f))
			}
		}
		b.WriteByte(')')
	}
	return b.String()
}

// Span is where a section's bytes lie in the raw message: [Start, End). When Filter is set (HEADER.FIELDS and
// HEADER.FIELDS.NOT) the span is the raw header; the answer is Section.Filter of those bytes.
type Span struct {
	Start, End int64
	Filter     bool
}

// Filter returns the answer to a HEADER.FIELDS or HEADER.FIELDS.NOT section from the raw header bytes its Span
// covers: the matching fields, then the blank line (RFC 9051 6.4.5).
func (s Section) Filter(rawHeader []byte) []byte {
	return Header(rawHeader).Filter(s.Fields, s.Spec == SpecHeaderFieldsNot)
}

// Section locates BODY[section] (RFC 9051 6.4.5). Part 1 of a non-multipart message is its body; the parts of a
// message/rfc822 part are those of the message inside it; N.MIME of part 1 of a non-multipart message is the
// message header (as Dovecot answers). An empty multipart's placeholder child is an empty span. It returns
// ErrNoPart when the section names no part of this message.
func (m *Message) Section(s Section) (Span, error) {
	if m.Root == nil {
		return Span{}, ErrNoPart
	}
	if len(s.Part) == 0 {
		return messageSpan(m.Root, s, 0, m.Size)
	}
	msg := m.Root
	var cur *Part
	for _, n := range s.Part {
		if cur != nil {
			switch {
			case cur.Encapsulated != nil:
				msg = cur.Encapsulated
			case cur.Type == "multipart":
				msg = cur
			default:
				return Span{}, ErrNoPart
			}
		}
		if msg.Type == "multipart" {
			if n > len(msg.Children) {
				return Span{}, ErrNoPart
			}
			cur = msg.Children[n-1]
		} else {
			if n != 1 {
				return Span{}, ErrNoPart
			}
			cur = msg
		}
	}
	switch s.Spec {
	case SpecNone:
		return Span{Start: cur.BodyStart, End: cur.End}, nil
	case SpecMIME:
		return Span{Start: cur.HeaderStart, End: cur.BodyStart}, nil
	}
	// RFC 9051 6.4.5: HEADER, HEADER.FIELDS and TEXT after a part number need a message/rfc822 part.
	if cur.Encapsulated == nil {
		return Span{}, ErrNoPart
	}
	sub := cur.Encapsulated
	return messageSpan(sub, s, sub.HeaderStart, sub.End)
}

// messageSpan answers a section-msgtext (or the whole message) of the message whose root is root.
func messageSpan(root *Part, s Section, start, end int64) (Span, error) {
	switch s.Spec {
	case SpecNone:
		return Span{Start: start, End: end}, nil
	case SpecHeader:
		return Span{Start: root.HeaderStart, End: root.BodyStart}, nil
	case SpecHeaderFields, SpecHeaderFieldsNot:
		return Span{Start: root.HeaderStart, End: root.BodyStart, Filter: true}, nil
	case SpecText:
		return Span{Start: root.BodyStart, End: root.End}, nil
	}
	return Span{}, ErrNoPart
}
