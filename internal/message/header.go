package message

import (
	"bytes"
	"strings"
)

// Header is a raw header block as stored: the bytes of BODY[HEADER] or BODY[n.MIME], read by the caller through
// a Span. Its methods serve SEARCH and HEADER.FIELDS without parsing the whole message again.
type Header []byte

// eachField calls fn for each field of a raw header block (RFC 5322 2.2): name is the field name with trailing
// white space removed, value the raw text after the colon (folding line breaks included), raw the whole field
// including its line breaks. A line without a colon is not a field (an mbox "From " line, garbage); it and its
// continuation lines are skipped, as Dovecot does. fn returns false to stop.
func eachField(h []byte, fn func(name, value, raw []byte) bool) {
	for i := 0; i < len(h); {
		start := i
		first := lineEnd(h, i)
		j := first
		// RFC 5322 2.2.3: a line starting with white space continues the field.
		for j < len(h) && (h[j] == ' ' || h[j] == '\t') {
			j = lineEnd(h, j)
		}
		i = j
		colon := bytes.IndexByte(h[start:first], ':')
		if colon <= 0 {
			continue
		}
		name := bytes.TrimRight(h[start:start+colon], " \t")
		if !fn(name, h[start+colon+1:j], h[start:j]) {
			return
		}
	}
}

// lineEnd returns the index just past the '\n' ending the line that starts at i, or len(h).
func lineEnd(h []byte, i int) int {
	if k := bytes.IndexByte(h[i:], '\n'); k >= 0 {
		return i + k + 1
	}
	return len(h)
}

// unfold returns a field value with its folding line breaks removed (RFC 5322 2.2.3: unfolding removes the CRLF,
// keeping the white space after it) and surrounding white space trimmed, as IMAP ENVELOPE reports it.
func unfold(v []byte) string {
	if bytes.IndexByte(v, '\n') < 0 && bytes.IndexByte(v, '\r') < 0 {
		return string(bytes.Trim(v, " \t"))
	}
	b := make([]byte, 0, len(v))
	for _, c := range v {
		if c != '\r' && c != '\n' {
			b = append(b, c)
		}
	}
	return string(bytes.Trim(b, " \t"))
}

// equalName compares a field name with a lowercase ASCII name, ignoring case.
func equalName(name []byte, lower string) bool {
	if len(name) != len(lower) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// Get returns the first field with the given name (case-insensitive), unfolded and trimmed but not decoded.
func (h Header) Get(name string) (string, bool) {
	lower := strings.ToLower(name)
	var v string
	found := false
	eachField(h, func(n, value, _ []byte) bool {
		if equalName(n, lower) {
			v, found = unfold(value), true
			return false
		}
		return true
	})
	return v, found
}

// Values returns every field with the given name, in order, unfolded and trimmed.
func (h Header) Values(name string) []string {
	lower := strings.ToLower(name)
	var vs []string
	eachField(h, func(n, value, _ []byte) bool {
		if equalName(n, lower) {
			vs = append(vs, unfold(value))
		}
		return true
	})
	return vs
}

// Text returns the first field with the given name decoded for display and search: RFC 2047 encoded words
// decoded and every charset converted to UTF-8 (RFC 6532 raw UTF-8 kept, other 8-bit bytes read as ISO-8859-1).
func (h Header) Text(name string) (string, bool) {
	v, ok := h.Get(name)
	if !ok {
		return "", false
	}
	return DecodeText(v), true
}

// Filter returns the fields named (or, with not, the fields not named), raw and in message order, followed by the
// blank line: the answer to BODY[HEADER.FIELDS (...)] and BODY[HEADER.FIELDS.NOT (...)] (RFC 9051 6.4.5).
func (h Header) Filter(names []string, not bool) []byte {
	lower := make([]string, len(names))
	for i, n := range names {
		lower[i] = strings.ToLower(n)
	}
	out := make([]byte, 0, 256)
	eachField(h, func(n, _, raw []byte) bool {
		in := false
		for _, l := range lower {
			if equalName(n, l) {
				in = true
				break
			}
		}
		if in != not {
			out = append(out, raw...)
			if raw[len(raw)-1] != '\n' {
				out = append(out, '\r', '\n') // the header ended with the input: keep the answer well formed
			}
		}
		return true
	})
	return append(out, '\r', '\n')
}

// parseMIMEHeader fills a part's MIME fields from its raw header. The first of each Content-* field counts, as in
// Dovecot (RFC 2045 allows one of each; a second Content-Type usually comes from a broken relay). A message root
// (root set) without MIME-Version and Content-Type is not MIME (RFC 2045 4) and keeps the defaults.
func parseMIMEHeader(pt *Part, hdr []byte, digest, root bool) {
	var seen uint16
	isMIME := !root
	const (
		sType = 1 << iota
		sEnc
		sID
		sDesc
		sMD5
		sLang
		sLoc
	)
	first := func(bit uint16) bool {
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	}
	eachField(hdr, func(name, value, _ []byte) bool {
		if len(name) < 10 || !equalName(name[:8], "content-") {
			if !isMIME && equalName(name, "mime-version") {
				isMIME = true
			}
			return true
		}
		switch n := name[8:]; {
		case equalName(n, "type"):
			isMIME = true
			if first(sType) {
				pt.Type, pt.Subtype, pt.Params = parseContentType(value)
			}
		case equalName(n, "transfer-encoding"):
			if first(sEnc) {
				pt.Encoding = parseEncoding(value)
			}
		case equalName(n, "id"):
			if first(sID) {
				pt.ID = unfold(value)
			}
		case equalName(n, "description"):
			if first(sDesc) {
				pt.Description = unfold(value)
			}
		case equalName(n, "md5"):
			if first(sMD5) {
				pt.MD5 = unfold(value)
			}
		case equalName(n, "disposition"):
			// Dovecot's test for "first" is whether parameters were found, so a parameterless disposition
			// gives way to a later one.
			if len(pt.DispositionParams) == 0 {
				pt.Disposition, pt.DispositionParams = parseDisposition(value)
			}
		case equalName(n, "language"):
			if first(sLang) {
				pt.Language = parseLanguage(value)
			}
		case equalName(n, "location"):
			if first(sLoc) {
				pt.Location = unfold(value)
			}
		}
		return true
	})
	if !isMIME {
		*pt = Part{HeaderStart: pt.HeaderStart, BodyStart: pt.BodyStart}
		seen = 0
	}
	if seen&sType == 0 {
		// RFC 2045 5.2 default, RFC 2046 5.1.5 in a digest.
		if digest {
			pt.Type, pt.Subtype = "message", "rfc822"
		} else {
			pt.Type, pt.Subtype = "text", "plain"
		}
	}
}

// parseEnvelope builds the RFC 9051 7.5.2 envelope of a message header. RFC 5322 3.6 allows one of each field;
// when a message has more, the last counts, as in Dovecot.
func parseEnvelope(hdr []byte) *Envelope {
	e := &Envelope{}
	eachField(hdr, func(name, value, _ []byte) bool {
		if len(name) < 2 || len(name) > 11 {
			return true
		}
		switch c := name[0] | 0x20; c {
		case 'd':
			if equalName(name, "date") {
				e.Date = unfold(value)
			}
		case 's':
			if equalName(name, "subject") {
				e.Subject = unfold(value)
			} else if equalName(name, "sender") {
				e.Sender = parseAddressList(value)
			}
		case 'f':
			if equalName(name, "from") {
				e.From = parseAddressList(value)
			}
		case 'r':
			if equalName(name, "reply-to") {
				e.ReplyTo = parseAddressList(value)
			}
		case 't':
			if equalName(name, "to") {
				e.To = parseAddressList(value)
			}
		case 'c':
			if equalName(name, "cc") {
				e.Cc = parseAddressList(value)
			}
		case 'b':
			if equalName(name, "bcc") {
				e.Bcc = parseAddressList(value)
			}
		case 'i':
			if equalName(name, "in-reply-to") {
				e.InReplyTo = unfold(value)
			}
		case 'm':
			if equalName(name, "message-id") {
				e.MessageID = unfold(value)
			}
		}
		return true
	})
	// RFC 9051 7.5.2: sender and reply-to default to from when absent or empty.
	if len(e.Sender) == 0 {
		e.Sender = e.From
	}
	if len(e.ReplyTo) == 0 {
		e.ReplyTo = e.From
	}
	return e
}
