package smtpserver

import (
	"errors"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// go-smtp's path parser is lenient: a domain is every byte up to a space,
// tab or '>', a quoted local part may hold any byte, and nothing bounds the
// lengths. These checks run on what it returns, before an address reaches
// the Deliverer, a log line or a header.

var (
	errAddrSyntax   = errors.New("address syntax")
	errAddrNonASCII = errors.New("non-ASCII address without SMTPUTF8")
)

// Size limits of RFC 5321 4.5.3.1.
const (
	maxLocalPart = 64  // 4.5.3.1.1
	maxDomain    = 255 // 4.5.3.1.2
	maxPath      = 256 // 4.5.3.1.3, including the angle brackets
)

// checkMailbox validates a mailbox (RFC 5321 4.1.2 Mailbox) as go-smtp
// unquoted it. utf8OK is the transaction's SMTPUTF8 flag (RFC 6531 3.3 lets
// local parts and domains be UTF-8 only then).
func checkMailbox(addr string, utf8OK bool) error {
	if len(addr)+2 > maxPath {
		return errAddrSyntax
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return errAddrSyntax
	}
	local, domain := addr[:at], addr[at+1:]
	if len(local) > maxLocalPart || len(domain) > maxDomain {
		return errAddrSyntax
	}
	ascii := true
	for i := 0; i < len(addr); i++ {
		c := addr[i]
		// RFC 5321 4.1.2: no control characters anywhere in a path (and a
		// CR or LF here would let a client write into our headers and logs).
		if c < 0x20 || c == 0x7f {
			return errAddrSyntax
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	if !ascii {
		if !utf8.ValidString(addr) {
			return errAddrSyntax
		}
		if !utf8OK {
			// RFC 6531 3.5: non-ASCII needs the SMTPUTF8 parameter.
			return errAddrNonASCII
		}
	}
	if !validDomain(domain, utf8OK) {
		return errAddrSyntax
	}
	return nil
}

// validDomain accepts RFC 5321 4.1.2 Domain (letters, digits, hyphens in
// dot-separated labels; U-labels too when utf8OK, RFC 6531 3.3) or an
// address literal (4.1.3: [IPv4] or [IPv6:...]).
func validDomain(d string, utf8OK bool) bool {
	if d == "" || len(d) > maxDomain {
		return false
	}
	if strings.HasPrefix(d, "[") {
		if !strings.HasSuffix(d, "]") {
			return false
		}
		lit := d[1 : len(d)-1]
		if v6, ok := strings.CutPrefix(lit, "IPv6:"); ok {
			a, err := netip.ParseAddr(v6)
			return err == nil && a.Is6() && a.Zone() == ""
		}
		a, err := netip.ParseAddr(lit)
		return err == nil && a.Is4()
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			case r >= 0x80 && utf8OK && r != utf8.RuneError:
			default:
				return false
			}
		}
	}
	return true
}

// validHELO reports whether an EHLO/HELO argument is a Domain or an address
// literal (RFC 5321 4.1.1.1), ASCII only.
func validHELO(s string) bool { return validDomain(s, false) }

// checkXtextValue validates a decoded DSN parameter value (ENVID, ORCPT)
// that will be stored and may later be written into a DSN's header fields
// (RFC 3461 4.2, 4.4): printable, no control characters, bounded.
func checkXtextValue(s string, utf8OK bool) bool {
	// RFC 3461 4.4: ENVID is at most 100 characters; ORCPT's address is a
	// path (4.5.3.1.3). 500 covers both with the type prefix.
	if len(s) > 500 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8OK) {
			return false
		}
	}
	return utf8.ValidString(s)
}
