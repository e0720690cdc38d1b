package message

// Address lists for ENVELOPE (RFC 5322 3.4) are parsed in-house, not with net/mail or go-message's mail package:
// those reject a malformed list outright, while IMAP must still answer with what can be read. The recovery rules
// follow Dovecot's, because its answers are what clients are tested against (see the golden tests):
//
//   - a mailbox without a local part or domain is reported with MISSING_MAILBOX / MISSING_DOMAIN;
//   - "addr@host (Comment)" takes the comment as the display name;
//   - a word not followed by "@" or "<" begins a display name ("Big Bug bb@bug.com" is a name without address);
//   - the list ends at the first address not followed by a comma, the rest being ignored.
const (
	missingMailbox = "MISSING_MAILBOX"
	missingDomain  = "MISSING_DOMAIN"
)

type addrParser struct {
	l   lexer
	out []Address
	str []byte // scratch for the word being read

	// The address being built; has* distinguishes "not seen" from "empty".
	name, route, mailbox, domain   string
	hasName, hasMailbox, hasDomain bool
	invalid                        bool
}

// parseAddressList parses an address-list (RFC 5322 3.4). It returns nil for an empty value.
func parseAddressList(v []byte) []Address {
	p := addrParser{l: lexer{s: v, capture: true}}
	if p.l.skipCFWS() <= 0 {
		return nil
	}
	for n := 0; n < 100000; n++ {
		r := p.address()
		if r == 0 {
			break
		}
		if !p.l.more() || p.l.peek() != ',' {
			break
		}
		p.l.i++
		if r := p.l.skipCFWS(); r <= 0 {
			if r < 0 {
				p.addFixed() // a list ending in garbage
			}
			break
		}
	}
	return p.out
}

func (p *addrParser) add() {
	a := Address{AtDomainList: p.route}
	if p.hasName {
		a.Name = p.name
	}
	if p.hasMailbox {
		a.Mailbox = p.mailbox
	}
	if p.hasDomain {
		a.Host = p.domain
	}
	p.out = append(p.out, a)
	p.name, p.route, p.mailbox, p.domain = "", "", "", ""
	p.hasName, p.hasMailbox, p.hasDomain, p.invalid = false, false, false, false
}

// addFixed adds the address with placeholders for what is missing, so that a client never sees a mailbox
// without a host and takes it for a group marker (RFC 3501 7.4.2).
func (p *addrParser) addFixed() {
	if !p.hasMailbox {
		p.mailbox, p.hasMailbox, p.invalid = missingMailbox, true, true
	}
	if !p.hasDomain || p.domain == "" {
		p.domain, p.hasDomain, p.invalid = missingDomain, true, true
	}
	p.add()
}

// address reads address = mailbox / group. It returns 0 at the end of input, -1 on a syntax error, 1 otherwise.
func (p *addrParser) address() int {
	start := p.l.i
	if r := p.group(); r >= 0 {
		return r
	}
	p.l.i = start
	return p.mailboxSpec()
}

// group reads group = display-name ":" [group-list] ";" (RFC 5322 3.4), reported as RFC 3501 7.4.2 markers. It
// returns -1 only when the input is not a group.
func (p *addrParser) group() int {
	var r int
	p.str, r = p.l.phrase(p.str[:0])
	if r <= 0 || len(p.str) == 0 || !p.l.more() || p.l.peek() != ':' {
		return -1
	}
	p.l.i++
	p.mailbox, p.hasMailbox = string(p.str), true
	r = p.l.skipCFWS()
	p.add()
	if r > 0 && p.l.peek() != ';' {
		for {
			if p.mailboxSpec() <= 0 {
				r = -1
				break
			}
			if !p.l.more() {
				r = 0
				break
			}
			if p.l.peek() != ',' {
				break
			}
			p.l.i++
			if p.l.skipCFWS() <= 0 {
				r = -1
				break
			}
		}
	}
	if r >= 0 {
		if !p.l.more() || p.l.peek() != ';' {
			r = -1
		} else {
			p.l.i++
			r = p.l.skipCFWS()
		}
	}
	p.add() // end of group
	if r == 0 {
		return 0
	}
	return 1
}

// mailboxSpec reads mailbox = name-addr / addr-spec and adds it, placeholders filling what is missing.
func (p *addrParser) mailboxSpec() int {
	start := p.l.i
	r := p.nameAddr()
	if r < 0 {
		p.l.i = start
		r = p.addrSpec()
		if p.invalid && !p.hasName && p.hasMailbox && !p.hasDomain {
			// a lone quoted word: a display name, not a mailbox
			p.name, p.hasName = p.mailbox, true
			p.mailbox, p.hasMailbox = "", false
		}
	}
	if r < 0 {
		p.invalid = true
	}
	p.addFixed()
	return r
}

// nameAddr reads name-addr = [display-name] angle-addr.
func (p *addrParser) nameAddr() int {
	var r int
	p.str, r = p.l.phrase(p.str[:0])
	if r <= 0 || p.l.peek() != '<' {
		return -1
	}
	if len(p.str) > 0 {
		p.name, p.hasName = string(p.str), true
	}
	return p.angleAddr()
}

// angleAddr reads "<" [route ":"] addr-spec ">" (RFC 5322 3.4 and obs-route, 4.4).
func (p *addrParser) angleAddr() int {
	p.l.i++
	if p.l.skipCFWS() <= 0 {
		return -1
	}
	if p.l.peek() == '@' {
		if p.routeSpec() <= 0 || !p.l.more() || p.l.peek() != ':' {
			return -1
		}
		p.l.i++
		if p.l.skipCFWS() <= 0 {
			return -1
		}
	}
	if p.addrSpec() < 0 {
		return -1
	}
	if !p.l.more() || p.l.peek() != '>' {
		return -1
	}
	p.l.i++
	return p.l.skipCFWS()
}

// routeSpec reads obs-route's domain list "@a,@b" (RFC 5322 4.4), kept as the at-domain-list.
func (p *addrParser) routeSpec() int {
	var b []byte
	for {
		p.l.i++ // '@'
		b = append(b, '@')
		if p.l.skipCFWS() <= 0 {
			return -1
		}
		var r int
		if p.l.peek() == '[' {
			b, r = p.l.domainLiteral(b)
		} else {
			b, r = p.l.dotAtom(b)
		}
		if r <= 0 {
			return -1
		}
		for p.l.peek() == ',' {
			p.l.i++
			if p.l.skipCFWS() <= 0 {
				return -1
			}
		}
		if p.l.peek() != '@' {
			break
		}
		b = append(b, ',')
	}
	p.route = string(b)
	return 1
}

// addrSpec reads addr-spec = local-part "@" domain (RFC 5322 3.4.1).
func (p *addrParser) addrSpec() int {
	p.l.comment = p.l.comment[:0]
	quoted := p.l.more() && p.l.peek() == '"'
	var r int
	p.str = p.str[:0]
	if !p.l.more() {
		r = 0
	} else if quoted {
		var ok bool
		if p.str, ok = p.l.quoted(p.str); ok {
			r = 1
			if !p.l.more() {
				r = 0
			}
		} else {
			r = -1
		}
	} else {
		p.str, r = p.l.dotAtom(p.str)
	}
	if r >= 0 {
		p.mailbox, p.hasMailbox = string(p.str), true
	}
	if r <= 0 {
		p.invalid = true
	}
	domainTried := false
	if r != 0 && p.l.more() && p.l.peek() == '@' {
		domainTried = true
		r2 := p.domainPart()
		if r2 <= 0 {
			r = r2
		}
	}
	switch {
	case len(p.l.comment) > 0:
		p.name, p.hasName = string(p.l.comment), true
	case !domainTried:
		// "user" with no "@domain": a mailbox when alone, the start of a display name when words follow.
		p.str = append(p.str, ' ')
		n := len(p.str)
		p.str, _ = p.l.phrase(p.str)
		if len(p.str) != n {
			p.mailbox, p.hasMailbox = "", false
			p.name, p.hasName = string(p.str), true
		} else if !quoted {
			p.domain, p.hasDomain = "", true
		}
		p.invalid = true
		r = -1
	}
	return r
}

// domainPart reads "@" domain: dot-atom or domain-literal.
func (p *addrParser) domainPart() int {
	p.l.i++ // '@'
	if p.l.skipCFWS() <= 0 {
		return -1
	}
	var b []byte
	var r int
	if p.l.peek() == '[' {
		b, r = p.l.domainLiteral(nil)
	} else {
		b, r = p.l.dotAtom(nil)
	}
	if r < 0 {
		return -1
	}
	p.domain, p.hasDomain = string(b), true
	return r
}
