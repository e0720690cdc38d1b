package message

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"unicode/utf8"

	gocharset "github.com/emersion/go-message/charset"
)

// DecodeText turns a raw header value into UTF-8 text for display and search. RFC 2047 encoded words are decoded,
// white space between adjacent ones dropped (RFC 2047 6.2), and adjacent words in one charset converted together
// so a character split across words survives. A word in an unknown charset, or not well formed, is kept as
// written, like Dovecot does. Bytes outside encoded words are taken as UTF-8 (RFC 6532) when valid and as
// ISO-8859-1 otherwise, the common legacy case.
func DecodeText(s string) string {
	if !strings.Contains(s, "=?") {
		return rawToUTF8(s)
	}
	var out strings.Builder
	var pending []byte
	pendingCharset := ""
	flush := func() {
		if len(pending) > 0 {
			out.WriteString(toUTF8(pendingCharset, pending))
			pending = pending[:0]
		}
	}
	afterWord := false
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "=?")
		if j < 0 {
			flush()
			out.WriteString(rawToUTF8(s[i:]))
			break
		}
		j += i
		charset, enc, text, end, ok := splitWord(s, j)
		var decoded []byte
		if ok {
			decoded, ok = decodeWord(enc, text)
		}
		if ok && !knownCharset(charset) {
			ok = false
		}
		if !ok {
			flush()
			out.WriteString(rawToUTF8(s[i : j+2]))
			i = j + 2
			afterWord = false
			continue
		}
		if between := s[i:j]; !afterWord || strings.Trim(between, " \t\r\n") != "" {
			flush()
			out.WriteString(rawToUTF8(between))
		}
		if !strings.EqualFold(charset, pendingCharset) {
			flush()
			pendingCharset = charset
		}
		pending = append(pending, decoded...)
		afterWord = true
		i = end
	}
	flush()
	return out.String()
}

// splitWord reads an RFC 2047 2 encoded word "=?charset?encoding?text?=" starting at s[j]. The charset loses an
// RFC 2231 5 "*language" suffix.
func splitWord(s string, j int) (charset string, enc byte, text string, end int, ok bool) {
	rest := s[j+2:]
	q := strings.IndexByte(rest, '?')
	if q <= 0 || q+3 > len(rest) || rest[q+2] != '?' || strings.ContainsAny(rest[:q], " \t\r\n") {
		return "", 0, "", 0, false
	}
	charset = rest[:q]
	if star := strings.IndexByte(charset, '*'); star >= 0 {
		charset = charset[:star]
	}
	enc = rest[q+1] | 0x20
	body := rest[q+3:]
	e := strings.Index(body, "?=")
	if e < 0 || (enc != 'b' && enc != 'q') {
		return "", 0, "", 0, false
	}
	text = body[:e]
	end = j + 2 + q + 3 + e + 2
	return charset, enc, text, end, true
}

// decodeWord decodes the text of an encoded word: B is base64 (padding optional, decoding stops at garbage), Q is
// RFC 2047 4.2 quoted-printable with '_' for space (a bad escape is kept).
func decodeWord(enc byte, text string) ([]byte, bool) {
	if enc == 'b' {
		t := strings.TrimRight(strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, text), "=")
		if len(t)%4 == 1 {
			t = t[:len(t)-1]
		}
		b, err := base64.RawStdEncoding.DecodeString(t)
		if err != nil {
			if c, isCorrupt := err.(base64.CorruptInputError); isCorrupt {
				t = t[:int(c)]
				if len(t)%4 == 1 {
					t = t[:len(t)-1]
				}
				b, err = base64.RawStdEncoding.DecodeString(t)
			}
			if err != nil {
				return nil, false
			}
		}
		return b, true
	}
	b := make([]byte, 0, len(text))
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '_':
			b = append(b, ' ')
		case c == '=' && i+2 < len(text) && isHex(text[i+1]) && isHex(text[i+2]):
			b = append(b, unhex(text[i+1])<<4|unhex(text[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return b, true
}

// knownCharset reports whether toUTF8 can convert from charset.
func knownCharset(charset string) bool {
	if isUTF8Charset(charset) || strings.EqualFold(charset, "iso-8859-1") {
		return true
	}
	_, err := gocharset.Reader(charset, bytes.NewReader(nil))
	return err == nil
}

func isUTF8Charset(cs string) bool {
	switch strings.ToLower(cs) {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return true
	}
	return false
}

// toUTF8 converts b from charset to UTF-8; input it cannot convert is read as rawToUTF8 does.
func toUTF8(charset string, b []byte) string {
	charset = strings.TrimSpace(charset)
	if isUTF8Charset(charset) {
		return rawToUTF8(string(b))
	}
	if strings.EqualFold(charset, "iso-8859-1") || strings.EqualFold(charset, "latin1") {
		return latin1(b)
	}
	r, err := gocharset.Reader(charset, bytes.NewReader(b))
	if err != nil {
		return rawToUTF8(string(b))
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return rawToUTF8(string(b))
	}
	return string(out)
}

// rawToUTF8 keeps valid UTF-8 and reads anything else as ISO-8859-1.
func rawToUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return latin1([]byte(s))
}

func latin1(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b) + len(b)/4)
	for _, c := range b {
		sb.WriteRune(rune(c))
	}
	return sb.String()
}
