package smtpserver

import (
	"strings"
	"time"
	"unicode/utf8"

	"posta/internal/delivery"
)

// receivedHeader builds the trace field the server prepends (RFC 5321 4.4:
// "MUST insert ... at the beginning of the message content"):
//
//	Received: from <helo> (<rdns or unknown> [<ip>])
//		(using TLS1.3)
//		by <host> with ESMTPSA id <id>
//		for <rcpt>
//		tls TLS_AES_128_GCM_SHA256; <date>
//
// Everything the client chose (HELO, the recipient) and what DNS said (the
// reverse name) passes through a filter first, so no input can put a CR or LF
// into the header (header injection) or break its comment syntax. The login
// name never appears: RFC 4954 7 asks only for the ESMTPA keyword.
func receivedHeader(env *delivery.Envelope, host string) string {
	var b strings.Builder
	b.WriteString("Received: from ")
	helo := env.HELO
	if !validHELO(helo) {
		helo = headerSafe(helo, env.SMTPUTF8, 255)
	}
	if helo == "" {
		helo = "unknown"
	}
	b.WriteString(helo)
	// RFC 5321 4.4 TCP-info: the reverse name and the address literal
	// (4.1.3: IPv6 literals carry the "IPv6:" tag).
	b.WriteString(" (")
	rdns := env.RemoteHost
	if !validDomain(rdns, false) {
		rdns = "unknown"
	}
	b.WriteString(rdns)
	b.WriteString(" [")
	b.WriteString(addressLiteral(env))
	b.WriteString("])")
	version, cipher, _ := strings.Cut(env.TLS, " ")
	// The cipher suite goes in the "tls" clause below when it has a name
	// that clause takes, else in this comment.
	tlsClause := tlsCipherName(cipher)
	if env.TLS != "" {
		b.WriteString("\r\n\t(using ")
		b.WriteString(headerSafe(version, false, 32))
		if cipher != "" && !tlsClause {
			b.WriteString(" with cipher ")
			b.WriteString(headerSafe(cipher, false, 64))
		}
		b.WriteString(")")
	}
	b.WriteString("\r\n\tby ")
	b.WriteString(host)
	b.WriteString(" with ")
	b.WriteString(withProtocol(env))
	b.WriteString(" id ")
	b.WriteString(headerSafe(env.ID, false, 64))
	// RFC 5321 4.4: the "for" clause names the recipient; with several it is
	// left out, so that Bcc recipients are not revealed to each other.
	if len(env.Recipients) == 1 {
		if rcpt := env.Recipients[0].Address; rcpt != "" && headerSafe(rcpt, env.SMTPUTF8, maxPath) == rcpt &&
			!strings.ContainsAny(rcpt, "<>;") {
			b.WriteString("\r\n\tfor <")
			b.WriteString(rcpt)
			b.WriteString(">")
		}
	}
	// RFC 8314 4.3: the "tls" clause names the cipher suite (SHOULD, on
	// submission; harmless on MX).
	if tlsClause {
		b.WriteString("\r\n\ttls ")
		b.WriteString(cipher)
	}
	b.WriteString("; ")
	// RFC 5322 3.3 date-time.
	b.WriteString(env.ReceivedAt.Format(time.RFC1123Z))
	b.WriteString("\r\n")
	return b.String()
}

// withProtocol is the "with" keyword: RFC 3848 (ESMTP, ESMTPA, ESMTPS,
// ESMTPSA), RFC 6531 4.3 (UTF8SMTP, UTF8SMTPA, UTF8SMTPS, UTF8SMTPSA), RFC
// 5321 4.4 (SMTP after HELO).
func withProtocol(env *delivery.Envelope) string {
	var p string
	switch {
	case env.SMTPUTF8:
		p = "UTF8SMTP"
	case env.ESMTP:
		p = "ESMTP"
	default:
		return "SMTP" // HELO: no extensions, so no S/A suffixes are defined
	}
	if env.TLS != "" {
		p += "S"
	}
	if env.Auth {
		p += "A"
	}
	return p
}

// addressLiteral renders the peer address as RFC 5321 4.1.3 writes it.
func addressLiteral(env *delivery.Envelope) string {
	ip := env.RemoteIP.Unmap().WithZone("")
	switch {
	case !ip.IsValid():
		return "unknown"
	case ip.Is6():
		return "IPv6:" + ip.String()
	}
	return ip.String()
}

// headerSafe keeps the characters that cannot break a Received field: printable
// ASCII except parentheses, backslash and semicolon (comment and clause
// delimiters), UTF-8 letters when the message is SMTPUTF8 (RFC 6532 3.2);
// everything else, CR and LF first, becomes '?'. The result is at most max
// bytes.
func headerSafe(s string, utf8OK bool, max int) string {
	var b strings.Builder
	for _, r := range s {
		var ok bool
		switch {
		case r > ' ' && r < 0x7f:
			ok = !strings.ContainsRune(`()\;`, r)
		case r >= 0xa0 && utf8OK && r != utf8.RuneError:
			ok = true
		}
		if !ok {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// tlsCipherName matches RFC 8314 4.3 tls-cipher: a registered name
// (ALPHA *(ALPHA / DIGIT / "_")) or "0x" and four hex digits, which is what
// crypto/tls's CipherSuiteName returns for an unknown suite.
func tlsCipherName(s string) bool {
	if len(s) == 6 && strings.HasPrefix(s, "0x") {
		for _, c := range s[2:] {
			if !strings.ContainsRune("0123456789ABCDEFabcdef", c) {
				return false
			}
		}
		return true
	}
	if s == "" || len(s) > 64 || !isAlpha(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlpha(s[i]) && !(s[i] >= '0' && s[i] <= '9') && s[i] != '_' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
