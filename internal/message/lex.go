package message

// lexer reads the structured header field grammar shared by RFC 5322 (addresses) and RFC 2045 (MIME fields):
// white space, comments, atoms, tokens, quoted strings. It is lenient the way Dovecot's rfc822 parser is, because
// its answers are what clients have been tested against.
type lexer struct {
	s []byte
	i int
	// capture keeps the text of the last comment seen in comment, for "addr@host (Display Name)".
	capture bool
	comment []byte
}

func (l *lexer) more() bool { return l.i < len(l.s) }

func (l *lexer) peek() byte { return l.s[l.i] }

// skipCFWS skips white space and comments (RFC 5322 3.2.2). It returns 1 when input follows, 0 at the end, -1 on
// an unterminated comment.
func (l *lexer) skipCFWS() int {
	for l.i < len(l.s) {
		switch l.s[l.i] {
		case ' ', '\t', '\r', '\n':
			l.i++
		case '(':
			if !l.skipComment() {
				return -1
			}
		default:
			return 1
		}
	}
	return 0
}

// skipComment skips a comment, nested ones included (RFC 5322 3.2.2), keeping its text when capturing.
func (l *lexer) skipComment() bool {
	if l.capture {
		l.comment = l.comment[:0]
	}
	l.i++
	level := 1
	for ; l.i < len(l.s); l.i++ {
		c := l.s[l.i]
		switch c {
		case '(':
			level++
		case ')':
			level--
			if level == 0 {
				l.i++
				return true
			}
		case '\\':
			if l.i+1 < len(l.s) && l.s[l.i+1] != '\r' && l.s[l.i+1] != '\n' {
				l.i++
				c = l.s[l.i]
			}
		case '\r', '\n':
			continue
		}
		if l.capture {
			l.comment = append(l.comment, c)
		}
	}
	return false
}

// isAtext reports RFC 5322 3.2.3 atext, plus 8-bit bytes (RFC 6532 3.2 allows UTF-8; Dovecot takes any).
func isAtext(c byte) bool {
	return c >= 0x80 || atextASCII[c]
}

var atextASCII = func() (t [128]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-/=?^_`{|}~" {
		t[c] = true
	}
	return t
}()

// isTokenChar reports RFC 2045 5.1 token characters: not SPACE, CTLs or tspecials. 8-bit bytes pass, leniently.
func isTokenChar(c byte) bool {
	if c >= 0x80 {
		return true
	}
	if c <= ' ' || c == 0x7f {
		return false
	}
	switch c {
	case '(', ')', '<', '>', '@', ',', ';', ':', '\\', '"', '/', '[', ']', '?', '=':
		return false
	}
	return true
}

// token reads an RFC 2045 token and the white space after it.
func (l *lexer) token() []byte {
	start := l.i
	for l.i < len(l.s) && isTokenChar(l.s[l.i]) {
		l.i++
	}
	t := l.s[start:l.i]
	l.skipCFWS()
	return t
}

// quoted reads a quoted string starting at '"' (RFC 5322 3.2.4), appending its content to dst: quoted pairs
// unescaped, folding line breaks removed. ok is false when the closing quote is missing.
func (l *lexer) quoted(dst []byte) ([]byte, bool) {
	l.i++
	for l.i < len(l.s) {
		c := l.s[l.i]
		l.i++
		switch c {
		case '"':
			l.skipCFWS()
			return dst, true
		case '\r', '\n':
		case '\\':
			if l.i >= len(l.s) {
				return dst, false
			}
			dst = append(dst, l.s[l.i])
			l.i++
		default:
			dst = append(dst, c)
		}
	}
	return dst, false
}

// atomOrDots reads atext and dots as they stand (obs-phrase, RFC 5322 4.1), then white space. It returns what
// skipCFWS returns, 0 at the end of input.
func (l *lexer) atomOrDots(dst []byte) ([]byte, int) {
	start := l.i
	for l.i < len(l.s) && (isAtext(l.s[l.i]) || l.s[l.i] == '.') {
		l.i++
	}
	dst = append(dst, l.s[start:l.i]...)
	if l.i >= len(l.s) {
		return dst, 0
	}
	return dst, l.skipCFWS()
}

// phrase reads RFC 5322 3.2.5 phrase / obs-phrase: words joined by one space. It returns -1 when the input starts
// with a dot, 0 at the end of input, 1 otherwise (possibly having read nothing).
func (l *lexer) phrase(dst []byte) ([]byte, int) {
	if l.i >= len(l.s) {
		return dst, 0
	}
	if l.s[l.i] == '.' {
		return dst, -1
	}
	for {
		var r int
		if l.s[l.i] == '"' {
			var ok bool
			if dst, ok = l.quoted(dst); !ok {
				return dst, -1
			}
			r = 1
			if l.i >= len(l.s) {
				r = 0
			}
		} else {
			dst, r = l.atomOrDots(dst)
		}
		if r <= 0 {
			return dst, r
		}
		c := l.s[l.i]
		if !isAtext(c) && c != '"' && c != '.' {
			break
		}
		dst = append(dst, ' ')
	}
	return dst, l.skipCFWS()
}

// dotAtom reads RFC 5322 3.2.3 dot-atom, allowing white space around the dots as RFC 822 did. It returns -1 when
// no atext starts the input, 0 at the end of input, 1 otherwise.
func (l *lexer) dotAtom(dst []byte) ([]byte, int) {
	if l.i >= len(l.s) || !isAtext(l.s[l.i]) {
		return dst, -1
	}
	for {
		start := l.i
		for l.i < len(l.s) && isAtext(l.s[l.i]) {
			l.i++
		}
		dst = append(dst, l.s[start:l.i]...)
		if l.i >= len(l.s) {
			return dst, 0
		}
		if r := l.skipCFWS(); r <= 0 {
			return dst, r
		}
		if l.s[l.i] != '.' {
			return dst, 1
		}
		l.i++
		dst = append(dst, '.')
		if r := l.skipCFWS(); r <= 0 {
			return dst, r
		}
	}
}

// domainLiteral reads RFC 5322 3.4.1 domain-literal starting at '[', brackets kept.
func (l *lexer) domainLiteral(dst []byte) ([]byte, int) {
	dst = append(dst, '[')
	l.i++
	for l.i < len(l.s) {
		c := l.s[l.i]
		l.i++
		switch c {
		case ']':
			dst = append(dst, ']')
			return dst, l.skipCFWS()
		case '\r', '\n':
		case '\\':
			if l.i >= len(l.s) {
				return dst, -1
			}
			dst = append(dst, l.s[l.i])
			l.i++
		default:
			dst = append(dst, c)
		}
	}
	return dst, -1
}
