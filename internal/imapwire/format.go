package imapwire

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Rendering of strings and numbers shared by Command.String and the Encoder.

// maxQuoted is the longest string sent quoted; longer ones go as literals, which clients parse
// without scanning for escapes.
const maxQuoted = 1024

func allIn(s string, class *[256]bool) bool {
	for i := 0; i < len(s); i++ {
		if !class[s[i]] {
			return false
		}
	}
	return true
}

// quotable reports whether s can be a quoted string: RFC 9051 9 QUOTED-CHAR is any TEXT-CHAR
// (CHAR but CR and LF; CHAR excludes NUL) or, for UTF-8, UTF8-2/3/4 — which a server may only
// send after ENABLE UTF8=ACCEPT or IMAP4rev2 (RFC 6855 3, RFC 9051 4.3.1).
func quotable(s string, utf8ok bool) bool {
	if len(s) > maxQuoted {
		return false
	}
	high := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0 || c == '\r' || c == '\n':
			return false
		case c >= 0x80:
			high = true
		}
	}
	return !high || utf8ok && utf8.ValidString(s)
}

// appendQuoted writes DQUOTE *QUOTED-CHAR DQUOTE, escaping DQUOTE and "\" (quoted-specials).
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// appendLiteral writes a literal header and its data. A client may use the non-synchronizing
// form for up to 4096 octets (RFC 9051 4.3); a server never does.
func appendLiteral(b []byte, s string, client bool) []byte {
	b = append(b, '{')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	if client && len(s) <= maxNonSyncLiteral {
		b = append(b, '+')
	}
	b = append(b, "}\r\n"...)
	return append(b, s...)
}

// appendString writes string = quoted / literal.
func appendString(b []byte, s string, utf8ok, client bool) []byte {
	if quotable(s, utf8ok) {
		return appendQuoted(b, s)
	}
	return appendLiteral(b, s, client)
}

// appendAString writes astring = 1*ASTRING-CHAR / string; the atom form is used when it reads
// the same, "NIL" excepted (some clients take it for nil wherever it appears).
func appendAString(b []byte, s string, utf8ok, client bool) []byte {
	if s != "" && len(s) <= maxQuoted && allIn(s, &astringChar) && !(len(s) == 3 && (s[0]|0x20) == 'n' && (s[1]|0x20) == 'i' && (s[2]|0x20) == 'l') {
		return append(b, s...)
	}
	return appendString(b, s, utf8ok, client)
}

func appendUint(b []byte, n uint64) []byte { return strconv.AppendUint(b, n, 10) }

// appendDateTime writes the inside of date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (RFC 9051 9:
// date-day-fixed, written here as 2DIGIT).
func appendDateTime(b []byte, t time.Time) []byte {
	return t.AppendFormat(b, "02-Jan-2006 15:04:05 -0700")
}
