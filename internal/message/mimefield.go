package message

import (
	"slices"
	"strconv"
	"strings"
)

// parseContentType parses an RFC 2045 5.1 Content-Type value. A value without a valid type/subtype yields ""/"" and
// no parameters: Dovecot does so rather than falling back to text/plain, so that clients do not show a broken
// binary attachment as text. Parameters are read until the first syntax error, keeping those before it.
func parseContentType(v []byte) (typ, sub string, params []Param) {
	l := lexer{s: v}
	if l.skipCFWS() <= 0 {
		return "", "", nil
	}
	t := l.token()
	if len(t) == 0 || !l.more() || l.peek() != '/' {
		return "", "", nil
	}
	l.i++
	if l.skipCFWS() <= 0 {
		return "", "", nil
	}
	st := l.token()
	if len(st) == 0 {
		return "", "", nil
	}
	return lowerString(t), lowerString(st), parseParams(&l)
}

// parseDisposition parses an RFC 2183 Content-Disposition value: a token, then parameters.
func parseDisposition(v []byte) (string, []Param) {
	l := lexer{s: v}
	l.skipCFWS()
	t := l.token()
	return string(t), parseParams(&l)
}

// parseEncoding parses an RFC 2045 6.1 Content-Transfer-Encoding value into its lowercased token; anything but a
// lone token (after comments) counts as absent, as in Dovecot.
func parseEncoding(v []byte) string {
	l := lexer{s: v}
	l.skipCFWS()
	t := l.token()
	if l.more() {
		return ""
	}
	return lowerString(t)
}

// parseLanguage parses an RFC 3282 Content-Language value: a comma-separated list of language tags.
func parseLanguage(v []byte) []string {
	l := lexer{s: v}
	var out []string
	if l.skipCFWS() <= 0 {
		return nil
	}
	for l.more() {
		start := l.i
		for l.i < len(l.s) && isAtext(l.s[l.i]) {
			l.i++
		}
		if l.i == start {
			break
		}
		out = append(out, string(l.s[start:l.i]))
		l.skipCFWS()
		if !l.more() || l.peek() != ',' {
			break
		}
		l.i++
		l.skipCFWS()
	}
	return out
}

// lowerString returns b as a lowercased string, without the extra copy when it already is lowercase.
func lowerString(b []byte) string {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			return strings.ToLower(string(b))
		}
	}
	return string(b)
}

// rfc2231Segment is one "name*N[*]" parameter awaiting its siblings (RFC 2231 3, 4).
type rfc2231Segment struct {
	name     string
	idx      int
	extended bool
	value    string
}

// parseParams reads "; name=value" parameters (RFC 2045 5.1) from the lexer's position, then joins RFC 2231
// continuations. It stops at the first syntax error and keeps the parameters before it. Two leniencies match
// Dovecot: an unquoted value starting with "=" runs to the next ';' or white space (senders write
// name==?utf-8?b?...?=), and an unquoted value stops at the first tspecial (boundary=----=_Part gives "----").
func parseParams(l *lexer) []Param {
	var params []Param
	var segs []rfc2231Segment
	var scratch []byte
	for l.more() && l.peek() == ';' {
		l.i++
		if l.skipCFWS() <= 0 {
			break
		}
		key := l.token()
		if len(key) == 0 || !l.more() || l.peek() != '=' {
			break
		}
		l.i++
		var value string
		switch r := l.skipCFWS(); {
		case r < 0:
			return finishParams(params, segs)
		case r == 0:
		case l.peek() == '"':
			var ok bool
			scratch, ok = l.quoted(scratch[:0])
			if !ok {
				return finishParams(params, segs)
			}
			value = string(scratch)
		case l.peek() == '=':
			start := l.i
			for l.i < len(l.s) && !isParamStop(l.s[l.i]) {
				l.i++
			}
			value = string(l.s[start:l.i])
		default:
			value = string(l.token())
		}
		name := lowerString(key)
		if seg, ok := splitRFC2231(name); ok {
			seg.value = value
			segs = append(segs, seg)
			continue
		}
		params = append(params, Param{Name: name, Value: value})
	}
	return finishParams(params, segs)
}

func isParamStop(c byte) bool {
	return c == ';' || c == ' ' || c == '\t' || c == '\r' || c == '\n'
}

// splitRFC2231 recognises "name*", "name*N" and "name*N*" (RFC 2231 3, 4).
func splitRFC2231(key string) (rfc2231Segment, bool) {
	star := strings.IndexByte(key, '*')
	if star <= 0 {
		return rfc2231Segment{}, false
	}
	seg := rfc2231Segment{name: key[:star]}
	rest := key[star+1:]
	if rest == "" {
		seg.extended = true
		return seg, true
	}
	if strings.HasSuffix(rest, "*") {
		seg.extended = true
		rest = rest[:len(rest)-1]
	}
	if rest == "" || len(rest) > 4 {
		return rfc2231Segment{}, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || (len(rest) > 1 && rest[0] == '0') {
		return rfc2231Segment{}, false
	}
	seg.idx = n
	return seg, true
}

// finishParams appends the RFC 2231 parameters to the plain ones, each name's segments joined in index order into
// one "name*" parameter when any segment is extended (charset'language'%XX kept encoded, plain segments' '%'
// escaped so the joined value still decodes), or into "name" when none is. With a missing or repeated index the
// segments are reported one by one, as given. This is what Dovecot reports in BODYSTRUCTURE.
func finishParams(params []Param, segs []rfc2231Segment) []Param {
	if len(segs) == 0 {
		return params
	}
	slices.SortStableFunc(segs, func(a, b rfc2231Segment) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return a.idx - b.idx
	})
	for i := 0; i < len(segs); {
		j := i
		ok, ext := true, false
		for ; j < len(segs) && segs[j].name == segs[i].name; j++ {
			if segs[j].idx != j-i {
				ok = false
			}
			ext = ext || segs[j].extended
		}
		if !ok {
			for _, s := range segs[i:j] {
				name := s.name + "*" + strconv.Itoa(s.idx)
				if s.extended {
					name += "*"
				}
				params = append(params, Param{Name: name, Value: s.value})
			}
			i = j
			continue
		}
		var b strings.Builder
		if ext && !segs[i].extended {
			b.WriteString("''") // RFC 2231 4: a first segment without charset'language'
		}
		for _, s := range segs[i:j] {
			if ext && !s.extended {
				b.WriteString(strings.ReplaceAll(s.value, "%", "%25"))
			} else {
				b.WriteString(s.value)
			}
		}
		name := segs[i].name
		if ext {
			name += "*"
		}
		params = append(params, Param{Name: name, Value: b.String()})
		i = j
	}
	return params
}

// paramValueRaw returns a parameter's value as stored, or "".
func paramValueRaw(params []Param, name string) string {
	for _, p := range params {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// ParamValue returns a parameter decoded to UTF-8: an RFC 2231 "name*" value (charset'language'%XX) is preferred
// over a plain "name" whose RFC 2047 encoded words (not allowed there, RFC 2047 5, but common in filenames) are
// decoded too. name is matched case-insensitively.
func ParamValue(params []Param, name string) (string, bool) {
	name = strings.ToLower(name)
	for _, p := range params {
		if p.Name == name+"*" {
			return decodeRFC2231(p.Value), true
		}
	}
	for _, p := range params {
		if p.Name == name {
			return DecodeText(p.Value), true
		}
	}
	return "", false
}

// Filename returns the part's file name decoded: the Content-Disposition filename parameter, else the
// Content-Type name parameter (RFC 2183 2.3; the latter is older practice).
func (p *Part) Filename() string {
	if v, ok := ParamValue(p.DispositionParams, "filename"); ok {
		return v
	}
	v, _ := ParamValue(p.Params, "name")
	return v
}

// Charset returns the Content-Type charset parameter, or us-ascii for text (RFC 2045 5.2) and "" otherwise.
func (p *Part) Charset() string {
	if v, ok := ParamValue(p.Params, "charset"); ok {
		return v
	}
	if p.Type == "text" {
		return "us-ascii"
	}
	return ""
}

// decodeRFC2231 decodes an RFC 2231 4 extended value: charset'language'percent-encoded octets.
func decodeRFC2231(v string) string {
	charset, rest := "", v
	if i := strings.IndexByte(v, '\''); i >= 0 {
		if j := strings.IndexByte(v[i+1:], '\''); j >= 0 {
			charset, rest = v[:i], v[i+1+j+1:]
		}
	}
	b := make([]byte, 0, len(rest))
	for i := 0; i < len(rest); i++ {
		if rest[i] == '%' && i+2 < len(rest) && isHex(rest[i+1]) && isHex(rest[i+2]) {
			b = append(b, unhex(rest[i+1])<<4|unhex(rest[i+2]))
			i += 2
			continue
		}
		b = append(b, rest[i])
	}
	return toUTF8(charset, b)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
