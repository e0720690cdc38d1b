package imapwire

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// RFC 3501 5.1.3: modified BASE64 is BASE64 with "," in place of "/", and no padding.
var mbase64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding).Strict()

var errUTF7 = errors.New("imapwire: invalid modified UTF-7")

// EncodeUTF7 encodes a UTF-8 mailbox name in modified UTF-7 (RFC 3501 5.1.3): printable US-ASCII
// but "&" stands for itself, "&" is "&-", and every other run of characters is "&", their UTF-16
// in modified BASE64, and "-". Invalid UTF-8 octets are encoded as U+FFFD.
func EncodeUTF7(s string) string {
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x7e && s[i] != '&' {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	var units []uint16
	for i < len(s) {
		c := s[i]
		if c >= 0x20 && c <= 0x7e {
			b.WriteByte(c)
			if c == '&' {
				b.WriteByte('-')
			}
			i++
			continue
		}
		// A run of characters that cannot represent themselves.
		units = units[:0]
		for i < len(s) && (s[i] < 0x20 || s[i] > 0x7e) {
			r, size := utf8.DecodeRuneInString(s[i:])
			i += size
			units = utf16.AppendRune(units, r)
		}
		raw := make([]byte, 2*len(units))
		for k, u := range units {
			raw[2*k], raw[2*k+1] = byte(u>>8), byte(u)
		}
		b.WriteByte('&')
		b.WriteString(mbase64.EncodeToString(raw))
		b.WriteByte('-')
	}
	return b.String()
}

// DecodeUTF7 decodes a modified UTF-7 mailbox name (RFC 3501 5.1.3) to UTF-8. It rejects what the
// RFC forbids, so that EncodeUTF7(DecodeUTF7(s)) == s: octets outside 0x20-0x7e, an unterminated
// or malformed BASE64 run, a run encoding a printable US-ASCII character "which can represent
// itself", adjacent runs (the null shift "-&"), and unpaired UTF-16 surrogates.
func DecodeUTF7(s string) (string, error) {
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x7e && s[i] != '&' {
		i++
	}
	if i == len(s) {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	afterRun := false
	for i < len(s) {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", errUTF7
		}
		if c != '&' {
			b.WriteByte(c)
			i++
			afterRun = false
			continue
		}
		j := strings.IndexByte(s[i+1:], '-')
		if j < 0 {
			return "", errUTF7 // "all names ... MUST end in US-ASCII"
		}
		j += i + 1
		if j == i+1 {
			b.WriteByte('&') // "&-" is "&"
			i = j + 1
			afterRun = false
			continue
		}
		if afterRun {
			return "", errUTF7 // null shift: "-&" while in BASE64
		}
		run := s[i+1 : j]
		for k := 0; k < len(run); k++ {
			// Only modified BASE64 (encoding/base64 would skip CR and LF silently).
			if c := run[k]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == ',') {
				return "", errUTF7
			}
		}
		raw, err := mbase64.DecodeString(run)
		if err != nil || len(raw)%2 != 0 {
			return "", errUTF7
		}
		units := make([]uint16, len(raw)/2)
		for k := range units {
			units[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		for k := 0; k < len(units); k++ {
			r := rune(units[k])
			if utf16.IsSurrogate(r) {
				if k+1 == len(units) {
					return "", errUTF7
				}
				r = utf16.DecodeRune(r, rune(units[k+1]))
				if r == utf8.RuneError {
					return "", errUTF7
				}
				k++
			} else if r >= 0x20 && r <= 0x7e {
				return "", errUTF7 // "MUST NOT be used to represent any printing US-ASCII character"
			}
			b.WriteRune(r)
		}
		i = j + 1
		afterRun = true
	}
	return b.String(), nil
}

// IsInbox reports whether name is INBOX: RFC 9051 5.1 and 9: "All case variants of INBOX (e.g.,
// "iNbOx") MUST be interpreted as INBOX". The Decoder leaves names as sent.
func IsInbox(name string) bool { return len(name) == 5 && strings.EqualFold(name, "INBOX") }

// CanonicalMailbox returns "INBOX" for any case variant of it and name otherwise. Whether
// "inbox/child" names a child of INBOX is for the server to decide with its delimiter.
func CanonicalMailbox(name string) string {
	if IsInbox(name) {
		return "INBOX"
	}
	return name
}

// CheckMailboxName reports whether a decoded mailbox name is acceptable for creation: valid
// UTF-8, not empty, and none of what RFC 6855 3 and RFC 9051 5.1 (Net-Unicode) exclude: control
// characters U+0000-U+001F and U+0080-U+009F, DEL, U+2028 and U+2029.
func CheckMailboxName(name string) error {
	if name == "" || !utf8.ValidString(name) {
		return errors.New("imapwire: mailbox name is empty or not valid UTF-8")
	}
	for _, r := range name {
		if r < 0x20 || r >= 0x7f && r <= 0x9f || r == 0x2028 || r == 0x2029 {
			return errors.New("imapwire: mailbox name contains a control character")
		}
	}
	return nil
}
