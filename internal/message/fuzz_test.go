package message

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// chunkReader returns at most n bytes per Read, so the scanner's window fills at every possible offset.
type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.b))
	copy(p, c.b[:k])
	c.b = c.b[k:]
	return k, nil
}

func addCorpusSeeds(f *testing.F) {
	files, err := filepath.Glob("testdata/mime/*.eml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no corpus: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(crlf(nestedMessage)))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\n\n--a\n\n--a--"))
}

// longDashLine reports whether some line starting with "--" is longer than n bytes.
func longDashLine(b []byte, n int) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		if bytes.HasPrefix(l, []byte("--")) && len(l) >= n {
			return true
		}
	}
	return false
}

// FuzzParse: Parse never panics and fails only by reaching a limit; every offset lies in the message and parts
// nest (checkInvariants); the IMAP renderings are well-formed IMAP (balanced parentheses outside strings, valid
// strings and literals); the binary form round-trips; every part's section spans lie in the message; and the
// result does not depend on how the input arrives or, for lines that fit, on the window size.
func FuzzParse(f *testing.F) {
	addCorpusSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(bytes.NewReader(data))
		if err != nil && !errors.Is(err, ErrLimit) {
			t.Fatalf("Parse: %v", err)
		}
		if m.Size != int64(len(data)) {
			t.Fatalf("Size %d for %d bytes", m.Size, len(data))
		}
		if err := checkInvariants(m, Limits{}); err != nil {
			t.Fatal(err)
		}
		for _, ext := range []bool{false, true} {
			if _, err := parseIMAP(string(m.IMAPBodyStructure(ext))); err != nil {
				t.Fatalf("BODYSTRUCTURE(%v) not IMAP: %v\n%q", ext, err, m.IMAPBodyStructure(ext))
			}
		}
		if _, err := parseIMAP(string(m.IMAPEnvelope())); err != nil {
			t.Fatalf("ENVELOPE not IMAP: %v\n%q", err, m.IMAPEnvelope())
		}
		blob, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back Message
		if err := back.UnmarshalBinary(blob); err != nil {
			t.Fatalf("UnmarshalBinary: %v", err)
		}
		if !reflect.DeepEqual(m, &back) {
			t.Fatal("binary round trip differs")
		}
		checkSections(t, m, m.Root, nil)

		chunked, err2 := Parse(&chunkReader{b: data, n: 1 + len(data)%7})
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(m, chunked) {
			t.Fatalf("result depends on read sizes: %v / %v", err, err2)
		}
		if !longDashLine(data, 60) {
			small, err3 := parseWindow(&chunkReader{b: data, n: 5}, Limits{}, 64)
			if (err == nil) != (err3 == nil) || !reflect.DeepEqual(m, small) {
				t.Fatalf("result depends on the window size: %v / %v", err, err3)
			}
		}
		tight := Limits{MaxDepth: 3, MaxParts: 8, MaxHeaderBytes: 64}
		mt, err := ParseLimits(bytes.NewReader(data), tight)
		if err != nil && !errors.Is(err, ErrLimit) {
			t.Fatalf("Parse with tight limits: %v", err)
		}
		if err := checkInvariants(mt, tight); err != nil {
			t.Fatalf("tight limits: %v", err)
		}
	})
}

// checkSections locates every part through its section number and checks the spans.
func checkSections(t *testing.T, m *Message, p *Part, path []int) {
	if len(path) > 6 {
		return
	}
	// RFC 9051 6.4.5 numbering: a message's parts are its root's children, or the root itself when that is not a
	// multipart; a message/rfc822 part's are those of the message inside.
	msg := p
	if len(path) > 0 {
		switch {
		case p.Encapsulated != nil:
			msg = p.Encapsulated
		case p.Type != "multipart":
			return
		}
	}
	kids := msg.Children
	if msg.Type != "multipart" {
		kids = []*Part{msg}
	}
	for i, k := range kids {
		sub := append(append([]int(nil), path...), i+1)
		for _, spec := range []Specifier{SpecNone, SpecMIME} {
			span, err := m.Section(Section{Part: sub, Spec: spec})
			if err != nil {
				t.Fatalf("section %v: %v", sub, err)
			}
			if span.Start < 0 || span.Start > span.End || span.End > m.Size {
				t.Fatalf("section %v spans [%d,%d) in %d", sub, span.Start, span.End, m.Size)
			}
		}
		if k.Encapsulated != nil || k.Type == "multipart" {
			checkSections(t, m, k, sub)
		}
	}
}

// FuzzSection: ParseSection never panics; what it accepts renders (String) to a spec that parses back to the
// same value and locates a span inside the message or ErrNoPart; what it rejects is a *SectionError pointing
// into the spec.
func FuzzSection(f *testing.F) {
	for _, s := range []string{
		"", "HEADER", "TEXT", "1", "1.2", "1.MIME", "2.HEADER", "2.TEXT", "HEADER.FIELDS (FROM SUBJECT)",
		"HEADER.FIELDS.NOT (DATE)", "1.HEADER.FIELDS (\"x\\\"y\")", "HEADER.FIELDS ({3}\r\nFOO)", "0", "1..2",
		"2.1.1.MIME", "header.fields.not (a b c)",
	} {
		f.Add(s)
	}
	m, err := Parse(strings.NewReader(crlf(nestedMessage)))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		sec, err := ParseSection(spec)
		if err != nil {
			var se *SectionError
			if !errors.As(err, &se) || se.Pos < 0 || se.Pos > len(spec) {
				t.Fatalf("error %v is not a *SectionError inside the spec", err)
			}
			return
		}
		for _, n := range sec.Part {
			if n < 1 {
				t.Fatalf("part number %d accepted", n)
			}
		}
		if (sec.Spec == SpecHeaderFields || sec.Spec == SpecHeaderFieldsNot) != (len(sec.Fields) > 0) {
			t.Fatalf("fields %q with spec %d", sec.Fields, sec.Spec)
		}
		again, err := ParseSection(sec.String())
		if err != nil || !reflect.DeepEqual(again, sec) {
			t.Fatalf("String() %q parses to %+v, %v; want %+v", sec.String(), again, err, sec)
		}
		span, err := m.Section(sec)
		if err != nil {
			if !errors.Is(err, ErrNoPart) {
				t.Fatalf("Section: %v", err)
			}
			return
		}
		if span.Start < 0 || span.Start > span.End || span.End > m.Size {
			t.Fatalf("span [%d,%d) in %d", span.Start, span.End, m.Size)
		}
	})
}
