package message

import "strconv"

// IMAPEnvelope renders the top-level envelope exactly as it follows "ENVELOPE " in a FETCH response
// (RFC 9051 7.5.2).
func (m *Message) IMAPEnvelope() []byte {
	e := m.Envelope()
	return appendEnvelope(make([]byte, 0, 512), &e)
}

// IMAPBodyStructure renders the body structure as it follows "BODYSTRUCTURE " (extended) or "BODY " (not
// extended) in a FETCH response (RFC 9051 7.5.2).
func (m *Message) IMAPBodyStructure(extended bool) []byte {
	if m.Root == nil {
		return nil
	}
	return appendBody(make([]byte, 0, 512), m.Root, extended)
}

// AppendIMAPEnvelope appends the RFC 9051 7.5.2 rendering of e to b.
func AppendIMAPEnvelope(b []byte, e *Envelope) []byte { return appendEnvelope(b, e) }

func appendEnvelope(b []byte, e *Envelope) []byte {
	// RFC 9051 7.5.2: date, subject, from, sender, reply-to, to, cc, bcc, in-reply-to, message-id.
	b = append(b, '(')
	b = appendNString(b, e.Date)
	b = append(b, ' ')
	b = appendNString(b, e.Subject)
	for _, l := range [...][]Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc} {
		b = append(b, ' ')
		b = appendAddresses(b, l)
	}
	b = append(b, ' ')
	b = appendNString(b, e.InReplyTo)
	b = append(b, ' ')
	b = appendNString(b, e.MessageID)
	return append(b, ')')
}

func appendAddresses(b []byte, l []Address) []byte {
	if len(l) == 0 {
		return append(b, "NIL"...)
	}
	b = append(b, '(')
	for _, a := range l {
		// RFC 9051 7.5.2 address: name, at-domain-list (adl), mailbox, host.
		b = append(b, '(')
		b = appendNString(b, a.Name)
		b = append(b, ' ')
		b = appendNString(b, a.AtDomainList)
		b = append(b, ' ')
		b = appendNString(b, a.Mailbox)
		b = append(b, ' ')
		b = appendNString(b, a.Host)
		b = append(b, ')')
	}
	return append(b, ')')
}

func appendBody(b []byte, p *Part, ext bool) []byte {
	b = append(b, '(')
	if p.Type == "multipart" {
		// RFC 9051 7.5.2 body-type-mpart: the bodies without separator, then the subtype.
		for _, c := range p.Children {
			b = appendBody(b, c, ext)
		}
		b = append(b, ' ')
		b = appendString(b, p.Subtype)
		if ext {
			// body-ext-mpart: parameters, disposition, language, location.
			b = append(b, ' ')
			b = appendParams(b, p.Params, false)
			b = appendExtTail(b, p)
		}
		return append(b, ')')
	}
	// body-fields: type, subtype, parameters, id, description, encoding, octets.
	text := p.Type == "text"
	b = appendString(b, p.Type)
	b = append(b, ' ')
	b = appendString(b, p.Subtype)
	b = append(b, ' ')
	b = appendParams(b, p.Params, text)
	b = append(b, ' ')
	b = appendNString(b, p.ID)
	b = append(b, ' ')
	b = appendNString(b, p.Description)
	b = append(b, ' ')
	if p.Encoding == "" {
		b = append(b, `"7bit"`...) // RFC 2045 6.1 default
	} else {
		b = appendString(b, p.Encoding)
	}
	b = append(b, ' ')
	b = strconv.AppendInt(b, p.Size(), 10)
	switch {
	case p.Encapsulated != nil:
		// body-type-msg: envelope, body, lines of the encapsulated message.
		b = append(b, ' ')
		env := p.Encapsulated.Envelope
		if env == nil {
			env = &Envelope{}
		}
		b = appendEnvelope(b, env)
		b = append(b, ' ')
		b = appendBody(b, p.Encapsulated, ext)
		b = append(b, ' ')
		b = strconv.AppendInt(b, p.Lines, 10)
	case text:
		b = append(b, ' ')
		b = strconv.AppendInt(b, p.Lines, 10)
	}
	if ext {
		// body-ext-1part: md5, disposition, language, location.
		b = append(b, ' ')
		b = appendNString(b, p.MD5)
		b = appendExtTail(b, p)
	}
	return append(b, ')')
}

// appendExtTail appends the disposition, language and location extension fields (RFC 9051 7.5.2).
func appendExtTail(b []byte, p *Part) []byte {
	b = append(b, ' ')
	if p.Disposition == "" && len(p.DispositionParams) == 0 {
		b = append(b, "NIL"...)
	} else {
		b = append(b, '(')
		b = appendString(b, p.Disposition)
		b = append(b, ' ')
		b = appendParams(b, p.DispositionParams, false)
		b = append(b, ')')
	}
	b = append(b, ' ')
	if len(p.Language) == 0 {
		b = append(b, "NIL"...)
	} else {
		b = append(b, '(')
		for i, l := range p.Language {
			if i > 0 {
				b = append(b, ' ')
			}
			b = appendString(b, l)
		}
		b = append(b, ')')
	}
	b = append(b, ' ')
	return appendNString(b, p.Location)
}

// appendParams appends body-fld-param. A text part without charset gets charset us-ascii, the RFC 2045 5.2
// default, which is what clients expect to read there.
func appendParams(b []byte, params []Param, text bool) []byte {
	addCharset := text
	for _, p := range params {
		if p.Name == "charset" {
			addCharset = false
		}
	}
	if len(params) == 0 && !addCharset {
		return append(b, "NIL"...)
	}
	b = append(b, '(')
	for i, p := range params {
		if i > 0 {
			b = append(b, ' ')
		}
		b = appendString(b, p.Name)
		b = append(b, ' ')
		b = appendString(b, p.Value)
	}
	if addCharset {
		if len(params) > 0 {
			b = append(b, ' ')
		}
		b = append(b, `"charset" "us-ascii"`...)
	}
	return append(b, ')')
}

func appendNString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "NIL"...)
	}
	return appendString(b, s)
}

// appendString appends s as an IMAP string (RFC 9051 4.3): quoted when every byte is a 7-bit TEXT-CHAR, with '"'
// and '\' escaped; otherwise a literal, so CR, LF and 8-bit bytes (raw UTF-8 or legacy header bytes) reach clients
// that did not enable UTF8=ACCEPT. NUL, which no IMAP string may carry, is dropped.
func appendString(b []byte, s string) []byte {
	literal, nul := false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0:
			nul = true
		case c == '\r' || c == '\n' || c >= 0x80:
			literal = true
		}
	}
	if nul {
		clean := make([]byte, 0, len(s))
		for i := 0; i < len(s); i++ {
			if s[i] != 0 {
				clean = append(clean, s[i])
			}
		}
		s = string(clean)
	}
	if literal {
		b = append(b, '{')
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, "}\r\n"...)
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}
