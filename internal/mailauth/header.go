package mailauth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxHeaderBytes bounds the header section Check holds in memory. RFC 5322
// sets no limit; a megabyte is far beyond any real header (hundreds of
// Received fields included) and small beside the message size limit.
const maxHeaderBytes = 1 << 20

// ErrHeaderTooLarge: the message's header section exceeds maxHeaderBytes.
var ErrHeaderTooLarge = errors.New("mailauth: message header section too large")

// field is one header field: its name as written and its value unfolded
// (RFC 5322 2.2.3: CRLF before WSP removed) with surrounding space trimmed.
type field struct {
	name, value string
}

// readHeader reads the header section (up to and including the empty line)
// from br and returns its raw bytes, which the DKIM verifier must see
// unchanged, and its fields. A message that ends without the empty line is
// all header; raw then gets the empty line added so the section is
// terminated for the DKIM library.
func readHeader(br *bufio.Reader) ([]byte, []field, error) {
	var raw []byte
	for {
		line, err := br.ReadSlice('\n')
		raw = append(raw, line...)
		if len(raw) > maxHeaderBytes {
			return nil, nil, ErrHeaderTooLarge
		}
		if err == bufio.ErrBufferFull {
			continue // a long line: keep reading it
		}
		if err == io.EOF {
			if len(raw) > 0 && raw[len(raw)-1] != '\n' {
				raw = append(raw, "\r\n"...)
			}
			raw = append(raw, "\r\n"...)
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("mailauth: read header: %w", err)
		}
		if isBlankLine(lastLine(raw)) {
			break
		}
	}
	return raw, parseFields(raw), nil
}

// lastLine returns the final line of b (which ends in LF), LF included.
func lastLine(b []byte) []byte {
	i := bytes.LastIndexByte(b[:len(b)-1], '\n')
	return b[i+1:]
}

func isBlankLine(l []byte) bool {
	return string(l) == "\n" || string(l) == "\r\n"
}

// parseFields splits a raw header section into fields. A line that neither
// starts a field ("name:") nor continues one is skipped, as the DKIM library
// also keeps such lines out of any field it signs.
func parseFields(raw []byte) []field {
	var fields []field
	var cur *strings.Builder
	var name string
	flush := func() {
		if cur != nil {
			fields = append(fields, field{name: name, value: strings.TrimSpace(cur.String())})
			cur = nil
		}
	}
	for _, line := range strings.SplitAfter(string(raw), "\n") {
		l := strings.TrimRight(line, "\r\n")
		if l == "" {
			break
		}
		if l[0] == ' ' || l[0] == '\t' {
			if cur != nil {
				cur.WriteString(l) // unfold: the line break goes, the WSP stays
			}
			continue
		}
		flush()
		n, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(n)
		cur = new(strings.Builder)
		cur.WriteString(v)
	}
	flush()
	return fields
}

// values returns the values of every field named name (case-insensitive).
func values(fields []field, name string) []string {
	var vs []string
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			vs = append(vs, f.value)
		}
	}
	return vs
}

// parseTags parses an RFC 6376 3.2 tag-list ("a=rsa-sha256; d=example.com;
// ..."). It is used only to report a signature's d=, s= and a= in
// Authentication-Results; go-msgauth does the verification with its own
// parser. RFC 6376 3.2: a tag-list with a duplicate tag is invalid as a
// whole, so is one with a tag-spec that is not name=value.
func parseTags(s string) (map[string]string, error) {
	tags := make(map[string]string)
	for spec := range strings.SplitSeq(s, ";") {
		if strings.TrimSpace(spec) == "" {
			continue // RFC 6376 3.2: a final ";" is allowed
		}
		k, v, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, errors.New("tag without '='")
		}
		k = strings.TrimSpace(k)
		if !validTagName(k) {
			return nil, fmt.Errorf("bad tag name %q", k)
		}
		if _, dup := tags[k]; dup {
			return nil, fmt.Errorf("duplicate tag %q", k)
		}
		tags[k] = strings.TrimSpace(v)
	}
	return tags, nil
}

// validTagName: RFC 6376 3.2 tag-name = ALPHA *ALNUMPUNC, ALNUMPUNC =
// ALPHA / DIGIT / "_".
func validTagName(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range []byte(k) {
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !alpha && (i == 0 || !(c >= '0' && c <= '9' || c == '_')) {
			return false
		}
	}
	return true
}

// foldHeader renders "name: part1; part2; ..." as a header field folded
// with one part per line (RFC 5322 2.2.3: a line break may precede any
// WSP), lines kept to 78 characters where a space allows it (RFC 5322
// 2.1.1), ending in CRLF.
func foldHeader(name string, parts []string) string {
	var b strings.Builder
	b.WriteString(name + ":")
	for i, p := range parts {
		if i < len(parts)-1 {
			p += ";"
		}
		if i == 0 {
			b.WriteString(foldLine(" "+p, len(name)+1))
			continue
		}
		b.WriteString("\r\n")
		b.WriteString(foldLine("\t"+p, 0))
	}
	b.WriteString("\r\n")
	return b.String()
}

// foldLine breaks s before spaces so that no line is longer than 78
// characters when the first line already holds used characters. A word
// longer than a line stays whole (RFC 5322 2.1.1 allows 998).
func foldLine(s string, used int) string {
	const max = 78
	var b strings.Builder
	width := used
	for len(s) > 0 {
		// The next word is its leading WSP plus what follows up to the
		// next space.
		end := 1
		for end < len(s) && s[end] != ' ' {
			end++
		}
		word := s[:end]
		s = s[end:]
		if width+len(word) > max && width > used && word[0] == ' ' {
			// Fold: CRLF goes before the space, which stays, so unfolding
			// gives back exactly s.
			b.WriteString("\r\n")
			width = 0
		}
		b.WriteString(word)
		width += len(word)
	}
	return b.String()
}
