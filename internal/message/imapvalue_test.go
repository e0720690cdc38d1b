package message

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ival is a parsed IMAP response value: an atom (NIL, numbers, keys), a string (quoted or literal: the form is
// not kept, one of the README's allowed differences) or a parenthesised list.
type ival struct {
	kind byte // 'a' atom, 's' string, 'l' list
	s    string
	list []ival
}

func (v ival) isNIL() bool { return v.kind == 'a' && strings.EqualFold(v.s, "NIL") }

// String renders v canonically: strings always quoted with Go escaping, so two values are equal exactly when
// their renderings are.
func (v ival) String() string {
	var b strings.Builder
	v.write(&b)
	return b.String()
}

func (v ival) write(b *strings.Builder) {
	switch v.kind {
	case 'a':
		b.WriteString(v.s)
	case 's':
		b.WriteString(strconv.Quote(v.s))
	case 'l':
		b.WriteByte('(')
		for i, e := range v.list {
			if i > 0 {
				b.WriteByte(' ')
			}
			e.write(b)
		}
		b.WriteByte(')')
	}
}

// imapReader reads IMAP response syntax (RFC 9051 4) from raw bytes.
type imapReader struct {
	s string
	i int
}

func (r *imapReader) fail(msg string) error {
	end := min(len(r.s), r.i+40)
	return fmt.Errorf("imap syntax at %d (%q): %s", r.i, r.s[r.i:end], msg)
}

func (r *imapReader) value() (ival, error) {
	if r.i >= len(r.s) {
		return ival{}, r.fail("unexpected end")
	}
	switch c := r.s[r.i]; c {
	case '(':
		r.i++
		var l []ival
		for {
			if r.i >= len(r.s) {
				return ival{}, r.fail("unterminated list")
			}
			if r.s[r.i] == ')' {
				r.i++
				return ival{kind: 'l', list: l}, nil
			}
			if len(l) > 0 {
				// RFC 9051 body-type-mpart puts no space between bodies.
				if r.s[r.i] == ' ' {
					r.i++
				} else if r.s[r.i] != '(' {
					return ival{}, r.fail("expected SP")
				}
			}
			v, err := r.value()
			if err != nil {
				return ival{}, err
			}
			l = append(l, v)
		}
	case '"':
		var b strings.Builder
		for r.i++; r.i < len(r.s); r.i++ {
			switch c := r.s[r.i]; c {
			case '"':
				r.i++
				return ival{kind: 's', s: b.String()}, nil
			case '\\':
				r.i++
				if r.i >= len(r.s) {
					return ival{}, r.fail("bad escape")
				}
				b.WriteByte(r.s[r.i])
			case '\r', '\n':
				return ival{}, r.fail("CR/LF in quoted string")
			default:
				b.WriteByte(c)
			}
		}
		return ival{}, r.fail("unterminated quoted string")
	case '{':
		end := strings.Index(r.s[r.i:], "}\r\n")
		if end < 0 {
			return ival{}, r.fail("bad literal")
		}
		n, err := strconv.Atoi(r.s[r.i+1 : r.i+end])
		if err != nil || r.i+end+3+n > len(r.s) {
			return ival{}, r.fail("bad literal length")
		}
		start := r.i + end + 3
		r.i = start + n
		return ival{kind: 's', s: r.s[start:r.i]}, nil
	default:
		start := r.i
		depth := 0
		for r.i < len(r.s) {
			c := r.s[r.i]
			if c == '[' {
				depth++
			} else if c == ']' {
				depth--
			} else if depth == 0 && (c == ' ' || c == '(' || c == ')' || c == '\r' || c == '\n') {
				break
			}
			r.i++
		}
		if r.i == start {
			return ival{}, r.fail("expected value")
		}
		return ival{kind: 'a', s: r.s[start:r.i]}, nil
	}
}

// parseIMAP parses one complete value.
func parseIMAP(s string) (ival, error) {
	r := imapReader{s: s}
	v, err := r.value()
	if err == nil && r.i != len(s) {
		err = r.fail("trailing bytes")
	}
	return v, err
}

// normBody applies the README's allowed differences to a BODY or BODYSTRUCTURE value: letter case of media types,
// subtypes, parameter names and encodings; order of body parameters; NIL versus absent trailing extension data.
func normBody(v ival) ival {
	if v.kind != 'l' || len(v.list) == 0 {
		return v
	}
	l := append([]ival(nil), v.list...)
	if l[0].kind == 'l' { // multipart: bodies, subtype, extension data
		k := 0
		for k < len(l) && l[k].kind == 'l' {
			l[k] = normBody(l[k])
			k++
		}
		if k < len(l) {
			l[k] = lower(l[k])
		}
		if k+1 < len(l) {
			l[k+1] = normParams(l[k+1])
		}
		if k+2 < len(l) {
			l[k+2] = normDisposition(l[k+2])
		}
		return ival{kind: 'l', list: trimNIL(l, k+1)}
	}
	if len(l) < 7 {
		return ival{kind: 'l', list: l}
	}
	l[0], l[1], l[5] = lower(l[0]), lower(l[1]), lower(l[5])
	l[2] = normParams(l[2])
	ext := 7
	switch {
	case l[0].s == "message" && (l[1].s == "rfc822" || l[1].s == "global") && len(l) >= 10 && l[7].kind == 'l':
		l[8] = normBody(l[8])
		ext = 10
	case l[0].s == "text" && len(l) >= 8:
		ext = 8
	}
	if ext+1 < len(l) {
		l[ext+1] = normDisposition(l[ext+1])
	}
	return ival{kind: 'l', list: trimNIL(l, ext)}
}

func lower(v ival) ival {
	if v.kind == 's' {
		v.s = strings.ToLower(v.s)
	}
	return v
}

// normParams lowercases parameter names and sorts the name/value pairs.
func normParams(v ival) ival {
	if v.kind != 'l' || len(v.list)%2 != 0 {
		return v
	}
	type pair struct{ n, v ival }
	var ps []pair
	for i := 0; i < len(v.list); i += 2 {
		ps = append(ps, pair{lower(v.list[i]), v.list[i+1]})
	}
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].n.s != ps[j].n.s {
			return ps[i].n.s < ps[j].n.s
		}
		return ps[i].v.String() < ps[j].v.String()
	})
	out := ival{kind: 'l'}
	for _, p := range ps {
		out.list = append(out.list, p.n, p.v)
	}
	return out
}

func normDisposition(v ival) ival {
	if v.kind != 'l' || len(v.list) != 2 {
		return v
	}
	return ival{kind: 'l', list: []ival{v.list[0], normParams(v.list[1])}}
}

// trimNIL drops trailing NILs at or after index from.
func trimNIL(l []ival, from int) []ival {
	for len(l) > from && l[len(l)-1].isNIL() {
		l = l[:len(l)-1]
	}
	return l
}
